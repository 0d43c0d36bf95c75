"""The memory Lambdas across three moto accounts, with a simulated SSM agent on the suspect instance.

moto gaps (DESIGN.md): no DescribeInstanceInformation, and SendCommand runs nothing. `SimulatedAgent`
fills both at moto's edge: registered instances report an agent, and a command our handlers send
is answered the way the instance would answer it - discovery prints the sample output of a real
host; a capture downloads the module by its pre-signed URL, checks the sha256 the command names,
and PUTs a synthetic LiME image, part by part, to the pre-signed UploadPart URLs it was given.
(That the generated bash does the same on a host is tested in test_capture.py.)
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from handlers.common import naming
from handlers.common.errors import InvalidInput, ModuleUnavailable, NotReady
from handlers.common.settings import Settings
from handlers.memory import capture_path, handler, kernel, lime
from simulation import local_aws, synthetic_memory
from simulation.local_aws import FORENSIC_ACCOUNT, MEMBER_ACCOUNT, PREFIX, REGION, SECURITY_ACCOUNT
from simulation.ssm_agent import AgentBehaviour, SimulatedAgent, install_documents
from tests.ec2_semantics import install_ec2_semantics

SAMPLES = Path(__file__).resolve().parent.parent / "events" / "kernel"
BUCKET = naming.evidence_bucket(PREFIX, FORENSIC_ACCOUNT, REGION)
MODULES = naming.modules_bucket(PREFIX, SECURITY_ACCOUNT, REGION)
# moto accepts any AMI id; listing its 1,300 built-in images costs seconds per account.
AMI = "ami-0123456789abcdef0"
MODULE_BYTES = b"\x7fELF lime.ko built by the LimeFactory (test bytes)"


def publish_module(s3: Any, info: kernel.KernelInfo, *, with_symbols: bool = True) -> str:
    prefix = kernel.module_prefix(info)
    s3.put_object(Bucket=MODULES, Key=prefix + kernel.MODULE_FILE, Body=MODULE_BYTES)
    s3.put_object(
        Bucket=MODULES,
        Key=prefix + kernel.BUILD_FILE,
        Body=json.dumps({"files": {kernel.MODULE_FILE: {"sha256": hashlib.sha256(MODULE_BYTES).hexdigest()}}}).encode(),
    )
    if with_symbols:
        s3.put_object(Bucket=MODULES, Key=prefix + kernel.SYMBOLS_FILE, Body=b"\xfd7zXZ isf")
    return prefix


def launch(member: boto3.Session) -> str:
    ec2 = member.client("ec2")
    return str(ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"])


@pytest.fixture(scope="module")
def moto_accounts() -> Iterator[dict[str, Any]]:
    """One moto for the module (EC2's semantics, the simulated agent, both buckets); tests differ by instance."""
    settings = Settings(
        prefix=PREFIX, security_account=SECURITY_ACCOUNT, forensic_account=FORENSIC_ACCOUNT, forensic_region=REGION
    )
    with pytest.MonkeyPatch.context() as patches, mock_aws(), SimulatedAgent().installed() as agent:
        for key, value in {**local_aws.FAKE_CREDENTIALS, **settings.to_env(), "AWS_REGION": REGION}.items():
            patches.setenv(key, value)
        install_ec2_semantics(patches)
        member, forensic = local_aws.account_session(MEMBER_ACCOUNT), local_aws.account_session(FORENSIC_ACCOUNT)
        install_documents(member.client("ssm"), PREFIX)
        evidence: Any = forensic.client("s3")
        evidence.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        modules: Any = boto3.client("s3", region_name=REGION)
        modules.create_bucket(Bucket=MODULES, CreateBucketConfiguration={"LocationConstraint": REGION})
        yield {"member": member, "evidence": evidence, "modules": modules, "agent": agent}


@pytest.fixture
def env(moto_accounts: dict[str, Any]) -> dict[str, Any]:
    # Not named `world`: tests/conftest.py groups every test using `world` with the shared e2e cloud.
    instance = launch(moto_accounts["member"])
    return {**moto_accounts, "instance": instance, "case": f"{MEMBER_ACCOUNT}-{instance}-{REGION}-1700000000"}


def uploads_of(env: dict[str, Any]) -> list[Any]:
    return list(env["evidence"].list_multipart_uploads(Bucket=BUCKET, Prefix=env["case"]).get("Uploads", []))


def target(env: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "CaseId": env["case"],
        "InstanceId": env["instance"],
        "Account": MEMBER_ACCOUNT,
        "Region": REGION,
        "Action": "Analyze",
        **extra,
    }


def custody(env: dict[str, Any]) -> dict[str, dict[str, Any]]:
    s3 = env["evidence"]
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{env['case']}/custody/").get("Contents", [])
    events = [json.loads(s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read()) for o in listed]
    return {e["event"]: e for e in events}


def test_an_instance_without_an_ssm_agent_is_not_capturable_and_says_why(env: dict[str, Any]) -> None:
    answer = handler.discover_kernel(target(env), None)
    assert answer["Capturable"] is False
    assert "no SSM agent" in answer["Reason"] and env["instance"] in answer["Reason"]


def test_an_offline_agent_is_refused_in_analyze_mode_and_waited_for_when_contained(env: dict[str, Any]) -> None:
    env["agent"].agents[env["instance"]] = AgentBehaviour(ping="ConnectionLost")
    answer = handler.discover_kernel(target(env), None)
    assert answer["Capturable"] is False and "ConnectionLost" in answer["Reason"]
    with pytest.raises(NotReady):
        handler.discover_kernel(target(env, Action="Contain"), None)


def test_discovery_reads_the_kernel_of_the_instance(env: dict[str, Any]) -> None:
    env["agent"].agents[env["instance"]] = AgentBehaviour(
        discovery=(SAMPLES / "al2023-aarch64.discovery.txt").read_text()
    )
    sent = handler.discover_kernel(target(env), None)
    assert sent["Capturable"] is True
    result = handler.discovery_result(target(env, CommandId=sent["CommandId"]), None)
    assert result["Kernel"]["KernelRelease"] == "6.1.119-129.201.amzn2023.aarch64"
    assert result["Loadable"] is True
    assert result["Prefix"] == "amzn-2023/6.1.119-129.201.amzn2023.aarch64/aarch64/"


def test_a_secure_boot_host_is_discovered_as_not_loadable(env: dict[str, Any]) -> None:
    env["agent"].agents[env["instance"]] = AgentBehaviour(
        discovery=(SAMPLES / "ubuntu-24.04-x86_64-secureboot.discovery.txt").read_text()
    )
    sent = handler.discover_kernel(target(env), None)
    result = handler.discovery_result(target(env, CommandId=sent["CommandId"]), None)
    assert result["Loadable"] is False and "Secure Boot" in result["Reason"]


def kernel_of(name: str) -> kernel.KernelInfo:
    return kernel.parse_discovery((SAMPLES / name).read_text())


def test_a_missing_module_or_symbol_table_is_reported_as_unavailable(env: dict[str, Any]) -> None:
    info = kernel_of("ubuntu-22.04-aarch64.discovery.txt")
    answer = handler.check_module({"CaseId": env["case"], "Kernel": info.to_event()}, None)
    assert answer["ModuleAvailable"] is False and answer["Missing"] == list(kernel.MODULE_FILES)
    publish_module(env["modules"], info, with_symbols=False)
    answer = handler.check_module({"CaseId": env["case"], "Kernel": info.to_event()}, None)
    assert answer["ModuleAvailable"] is False and answer["Missing"] == [kernel.SYMBOLS_FILE]
    publish_module(env["modules"], info)
    answer = handler.check_module({"CaseId": env["case"], "Kernel": info.to_event()}, None)
    assert answer["ModuleAvailable"] is True and answer["Prefix"] == kernel.module_prefix(info)


def test_capture_completes_the_upload_from_the_reported_parts_and_records_the_digest(
    env: dict[str, Any], tmp_path: Path
) -> None:
    info = kernel_of("amzn2-x86_64.discovery.txt")
    publish_module(env["modules"], info)
    image = tmp_path / "mem.lime"
    synthetic_memory.synthetic_memory_image(image, seed=11, size=300_000)
    env["agent"].agents[env["instance"]] = AgentBehaviour(image=image.read_bytes())
    started = handler.start_capture(target(env, Kernel=info.to_event()), None)
    assert started["Key"] == f"{env['case']}/memory/{env['instance']}.lime"
    assert "http" not in json.dumps(started), "pre-signed URLs stay out of the execution history"

    result = handler.capture_result(target(env, Capture=started), None)

    data = image.read_bytes()
    assert result == {
        "Acquired": True,
        # The method is named in every result (issue 16); a synthetic image carries no symbol sources.
        "Method": "lime",
        "SymbolSources": {},
        "Reason": "LiME dump streamed to the evidence bucket",
        "Key": started["Key"],
        "Sha256": hashlib.sha256(data).hexdigest(),
        "Size": len(data),
    }
    stored = env["evidence"].get_object(Bucket=BUCKET, Key=started["Key"])["Body"].read()
    assert hashlib.sha256(stored).hexdigest() == result["Sha256"]
    assert lime.is_synthetic(lime.read_lime_from(io.BytesIO(stored)))
    digest = env["evidence"].get_object(Bucket=BUCKET, Key=started["Key"] + ".sha256")["Body"].read().decode()
    assert digest == f"{result['Sha256']}  {env['instance']}.lime\n"
    events = custody(env)
    assert events["memory-acquired"]["detail"]["Sha256"] == result["Sha256"]
    assert events["memory-capture-started"]["detail"]["ModuleSha256"] == hashlib.sha256(MODULE_BYTES).hexdigest()


def test_parts_that_differ_from_the_instance_report_are_not_completed(env: dict[str, Any]) -> None:
    info = kernel_of("amzn2-x86_64.discovery.txt")
    publish_module(env["modules"], info)
    env["agent"].agents[env["instance"]] = AgentBehaviour(image=b"\x01" * 100_000, lie_about_etags=True)
    started = handler.start_capture(target(env, Kernel=info.to_event()), None)
    result = handler.capture_result(target(env, Capture=started), None)
    assert result["Acquired"] is False and "differ" in result["Reason"]
    assert uploads_of(env) == []
    assert "memory-not-acquired" in custody(env)


def test_a_capture_the_instance_refused_is_not_acquired_and_its_upload_aborted(env: dict[str, Any]) -> None:
    info = kernel_of("amzn2-x86_64.discovery.txt")
    publish_module(env["modules"], info)
    env["agent"].agents[env["instance"]] = AgentBehaviour(image=None)
    started = handler.start_capture(target(env, Kernel=info.to_event()), None)
    result = handler.capture_result(target(env, Capture=started), None)
    assert result == {"Acquired": False, "Reason": "memory capture failed: LiME produced no data"}
    assert uploads_of(env) == []


def test_a_capture_result_for_another_case_key_is_invalid_input(env: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput):
        handler.capture_result(target(env, Capture={"CommandId": "x", "Key": "other/memory/i-1.lime"}), None)


def test_a_build_cannot_be_requested_for_an_unsupported_distribution(env: dict[str, Any]) -> None:
    info = kernel.KernelInfo("fedora", "40", "6.8.5-301.fc40.x86_64", "x86_64", False, "none")
    with pytest.raises(ModuleUnavailable, match="no build recipe"):
        handler.request_module_build({"CaseId": env["case"], "Kernel": info.to_event()}, None)


def capture_network(member: boto3.Session, cidr_prefix: str) -> tuple[Any, str, str, str]:
    """(ec2, vpc, subnet, endpoint group): a VPC with the SSM interface endpoints a capture path needs,
    and the isolation and acquisition instance profiles."""
    ec2: Any = member.client("ec2")
    iam: Any = member.client("iam")
    vpc = ec2.create_vpc(CidrBlock=f"{cidr_prefix}.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock=f"{cidr_prefix}.1.0/24")["Subnet"]["SubnetId"]
    endpoint_group = ec2.create_security_group(GroupName="endpoints", Description="e", VpcId=vpc)["GroupId"]
    for service in capture_path.SSM_ENDPOINT_SERVICES:
        ec2.create_vpc_endpoint(
            VpcId=vpc,
            ServiceName=f"com.amazonaws.{REGION}.{service}",
            VpcEndpointType="Interface",
            SubnetIds=[subnet],
            SecurityGroupIds=[endpoint_group],
        )
    for name in (naming.isolation_profile(PREFIX, REGION), naming.acquisition_profile(PREFIX, REGION)):
        iam.create_role(RoleName=name, AssumeRolePolicyDocument="{}")
        iam.create_instance_profile(InstanceProfileName=name)
        iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=name)
    return ec2, vpc, subnet, endpoint_group


def isolated_instance(member: boto3.Session) -> dict[str, Any]:
    """A contained instance in a VPC with SSM interface endpoints: deny-all group, isolation profile."""
    ec2, vpc, subnet, endpoint_group = capture_network(member, "10.9")
    deny_all = ec2.create_security_group(GroupName="acme-ir-isolation-deny-all", Description="d", VpcId=vpc)["GroupId"]
    instance = ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1, SubnetId=subnet, SecurityGroupIds=[deny_all])[
        "Instances"
    ][0]["InstanceId"]
    ec2.associate_iam_instance_profile(
        InstanceId=instance, IamInstanceProfile={"Name": naming.isolation_profile(PREFIX, REGION)}
    )
    return {"ec2": ec2, "vpc": vpc, "instance": instance, "deny_all": deny_all, "endpoint_group": endpoint_group}


def interface_groups(ec2: Any, instance: str) -> list[list[str]]:
    enis = ec2.describe_instances(InstanceIds=[instance])["Reservations"][0]["Instances"][0]["NetworkInterfaces"]
    return [sorted(g["GroupId"] for g in eni["Groups"]) for eni in enis]


def profile_name(ec2: Any, instance: str) -> str:
    found = ec2.describe_iam_instance_profile_associations(Filters=[{"Name": "instance-id", "Values": [instance]}])[
        "IamInstanceProfileAssociations"
    ]
    current = next(a for a in found if a["State"] == "associated")
    return str(current["IamInstanceProfile"]["Arn"].rsplit("/", 1)[-1])


def test_the_capture_path_allows_only_https_to_s3_and_ssm_endpoints_and_is_removed_after(env: dict[str, Any]) -> None:
    world = isolated_instance(env["member"])
    ec2, instance = world["ec2"], world["instance"]
    s3_list = ec2.describe_managed_prefix_lists(
        Filters=[{"Name": "prefix-list-name", "Values": [f"com.amazonaws.{REGION}.s3"]}]
    )["PrefixLists"][0]

    opened = handler.open_path(target(env, InstanceId=instance, Action="Contain"), None)

    assert opened["Opened"] is True
    group_id = capture_path.open_capture_path(ec2, instance, prefix=PREFIX, region=REGION).groups[world["vpc"]]
    assert interface_groups(ec2, instance) == [[group_id]]
    group = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]
    assert group["IpPermissions"] == []
    assert len(group["IpPermissionsEgress"]) == 1
    rule = group["IpPermissionsEgress"][0]
    assert (rule["IpProtocol"], rule["FromPort"], rule["ToPort"]) == ("tcp", 443, 443)
    assert [p["PrefixListId"] for p in rule["PrefixListIds"]] == [s3_list["PrefixListId"]]
    assert [p["GroupId"] for p in rule["UserIdGroupPairs"]] == [world["endpoint_group"]]
    assert rule.get("IpRanges", []) == [] and rule.get("Ipv6Ranges", []) == []
    assert profile_name(ec2, instance) == naming.acquisition_profile(PREFIX, REGION)

    closed = handler.close_path(target(env, InstanceId=instance, Action="Contain"), None)

    assert closed["Closed"] is True and closed["Changes"]
    assert interface_groups(ec2, instance) == [[world["deny_all"]]]
    assert profile_name(ec2, instance) == naming.isolation_profile(PREFIX, REGION)
    left = ec2.describe_security_groups(
        Filters=[{"Name": "group-name", "Values": [capture_path.capture_group_name(PREFIX, instance)]}]
    )
    assert left["SecurityGroups"] == []
    assert {"memory-capture-path-opened", "memory-capture-path-closed"} <= set(custody(env))
    assert handler.close_path(target(env, InstanceId=instance, Action="Contain"), None)["Changes"] == []


def test_without_ssm_endpoints_the_capture_path_is_refused_and_nothing_changes(env: dict[str, Any]) -> None:
    ec2: Any = env["member"].client("ec2")
    before = interface_groups(ec2, env["instance"])
    answer = handler.open_path(target(env, Action="Contain"), None)
    assert answer["Opened"] is False and answer["Refused"] is True
    assert "interface endpoint" in answer["Reason"]
    assert interface_groups(ec2, env["instance"]) == before


def test_analyze_mode_opens_no_path(env: dict[str, Any]) -> None:
    assert handler.open_path(target(env), None) == {
        "Opened": False,
        "Reason": "not contained: the instance keeps its own network and profile",
        "Refused": False,
    }
