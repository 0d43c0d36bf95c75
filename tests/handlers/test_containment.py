"""Containment on moto with EC2's semantics (tests/ec2_semantics.py); outcomes read back through describe calls."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from core.containment import (
    ContainmentRecord,
    ContainmentState,
    Isolation,
    IsolationGroups,
    contain_instance,
    describe_instance_state,
    plan_containment,
    protect_instance,
    release_instance,
)
from core.containment.effects import MemberClients
from core.containment.model import BOOKKEEPING_TAG
from handlers.common import naming
from handlers.common.errors import CaseAlreadyOpen, InstanceNotFound
from handlers.common.tags import CASE_TAG, INCIDENT_TAG, MANAGED_BY_TAG, MANAGED_BY_VALUE
from simulation import local_aws
from simulation.local_aws import MEMBER_ACCOUNT
from simulation.scenarios import AMI, WebTier, build_web_tier
from tests.containment_evidence import from_evidence

PREFIX = "acme"
CASE = "333333333333-case-1"
NOW = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)


def clock() -> datetime:
    return NOW


def no_sleep(seconds: float) -> None:
    pass


def contain(session: boto3.Session, instance_id: str, case_id: str = CASE, **kwargs: Any) -> ContainmentRecord:
    return contain_instance(session, instance_id, case_id, prefix=PREFIX, sleep=no_sleep, clock=clock, **kwargs)


@pytest.fixture
def tier(ec2_like_aws: None, member: boto3.Session) -> WebTier:
    return build_web_tier(member, prefix=PREFIX)


@dataclass(frozen=True)
class Contained:
    session: boto3.Session
    tier: WebTier
    original: ContainmentState
    record: ContainmentRecord


@pytest.fixture(scope="class")
def contained(ec2_like_aws_for_class: None) -> Iterator[Contained]:
    """One web tier contained once, shared by the tests that only read the outcome (keeps the file fast)."""
    session = local_aws.account_session(MEMBER_ACCOUNT)
    tier = build_web_tier(session, prefix=PREFIX)
    original = describe_instance_state(session, tier.instance_id)
    yield Contained(session, tier, original, contain(session, tier.instance_id))


def isolation_groups(session: boto3.Session, vpc_id: str) -> dict[str, dict[str, Any]]:
    names = naming.isolation_group_names(PREFIX)
    found = session.client("ec2").describe_security_groups(
        Filters=[{"Name": "vpc-id", "Values": [vpc_id]}, {"Name": "group-name", "Values": list(names)}]
    )["SecurityGroups"]
    return {g["GroupName"]: g for g in found}


def interface_groups(session: boto3.Session, instance_id: str) -> dict[str, list[str]]:
    enis = session.client("ec2").describe_network_interfaces(
        Filters=[{"Name": "attachment.instance-id", "Values": [instance_id]}]
    )["NetworkInterfaces"]
    return {e["NetworkInterfaceId"]: [g["GroupId"] for g in e["Groups"]] for e in enis}


def registered_targets(session: boto3.Session, target_group_arn: str) -> set[tuple[str, int]]:
    health = session.client("elbv2").describe_target_health(TargetGroupArn=target_group_arn)
    return {
        (t["Target"]["Id"], t["Target"]["Port"])
        for t in health["TargetHealthDescriptions"]
        if t["TargetHealth"]["State"] != "draining"
    }


def world(session: boto3.Session, tier: WebTier) -> dict[str, Any]:
    """Everything containment could touch in the account, as describe calls report it."""
    ec2, iam = session.client("ec2"), session.client("iam")
    groups = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [tier.vpc_id]}])["SecurityGroups"]
    asg = session.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[tier.auto_scaling_group])[
        "AutoScalingGroups"
    ][0]
    return json.loads(
        json.dumps(
            {
                "instance": describe_instance_state(session, tier.instance_id).to_dict(),
                "interfaces": interface_groups(session, tier.instance_id),
                "groups": sorted(groups, key=lambda g: g["GroupId"]),
                "asg": {
                    "desired": asg["DesiredCapacity"],
                    "instances": sorted(i["InstanceId"] for i in asg["Instances"]),
                },
                "targets": {
                    arn: sorted(registered_targets(session, arn))
                    for arn in (tier.target_group_arn, tier.admin_target_group_arn)
                },
                "addresses": ec2.describe_addresses()["Addresses"],
                "role_policies": iam.list_role_policies(RoleName=tier.role_name)["PolicyNames"],
                "role_tags": iam.list_role_tags(RoleName=tier.role_name)["Tags"],
                "attached": iam.list_attached_role_policies(RoleName=tier.role_name)["AttachedPolicies"],
                "tags": ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [tier.instance_id]}])["Tags"],
            },
            default=str,
            sort_keys=True,
        )
    )


def comparable(state: ContainmentState) -> ContainmentState:
    """What release must restore: association ids are new by nature, incident tags are meant to go."""
    profile = replace(state.profile, association_id="") if state.profile else None
    return replace(
        state,
        profile=profile,
        addresses=tuple(replace(a, association_id="") for a in state.addresses),
        tags={k: v for k, v in state.tags.items() if k not in (INCIDENT_TAG, CASE_TAG)},
    )


class TestAContainedWebTier:
    def test_every_interface_carries_only_the_no_rule_group(self, contained: Contained) -> None:
        member, tier = contained.session, contained.tier
        deny = isolation_groups(member, tier.vpc_id)[naming.isolation_group_names(PREFIX)[1]]
        groups = interface_groups(member, tier.instance_id)
        assert set(groups) == {tier.primary_eni_id, tier.secondary_eni_id}
        assert all(g == [deny["GroupId"]] for g in groups.values())
        assert deny["IpPermissions"] == []
        assert deny["IpPermissionsEgress"] == []

    def test_the_no_rule_group_lost_its_ipv6_egress_in_the_ipv6_subnet(self, contained: Contained) -> None:
        member, tier = contained.session, contained.tier
        subnet = member.client("ec2").describe_subnets(SubnetIds=[tier.subnet_ids[0]])["Subnets"][0]
        assert subnet["Ipv6CidrBlockAssociationSet"], "the scenario must exercise IPv6"
        assert all(i.ipv6_addresses for i in contained.original.interfaces)
        deny = isolation_groups(member, tier.vpc_id)[naming.isolation_group_names(PREFIX)[1]]
        assert not any(p.get("Ipv6Ranges") for p in deny["IpPermissionsEgress"])
        revoked = [c for c in contained.record.changes if c.api == "ec2:RevokeSecurityGroupEgress"]
        assert {"CidrIpv6": "::/0"} in revoked[0].old[0]["Ipv6Ranges"]

    def test_interfaces_passed_through_the_allow_all_group_first(self, contained: Contained) -> None:
        member, tier = contained.session, contained.tier
        tracked_name, deny_name = naming.isolation_group_names(PREFIX)
        groups = isolation_groups(member, tier.vpc_id)
        tracked, deny = groups[tracked_name]["GroupId"], groups[deny_name]["GroupId"]
        steps = [(c.resource, c.new) for c in contained.record.changes if c.what == "interface-groups"]
        assert steps == [
            (tier.primary_eni_id, [tracked]),
            (tier.secondary_eni_id, [tracked]),
            (tier.primary_eni_id, [deny]),
            (tier.secondary_eni_id, [deny]),
        ]
        assert all({"Key": MANAGED_BY_TAG, "Value": MANAGED_BY_VALUE} in g["Tags"] for g in groups.values())
        for direction in ("IpPermissions", "IpPermissionsEgress"):
            rules = groups[tracked_name][direction]
            assert any(r["IpProtocol"] == "-1" and {"CidrIp": "0.0.0.0/0"} in r["IpRanges"] for r in rules)
            assert any(r["IpProtocol"] == "-1" and {"CidrIpv6": "::/0"} in r["Ipv6Ranges"] for r in rules)

    def test_the_network_was_isolated_before_anything_else_changed(self, contained: Contained) -> None:
        kinds = [c.what for c in contained.record.changes if not c.what.startswith("isolation-group")]
        last_network = max(i for i, k in enumerate(kinds) if k == "interface-groups")
        assert set(kinds[: last_network + 1]) == {"incident-tags", "interface-groups"}

    def test_the_instance_left_its_auto_scaling_group_which_kept_its_capacity(self, contained: Contained) -> None:
        member, tier = contained.session, contained.tier
        autoscaling = member.client("autoscaling")
        group = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[tier.auto_scaling_group])[
            "AutoScalingGroups"
        ][0]
        assert autoscaling.describe_auto_scaling_instances(InstanceIds=[tier.instance_id])["AutoScalingInstances"] == []
        assert contained.original.auto_scaling is not None
        desired = 2  # one peer plus the suspect, attached in the scenario
        assert group["DesiredCapacity"] == desired
        in_service = [i for i in group["Instances"] if i["LifecycleState"] == "InService"]
        assert len(in_service) == desired and tier.instance_id not in {i["InstanceId"] for i in in_service}

    def test_the_instance_left_every_target_group_and_the_ports_are_recorded(self, contained: Contained) -> None:
        member, tier = contained.session, contained.tier
        for arn in (tier.target_group_arn, tier.admin_target_group_arn):
            assert tier.instance_id not in {t for t, _ in registered_targets(member, arn)}
        assert {(t.target_group_arn, t.port) for t in contained.record.before.target_groups} == {
            (tier.target_group_arn, 80),
            (tier.admin_target_group_arn, tier.admin_port),
        }

    def test_the_elastic_ip_is_disassociated_and_its_allocation_kept(self, contained: Contained) -> None:
        member, tier = contained.session, contained.tier
        address = member.client("ec2").describe_addresses(AllocationIds=[tier.allocation_id])["Addresses"][0]
        assert not address.get("AssociationId")
        assert [(a.allocation_id, a.eni_id, a.public_ip) for a in contained.record.before.addresses] == [
            (tier.allocation_id, tier.primary_eni_id, tier.public_ip)
        ]

    def test_the_profile_is_replaced_and_issued_credentials_are_revoked(self, contained: Contained) -> None:
        member, tier = contained.session, contained.tier
        association = member.client("ec2").describe_iam_instance_profile_associations(
            Filters=[{"Name": "instance-id", "Values": [tier.instance_id]}]
        )["IamInstanceProfileAssociations"]
        assert [a["IamInstanceProfile"]["Arn"].rsplit("/", 1)[-1] for a in association] == [
            naming.isolation_profile(PREFIX, "eu-west-1")
        ]
        iam = member.client("iam")
        instance_arn = f"arn:aws:ec2:eu-west-1:333333333333:instance/{tier.instance_id}"
        # The role names the instance in a revocation slot and carries the fixed deny policy.
        tags = {t["Key"]: t["Value"] for t in iam.list_role_tags(RoleName=tier.role_name)["Tags"]}
        assert tags == {"irforensics-revoked-1": instance_arn, "irforensics-revoked-1-since": "2025-03-14T09:26:53Z"}
        attached = iam.list_attached_role_policies(RoleName=tier.role_name)["AttachedPolicies"]
        assert [p["PolicyName"] for p in attached] == [naming.revocation_policy(PREFIX, "eu-west-1")]
        assert iam.list_role_policies(RoleName=tier.role_name)["PolicyNames"] == ["read-app-bucket"]
        assert [(r.role, r.issued_before) for r in contained.record.revocations] == [
            (tier.role_name, "2025-03-14T09:26:53Z")
        ]

    def test_the_instance_and_every_volume_are_protected(self, contained: Contained) -> None:
        member, tier = contained.session, contained.tier
        ec2 = member.client("ec2")
        attribute = ec2.describe_instance_attribute
        assert attribute(InstanceId=tier.instance_id, Attribute="disableApiTermination")["DisableApiTermination"] == {
            "Value": True
        }
        assert attribute(InstanceId=tier.instance_id, Attribute="instanceInitiatedShutdownBehavior")[
            "InstanceInitiatedShutdownBehavior"
        ] == {"Value": "stop"}
        assert contained.original.shutdown_behavior == "terminate"
        mappings = ec2.describe_instances(InstanceIds=[tier.instance_id])["Reservations"][0]["Instances"][0][
            "BlockDeviceMappings"
        ]
        assert {m["Ebs"]["VolumeId"]: m["Ebs"]["DeleteOnTermination"] for m in mappings} == {
            tier.root_volume_id: False,
            tier.data_volume_id: False,
        }
        with pytest.raises(ClientError, match="OperationNotPermitted"):
            ec2.terminate_instances(InstanceIds=[tier.instance_id])

    def test_the_instance_is_tagged_with_the_case(self, contained: Contained) -> None:
        tags = describe_instance_state(contained.session, contained.tier.instance_id).tags
        assert tags[INCIDENT_TAG] == "Contain" and tags[CASE_TAG] == CASE
        assert contained.record.before == contained.original

    def test_a_second_contain_changes_nothing_and_returns_an_equivalent_record(self, contained: Contained) -> None:
        member, tier, first = contained.session, contained.tier, contained.record
        before_repeat = world(member, tier)

        second = contain(member, tier.instance_id)

        assert second.changes == []
        assert (second.before, second.after, second.revocations) == (first.before, first.after, first.revocations)
        assert world(member, tier) == before_repeat

    def test_another_case_for_the_contained_instance_is_refused(self, contained: Contained) -> None:
        member, tier = contained.session, contained.tier
        untouched = world(member, tier)

        with pytest.raises(CaseAlreadyOpen, match=CASE):
            contain(member, tier.instance_id, case_id="333333333333-other-case")

        assert world(member, tier) == untouched

    def test_the_record_round_trips_through_its_evidence_documents(self, contained: Contained) -> None:
        record = contained.record
        rebuilt = from_evidence(record)
        assert (rebuilt.before, rebuilt.after, rebuilt.revocations) == (record.before, record.after, record.revocations)
        assert record.changes[0].to_dict().keys() == {"what", "resource", "from", "to", "api"}

    def test_the_plan_for_the_contained_state_is_empty(self, contained: Contained) -> None:
        member, tier, record = contained.session, contained.tier, contained.record
        tracked_name, deny_name = naming.isolation_group_names(PREFIX)
        groups = isolation_groups(member, tier.vpc_id)
        isolation = Isolation(
            case_id=CASE,
            groups={
                tier.vpc_id: IsolationGroups(tier.vpc_id, groups[tracked_name]["GroupId"], groups[deny_name]["GroupId"])
            },
            profile_name=naming.isolation_profile(PREFIX, "eu-west-1"),
            revocation_policy="p",
            original_roles=(tier.role_name,),
            revoked_roles=frozenset({tier.role_name}),
        )

        assert plan_containment(record.after, isolation) == []
        assert [c.what for c in plan_containment(record.before, isolation)].count("interface-groups") == 4


def test_isolation_groups_are_reused_for_a_second_instance_of_the_vpc(member: boto3.Session, tier: WebTier) -> None:
    other = member.client("ec2").run_instances(
        ImageId=AMI, MinCount=1, MaxCount=1, SubnetId=tier.subnet_ids[1], SecurityGroupIds=[tier.web_group_id]
    )["Instances"][0]["InstanceId"]
    contain(member, tier.instance_id)
    deny = isolation_groups(member, tier.vpc_id)[naming.isolation_group_names(PREFIX)[1]]
    # Someone "fixes" the isolation group; the next containment empties it again.
    member.client("ec2").authorize_security_group_ingress(
        GroupId=deny["GroupId"],
        IpPermissions=[{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "203.0.113.0/24"}]}],
    )

    record = contain(member, other, case_id="333333333333-case-2")

    groups = isolation_groups(member, tier.vpc_id)
    assert len(groups) == 2
    assert not [c for c in record.changes if c.what == "isolation-group"]
    deny = groups[naming.isolation_group_names(PREFIX)[1]]
    assert deny["IpPermissions"] == [] and deny["IpPermissionsEgress"] == []
    assert interface_groups(member, other) == {e: [deny["GroupId"]] for e in interface_groups(member, other)}


def test_dry_run_reports_what_a_real_run_does_and_changes_nothing(member: boto3.Session, tier: WebTier) -> None:
    untouched = world(member, tier)

    planned = contain(member, tier.instance_id, dry_run=True)

    assert world(member, tier) == untouched
    assert planned.dry_run and planned.after == planned.before
    assert {c.what for c in planned.changes} >= {
        "isolation-group",
        "interface-groups",
        "instance-profile",
        "credential-revocation",
        "auto-scaling",
        "termination-protection",
        "shutdown-behavior",
        "delete-on-termination",
        "target-registration",
        "elastic-ip",
        "incident-tags",
    }

    done = contain(member, tier.instance_id)

    def shape(record: ContainmentRecord) -> list[tuple[str, str, str]]:
        return [(c.what, c.resource, c.api) for c in record.changes if not c.what.startswith("isolation-group")]

    assert shape(planned) == shape(done)


def test_release_restores_the_original_state(member: boto3.Session, tier: WebTier) -> None:
    original = describe_instance_state(member, tier.instance_id)
    record = contain(member, tier.instance_id)
    contained_world = world(member, tier)

    rehearsal = release_instance(member, tier.instance_id, record, dry_run=True)
    assert rehearsal.changes and world(member, tier) == contained_world

    release_instance(member, tier.instance_id, from_evidence(record), sleep=no_sleep)

    restored = describe_instance_state(member, tier.instance_id)
    assert comparable(restored) == comparable(original)
    assert interface_groups(member, tier.instance_id) == {
        tier.primary_eni_id: [tier.web_group_id],
        tier.secondary_eni_id: [tier.admin_group_id],
    }
    assert member.client("iam").list_role_policies(RoleName=tier.role_name)["PolicyNames"] == ["read-app-bucket"]
    assert member.client("iam").list_role_tags(RoleName=tier.role_name)["Tags"] == []
    assert member.client("iam").list_attached_role_policies(RoleName=tier.role_name)["AttachedPolicies"] == []
    raw = member.client("ec2").describe_tags(Filters=[{"Name": "resource-id", "Values": [tier.instance_id]}])["Tags"]
    assert not [t for t in raw if t["Key"].startswith(BOOKKEEPING_TAG) or t["Key"] in (INCIDENT_TAG, CASE_TAG)]


def test_escalating_from_analyze_to_contain_keeps_the_original_before(member: boto3.Session, tier: WebTier) -> None:
    original = describe_instance_state(member, tier.instance_id)

    protected = protect_instance(member, tier.instance_id, CASE, sleep=no_sleep, clock=clock)

    after = describe_instance_state(member, tier.instance_id)
    assert after.termination_protection and after.shutdown_behavior == "stop"
    assert not any(v.delete_on_termination for v in after.volumes)
    assert after.tags[INCIDENT_TAG] == "Analyze" and after.tags[CASE_TAG] == CASE
    # Analyze mode keeps the workload serving: network, profile, Auto Scaling and targets untouched.
    assert (after.interfaces, after.profile, after.addresses, after.auto_scaling, after.target_groups) == (
        original.interfaces,
        original.profile,
        original.addresses,
        original.auto_scaling,
        original.target_groups,
    )
    assert (protected.before, protected.after) == (original, after)
    assert protect_instance(member, tier.instance_id, CASE, sleep=no_sleep, clock=clock).changes == []

    record = contain(member, tier.instance_id)

    assert record.before == original
    release_instance(member, tier.instance_id, record, sleep=no_sleep)
    assert comparable(describe_instance_state(member, tier.instance_id)) == comparable(original)


def test_unknown_instance_raises_instance_not_found_and_touches_nothing(
    ec2_like_aws: None, member: boto3.Session
) -> None:
    ec2 = member.client("ec2")
    bystander = ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    untouched = (ec2.describe_security_groups()["SecurityGroups"], describe_instance_state(member, bystander))

    with pytest.raises(InstanceNotFound, match="i-0123456789abcdef0"):
        contain(member, "i-0123456789abcdef0")

    assert (ec2.describe_security_groups()["SecurityGroups"], describe_instance_state(member, bystander)) == untouched


def test_terminated_instance_raises_instance_not_found(ec2_like_aws: None, member: boto3.Session) -> None:
    ec2 = member.client("ec2")
    instance_id = ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    ec2.terminate_instances(InstanceIds=[instance_id])

    with pytest.raises(InstanceNotFound, match=f"{instance_id} is terminated"):
        contain(member, instance_id)


def test_calls_are_retried_while_a_new_resource_propagates() -> None:
    pauses: list[float] = []
    attempts: list[int] = []

    def flaky(**kwargs: Any) -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise ClientError({"Error": {"Code": "InvalidGroup.NotFound", "Message": "not yet"}}, "Modify")
        return "done"

    clients = MemberClients(ec2=None, iam=None, autoscaling=None, elbv2=None, region="eu-west-1", sleep=pauses.append)
    assert clients.call(flaky) == "done"
    assert pauses == [0.5, 1.0]

    def broken(**kwargs: Any) -> str:
        raise ClientError({"Error": {"Code": "InvalidGroup.NotFound", "Message": "never"}}, "Modify")

    with pytest.raises(ClientError):
        clients.call(broken)
    assert len(pauses) == 2 + 4
