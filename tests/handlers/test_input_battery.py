"""The bad-input battery (issue #9, point 3): hostile and odd input to containment, snapshots and triggers.

A rejected input gets a typed error naming what is wrong, raised before any AWS call that changes
anything (the calls are recorded, and the account is compared before and after); an odd but
valid input gets a correct result. One moto cloud for the module, with EC2's semantics
(tests/ec2_semantics.py); each test builds its own instances in it.
"""

from __future__ import annotations

import copy
import json
import string
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from core.containment import (
    ContainmentRecord,
    contain_instance,
    describe_instance_state,
    protect_instance,
    release_instance,
)
from core.containment.model import BOOKKEEPING_TAG
from handlers.acquisition import snapshots
from handlers.acquisition.snapshots import ARTEFACT_TAG, MEMBER_SNAPSHOT
from handlers.common import naming
from handlers.common.case import parse_request
from handlers.common.errors import InstanceNotFound, InvalidInput
from handlers.common.settings import Settings
from handlers.common.tags import (
    CASE_TAG,
    INCIDENT_TAG,
    MANAGED_BY_TAG,
    MANAGED_BY_VALUE,
    MAX_TAG_KEY_CHARS,
    MAX_TAG_VALUE_CHARS,
    MAX_TAGS_PER_RESOURCE,
)
from handlers.triggers.handler import (
    event_epoch,
    execution_name,
    on_guardduty_finding,
    on_tag_change,
)
from handlers.triggers.inputs import input_from_guardduty, input_from_tag_event
from handlers.triggers.patterns import matches, tag_change_pattern
from simulation import local_aws
from simulation.ec2_semantics import install_ec2_semantics
from simulation.local_aws import MEMBER_ACCOUNT, REGION, SECURITY_ACCOUNT
from simulation.scenarios import AMI, create_isolation_profile
from tests.containment_evidence import from_evidence

PREFIX = "acme"
CASE = "333333333333-battery-1"
EVENTS = Path(__file__).resolve().parent.parent / "events"
GOOD = {"InstanceId": "i-0abc1234def567890", "Account": "111122223333", "Region": "eu-west-1"}
UNICODE = "Ünïcødé \u2013 事件 🚨"  # \u2013: an en dash, as the issue spells it
READ_ONLY = ("Describe", "Get", "List")


def no_sleep(seconds: float) -> None:
    pass


def load(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / f"{name}.json").read_text())


# ---------------------------------------------------------------------------------------------
# The cloud, instances in it, and what "nothing changed" means.


@pytest.fixture(scope="module")
def cloud() -> Iterator[None]:
    patches = pytest.MonkeyPatch()
    # Test speed only: no instance here needs moto's catalogue of public AMIs.
    patches.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    with mock_aws(config={"lambda": {"use_docker": False}, "stepfunctions": {"execute_state_machine": True}}):
        install_ec2_semantics(patches)
        yield
    patches.undo()


@pytest.fixture(scope="module")
def account(cloud: None) -> boto3.Session:
    """The member account, with the isolation profile its responder stack deploys."""
    session = local_aws.account_session(MEMBER_ACCOUNT)
    create_isolation_profile(session, PREFIX)
    return session


@dataclass(frozen=True)
class Network:
    vpc_id: str
    subnet_ids: tuple[str, ...]
    group_ids: tuple[str, ...]


_networks = iter(range(10, 250))


def make_network(session: boto3.Session, *, subnets: int = 1, groups: int = 1) -> Network:
    """A VPC of its own (so isolation groups and world comparisons stay per test), subnets in one zone."""
    ec2 = session.client("ec2")
    n = next(_networks)
    vpc_id = ec2.create_vpc(CidrBlock=f"10.{n}.0.0/16")["Vpc"]["VpcId"]
    subnet_ids = tuple(
        ec2.create_subnet(VpcId=vpc_id, CidrBlock=f"10.{n}.{i}.0/24", AvailabilityZone=f"{REGION}a")["Subnet"][
            "SubnetId"
        ]
        for i in range(subnets)
    )
    group_ids = []
    for i in range(groups):
        group = ec2.create_security_group(GroupName=f"app-{n}-{i}", Description="app", VpcId=vpc_id)["GroupId"]
        ec2.authorize_security_group_ingress(
            GroupId=group,
            IpPermissions=[
                {"IpProtocol": "tcp", "FromPort": 443 + i, "ToPort": 443 + i, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}
            ],
        )
        group_ids.append(group)
    return Network(vpc_id, subnet_ids, tuple(group_ids))


def launch(
    session: boto3.Session, network: Network, *, tags: dict[str, str] | None = None, devices: list[str] | None = None
) -> str:
    tag_specs: Any = (
        [{"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}] if tags else []
    )
    mappings: Any = [
        {"DeviceName": d, "Ebs": {"VolumeSize": 1, "DeleteOnTermination": True}} for d in (devices or ["/dev/xvda"])
    ]
    return str(
        session.client("ec2").run_instances(
            ImageId=AMI,
            MinCount=1,
            MaxCount=1,
            InstanceType="m5.4xlarge",
            SubnetId=network.subnet_ids[0],
            SecurityGroupIds=[network.group_ids[0]],
            BlockDeviceMappings=mappings,
            TagSpecifications=tag_specs,
        )["Instances"][0]["InstanceId"]
    )


def contain(session: boto3.Session, instance_id: Any, case_id: Any = CASE, **kwargs: Any) -> ContainmentRecord:
    return contain_instance(session, instance_id, case_id, prefix=PREFIX, sleep=no_sleep, **kwargs)


def protect(session: boto3.Session, instance_id: Any, case_id: Any = CASE, **kwargs: Any) -> ContainmentRecord:
    return protect_instance(session, instance_id, case_id, sleep=no_sleep, **kwargs)


def take_set(session: boto3.Session, instance_id: Any, case_id: Any = CASE) -> Any:
    return snapshots.take_snapshot_set(session.client("ec2"), instance_id, case_id)


OPERATIONS: dict[str, Callable[..., Any]] = {
    "contain_instance": contain,
    "protect_instance": protect,
    "take_snapshot_set": take_set,
}


def world(session: boto3.Session) -> Any:
    """Everything the operations under test could change in the account, as describe calls report it."""
    ec2, iam = session.client("ec2"), session.client("iam")
    instances = [i for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]]
    live = [i["InstanceId"] for i in instances if i["State"]["Name"] != "terminated"]
    attributes = {
        i: [
            {
                k: v
                for k, v in ec2.describe_instance_attribute(InstanceId=i, Attribute=a).items()
                if k != "ResponseMetadata"
            }
            for a in ("disableApiTermination", "instanceInitiatedShutdownBehavior")
        ]
        for i in live
    }
    roles = [r["RoleName"] for r in iam.list_roles()["Roles"]]
    return json.loads(
        json.dumps(
            {
                "instances": instances,
                "attributes": attributes,
                "interfaces": ec2.describe_network_interfaces()["NetworkInterfaces"],
                "groups": ec2.describe_security_groups()["SecurityGroups"],
                "snapshots": ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"],
                "volumes": ec2.describe_volumes()["Volumes"],
                "tags": ec2.describe_tags(MaxResults=1000)["Tags"],
                "profiles": ec2.describe_iam_instance_profile_associations()["IamInstanceProfileAssociations"],
                "role_policies": {r: iam.list_role_policies(RoleName=r)["PolicyNames"] for r in roles},
            },
            default=str,
            sort_keys=True,
        )
    )


@contextmanager
def recorded_calls(session: boto3.Session) -> Iterator[list[str]]:
    """The name of every AWS call made through clients that `session` creates while inside."""
    calls: list[str] = []

    def record(model: Any, **kwargs: Any) -> None:
        calls.append(model.name)

    session.events.register("before-call", record)
    try:
        yield calls
    finally:
        session.events.unregister("before-call", record)


def changing(calls: list[str]) -> list[str]:
    return [c for c in calls if not c.startswith(READ_ONLY)]


def interface_groups(session: boto3.Session, instance_id: str) -> dict[str, list[str]]:
    enis = session.client("ec2").describe_network_interfaces(
        Filters=[{"Name": "attachment.instance-id", "Values": [instance_id]}]
    )["NetworkInterfaces"]
    return {e["NetworkInterfaceId"]: sorted(g["GroupId"] for g in e["Groups"]) for e in enis}


def isolation_groups(session: boto3.Session, vpc_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    tracked_name, deny_name = naming.isolation_group_names(PREFIX)
    found: dict[str, Any] = {
        g["GroupName"]: g
        for g in session.client("ec2").describe_security_groups(
            Filters=[
                {"Name": "vpc-id", "Values": [vpc_id]},
                {"Name": "group-name", "Values": [tracked_name, deny_name]},
            ]
        )["SecurityGroups"]
    }
    return found[tracked_name], found[deny_name]


def instance_tags(session: boto3.Session, instance_id: str) -> dict[str, str]:
    raw = session.client("ec2").describe_tags(
        Filters=[{"Name": "resource-id", "Values": [instance_id]}], MaxResults=1000
    )["Tags"]
    return {t["Key"]: t["Value"] for t in raw}


def own_tags(session: boto3.Session, instance_id: str) -> dict[str, str]:
    """The instance's tags minus what containment adds (bookkeeping and the incident tags)."""
    return {
        k: v
        for k, v in instance_tags(session, instance_id).items()
        if not k.startswith(BOOKKEEPING_TAG) and k not in (INCIDENT_TAG, CASE_TAG)
    }


def assert_within_ec2_tag_limits(tags: dict[str, str]) -> None:
    counted = [k for k in tags if not k.startswith("aws:")]
    assert len(counted) <= MAX_TAGS_PER_RESOURCE, f"{len(counted)} tags"
    assert all(len(k) <= MAX_TAG_KEY_CHARS for k in tags), [k for k in tags if len(k) > MAX_TAG_KEY_CHARS]
    assert all(len(v) <= MAX_TAG_VALUE_CHARS for v in tags.values())


# ---------------------------------------------------------------------------------------------
# 1. Manual input: every bad field named at once, exact values, bounded errors.


def test_parse_request_names_every_bad_field_at_once() -> None:
    bad = {
        "InstanceId": "i-XYZ",
        "Account": "12345678901",
        "Region": "mars-north-1",
        "Action": "contain",
        "RetainArtefacts": "yes",
        "DryRun": 1,
        "CaseId": "../../etc",
        "Trigger": "pager",
        "WaitSeconds": "30",
        "Finding": ["not", "text"],
        "instanceid": "i-0abc1234def567890",
    }

    with pytest.raises(InvalidInput) as caught:
        parse_request(bad)

    assert set(caught.value.fields) == set(bad)
    for field, value in bad.items():
        if field not in ("Finding", "instanceid"):
            assert repr(value) in caught.value.fields[field], field
    assert all(f"{field}:" in str(caught.value) for field in bad)


@pytest.mark.parametrize(
    "instance_id",
    [
        "i-123",
        "i-0ABC1234DEF567890",
        "0abc1234def567890",
        "i-0abc1234def5678901",
        "i-0abc1234def56789g",
        "i-0abc1234def567890\n",
        " i-0abc1234def567890",
        1234567890,
        ["i-0abc1234def567890"],
        {"id": "i-0abc"},
    ],
)
def test_an_instance_id_of_the_wrong_shape_or_type_is_named(instance_id: Any) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_request({**GOOD, "InstanceId": instance_id})
    assert set(caught.value.fields) == {"InstanceId"}
    assert "EC2 instance id" in caught.value.fields["InstanceId"]


@pytest.mark.parametrize(
    "account",
    [
        "12345678901",
        "1234567890123",
        111122223333,
        "11112222333a",
        "111122223333\n",
        "1111-2222-3333",
        "\uff11" * 12,
        "\u0661" * 12,
    ],
)
def test_an_account_id_that_is_not_twelve_digits_is_named(account: Any) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_request({**GOOD, "Account": account})
    assert set(caught.value.fields) == {"Account"}
    assert "12-digit" in caught.value.fields["Account"]


@pytest.mark.parametrize(
    "region",
    ["Europe", "eu-west-1a", "EU-WEST-1", "eu-west-1\n", "eu_west_1", "zz-nowhere-1", "eu-west-9", "us-east-7", 1],
)
def test_a_region_that_is_not_a_region_is_named(region: Any) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_request({**GOOD, "Region": region})
    assert set(caught.value.fields) == {"Region"}
    assert repr(region) in caught.value.fields["Region"]


@pytest.mark.parametrize("region", ["us-east-1", "us-gov-west-1", "cn-north-1", "ap-southeast-2", "il-central-1"])
def test_regions_of_every_partition_are_accepted(region: str) -> None:
    assert parse_request({**GOOD, "Region": region}).region == region


@pytest.mark.parametrize(
    "action, meant",
    [
        ("contain", "Contain"),
        ("ANALYZE", "Analyze"),
        (" Contain", "Contain"),
        ("analyse", None),
        ("Quarantine", None),
        (True, None),
    ],
)
def test_a_wrong_case_action_is_refused_and_the_exact_value_named(action: Any, meant: str | None) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_request({**GOOD, "Action": action})
    message = caught.value.fields["Action"]
    assert "case-sensitive" in message and repr(action) in message
    assert (f"did you mean {meant!r}" in message) if meant else ("did you mean" not in message)


def test_a_field_name_in_the_wrong_case_is_named_with_the_field_meant() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_request({"instanceId": GOOD["InstanceId"], "Account": GOOD["Account"], "Region": GOOD["Region"]})
    assert set(caught.value.fields) == {"instanceId", "InstanceId"}
    assert "did you mean 'InstanceId'" in caught.value.fields["instanceId"]
    assert caught.value.fields["InstanceId"] == "is required"


def test_missing_required_fields_are_each_named() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_request({"Action": "Contain", "InstanceId": ""})
    assert caught.value.fields == {"InstanceId": "is required", "Account": "is required", "Region": "is required"}


def test_null_optional_fields_take_their_defaults() -> None:
    request = parse_request(
        {
            **GOOD,
            "Action": None,
            "CaseId": None,
            "RetainArtefacts": None,
            "DryRun": None,
            "Trigger": None,
            "WaitSeconds": None,
            "Finding": None,
        }
    )
    assert (
        request.action,
        request.case_id,
        request.retain_artefacts,
        request.dry_run,
        request.trigger,
        request.wait_seconds,
        request.finding,
    ) == ("Analyze", None, True, False, "manual", 30, "")


@pytest.mark.parametrize(
    "field, value",
    [
        ("WaitSeconds", 3601),
        ("WaitSeconds", -1),
        ("WaitSeconds", 2.5),
        ("WaitSeconds", True),
        ("DryRun", "no"),
        ("DryRun", 0),
        ("RetainArtefacts", []),
        ("Finding", "x" * 2049),
        ("CaseId", "a" * 129),
        ("CaseId", "case\n"),
        ("CaseId", 42),
    ],
)
def test_optional_fields_of_the_wrong_type_or_range_are_named(field: str, value: Any) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_request({**GOOD, field: value})
    assert set(caught.value.fields) == {field}


def test_hostile_input_gets_a_short_error_that_still_names_the_fields() -> None:
    hostile: dict[str, Any] = {f"x{'y' * 300}{n}": n for n in range(5000)}
    hostile.update(InstanceId="i-" + "a" * 1_000_000, Account=GOOD["Account"], Region=GOOD["Region"])

    with pytest.raises(InvalidInput) as caught:
        parse_request(hostile)

    # Step Functions keeps at most 32768 characters of an error's cause.
    assert len(str(caught.value)) < 8000
    assert "InstanceId" in caught.value.fields and "'i-aaaa" in caught.value.fields["InstanceId"]
    assert caught.value.fields["<input>"] == "has 4980 more unknown fields"


@pytest.mark.parametrize("event", [None, "InstanceId=i-0abc1234def567890", 42, [GOOD]])
def test_input_that_is_not_an_object_is_refused(event: Any) -> None:
    with pytest.raises(InvalidInput, match="must be a JSON object"):
        parse_request(event)


# The tag trigger: DESIGN.md's contract makes the values case-sensitive. "contain" is not acted on: the
# EventBridge rule does not deliver it, and the trigger refuses it (naming the value meant) if it arrives.


@pytest.fixture
def sfn(cloud: None) -> Any:
    return boto3.client("stepfunctions", region_name=REGION)


_machines = iter(range(1000))


@pytest.fixture
def trigger_settings(sfn: Any) -> Settings:
    arn = sfn.create_state_machine(
        name=f"acme-ir-response-{next(_machines)}",
        definition=json.dumps({"StartAt": "Respond", "States": {"Respond": {"Type": "Pass", "End": True}}}),
        roleArn=f"arn:aws:iam::{SECURITY_ACCOUNT}:role/acme-ir-response",
    )["stateMachineArn"]
    return Settings(
        prefix="acme",
        security_account=SECURITY_ACCOUNT,
        forensic_account="222222222222",
        forensic_region="eu-west-1",
        response_state_machine_arn=arn,
        guardduty_contain_severity=8.0,
    )


def executions(sfn: Any, settings: Settings) -> list[dict[str, Any]]:
    return list(sfn.list_executions(stateMachineArn=settings.response_state_machine_arn)["executions"])


@pytest.mark.parametrize("value, meant", [("contain", "Contain"), ("ANALYZE", "Analyze"), ("CONTAIN ", "Contain")])
def test_a_wrong_case_incident_tag_starts_nothing_and_names_the_value_meant(
    sfn: Any, trigger_settings: Settings, value: str, meant: str
) -> None:
    event = load("tag_change_wrong_case")
    event["detail"]["tags"][INCIDENT_TAG] = value

    # The rule delivers it, so that the Lambda can ignore it *and log why* (DESIGN.md's contract).
    assert matches(tag_change_pattern(), event)
    with pytest.raises(InvalidInput) as caught:
        input_from_tag_event(event)
    assert f"did you mean {meant!r}" in caught.value.fields[f"detail.tags.{INCIDENT_TAG}"]

    answer = on_tag_change(event, None, settings=trigger_settings, sfn=sfn)

    assert answer["Responses"] == [] and repr(value) in answer["Ignored"]
    assert executions(sfn, trigger_settings) == []


# ---------------------------------------------------------------------------------------------
# 2. Instances that are gone, or never were: a typed error before any change.


def test_a_nonexistent_instance_is_refused_before_any_change(account: boto3.Session) -> None:
    untouched = world(account)

    for name, operation in OPERATIONS.items():
        with (
            recorded_calls(account) as calls,
            pytest.raises(InstanceNotFound, match="i-0123456789abcdef0 does not exist"),
        ):
            operation(account, "i-0123456789abcdef0")
        assert calls and changing(calls) == [], name

    assert world(account) == untouched


def test_a_terminated_instance_is_refused_before_any_change(account: boto3.Session) -> None:
    instance_id = launch(account, make_network(account))
    account.client("ec2").terminate_instances(InstanceIds=[instance_id])
    untouched = world(account)

    for name, operation in OPERATIONS.items():
        with recorded_calls(account) as calls, pytest.raises(InstanceNotFound, match=f"{instance_id} is terminated"):
            operation(account, instance_id)
        assert calls and changing(calls) == [], name

    assert world(account) == untouched


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
@pytest.mark.parametrize("instance_id", ["", "i-xyz", "i-0123456789abcdef0\n", None])
def test_a_malformed_instance_id_is_refused_without_any_call(
    account: boto3.Session, operation: str, instance_id: Any
) -> None:
    with recorded_calls(account) as calls, pytest.raises(InvalidInput) as caught:
        OPERATIONS[operation](account, instance_id)
    assert set(caught.value.fields) == {"InstanceId"}
    assert calls == []


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
@pytest.mark.parametrize("case_id", ["", "../other-case", "c" * 129, None])
def test_a_malformed_case_id_is_refused_without_any_call(account: boto3.Session, operation: str, case_id: Any) -> None:
    with recorded_calls(account) as calls, pytest.raises(InvalidInput) as caught:
        OPERATIONS[operation](account, "i-0123456789abcdef0", case_id)
    assert set(caught.value.fields) == {"CaseId"}
    assert calls == []


# ---------------------------------------------------------------------------------------------
# 3. No EBS volume, or an instance-store root: an explicit empty result, no CreateSnapshots.


def boots_from_instance_store(instance_id: str) -> None:
    """moto launches every instance as EBS-backed (RootDeviceType is fixed); EC2 says "instance-store"
    for an instance launched from an instance-store-backed AMI, whose root is not an EBS volume."""
    from moto.ec2.models import ec2_backends

    ec2_backends[MEMBER_ACCOUNT][REGION].get_instance(instance_id).root_device_type = "instance-store"


def detach_every_volume(session: boto3.Session, instance_id: str) -> None:
    ec2 = session.client("ec2")
    for mapping in ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0][
        "BlockDeviceMappings"
    ]:
        ec2.detach_volume(VolumeId=mapping["Ebs"]["VolumeId"], InstanceId=instance_id)


def test_an_instance_without_ebs_volumes_gets_an_empty_set_with_the_reason(account: boto3.Session) -> None:
    instance_id = launch(account, make_network(account))
    detach_every_volume(account, instance_id)
    untouched = world(account)

    with recorded_calls(account) as calls:
        taken = take_set(account, instance_id)

    assert taken.snapshots == [] and taken.to_event()["Snapshots"] == []
    assert f"instance {instance_id} has no EBS volumes attached" in taken.not_acquired
    assert "nothing to snapshot" in taken.not_acquired
    assert changing(calls) == [] and world(account) == untouched


def test_an_instance_store_root_is_reported_as_not_acquirable_by_snapshot(account: boto3.Session) -> None:
    instance_id = launch(account, make_network(account))
    detach_every_volume(account, instance_id)
    boots_from_instance_store(instance_id)

    with recorded_calls(account) as calls:
        taken = take_set(account, instance_id)

    assert taken.snapshots == [] and "CreateSnapshots" not in calls
    assert "boots from instance store and it has no EBS volumes" in taken.not_acquired
    assert "instance-store volumes cannot be acquired by snapshot" in taken.not_acquired
    assert taken.to_event()["NotAcquired"] == taken.not_acquired


def test_an_instance_store_root_with_an_ebs_data_volume_gets_that_volume_and_the_reason(account: boto3.Session) -> None:
    instance_id = launch(account, make_network(account), devices=["/dev/xvda", "/dev/sdf"])
    ec2 = account.client("ec2")
    root = next(
        m["Ebs"]["VolumeId"]
        for m in ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0][
            "BlockDeviceMappings"
        ]
        if m["DeviceName"] == "/dev/xvda"
    )
    ec2.detach_volume(VolumeId=root, InstanceId=instance_id)
    boots_from_instance_store(instance_id)

    taken = take_set(account, instance_id)

    assert [r.device_name for r in taken.snapshots] == ["/dev/sdf"]
    assert "its 1 EBS volume(s) are snapshotted" in taken.not_acquired
    assert "instance-store volumes cannot be acquired by snapshot" in taken.not_acquired


def test_an_instance_without_volumes_is_still_contained(account: boto3.Session) -> None:
    network = make_network(account)
    instance_id = launch(account, network)
    detach_every_volume(account, instance_id)

    record = contain(account, instance_id)

    deny = isolation_groups(account, network.vpc_id)[1]["GroupId"]
    assert set(map(tuple, interface_groups(account, instance_id).values())) == {(deny,)}
    assert record.before.volumes == () and not [c for c in record.changes if c.what == "delete-on-termination"]
    assert describe_instance_state(account, instance_id).termination_protection


# ---------------------------------------------------------------------------------------------
# 4. Thirty volumes: one crash-consistent set, every snapshot tagged, containment unaffected.

THIRTY_DEVICES = [
    "/dev/xvda",
    *(f"/dev/sd{c}" for c in string.ascii_lowercase[5:]),
    *(f"/dev/xvd{c}" for c in "bcdefghi"),
]


@pytest.fixture(scope="module")
def thirty(account: boto3.Session) -> tuple[Network, str]:
    assert len(THIRTY_DEVICES) == 30
    network = make_network(account)
    return network, launch(account, network, devices=THIRTY_DEVICES)


def test_thirty_volumes_are_snapshotted_in_one_call_and_every_snapshot_is_tagged(
    account: boto3.Session, thirty: tuple[Network, str]
) -> None:
    _, instance_id = thirty
    ec2 = account.client("ec2")
    attached = {
        m["Ebs"]["VolumeId"]: m["DeviceName"]
        for m in ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0][
            "BlockDeviceMappings"
        ]
    }

    with recorded_calls(account) as calls:
        taken = take_set(account, instance_id)

    assert changing(calls) == ["CreateSnapshots"]
    assert len(attached) == 30 and {(r.volume_id, r.device_name) for r in taken.snapshots} == set(attached.items())
    assert taken.not_acquired == ""
    described = ec2.describe_snapshots(SnapshotIds=[r.snapshot_id for r in taken.snapshots])["Snapshots"]
    assert len(described) == 30
    for snapshot in described:
        tags = {t["Key"]: t["Value"] for t in snapshot["Tags"]}
        assert tags == {CASE_TAG: CASE, MANAGED_BY_TAG: MANAGED_BY_VALUE, ARTEFACT_TAG: MEMBER_SNAPSHOT}
        assert attached[snapshot["VolumeId"]]

    with recorded_calls(account) as again:
        assert take_set(account, instance_id).snapshots == taken.snapshots
    assert changing(again) == []


def test_containment_of_thirty_volumes_keeps_every_one_of_them(
    account: boto3.Session, thirty: tuple[Network, str]
) -> None:
    network, instance_id = thirty

    record = contain(account, instance_id)

    assert len(record.before.volumes) == 30 and all(v.delete_on_termination for v in record.before.volumes)
    after = describe_instance_state(account, instance_id)
    assert len(after.volumes) == 30 and not any(v.delete_on_termination for v in after.volumes)
    deny = isolation_groups(account, network.vpc_id)[1]["GroupId"]
    assert list(interface_groups(account, instance_id).values()) == [[deny]]
    assert_within_ec2_tag_limits(instance_tags(account, instance_id))


# ---------------------------------------------------------------------------------------------
# 5. Eight interfaces over three subnets and four groups, some with secondary addresses.


@dataclass(frozen=True)
class EightInterfaces:
    network: Network
    instance_id: str
    original: dict[str, list[str]]
    record: ContainmentRecord


@pytest.fixture(scope="module")
def eight(account: boto3.Session) -> EightInterfaces:
    ec2 = account.client("ec2")
    network = make_network(account, subnets=3, groups=4)
    instance_id = launch(account, network)
    for index in range(1, 8):
        groups = [network.group_ids[(index + k) % 4] for k in range(1 + index % 3)]
        eni = ec2.create_network_interface(
            SubnetId=network.subnet_ids[index % 3],
            Groups=groups,
            SecondaryPrivateIpAddressCount=2 if index % 2 else 0,
            Description=f"interface {index}",
        )["NetworkInterface"]
        ec2.attach_network_interface(
            NetworkInterfaceId=eni["NetworkInterfaceId"], InstanceId=instance_id, DeviceIndex=index
        )
    original = interface_groups(account, instance_id)
    return EightInterfaces(network, instance_id, original, contain(account, instance_id))


def test_every_one_of_eight_interfaces_is_isolated_and_its_groups_recorded(
    account: boto3.Session, eight: EightInterfaces
) -> None:
    tracked, deny = (g["GroupId"] for g in isolation_groups(account, eight.network.vpc_id))
    assert len(eight.original) == 8 and len({tuple(g) for g in eight.original.values()}) > 2
    assert interface_groups(account, eight.instance_id) == {eni: [deny] for eni in eight.original}
    assert {i.eni_id: sorted(i.groups) for i in eight.record.before.interfaces} == eight.original
    assert sum(len(i.private_ips) for i in eight.record.before.interfaces) == 8 + 2 * 4
    steps = [(c.resource, c.new) for c in eight.record.changes if c.what == "interface-groups"]
    assert sorted(steps[:8]) == sorted((eni, [tracked]) for eni in eight.original)
    assert sorted(steps[8:]) == sorted((eni, [deny]) for eni in eight.original)
    assert_within_ec2_tag_limits(instance_tags(account, eight.instance_id))
    assert eight.record.notes == ()


def test_containing_eight_interfaces_again_changes_nothing(account: boto3.Session, eight: EightInterfaces) -> None:
    untouched = world(account)

    with recorded_calls(account) as calls:
        again = contain(account, eight.instance_id)

    assert again.changes == [] and changing(calls) == []
    assert (again.before, again.after) == (eight.record.before, eight.record.after)
    assert world(account) == untouched


def test_release_gives_each_of_eight_interfaces_its_own_groups_back(
    account: boto3.Session, eight: EightInterfaces
) -> None:
    # Runs after the two tests above (pytest keeps file order): it ends the shared scenario.
    release_instance(account, eight.instance_id, eight.record, sleep=no_sleep)

    assert interface_groups(account, eight.instance_id) == eight.original
    assert not [k for k in instance_tags(account, eight.instance_id) if k.startswith(BOOKKEEPING_TAG)]


# ---------------------------------------------------------------------------------------------
# 6. An IPv6-only subnet: contained, and the isolation group lets nothing out either way.


def test_an_instance_in_an_ipv6_only_subnet_is_contained_with_no_egress_at_all(account: boto3.Session) -> None:
    ec2 = account.client("ec2")
    vpc_id = ec2.create_vpc(CidrBlock="10.251.0.0/16", AmazonProvidedIpv6CidrBlock=True)["Vpc"]["VpcId"]
    vpc_v6 = ec2.describe_vpcs(VpcIds=[vpc_id])["Vpcs"][0]["Ipv6CidrBlockAssociationSet"][0]["Ipv6CidrBlock"]
    subnet = ec2.create_subnet(
        VpcId=vpc_id, Ipv6Native=True, AvailabilityZone=f"{REGION}a", Ipv6CidrBlock=vpc_v6.replace("00::/56", "01::/64")
    )["Subnet"]
    assert subnet["Ipv6Native"] and not subnet.get("CidrBlock")
    web = ec2.create_security_group(GroupName="v6-web", Description="web", VpcId=vpc_id)["GroupId"]
    ec2.authorize_security_group_ingress(
        GroupId=web,
        IpPermissions=[{"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "Ipv6Ranges": [{"CidrIpv6": "::/0"}]}],
    )
    instance_id = ec2.run_instances(
        ImageId=AMI, MinCount=1, MaxCount=1, SubnetId=subnet["SubnetId"], SecurityGroupIds=[web], Ipv6AddressCount=1
    )["Instances"][0]["InstanceId"]

    record = contain(account, instance_id)

    tracked, deny = isolation_groups(account, vpc_id)
    assert interface_groups(account, instance_id) == {record.before.interfaces[0].eni_id: [deny["GroupId"]]}
    assert record.before.interfaces[0].groups == (web,) and record.before.interfaces[0].ipv6_addresses
    assert (deny["IpPermissions"], deny["IpPermissionsEgress"]) == ([], [])
    for rules in (tracked["IpPermissions"], tracked["IpPermissionsEgress"]):
        assert any(r["IpProtocol"] == "-1" and {"CidrIpv6": "::/0"} in r.get("Ipv6Ranges", []) for r in rules)


# ---------------------------------------------------------------------------------------------
# 7. Tags at EC2's limits: 50 per instance, keys of 128 and values of 256 characters, Unicode.


def long_tags(count: int, *, start: int = 0) -> dict[str, str]:
    """`count` tags of the longest key and value EC2 allows, in Unicode, each different."""
    tags = {}
    for n in range(start, start + count):
        key = f"{n:02d}-{UNICODE}-" + "k" * MAX_TAG_KEY_CHARS
        value = f"{n:02d} {UNICODE} " + "".join(string.ascii_letters[(n * 7 + i) % 52] for i in range(300))
        tags[key[:MAX_TAG_KEY_CHARS]] = value[:MAX_TAG_VALUE_CHARS]
    return tags


def test_unicode_tags_of_the_longest_length_survive_containment_and_release(account: boto3.Session) -> None:
    network = make_network(account)
    original = {"Name": UNICODE, **long_tags(6)}
    instance_id = launch(account, network, tags=original)

    first = contain(account, instance_id)

    assert first.notes == () and first.before.tags == original
    assert_within_ec2_tag_limits(instance_tags(account, instance_id))
    again = contain(account, instance_id)
    assert again.changes == [] and again.before == first.before
    release_instance(account, instance_id, from_evidence(first), sleep=no_sleep)
    assert instance_tags(account, instance_id) == original


def test_a_nearly_full_instance_remembers_its_state_without_copying_its_tags(account: boto3.Session) -> None:
    network = make_network(account)
    original = long_tags(44)
    instance_id = launch(account, network, tags=original)

    first = contain(account, instance_id)

    tags = instance_tags(account, instance_id)
    assert_within_ec2_tag_limits(tags)
    assert tags[CASE_TAG] == CASE and tags[INCIDENT_TAG] == "Contain"
    assert first.notes == () and first.before.tags == original
    # The original state is on the instance (compact: its own tags are not copied into it) ...
    again = contain(account, instance_id)
    assert again.changes == [] and again.before == first.before
    # ... and so is everything release needs.
    release_instance(account, instance_id, first, sleep=no_sleep)
    assert instance_tags(account, instance_id) == original
    assert interface_groups(account, instance_id) == {first.before.interfaces[0].eni_id: [network.group_ids[0]]}


def test_escalating_a_nearly_full_instance_keeps_the_original_before(account: boto3.Session) -> None:
    original = long_tags(45)
    instance_id = launch(account, make_network(account), tags=original)
    unprotected = describe_instance_state(account, instance_id)

    protected = protect(account, instance_id)
    contained = contain(account, instance_id)

    assert protected.before == unprotected and contained.before == unprotected
    assert_within_ec2_tag_limits(instance_tags(account, instance_id))
    release_instance(account, instance_id, contained, sleep=no_sleep)
    restored = describe_instance_state(account, instance_id)
    assert (restored.termination_protection, restored.tags) == (False, original)


@dataclass(frozen=True)
class FullInstance:
    network: Network
    instance_id: str
    original: dict[str, str]
    record: ContainmentRecord


@pytest.fixture(scope="module")
def full(account: boto3.Session) -> FullInstance:
    """An instance with all 50 tags EC2 allows (its owner's, or an attacker's trying to block containment)."""
    network = make_network(account, groups=2)
    original = long_tags(MAX_TAGS_PER_RESOURCE)
    instance_id = launch(account, network, tags=original)
    return FullInstance(network, instance_id, original, contain(account, instance_id))


def test_an_instance_with_fifty_tags_is_still_isolated_and_the_record_says_what_was_left_out(
    account: boto3.Session, full: FullInstance
) -> None:
    deny = isolation_groups(account, full.network.vpc_id)[1]["GroupId"]
    assert list(interface_groups(account, full.instance_id).values()) == [[deny]]
    state = describe_instance_state(account, full.instance_id)
    assert state.termination_protection and state.shutdown_behavior == "stop"
    assert instance_tags(account, full.instance_id) == full.original
    assert full.record.before.interfaces[0].groups == (full.network.group_ids[0],)
    notes = " ".join(full.record.notes)
    assert "the original security groups of eni-" in notes and f"{CASE_TAG}={CASE}" in notes
    assert "original state is not remembered" in notes and "EC2 allows 50" in notes
    assert not [c for c in full.record.changes if c.what == "incident-tags"]


def test_containing_a_full_instance_again_changes_nothing(account: boto3.Session, full: FullInstance) -> None:
    untouched = world(account)

    with recorded_calls(account) as calls:
        again = contain(account, full.instance_id)

    assert again.changes == [] and changing(calls) == [] and world(account) == untouched


def test_a_dry_run_on_a_full_instance_reports_the_same_notes_and_changes_nothing(account: boto3.Session) -> None:
    instance_id = launch(account, make_network(account), tags=long_tags(MAX_TAGS_PER_RESOURCE))
    untouched = world(account)

    with recorded_calls(account) as calls:
        planned = contain(account, instance_id, dry_run=True)

    assert changing(calls) == [] and world(account) == untouched
    assert planned.notes and {c.what for c in planned.changes} >= {"interface-groups", "termination-protection"}
    assert "incident-tags" not in {c.what for c in planned.changes}


def test_protecting_a_full_instance_works_and_leaves_its_tags_alone(account: boto3.Session) -> None:
    original = long_tags(MAX_TAGS_PER_RESOURCE)
    instance_id = launch(account, make_network(account), tags=original)

    record = protect(account, instance_id)

    state = describe_instance_state(account, instance_id)
    assert state.termination_protection and not any(v.delete_on_termination for v in state.volumes)
    assert instance_tags(account, instance_id) == original
    assert record.notes and protect(account, instance_id).changes == []


def test_release_of_a_full_instance_restores_its_groups_and_tags_exactly(
    account: boto3.Session, full: FullInstance
) -> None:
    # Runs after the tests above that read the contained state (file order).
    release_instance(account, full.instance_id, full.record, sleep=no_sleep)

    state = describe_instance_state(account, full.instance_id)
    assert interface_groups(account, full.instance_id) == {
        full.record.before.interfaces[0].eni_id: [full.network.group_ids[0]]
    }
    assert instance_tags(account, full.instance_id) == full.original
    assert (state.termination_protection, state.shutdown_behavior) == (False, "stop")


# ---------------------------------------------------------------------------------------------
# 8. The same event delivered five times: one deterministic execution name, one execution.


def test_the_same_tag_event_five_times_starts_one_execution(sfn: Any, trigger_settings: Settings) -> None:
    event = load("tag_change_contain")

    answers = [on_tag_change(copy.deepcopy(event), None, settings=trigger_settings, sfn=sfn) for _ in range(5)]

    responses = [a["Responses"][0] for a in answers]
    assert len({r["ExecutionName"] for r in responses}) == 1 and len({r["ExecutionArn"] for r in responses}) == 1
    # StartExecution with the name and input of a *running* execution succeeds and answers with that
    # execution (AWS and moto alike); once it has ended, the name is refused. Either way: no new execution.
    assert responses[0]["Status"] == "started"
    assert {r["Status"] for r in responses[1:]} <= {"started", "already-started"}
    [started] = executions(sfn, trigger_settings)
    assert (started["name"], started["executionArn"]) == (responses[0]["ExecutionName"], responses[0]["ExecutionArn"])


def test_the_same_guardduty_finding_five_times_starts_one_execution(sfn: Any, trigger_settings: Settings) -> None:
    finding = load("guardduty_backdoor_high")

    answers = [on_guardduty_finding(copy.deepcopy(finding), None, settings=trigger_settings, sfn=sfn) for _ in range(5)]

    assert len({a["Responses"][0]["ExecutionName"] for a in answers}) == 1
    assert len(executions(sfn, trigger_settings)) == 1


def _name_of(event: dict[str, Any], request: dict[str, Any]) -> str:
    return execution_name(request, event_epoch(event, now=lambda: 0))


def test_execution_names_are_equal_for_redeliveries_and_differ_per_instance() -> None:
    event = load("tag_change_contain")
    other = copy.deepcopy(event)
    other["resources"] = [event["resources"][0].replace("i-0abc1234def567890", "i-0abc1234def567891")]
    elsewhere = copy.deepcopy(event)
    elsewhere["resources"] = [event["resources"][0].replace("333333333333", "444444444444")]

    names = {_name_of(copy.deepcopy(event), input_from_tag_event(copy.deepcopy(event))) for _ in range(5)}

    assert len(names) == 1
    [name] = names
    assert _name_of(other, input_from_tag_event(other)) != name
    assert _name_of(elsewhere, input_from_tag_event(elsewhere)) != name
    finding = load("guardduty_backdoor_high")
    guardduty = {
        _name_of(finding, input_from_guardduty(copy.deepcopy(finding), contain_severity=8.0)) for _ in range(5)
    }
    assert len(guardduty) == 1


@pytest.mark.parametrize("planted", ["not base64 at all!", "aGVsbG8=", "eJwrSS0uAQAEXQHB"])
def test_a_planted_unreadable_containment_record_does_not_stop_containment(
    account: boto3.Session, planted: str
) -> None:
    # Anyone with ec2:CreateTags on the instance can write the bookkeeping tags before we arrive.
    network = make_network(account)
    instance_id = launch(account, network, tags={"irforensics:containment:before:00": planted})
    original = interface_groups(account, instance_id)

    record = contain(account, instance_id)

    deny_all = isolation_groups(account, network.vpc_id)[1]["GroupId"]
    assert set(interface_groups(account, instance_id)) == set(original)
    assert all(groups == [deny_all] for groups in interface_groups(account, instance_id).values())
    assert {e.eni_id: list(e.groups) for e in record.before.interfaces} == original
