"""Session revocation through the fixed deny policy and role tag slots (core/containment/revocation.py)."""

from __future__ import annotations

import json

import boto3
import pytest

from core.containment import revocation
from handlers.common import naming
from simulation.scenarios import create_app_profile, create_revocation_policy

PREFIX = "acme"
ROLE = "web-app"


def instance_arn(n: int) -> str:
    return f"arn:aws:ec2:eu-west-1:333333333333:instance/i-{n:017x}"


def slots(iam, role: str = ROLE) -> dict[str, str]:
    tags = {t["Key"]: t["Value"] for t in iam.list_role_tags(RoleName=role)["Tags"]}
    return {k: v for k, v in tags.items() if k.startswith(revocation.SLOT_TAG_PREFIX) and not k.endswith("-since")}


def attached(iam, role: str = ROLE) -> list[str]:
    return [p["PolicyName"] for p in iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]]


@pytest.fixture
def iam(member: boto3.Session):
    create_app_profile(member)
    create_revocation_policy(member, PREFIX)
    return member.client("iam")


def test_many_instances_of_one_role_are_revoked_without_the_policy_growing(iam) -> None:
    name = naming.revocation_policy(PREFIX, "eu-west-1")
    arn = revocation.policy_arn(instance_arn(1), name)
    before = iam.get_policy_version(PolicyArn=arn, VersionId="v1")["PolicyVersion"]["Document"]
    for n in range(1, revocation.SLOTS + 1):
        revocation.revoke(iam, ROLE, instance_arn(n), name, "2025-03-14T09:26:53Z")
    assert sorted(slots(iam).values()) == sorted(instance_arn(n) for n in range(1, revocation.SLOTS + 1))
    assert attached(iam) == [name]
    assert iam.list_policy_versions(PolicyArn=arn)["Versions"][0]["VersionId"] == "v1"
    after = iam.get_policy_version(PolicyArn=arn, VersionId="v1")["PolicyVersion"]["Document"]
    assert json.dumps(after, sort_keys=True) == json.dumps(before, sort_keys=True)
    assert iam.list_role_policies(RoleName=ROLE)["PolicyNames"] == ["read-app-bucket"]
    with pytest.raises(revocation.NoRevocationSlot, match="release one first"):
        revocation.revoke(iam, ROLE, instance_arn(99), name, "2025-03-14T09:26:53Z")


def test_revoking_twice_keeps_one_slot_and_release_frees_it_then_detaches(iam) -> None:
    name = naming.revocation_policy(PREFIX, "eu-west-1")
    revocation.revoke(iam, ROLE, instance_arn(1), name, "2025-03-14T09:26:53Z")
    revocation.revoke(iam, ROLE, instance_arn(1), name, "2025-03-14T10:00:00Z")
    revocation.revoke(iam, ROLE, instance_arn(2), name, "2025-03-14T09:30:00Z")
    assert slots(iam) == {revocation.slot_key(1): instance_arn(1), revocation.slot_key(2): instance_arn(2)}
    assert revocation.revoked_roles(iam, [ROLE, "no-such-role"], instance_arn(1)) == {ROLE: "2025-03-14T09:26:53Z"}

    revocation.restore(iam, ROLE, instance_arn(1), name)
    assert slots(iam) == {revocation.slot_key(2): instance_arn(2)} and attached(iam) == [name]
    revocation.restore(iam, ROLE, instance_arn(2), name)
    assert slots(iam) == {} and attached(iam) == []
    revocation.restore(iam, ROLE, instance_arn(2), name)  # already released: nothing to do


def test_each_slot_denies_the_credentials_of_the_instance_its_tag_names() -> None:
    document = revocation.revocation_document()
    conditions = [s["Condition"]["StringEquals"]["ec2:SourceInstanceARN"] for s in document["Statement"]]
    assert conditions == [f"${{aws:PrincipalTag/{revocation.slot_key(n)}}}" for n in range(1, revocation.SLOTS + 1)]
    assert all(s["Effect"] == "Deny" and s["Action"] == "*" for s in document["Statement"])
