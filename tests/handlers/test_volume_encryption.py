"""Disk acquisition under every volume encryption a member account has (issue 15, deliverable 2 and finding 3).

The suspect's volumes are unencrypted, under the AWS managed EBS key, under a customer managed key of
the member account, or a mix on one instance. The acquisition's member-side calls (snapshot set,
re-encryption under the member key, sharing) run as the responder role would make them; each call's
authorisations, including what EBS does with the caller's permissions on the source and destination
keys, are checked against the responder policy the stack generates and against the key policy of the
key really used. The forensic account then copies every shared snapshot under its own key.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from components.member_responder import MemberResponderArgs, responder_statements
from handlers.acquisition import snapshots
from handlers.common import naming
from simulation import api_calls, lambda_local, moto_fixes
from simulation.local_aws import FORENSIC_ACCOUNT, MEMBER_ACCOUNT, REGION, SECURITY_ACCOUNT
from simulation.scenarios import AMI, CUSTOMER_KEY, DEFAULT_EBS_KEY, UNENCRYPTED, volume_encryption

PREFIX = "acme"
CASE = f"{MEMBER_ACCOUNT}-i-0abc12345def67890-{REGION}-1700000000"
RESPONDER = naming.member_responder_role_arn(PREFIX, MEMBER_ACCOUNT, REGION)
SCENARIOS = {
    "unencrypted": (UNENCRYPTED, UNENCRYPTED),
    "default key": (DEFAULT_EBS_KEY, DEFAULT_EBS_KEY),
    "customer key": (CUSTOMER_KEY, CUSTOMER_KEY),
    "mixed": (UNENCRYPTED, DEFAULT_EBS_KEY, CUSTOMER_KEY),
}


@pytest.fixture
def semantics(aws: None) -> Iterator[None]:
    with moto_fixes.aws_semantics():
        yield


def member_key(member: boto3.Session) -> str:
    kms = member.client("kms")
    arn = str(kms.create_key(Description="member EBS key")["KeyMetadata"]["Arn"])
    kms.create_alias(AliasName=naming.member_ebs_key_alias(PREFIX), TargetKeyId=arn)
    return arn


def suspect(member: boto3.Session, encryptions: tuple[str, ...]) -> str:
    devices = [
        {"DeviceName": f"/dev/xvd{chr(ord('a') + n)}", "Ebs": {"VolumeSize": 1, **volume_encryption(member, how)}}
        for n, how in enumerate(encryptions)
    ]
    answer = member.client("ec2").run_instances(ImageId=AMI, MinCount=1, MaxCount=1, BlockDeviceMappings=devices)
    return str(answer["Instances"][0]["InstanceId"])


def acquire_as_responder(member: boto3.Session, instance_id: str, key_arn: str) -> tuple[list[Any], list[Any]]:
    """The member side of acquisition, its calls recorded as the responder's; returns (calls, shared refs)."""
    ec2 = member.client("ec2")
    running = lambda_local.RunningFunction(f"{PREFIX}-ir-snapshot-volumes", RESPONDER, SECURITY_ACCOUNT, REGION)
    with api_calls.record_api_calls() as calls, lambda_local._running(running):
        taken = snapshots.take_snapshot_set(ec2, instance_id, CASE)
        prepared = snapshots.prepare_for_forensic_account(ec2, taken.snapshots, key_arn, FORENSIC_ACCOUNT, CASE)
        for _ in range(5):
            if not prepared.pending:
                break
            prepared = snapshots.prepare_for_forensic_account(ec2, taken.snapshots, key_arn, FORENSIC_ACCOUNT, CASE)
    assert not prepared.pending
    return list(calls), prepared.snapshots


def key_policy(account: str, key_arn: str) -> dict[str, Any]:
    import json

    from moto.kms.models import kms_backends

    return dict(json.loads(kms_backends[account][REGION].keys[key_arn.rsplit("/", 1)[-1]].policy))


def refused(calls: list[Any], statements: list[dict[str, Any]]) -> list[str]:
    policy = [{"Version": "2012-10-17", "Statement": statements}]
    failures = []
    for call in calls:
        for need in call.authorizations:
            if not api_calls.evaluate(policy, need.action, need.resources, need.context).allowed:
                failures.append(f"{need.action} {list(need.resources)} ({need.implicit or call.api})")
            for resource in need.resources:
                if resource.startswith("arn:aws:kms:"):
                    by_key = api_calls.evaluate_resource_policy(
                        key_policy(MEMBER_ACCOUNT, resource), RESPONDER, need.action, [resource], need.context
                    )
                    if not by_key.allowed:
                        failures.append(f"{need.action} on {resource}: the key policy says no")
    return failures


def args() -> MemberResponderArgs:
    return MemberResponderArgs(PREFIX, MEMBER_ACCOUNT, REGION, SECURITY_ACCOUNT, REGION, FORENSIC_ACCOUNT, REGION)


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_volume_is_acquired_whatever_its_encryption(
    semantics: None, member: boto3.Session, forensic: boto3.Session, scenario: str
) -> None:
    key = member_key(member)
    instance_id = suspect(member, SCENARIOS[scenario])
    calls, shared = acquire_as_responder(member, instance_id, key)

    assert len(shared) == len(SCENARIOS[scenario])
    member_ec2 = member.client("ec2")
    for ref in shared:
        snapshot = member_ec2.describe_snapshots(SnapshotIds=[ref.shareable_snapshot_id])["Snapshots"][0]
        # Shared only under the member key, and only with the forensic account.
        assert snapshot.get("Encrypted") and snapshot.get("KmsKeyId") == key
        permissions = member_ec2.describe_snapshot_attribute(
            SnapshotId=ref.shareable_snapshot_id, Attribute="createVolumePermission"
        )["CreateVolumePermissions"]
        assert permissions == [{"UserId": FORENSIC_ACCOUNT}]
    forensic_key = forensic.client("kms").create_key(Description="evidence")["KeyMetadata"]["Arn"]
    copies = snapshots.copy_into_forensic_account(
        forensic.client("ec2"), shared, forensic_key, CASE, REGION, MEMBER_ACCOUNT
    )
    found = forensic.client("ec2").describe_snapshots(SnapshotIds=[c.forensic_snapshot_id for c in copies])
    assert {s.get("KmsKeyId") for s in found["Snapshots"]} == {forensic_key}

    assert not refused(calls, responder_statements(args(), key))


def test_a_customer_key_needs_the_responder_grant_on_the_source_key(semantics: None, member: boto3.Session) -> None:
    """Finding 3: without ReadSourceVolumeKeysThroughEbs, EBS cannot decrypt the source to re-encrypt."""
    key = member_key(member)
    calls, _ = acquire_as_responder(member, suspect(member, (CUSTOMER_KEY,)), key)
    source_uses = {n.action for c in calls for n in c.authorizations if "source key" in n.implicit}
    assert {"kms:Decrypt", "kms:ReEncryptFrom", "kms:DescribeKey", "kms:CreateGrant"} <= source_uses
    without = [
        s
        for s in responder_statements(args(), key)
        if s["Sid"] not in ("ReadSourceVolumeKeysThroughEbs", "GrantSourceVolumeKeysToEbs")
    ]
    failures = refused(calls, without)
    assert failures and all("source key" in f for f in failures)
