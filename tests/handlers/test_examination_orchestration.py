from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws

from examiner import ExaminationFailed
from handlers.common import naming
from handlers.common.errors import InvalidInput, NotReady
from handlers.common.evidence import (
    EvidenceStore,
    digest_key,
    digest_line,
    disk_image_key,
    memory_image_key,
    report_written,
    sha256_hex,
)
from handlers.common.settings import Settings
from handlers.common.tags import CASE_TAG, MANAGED_BY_TAG, MANAGED_BY_VALUE
from handlers.examination import handler as examination_handler
from handlers.examination.orchestration import (
    GIB,
    PURPOSE_TAG,
    AnalysisInstanceLost,
    AnalysisNetworkMissing,
    CommandOutcome,
    ExaminationOrder,
    NothingToExamine,
    SsmExaminationExecutor,
    ToolsetNotBuilt,
    case_images,
    check_ready,
    client_token,
    examination_commands,
    examination_result,
    find_analysis_network,
    incident_window,
    launch_analysis_instance,
    root_volume_gib,
    terminate_analysis_instances,
)
from simulation import local_aws
from simulation.examination_local import InProcessExaminationExecutor
from simulation.local_aws import FORENSIC_ACCOUNT, MEMBER_ACCOUNT, PREFIX, REGION, SECURITY_ACCOUNT

BUCKET = naming.evidence_bucket(PREFIX, FORENSIC_ACCOUNT, REGION)
CASE = f"{MEMBER_ACCOUNT}-i-0abc12345def67890-{REGION}-1717000000"
OTHER_CASE = f"{MEMBER_ACCOUNT}-i-0abc12345def67890-{REGION}-1717299999"
CASE_NUMBERS = itertools.count(1717210800)
IMAGE_BYTES = b"\x00" * 4096 + b"ext4 superblock stand-in" + b"\x00" * 4096
MEMORY_BYTES = b"EMiL" + b"\x00" * 8188


@dataclass(frozen=True)
class ForensicLike:
    """What ForensicAccount creates that the examination looks up, made directly in moto."""

    session: boto3.Session
    vpc_id: str
    subnet_ids: tuple[str, ...]
    group_id: str
    key_arn: str
    image_id: str
    case_id: str = ""  # a case of the test's own, with a disk image in the evidence bucket
    clients: dict[str, Any] = field(default_factory=dict)

    def client(self, service: str) -> Any:
        if service not in self.clients:
            self.clients[service] = self.session.client(service)
        return self.clients[service]

    def launch(self, case_id: str = "", attempt: str = "execution-1") -> Any:
        return launch_analysis_instance(
            self.client("ec2"),
            self.client("ssm"),
            self.client("s3"),
            self.client("kms"),
            prefix=PREFIX,
            bucket=BUCKET,
            case_id=case_id or self.case_id,
            attempt=attempt,
        )

    def case_instances(self, case_id: str = "") -> list[str]:
        reservations = self.client("ec2").describe_instances(
            Filters=[{"Name": f"tag:{CASE_TAG}", "Values": [case_id or self.case_id]}]
        )["Reservations"]
        return [i["InstanceId"] for r in reservations for i in r["Instances"]]

    def instance(self, instance_id: str) -> dict[str, Any]:
        return dict(self.client("ec2").describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0])


def _tags(name: str) -> list[dict[str, str]]:
    return [{"Key": "Name", "Value": name}, {"Key": MANAGED_BY_TAG, "Value": MANAGED_BY_VALUE}]


def _tag_spec(kind: str, name: str) -> list[dict[str, Any]]:
    return [{"ResourceType": kind, "Tags": _tags(name)}]


def plant_images(s3: Any, case_id: str) -> None:
    store = EvidenceStore(s3, BUCKET, case_id)
    key = disk_image_key(case_id, "vol-0aaa1111bbbb2222c")
    store.put_bytes(key, IMAGE_BYTES, source="test", tool="test")
    store.put_bytes(digest_key(key), digest_line(sha256_hex(IMAGE_BYTES), key), source=key, tool="test")


def plant_memory_image(s3: Any, case_id: str) -> str:
    """A memory image with its digest, as the capture leaves one (and no disk image)."""
    store = EvidenceStore(s3, BUCKET, case_id)
    key = memory_image_key(case_id, "i-0abc12345def67890")
    store.put_bytes(key, MEMORY_BYTES, source="test", tool="test")
    store.put_bytes(digest_key(key), digest_line(sha256_hex(MEMORY_BYTES), key), source=key, tool="test")
    return key


@pytest.fixture(scope="module")
def cloud() -> Iterator[ForensicLike]:
    """One moto cloud for the module (botocore's model loading per session dominates a fresh one per test);
    every test works on a case of its own, so none sees another's instances or evidence."""
    with mock_aws(config={"lambda": {"use_docker": False}, "stepfunctions": {"execute_state_machine": True}}):
        yield forensic_like(local_aws.account_session(FORENSIC_ACCOUNT))


@pytest.fixture
def forensic_account(cloud: ForensicLike) -> ForensicLike:
    case_id = f"{MEMBER_ACCOUNT}-i-0abc12345def67890-{REGION}-{next(CASE_NUMBERS)}"
    plant_images(cloud.client("s3"), case_id)
    return replace(cloud, case_id=case_id)


def forensic_like(forensic: boto3.Session) -> ForensicLike:
    ec2, iam, ssm, kms, s3 = (forensic.client(s) for s in ("ec2", "iam", "ssm", "kms", "s3"))
    # The toolset build VPC, with a subnet and group of its own, must never be picked.
    build = ec2.create_vpc(CidrBlock="10.78.0.0/16", TagSpecifications=_tag_spec("vpc", f"{PREFIX}-ir-toolset-build"))
    ec2.create_subnet(
        VpcId=build["Vpc"]["VpcId"],
        CidrBlock="10.78.0.0/20",
        AvailabilityZone=f"{REGION}a",
        TagSpecifications=_tag_spec("subnet", f"{PREFIX}-ir-toolset-build"),
    )
    vpc_id = ec2.create_vpc(CidrBlock="10.77.0.0/16", TagSpecifications=_tag_spec("vpc", f"{PREFIX}-ir-analysis"))[
        "Vpc"
    ]["VpcId"]
    subnets = []
    for n, zone in enumerate(("b", "a")):
        az = f"{REGION}{zone}"
        subnets.append(
            ec2.create_subnet(
                VpcId=vpc_id,
                CidrBlock=f"10.77.{16 * n}.0/20",
                AvailabilityZone=az,
                TagSpecifications=_tag_spec("subnet", f"{PREFIX}-ir-analysis-{az}"),
            )["Subnet"]["SubnetId"]
        )
    ec2.create_security_group(
        GroupName="endpoints",
        Description="endpoints",
        VpcId=vpc_id,
        TagSpecifications=_tag_spec("security-group", f"{PREFIX}-ir-analysis-endpoints"),
    )
    group_id = ec2.create_security_group(
        GroupName="analysis",
        Description="analysis",
        VpcId=vpc_id,
        TagSpecifications=_tag_spec("security-group", f"{PREFIX}-ir-analysis-instances"),
    )["GroupId"]
    iam.create_role(
        RoleName=naming.analysis_profile(PREFIX),
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}
                ],
            }
        ),
    )
    iam.create_instance_profile(InstanceProfileName=naming.analysis_profile(PREFIX))
    iam.add_role_to_instance_profile(
        InstanceProfileName=naming.analysis_profile(PREFIX), RoleName=naming.analysis_profile(PREFIX)
    )
    key_arn = kms.create_key(Description="evidence")["KeyMetadata"]["Arn"]
    kms.create_alias(AliasName=naming.forensic_key_alias(PREFIX), TargetKeyId=key_arn)
    volume = ec2.create_volume(Size=30, AvailabilityZone=f"{REGION}a")
    snapshot = ec2.create_snapshot(VolumeId=volume["VolumeId"])
    image_id = ec2.register_image(
        Name=f"{PREFIX}-ir-toolset-1",
        RootDeviceName="/dev/xvda",
        BlockDeviceMappings=[
            {"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": snapshot["SnapshotId"], "VolumeSize": 30}}
        ],
    )["ImageId"]
    ssm.put_parameter(Name=naming.toolset_ami_parameter(PREFIX), Type="String", Value=image_id)
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    return ForensicLike(
        session=forensic,
        vpc_id=vpc_id,
        subnet_ids=tuple(subnets),
        group_id=group_id,
        key_arn=key_arn,
        image_id=image_id,
    )


@pytest.fixture
def lambda_environment(monkeypatch: pytest.MonkeyPatch) -> Settings:
    settings = Settings(
        prefix=PREFIX, security_account=SECURITY_ACCOUNT, forensic_account=FORENSIC_ACCOUNT, forensic_region=REGION
    )
    for key, value in settings.to_env().items():
        monkeypatch.setenv(key, value)
    return settings


def root_volume(forensic_account: ForensicLike, instance_id: str) -> dict[str, Any]:
    [volume] = forensic_account.client("ec2").describe_volumes(
        Filters=[{"Name": "attachment.instance-id", "Values": [instance_id]}]
    )["Volumes"]
    return dict(volume)


# -- launch -----------------------------------------------------------------------------------------


def test_analysis_network_is_found_by_the_names_the_forensic_stack_gives_it(forensic_account: ForensicLike) -> None:
    network = find_analysis_network(forensic_account.client("ec2"), PREFIX)
    assert network.vpc_id == forensic_account.vpc_id
    assert network.security_group_id == forensic_account.group_id
    # Ordered by zone, so the first try is deterministic.
    assert network.subnet_ids == tuple(reversed(forensic_account.subnet_ids))


def test_a_missing_analysis_network_says_to_deploy_the_forensic_stack(forensic_account: ForensicLike) -> None:
    with pytest.raises(AnalysisNetworkMissing, match="forensic stack deployed"):
        find_analysis_network(forensic_account.client("ec2"), "another-prefix")


def test_analysis_instance_has_no_public_address_and_sits_in_an_analysis_subnet(forensic_account: ForensicLike) -> None:
    launched = forensic_account.launch()
    instance = forensic_account.instance(launched.instance_id)
    assert instance["SubnetId"] in forensic_account.subnet_ids and instance["VpcId"] == forensic_account.vpc_id
    assert not instance.get("PublicIpAddress")
    assert all(not eni.get("Association") for eni in instance["NetworkInterfaces"])
    [interface] = instance["NetworkInterfaces"]
    assert [g["GroupId"] for g in interface["Groups"]] == [forensic_account.group_id]
    assert instance["ImageId"] == forensic_account.image_id


def test_analysis_instance_runs_with_the_analysis_profile_imdsv2_and_terminates_on_shutdown(
    forensic_account: ForensicLike,
) -> None:
    launched = forensic_account.launch()
    instance = forensic_account.instance(launched.instance_id)
    assert instance["IamInstanceProfile"]["Arn"].endswith(f":instance-profile/{naming.analysis_profile(PREFIX)}")
    assert instance["MetadataOptions"]["HttpTokens"] == "required"
    shutdown = forensic_account.client("ec2").describe_instance_attribute(
        InstanceId=launched.instance_id, Attribute="instanceInitiatedShutdownBehavior"
    )
    assert shutdown["InstanceInitiatedShutdownBehavior"]["Value"] == "terminate"


def test_instance_and_root_volume_carry_the_case_and_the_volume_is_encrypted(forensic_account: ForensicLike) -> None:
    launched = forensic_account.launch()
    instance = forensic_account.instance(launched.instance_id)
    volume = root_volume(forensic_account, launched.instance_id)
    for tags in (instance["Tags"], volume["Tags"]):
        tagged = {t["Key"]: t["Value"] for t in tags}
        assert tagged[CASE_TAG] == forensic_account.case_id and tagged[MANAGED_BY_TAG] == MANAGED_BY_VALUE
        assert tagged[PURPOSE_TAG] == "examination"
    assert volume["Encrypted"] is True
    # 8 KiB of images: the headroom decides, but never less than the AMI's own root volume.
    [image] = forensic_account.client("ec2").describe_images(ImageIds=[forensic_account.image_id])["Images"]
    ami_root = image["BlockDeviceMappings"][0]["Ebs"]["VolumeSize"]
    assert volume["Size"] == launched.root_volume_gib == max(21, ami_root)
    assert instance["BlockDeviceMappings"][0]["DeviceName"] == image["RootDeviceName"]
    assert instance["BlockDeviceMappings"][0]["Ebs"]["DeleteOnTermination"] is True


def test_root_volume_holds_every_image_twice_plus_headroom() -> None:
    assert root_volume_gib(100 * GIB, 30) == 220
    assert root_volume_gib(100 * GIB + 1, 30) == 221
    assert root_volume_gib(0, 30) == 30
    with pytest.raises(ExaminationFailed, match="more than one gp3 volume"):
        root_volume_gib(9000 * GIB, 30)


def test_launching_again_for_the_same_case_returns_the_same_instance(forensic_account: ForensicLike) -> None:
    first = forensic_account.launch()
    again = forensic_account.launch()
    assert again.instance_id == first.instance_id and first.newly_launched and not again.newly_launched
    assert forensic_account.case_instances() == [first.instance_id]
    instance = forensic_account.instance(first.instance_id)
    assert instance["ClientToken"] == client_token(forensic_account.case_id, "execution-1", instance["SubnetId"])


def test_launch_token_is_stable_per_try_and_new_per_execution() -> None:
    token = client_token(CASE, "execution-1", "subnet-1")
    assert token == client_token(CASE, "execution-1", "subnet-1") and len(token) <= 64
    assert token != client_token(CASE, "execution-2", "subnet-1")
    assert token != client_token(OTHER_CASE, "execution-1", "subnet-1")


@pytest.fixture
def unbuilt_toolset(forensic_account: ForensicLike) -> Iterator[ForensicLike]:
    """The parameter as ForensicAccount leaves it until Image Builder's first build."""
    ssm, name = forensic_account.client("ssm"), naming.toolset_ami_parameter(PREFIX)
    ssm.put_parameter(Name=name, Type="String", Value="unset", Overwrite=True)
    yield forensic_account
    ssm.put_parameter(Name=name, Type="String", Value=forensic_account.image_id, Overwrite=True)


def test_unbuilt_toolset_image_stops_the_launch_and_says_to_run_the_pipeline(unbuilt_toolset: ForensicLike) -> None:
    with pytest.raises(ToolsetNotBuilt, match="Image Builder pipeline"):
        unbuilt_toolset.launch()
    assert unbuilt_toolset.case_instances() == []


def test_a_case_with_neither_a_disk_nor_a_memory_image_launches_nothing(forensic_account: ForensicLike) -> None:
    with pytest.raises(NothingToExamine, match=r"no disk image .* and no memory image .*acquisition wrote neither"):
        forensic_account.launch(case_id=OTHER_CASE)
    assert forensic_account.case_instances(OTHER_CASE) == []


def test_a_case_with_only_a_memory_image_launches_an_instance_for_it(forensic_account: ForensicLike) -> None:
    # An instance-store instance: no EBS volume, so acquisition wrote memory and no disk image.
    case_id = f"{MEMBER_ACCOUNT}-i-0abc12345def67890-{REGION}-{next(CASE_NUMBERS)}"
    key = plant_memory_image(forensic_account.client("s3"), case_id)
    images = case_images(forensic_account.client("s3"), BUCKET, case_id)
    assert (images.disk, images.memory, images.total_bytes) == ({}, {key: len(MEMORY_BYTES)}, len(MEMORY_BYTES))
    launched = forensic_account.launch(case_id=case_id)
    assert forensic_account.case_instances(case_id) == [launched.instance_id] and launched.newly_launched
    tagged = {t["Key"]: t["Value"] for t in forensic_account.instance(launched.instance_id)["Tags"]}
    assert tagged[CASE_TAG] == case_id and tagged[PURPOSE_TAG] == "examination"
    [image] = forensic_account.client("ec2").describe_images(ImageIds=[forensic_account.image_id])["Images"]
    ami_root = image["BlockDeviceMappings"][0]["Ebs"]["VolumeSize"]
    assert root_volume(forensic_account, launched.instance_id)["Size"] == max(21, ami_root)


def test_launch_handler_records_the_launch_in_the_chain_of_custody(
    forensic_account: ForensicLike, lambda_environment: Settings
) -> None:
    event = {"CaseId": forensic_account.case_id, "Attempt": "execution-1"}
    answer = examination_handler.launch_analysis_instance(event, None)
    assert set(answer) == {"InstanceId", "LaunchedAt"}
    store = EvidenceStore(forensic_account.client("s3"), BUCKET, forensic_account.case_id)
    [custody] = store.keys("custody/")
    record = store.get_json(custody)
    assert record["event"] == "analysis-instance-launched"
    assert record["detail"]["InstanceId"] == answer["InstanceId"]
    assert record["detail"]["ImageId"] == forensic_account.image_id


def test_launch_handler_fails_with_toolset_not_built_while_the_parameter_is_unset(
    unbuilt_toolset: ForensicLike, lambda_environment: Settings
) -> None:
    with pytest.raises(ToolsetNotBuilt):
        examination_handler.launch_analysis_instance({"CaseId": unbuilt_toolset.case_id}, None)
    assert unbuilt_toolset.case_instances() == []


# -- readiness ------------------------------------------------------------------------------------------


def test_a_running_analysis_instance_is_ready(forensic_account: ForensicLike) -> None:
    launched = forensic_account.launch()
    assert check_ready(forensic_account.client("ec2"), launched.instance_id, forensic_account.case_id) == "running"


def test_a_stopped_analysis_instance_is_lost_not_waited_for(forensic_account: ForensicLike) -> None:
    launched = forensic_account.launch()
    forensic_account.client("ec2").stop_instances(InstanceIds=[launched.instance_id])
    with pytest.raises(AnalysisInstanceLost, match="stopp"):
        check_ready(forensic_account.client("ec2"), launched.instance_id, forensic_account.case_id)


def test_readiness_refuses_an_instance_of_another_case(forensic_account: ForensicLike) -> None:
    launched = forensic_account.launch()
    with pytest.raises(InvalidInput, match="not an analysis instance"):
        check_ready(forensic_account.client("ec2"), launched.instance_id, OTHER_CASE)


def test_ready_handler_answers_once_the_instance_runs(
    forensic_account: ForensicLike, lambda_environment: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    launched = forensic_account.launch()
    event = {"CaseId": forensic_account.case_id, "InstanceId": launched.instance_id}
    answer = examination_handler.analysis_instance_ready(event, None, executor=InProcessExaminationExecutor())
    assert answer == {"InstanceId": launched.instance_id, "State": "running", "AgentOnline": True}


# -- the command ----------------------------------------------------------------------------------------


def order(instance_id: str, case_id: str = CASE, **extra: Any) -> ExaminationOrder:
    return ExaminationOrder(
        case_id=case_id,
        instance_id=instance_id,
        bucket=BUCKET,
        region=REGION,
        log_group=f"/{PREFIX}/irforensics/examination",
        document=f"{PREFIX}-ir-examine",
        **extra,
    )


def test_examination_command_runs_the_remote_examination_and_holds_no_credentials() -> None:
    start, end = datetime(2024, 6, 1, tzinfo=UTC), datetime(2024, 6, 2, tzinfo=UTC)
    commands = examination_commands(order("i-0123456789abcdef0", incident_start=start, incident_end=end))
    assert commands[0] == "set -euo pipefail"
    assert commands[-1] == (
        f"python3.11 -m examiner.remote --region {REGION} --bucket {BUCKET} --case-id {CASE} "
        "--work-dir /var/lib/irforensics/cases --incident-start 2024-06-01T00:00:00+00:00 "
        "--incident-end 2024-06-02T00:00:00+00:00"
    )
    text = "\n".join(commands).lower()
    assert not any(secret in text for secret in ("aws_access_key", "aws_secret", "session_token", "akia", "asia"))


def test_a_case_id_that_could_break_out_of_the_command_is_refused() -> None:
    with pytest.raises(InvalidInput, match="CaseId"):
        examination_commands(
            ExaminationOrder(
                case_id="x; curl evil", instance_id="i-0123456789abcdef0", bucket=BUCKET, region=REGION, log_group="/x"
            )
        )


def test_ssm_command_goes_to_the_instance_with_a_time_limit_and_cloudwatch_output(
    forensic_account: ForensicLike,
) -> None:
    launched = forensic_account.launch()
    sent: list[dict[str, Any]] = []
    forensic_account.session.events.register(
        "provide-client-params.ssm.SendCommand", lambda params, **_: sent.append(dict(params))
    )
    executor = SsmExaminationExecutor()
    command_id = executor.start(forensic_account.session, order(launched.instance_id, forensic_account.case_id))
    [command] = forensic_account.client("ssm").list_commands(CommandId=command_id)["Commands"]
    # The forensic stack's own document runs the fixed examination script; only its parameters travel.
    assert command["DocumentName"] == f"{PREFIX}-ir-examine"
    assert command["Parameters"]["ExecutionTimeout"] == ["14400"]
    assert command["Parameters"]["CaseId"] == [forensic_account.case_id]
    assert command["Parameters"]["Bucket"] == [BUCKET] and command["Parameters"]["Region"] == [REGION]
    [request] = sent
    # (moto lists every instance of the account under the command; the request names one.)
    assert request["InstanceIds"] == [launched.instance_id]
    assert request["CloudWatchOutputConfig"] == {
        "CloudWatchOutputEnabled": True,
        "CloudWatchLogGroupName": f"/{PREFIX}/irforensics/examination",
    }
    assert "OutputS3BucketName" not in request
    credentials = forensic_account.session.get_credentials()
    assert credentials.secret_key not in json.dumps(request) and credentials.token not in json.dumps(request)


def test_the_command_for_a_memory_only_case_names_the_case_and_the_instance_finds_its_images(
    forensic_account: ForensicLike,
) -> None:
    case_id = f"{MEMBER_ACCOUNT}-i-0abc12345def67890-{REGION}-{next(CASE_NUMBERS)}"
    key = plant_memory_image(forensic_account.client("s3"), case_id)
    launched = forensic_account.launch(case_id=case_id)
    command_id = SsmExaminationExecutor().start(forensic_account.session, order(launched.instance_id, case_id))
    [command] = forensic_account.client("ssm").list_commands(CommandId=command_id)["Commands"]
    # The same parameters as for a case with volumes: examiner.remote lists disk/ and memory/ itself.
    assert sorted(command["Parameters"]) == [
        "Bucket",
        "CaseId",
        "ExecutionTimeout",
        "IncidentEnd",
        "IncidentStart",
        "Region",
    ]
    assert command["Parameters"]["CaseId"] == [case_id] and key not in json.dumps(command["Parameters"])


def test_an_examination_is_sent_once_even_when_the_lambda_is_retried(forensic_account: ForensicLike) -> None:
    launched = forensic_account.launch()
    executor = SsmExaminationExecutor()
    first = executor.start(forensic_account.session, order(launched.instance_id, forensic_account.case_id))
    assert executor.start(forensic_account.session, order(launched.instance_id, forensic_account.case_id)) == first
    commands = forensic_account.client("ssm").list_commands(InstanceId=launched.instance_id)["Commands"]
    assert [c["CommandId"] for c in commands] == [first]


def test_a_command_that_succeeded_without_a_report_is_an_examination_failure(forensic_account: ForensicLike) -> None:
    # moto reports every command as Success at once (it runs nothing): the report check must catch that.
    launched = forensic_account.launch()
    executor = SsmExaminationExecutor()
    command_id = executor.start(forensic_account.session, order(launched.instance_id, forensic_account.case_id))
    outcome = executor.outcome(forensic_account.session, command_id, launched.instance_id)
    assert outcome.status == "Success"
    written = report_written(forensic_account.client("s3"), BUCKET, forensic_account.case_id)
    with pytest.raises(ExaminationFailed, match="wrote no report"):
        examination_result(outcome, instance_id=launched.instance_id, report_exists=written)


@pytest.mark.parametrize("status", ["Pending", "InProgress", "Delayed"])
def test_a_running_command_is_not_ready(status: str) -> None:
    with pytest.raises(NotReady):
        examination_result(CommandOutcome(status=status), instance_id="i-0123456789abcdef0", report_exists=False)


def test_a_failed_command_fails_with_the_tail_of_its_stderr() -> None:
    stderr = "x" * 5000 + "examination failed: EvidenceDigestMismatch: vol-0aaa.img does not match"
    expected = r"ended TimedOut: x+examination failed: EvidenceDigestMismatch"
    with pytest.raises(ExaminationFailed, match=expected) as info:
        examination_result(
            CommandOutcome(status="TimedOut", stderr=stderr), instance_id="i-0123456789abcdef0", report_exists=False
        )
    assert len(str(info.value)) < 2200


def test_incident_window_needs_both_ends_in_order() -> None:
    assert incident_window({}) == (None, None)
    assert incident_window({"IncidentStart": "2024-06-01T00:00:00Z", "IncidentEnd": "2024-06-02T00:00:00Z"}) == (
        datetime(2024, 6, 1, tzinfo=UTC),
        datetime(2024, 6, 2, tzinfo=UTC),
    )
    with pytest.raises(InvalidInput, match="both"):
        incident_window({"IncidentStart": "2024-06-01T00:00:00Z"})
    with pytest.raises(InvalidInput, match="ends before it starts"):
        incident_window({"IncidentStart": "2024-06-02T00:00:00Z", "IncidentEnd": "2024-06-01T00:00:00Z"})
    with pytest.raises(InvalidInput, match="ISO 8601"):
        incident_window({"IncidentStart": "yesterday", "IncidentEnd": "today"})


# -- termination ----------------------------------------------------------------------------------------


def state_of(forensic_account: ForensicLike, instance_id: str) -> str:
    return str(forensic_account.instance(instance_id)["State"]["Name"])


def test_termination_ends_the_case_instance_and_a_second_call_changes_nothing(forensic_account: ForensicLike) -> None:
    launched = forensic_account.launch()
    ec2 = forensic_account.client("ec2")
    first = terminate_analysis_instances(ec2, forensic_account.case_id, launched.instance_id)
    assert first.terminated == [launched.instance_id]
    assert state_of(forensic_account, launched.instance_id) in ("shutting-down", "terminated")
    again = terminate_analysis_instances(ec2, forensic_account.case_id, launched.instance_id)
    assert again.terminated == [] and again.already_gone == [launched.instance_id]


def test_termination_finds_the_case_instance_without_being_told_its_id(forensic_account: ForensicLike) -> None:
    launched = forensic_account.launch()
    ended = terminate_analysis_instances(forensic_account.client("ec2"), forensic_account.case_id)
    assert ended.terminated == [launched.instance_id]


def test_termination_of_an_unknown_instance_id_counts_as_already_gone(forensic_account: ForensicLike) -> None:
    ec2 = forensic_account.client("ec2")
    ended = terminate_analysis_instances(ec2, forensic_account.case_id, "i-0fffffffffffffff0")
    assert ended.terminated == [] and ended.already_gone == ["i-0fffffffffffffff0"]


def test_termination_never_touches_an_instance_that_is_not_this_cases_analysis_instance(
    forensic_account: ForensicLike,
) -> None:
    ec2 = forensic_account.client("ec2")
    other = ec2.run_instances(
        ImageId=forensic_account.image_id, MinCount=1, MaxCount=1, SubnetId=forensic_account.subnet_ids[0]
    )["Instances"][0]["InstanceId"]
    with pytest.raises(InvalidInput, match="not an analysis instance"):
        terminate_analysis_instances(ec2, forensic_account.case_id, other)
    assert state_of(forensic_account, other) == "running"


def test_terminate_handler_records_the_termination_once(
    forensic_account: ForensicLike, lambda_environment: Settings
) -> None:
    launched = forensic_account.launch()
    event = {"CaseId": forensic_account.case_id, "InstanceId": launched.instance_id}
    assert examination_handler.terminate_analysis_instance(event, None) == {
        "Terminated": [launched.instance_id],
        "AlreadyGone": [],
    }
    assert examination_handler.terminate_analysis_instance(event, None) == {
        "Terminated": [],
        "AlreadyGone": [launched.instance_id],
    }
    store = EvidenceStore(forensic_account.client("s3"), BUCKET, forensic_account.case_id)
    assert [key.rsplit("/", 1)[-1] for key in store.keys("custody/")] == ["000001-analysis-instance-terminated.json"]
