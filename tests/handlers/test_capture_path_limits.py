"""The memory-capture path at EC2's limits: 16 security groups per interface, 256-character tag
values, 50 tags per security group (handlers/memory/capture_path.py).

moto 5.2.5 enforces the 50 tags per resource but not the length of a tag's key or value, and not
the number of groups per interface: `ec2_like_aws` (simulation/ec2_semantics.py) adds EC2's length check, so a record
that does not fit fails here as CreateTags fails on AWS. AWS allows up to 16 groups per interface
(5 by default, 16 with a quota increase); moto takes any number, so no limit needs raising.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from handlers.common import naming
from handlers.common.tags import (
    MANAGED_BY_TAG,
    MANAGED_BY_VALUE,
    MAX_TAG_KEY_CHARS,
    MAX_TAG_VALUE_CHARS,
    MAX_TAGS_PER_RESOURCE,
    chunked_tags,
    counted_tags,
    unchunked_tag,
)
from handlers.memory import capture_path
from handlers.memory.capture_path import (
    CAPTURE_INSTANCE_TAG,
    ORIGINAL_GROUPS_TAG,
    ORIGINAL_PROFILE_TAG,
    CapturePathUnavailable,
    close_capture_path,
    open_capture_path,
)
from simulation.local_aws import PREFIX, REGION
from tests.capture_network import capture_network, profile_name

AMI = "ami-0123456789abcdef0"
GROUPS_PER_INTERFACE = 16  # EC2's maximum (quota increase from the default 5)
# An interface of 16 groups takes two record tags; the group keeps four of its own
# (managed-by, Name, instance, profile): 23 such interfaces fill the 50 exactly.
INTERFACES_THAT_FIT = (MAX_TAGS_PER_RESOURCE - 4) // 2


@pytest.fixture
def ec2_with_tag_lengths(ec2_like_aws: None) -> Iterator[None]:
    """moto with EC2's semantics, which include EC2's tag key (128) and value (256) lengths."""
    yield


def contained_instance(
    session: boto3.Session, *, interfaces: int, groups_per_interface: int = GROUPS_PER_INTERFACE
) -> dict[str, Any]:
    """An instance with the isolation profile, in a VPC with SSM endpoints, whose every interface holds
    its own `groups_per_interface` groups (an interface attached after containment keeps its groups)."""
    ec2, vpc, subnet, endpoint_group = capture_network(session, "10.7")

    def groups(index: int) -> list[str]:
        return [
            ec2.create_security_group(GroupName=f"workload-{index}-{n}", Description="w", VpcId=vpc)["GroupId"]
            for n in range(groups_per_interface)
        ]

    instance = ec2.run_instances(
        ImageId=AMI,
        MinCount=1,
        MaxCount=1,
        NetworkInterfaces=[{"DeviceIndex": 0, "SubnetId": subnet, "Groups": groups(0)}],
    )["Instances"][0]["InstanceId"]
    for index in range(1, interfaces):
        eni = ec2.create_network_interface(SubnetId=subnet, Groups=groups(index))["NetworkInterface"]
        ec2.attach_network_interface(
            NetworkInterfaceId=eni["NetworkInterfaceId"], InstanceId=instance, DeviceIndex=index
        )
    ec2.associate_iam_instance_profile(
        InstanceId=instance, IamInstanceProfile={"Name": naming.isolation_profile(PREFIX, REGION)}
    )
    return {"ec2": ec2, "vpc": vpc, "instance": instance, "endpoint_group": endpoint_group}


def interface_groups(ec2: Any, instance: str) -> dict[str, tuple[str, ...]]:
    enis = ec2.describe_instances(InstanceIds=[instance])["Reservations"][0]["Instances"][0]["NetworkInterfaces"]
    return {e["NetworkInterfaceId"]: tuple(g["GroupId"] for g in e["Groups"]) for e in enis}


def capture_groups(ec2: Any, instance: str) -> list[dict[str, Any]]:
    return list(
        ec2.describe_security_groups(
            Filters=[{"Name": "group-name", "Values": [capture_path.capture_group_name(PREFIX, instance)]}]
        )["SecurityGroups"]
    )


def capture_group_tagged(world: dict[str, Any], record: dict[str, str]) -> str:
    """A capture group as an earlier run may have left it: managed by us, with `record` in its tags."""
    tags = {MANAGED_BY_TAG: MANAGED_BY_VALUE, **record}
    return str(
        world["ec2"].create_security_group(
            GroupName=capture_path.capture_group_name(PREFIX, world["instance"]),
            VpcId=world["vpc"],
            Description="c",
            TagSpecifications=[
                {"ResourceType": "security-group", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}
            ],
        )["GroupId"]
    )


def tags_of(group: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in group.get("Tags", [])}


def sixteen_groups(seed: int) -> tuple[str, ...]:
    rng = random.Random(seed)
    return tuple(f"sg-{rng.getrandbits(68):017x}" for _ in range(GROUPS_PER_INTERFACE))


# ---------------------------------------------------------------------------------------------
# The record (pure).


@pytest.mark.parametrize("length", [0, 1, MAX_TAG_VALUE_CHARS, MAX_TAG_VALUE_CHARS + 1, 30 * MAX_TAG_VALUE_CHARS])
def test_a_chunked_value_round_trips_whatever_its_length(length: int) -> None:
    value = "".join(random.Random(length).choice("sg-0123456789abcdef,") for _ in range(length))
    tags = chunked_tags("irforensics:test", value)
    assert all(len(v) <= MAX_TAG_VALUE_CHARS for v in tags.values())
    assert len(tags) == max(1, -(-length // MAX_TAG_VALUE_CHARS))
    shuffled = dict(random.Random(1).sample(sorted(tags.items()), len(tags)))
    assert (
        unchunked_tag(shuffled | {"irforensics:test-other:00": "x", "irforensics:testing": "y"}, "irforensics:test")
        == value
    )


def test_chunks_are_joined_by_number_past_the_hundredth() -> None:
    tags = {f"base:{n}": f"<{n}>" for n in (2, 100, 11, 0, 1)}
    assert unchunked_tag(tags, "base") == "<0><1><2><11><100>"
    assert unchunked_tag({"base": "legacy", "base:x": "not a chunk"}, "base") is None


def test_a_chunk_key_over_ec2s_128_characters_is_refused() -> None:
    with pytest.raises(ValueError, match="longer than EC2's 128 characters"):
        chunked_tags("k" * (MAX_TAG_KEY_CHARS - 2), "value")


def test_sixteen_groups_are_remembered_in_two_tags_within_ec2s_limits_and_read_back_exactly() -> None:
    eni, groups = "eni-0123456789abcdef0", sixteen_groups(1)
    tags = capture_path.record_tags(eni, groups)
    assert sorted(tags) == [f"{ORIGINAL_GROUPS_TAG}{eni}:00", f"{ORIGINAL_GROUPS_TAG}{eni}:01"]
    assert all(len(k) <= MAX_TAG_KEY_CHARS and len(v) <= MAX_TAG_VALUE_CHARS for k, v in tags.items())
    other = capture_path.record_tags("eni-0fedcba9876543210", groups[:3])
    assert capture_path.remembered_groups({**tags, **other, "Name": "x"}) == {
        eni: groups,
        "eni-0fedcba9876543210": groups[:3],
    }


def test_a_record_written_before_chunking_is_still_read() -> None:
    legacy = {ORIGINAL_GROUPS_TAG + "eni-0123456789abcdef0": "sg-0123456789abcdef0,sg-00000000000000001"}
    assert capture_path.remembered_groups(legacy) == {
        "eni-0123456789abcdef0": ("sg-0123456789abcdef0", "sg-00000000000000001")
    }


def test_the_tag_plan_fills_a_group_exactly_and_refuses_one_interface_more() -> None:
    created = {MANAGED_BY_TAG: MANAGED_BY_VALUE, "Name": "acme-ir-capture-i-1", CAPTURE_INSTANCE_TAG: "i-1"}
    interfaces = {f"eni-{n:017x}": sixteen_groups(n) for n in range(INTERFACES_THAT_FIT + 1)}
    fits = dict(list(interfaces.items())[:INTERFACES_THAT_FIT])
    plan = capture_path.plan_capture_tags("sg-new", created, fits, "acme-isolation")
    assert counted_tags({**created, **plan.write}) == MAX_TAGS_PER_RESOURCE
    assert capture_path.remembered_groups(plan.write) == fits
    with pytest.raises(CapturePathUnavailable, match=r"would need 52 tags .* EC2 allows 50 per security group"):
        capture_path.plan_capture_tags("sg-new", created, interfaces, "acme-isolation")


# ---------------------------------------------------------------------------------------------
# Opening and closing, on moto with EC2's semantics and tag lengths.


def test_interfaces_with_sixteen_groups_each_go_back_to_exactly_their_groups(
    ec2_with_tag_lengths: None, member: boto3.Session
) -> None:
    world = contained_instance(member, interfaces=3)
    ec2, instance = world["ec2"], world["instance"]
    before = interface_groups(ec2, instance)
    assert [len(g) for g in before.values()] == [GROUPS_PER_INTERFACE] * 3

    opened = open_capture_path(ec2, instance, prefix=PREFIX, region=REGION)

    group_id = opened.groups[world["vpc"]]
    assert interface_groups(ec2, instance) == {eni: (group_id,) for eni in before}
    assert dict(opened.interfaces) == before
    assert profile_name(ec2, instance) == naming.acquisition_profile(PREFIX, REGION)
    tags = tags_of(capture_groups(ec2, instance)[0])
    assert all(len(k) <= MAX_TAG_KEY_CHARS and len(v) <= MAX_TAG_VALUE_CHARS for k, v in tags.items())
    assert counted_tags(tags) == 3 + 1 + 2 * 3
    assert capture_path.remembered_groups(tags) == before
    # A retried open (the Lambda timed out after the swap) finds the same record, not the capture group.
    assert dict(open_capture_path(ec2, instance, prefix=PREFIX, region=REGION).interfaces) == before

    changes = close_capture_path(ec2, instance, prefix=PREFIX, region=REGION)

    assert interface_groups(ec2, instance) == before
    assert profile_name(ec2, instance) == naming.isolation_profile(PREFIX, REGION)
    assert capture_groups(ec2, instance) == []
    assert len(changes) == 3 + 1 + 1
    assert close_capture_path(ec2, instance, prefix=PREFIX, region=REGION) == []


def test_a_record_over_ec2s_tag_limit_is_refused_before_anything_changes(
    ec2_with_tag_lengths: None, member: boto3.Session
) -> None:
    world = contained_instance(member, interfaces=INTERFACES_THAT_FIT + 1)
    ec2, instance = world["ec2"], world["instance"]
    before = interface_groups(ec2, instance)

    with pytest.raises(CapturePathUnavailable) as refused:
        open_capture_path(ec2, instance, prefix=PREFIX, region=REGION)

    message = str(refused.value)
    assert f"would need {4 + 2 * (INTERFACES_THAT_FIT + 1)} tags" in message
    assert f"{INTERFACES_THAT_FIT + 1} interfaces" in message and "nothing was changed" in message
    assert interface_groups(ec2, instance) == before
    assert profile_name(ec2, instance) == naming.isolation_profile(PREFIX, REGION)
    assert capture_groups(ec2, instance) == []
    assert close_capture_path(ec2, instance, prefix=PREFIX, region=REGION) == []


def test_a_capture_group_left_with_all_egress_by_an_interrupted_open_is_narrowed_before_use(
    ec2_with_tag_lengths: None, member: boto3.Session
) -> None:
    world = contained_instance(member, interfaces=1, groups_per_interface=1)
    ec2, instance = world["ec2"], world["instance"]
    # What an open cut off right after CreateSecurityGroup leaves: the group, EC2's allow-all egress.
    left = ec2.create_security_group(
        GroupName=capture_path.capture_group_name(PREFIX, instance),
        VpcId=world["vpc"],
        Description="c",
        TagSpecifications=[
            {"ResourceType": "security-group", "Tags": [{"Key": MANAGED_BY_TAG, "Value": MANAGED_BY_VALUE}]}
        ],
    )["GroupId"]
    ec2.authorize_security_group_ingress(
        GroupId=left,
        IpPermissions=[{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}],
    )

    opened = open_capture_path(ec2, instance, prefix=PREFIX, region=REGION)

    assert opened.groups[world["vpc"]] == left
    group = ec2.describe_security_groups(GroupIds=[left])["SecurityGroups"][0]
    assert group["IpPermissions"] == []
    assert [
        (r["IpProtocol"], r.get("FromPort"), r.get("ToPort"), r.get("IpRanges"), r.get("Ipv6Ranges"))
        for r in group["IpPermissionsEgress"]
    ] == [("tcp", 443, 443, [], [])]
    rule = group["IpPermissionsEgress"][0]
    assert [p["GroupId"] for p in rule["UserIdGroupPairs"]] == [world["endpoint_group"]]
    assert len(rule["PrefixListIds"]) == 1


def test_a_stale_record_of_an_interface_not_on_the_capture_group_is_replaced_by_its_groups_now(
    ec2_with_tag_lengths: None, member: boto3.Session
) -> None:
    world = contained_instance(member, interfaces=1, groups_per_interface=1)
    ec2, instance = world["ec2"], world["instance"]
    before = interface_groups(ec2, instance)
    (eni,) = before
    stale = capture_group_tagged(
        world,
        {
            **capture_path.record_tags(eni, sixteen_groups(7)),
            ORIGINAL_GROUPS_TAG + "eni-00000000000000000": "sg-00000000000000000",
        },
    )

    opened = open_capture_path(ec2, instance, prefix=PREFIX, region=REGION)

    assert dict(opened.interfaces) == before
    tags = tags_of(ec2.describe_security_groups(GroupIds=[stale])["SecurityGroups"][0])
    assert sorted(k for k in tags if k.startswith(ORIGINAL_GROUPS_TAG)) == [f"{ORIGINAL_GROUPS_TAG}{eni}:00"]
    assert tags[ORIGINAL_PROFILE_TAG] == naming.isolation_profile(PREFIX, REGION)
    close_capture_path(ec2, instance, prefix=PREFIX, region=REGION)
    assert interface_groups(ec2, instance) == before


def test_closing_with_a_record_that_lost_a_chunk_moves_no_interface(
    ec2_with_tag_lengths: None, member: boto3.Session
) -> None:
    world = contained_instance(member, interfaces=2)
    ec2, instance = world["ec2"], world["instance"]
    before = interface_groups(ec2, instance)
    group_id = open_capture_path(ec2, instance, prefix=PREFIX, region=REGION).groups[world["vpc"]]
    second = sorted(before)[1]
    ec2.delete_tags(Resources=[group_id], Tags=[{"Key": f"{ORIGINAL_GROUPS_TAG}{second}:00"}])

    with pytest.raises(CapturePathUnavailable, match=f"interface {second} holds the capture group but an unusable"):
        close_capture_path(ec2, instance, prefix=PREFIX, region=REGION)

    assert interface_groups(ec2, instance) == {eni: (group_id,) for eni in before}
    assert profile_name(ec2, instance) == naming.acquisition_profile(PREFIX, REGION)


def test_a_capture_group_left_by_the_previous_release_with_one_tag_per_interface_still_closes(
    ec2_with_tag_lengths: None, member: boto3.Session
) -> None:
    world = contained_instance(member, interfaces=1, groups_per_interface=3)
    ec2, instance = world["ec2"], world["instance"]
    before = interface_groups(ec2, instance)
    (eni,) = before
    group_id = capture_group_tagged(world, {ORIGINAL_GROUPS_TAG + eni: ",".join(before[eni])})
    ec2.modify_network_interface_attribute(NetworkInterfaceId=eni, Groups=[group_id])

    assert dict(open_capture_path(ec2, instance, prefix=PREFIX, region=REGION).interfaces) == before
    close_capture_path(ec2, instance, prefix=PREFIX, region=REGION)

    assert interface_groups(ec2, instance) == before
    assert capture_groups(ec2, instance) == []
