"""Snapshots across accounts: the member account takes and shares them, the forensic account copies and locks."""

from __future__ import annotations

import datetime
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from core.instances import read_instance
from handlers.acquisition import snapshots
from handlers.acquisition.snapshots import (
    ARTEFACT_TAG,
    FORENSIC_COPY,
    SOURCE_SNAPSHOT_TAG,
    SOURCE_VOLUME_TAG,
    SnapshotRef,
)
from handlers.common.errors import AcquisitionFailed, InstanceNotFound
from handlers.common.tags import CASE_TAG, MANAGED_BY_TAG, MANAGED_BY_VALUE
from simulation import moto_fixes
from simulation.local_aws import FORENSIC_ACCOUNT, MEMBER_ACCOUNT, REGION

CASE = f"{MEMBER_ACCOUNT}-i-0abc12345def67890-{REGION}-1700000000"


def snapshot_set(ec2: Any, instance_id: str, case_id: str) -> list[snapshots.SnapshotRef]:
    taken = snapshots.take_snapshot_set(ec2, instance_id, case_id)
    assert taken.snapshots, taken.not_acquired
    return taken.snapshots


def allow_copying_shared_snapshots(monkeypatch: pytest.MonkeyPatch) -> None:
    """Give moto EC2's semantics for CopySnapshot of a snapshot shared from another account (the simulation's fix).

    moto looks the source up only in the copying account; on AWS any snapshot whose
    createVolumePermission names the copying account (or `all`) can be copied.
    """
    from moto.ec2.models.elastic_block_store import EBSBackend

    monkeypatch.setattr(EBSBackend, "copy_snapshot", moto_fixes.copy_shared_snapshot)


def snapshots_keep_their_volume_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto's CreateSnapshot(s) drop the volume's KMS key; on AWS the snapshot is under the volume's key."""
    from moto.ec2.models.elastic_block_store import EBSBackend

    original = EBSBackend.create_snapshot

    def create_snapshot(self: Any, volume_id: str, *args: Any, **kwargs: Any) -> Any:
        snapshot = original(self, volume_id, *args, **kwargs)
        snapshot.kms_key_id = snapshot.volume.kms_key_id
        return snapshot

    monkeypatch.setattr(EBSBackend, "create_snapshot", create_snapshot)


def moto_with_ebs_semantics(monkeypatch: pytest.MonkeyPatch) -> None:
    allow_copying_shared_snapshots(monkeypatch)
    snapshots_keep_their_volume_key(monkeypatch)
    # Test speed only: no suspect needs moto's catalogue of public AMIs (seconds per account).
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")


@pytest.fixture(autouse=True)
def _ebs_semantics(monkeypatch: pytest.MonkeyPatch) -> None:
    moto_with_ebs_semantics(monkeypatch)


def set_snapshot_state(account: str, snapshot_id: str, state: str, region: str = REGION) -> None:
    """moto completes every snapshot at once; AWS takes minutes (and sometimes fails)."""
    from moto.ec2.models import ec2_backends

    ec2_backends[account][region].snapshots[snapshot_id].status = state


def make_key(session: boto3.Session, alias: str) -> str:
    kms = session.client("kms")
    key = kms.create_key(Description=alias)["KeyMetadata"]
    kms.create_alias(AliasName=alias, TargetKeyId=key["KeyId"])
    return str(key["Arn"])


def launch_suspect(session: boto3.Session, member_key_arn: str | None = None) -> str:
    """An instance with an unencrypted root, a default-key data volume and, optionally, one under our CMK."""
    ec2 = session.client("ec2")
    mappings: list[Any] = [
        {"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 8}},
        {"DeviceName": "/dev/sdf", "Ebs": {"VolumeSize": 4, "Encrypted": True}},
    ]
    if member_key_arn:
        mappings.append(
            {"DeviceName": "/dev/sdg", "Ebs": {"VolumeSize": 2, "Encrypted": True, "KmsKeyId": member_key_arn}}
        )
    reservation = ec2.run_instances(
        ImageId="ami-0123456789abcdef0", MinCount=1, MaxCount=1, InstanceType="t3.micro", BlockDeviceMappings=mappings
    )
    return str(reservation["Instances"][0]["InstanceId"])


def tags_of(ec2: Any, snapshot_id: str) -> dict[str, str]:
    snapshot = ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"][0]
    return {t["Key"]: t["Value"] for t in snapshot.get("Tags", [])}


def test_one_snapshot_set_covers_every_attached_volume_with_the_case_tags(member: boto3.Session) -> None:
    instance_id = launch_suspect(member)
    ec2 = member.client("ec2")
    refs = snapshot_set(ec2, instance_id, CASE)
    attached = read_instance(ec2, instance_id).attached_volumes
    assert {r.volume_id for r in refs} == set(attached) and len(refs) == 2
    assert {r.device_name for r in refs} == {"/dev/xvda", "/dev/sdf"}
    for ref in refs:
        tags = tags_of(ec2, ref.snapshot_id)
        assert tags[CASE_TAG] == CASE and tags[MANAGED_BY_TAG] == MANAGED_BY_VALUE
        assert ec2.describe_snapshots(SnapshotIds=[ref.snapshot_id])["Snapshots"][0]["VolumeId"] == ref.volume_id
    assert next(r for r in refs if r.device_name == "/dev/sdf").encrypted


def test_taking_the_snapshot_set_again_for_the_same_case_reuses_it(member: boto3.Session) -> None:
    instance_id = launch_suspect(member)
    ec2 = member.client("ec2")
    first = snapshot_set(ec2, instance_id, CASE)
    second = snapshot_set(ec2, instance_id, CASE)
    assert second == first
    owned = ec2.describe_snapshots(Filters=[{"Name": f"tag:{CASE_TAG}", "Values": [CASE]}])["Snapshots"]
    assert len(owned) == 2


def test_an_instance_without_ebs_volumes_gets_no_snapshot_and_a_clear_reason(member: boto3.Session) -> None:
    instance_id = launch_suspect(member)
    ec2 = member.client("ec2")
    for volume_id in read_instance(ec2, instance_id).attached_volumes:
        ec2.detach_volume(VolumeId=volume_id, InstanceId=instance_id)
    taken = snapshots.take_snapshot_set(ec2, instance_id, CASE)
    assert taken.snapshots == [] and "no EBS volumes" in taken.not_acquired


def test_an_unknown_instance_raises_instance_not_found(member: boto3.Session) -> None:
    with pytest.raises(InstanceNotFound):
        snapshot_set(member.client("ec2"), "i-0123456789abcdef0", CASE)


def test_progress_lists_pending_snapshots_and_an_error_names_the_snapshot(member: boto3.Session) -> None:
    ec2 = member.client("ec2")
    refs = snapshot_set(ec2, launch_suspect(member), CASE)
    ids = [r.snapshot_id for r in refs]
    assert snapshots.snapshot_progress(ec2, ids).complete
    set_snapshot_state(MEMBER_ACCOUNT, ids[0], "pending")
    progress = snapshots.snapshot_progress(ec2, ids)
    assert (progress.complete, progress.pending, progress.completed) == (False, [ids[0]], ids[1:])
    set_snapshot_state(MEMBER_ACCOUNT, ids[1], "error")
    with pytest.raises(AcquisitionFailed, match=ids[1]):
        snapshots.snapshot_progress(ec2, ids)


def test_unshareable_snapshots_are_reencrypted_with_the_member_key_and_shared_once_complete(
    member: boto3.Session,
) -> None:
    key_arn = make_key(member, "alias/acme-ebs")
    ec2 = member.client("ec2")
    refs = snapshot_set(ec2, launch_suspect(member, key_arn), CASE)
    by_device = {r.device_name: r for r in refs}

    from moto.ec2.models import ec2_backends

    backend = ec2_backends[MEMBER_ACCOUNT][REGION]
    original_copy = backend.copy_snapshot

    def copy_that_takes_time(*args: Any, **kwargs: Any) -> Any:
        snapshot = original_copy(*args, **kwargs)
        snapshot.status = "pending"
        return snapshot

    backend.copy_snapshot = copy_that_takes_time  # type: ignore[method-assign]
    first = snapshots.prepare_for_forensic_account(ec2, refs, key_arn, FORENSIC_ACCOUNT, CASE)
    copies = {r.device_name: r.shareable_snapshot_id for r in first.snapshots}
    assert copies["/dev/sdg"] == by_device["/dev/sdg"].snapshot_id  # already under our CMK: shared as it is
    assert copies["/dev/xvda"] != by_device["/dev/xvda"].snapshot_id
    assert copies["/dev/sdf"] != by_device["/dev/sdf"].snapshot_id
    assert sorted(first.pending) == sorted([copies["/dev/xvda"], copies["/dev/sdf"]])
    assert first.newly_shared == [copies["/dev/sdg"]]

    def shared_with(snapshot_id: str) -> list[str]:
        answer = ec2.describe_snapshot_attribute(SnapshotId=snapshot_id, Attribute="createVolumePermission")
        return [p["UserId"] for p in answer["CreateVolumePermissions"] if "UserId" in p]

    assert shared_with(copies["/dev/xvda"]) == []  # a copy in progress cannot be shared yet
    for device in ("/dev/xvda", "/dev/sdf"):
        set_snapshot_state(MEMBER_ACCOUNT, copies[device], "completed")
    second = snapshots.prepare_for_forensic_account(ec2, refs, key_arn, FORENSIC_ACCOUNT, CASE)
    assert second.pending == [] and {r.shareable_snapshot_id for r in second.snapshots} == set(copies.values())
    for device, snapshot_id in copies.items():
        described = ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"][0]
        assert described["Encrypted"] and described["KmsKeyId"] == key_arn, device
        assert shared_with(snapshot_id) == [FORENSIC_ACCOUNT]
    root_copy_tags = tags_of(ec2, copies["/dev/xvda"])
    assert root_copy_tags[SOURCE_SNAPSHOT_TAG] == by_device["/dev/xvda"].snapshot_id
    assert root_copy_tags[CASE_TAG] == CASE
    assert shared_with(by_device["/dev/xvda"].snapshot_id) == []  # the unencrypted original is never shared


def test_forensic_copies_use_the_forensic_key_carry_their_lineage_and_are_made_once(
    member: boto3.Session, forensic: boto3.Session
) -> None:
    member_key = make_key(member, "alias/acme-ebs")
    forensic_key = make_key(forensic, "alias/acme-forensic")
    member_ec2, forensic_ec2 = member.client("ec2"), forensic.client("ec2")
    refs = snapshot_set(member_ec2, launch_suspect(member), CASE)
    shared = snapshots.prepare_for_forensic_account(member_ec2, refs, member_key, FORENSIC_ACCOUNT, CASE).snapshots

    copies = snapshots.copy_into_forensic_account(forensic_ec2, shared, forensic_key, CASE, REGION, MEMBER_ACCOUNT)
    again = snapshots.copy_into_forensic_account(forensic_ec2, shared, forensic_key, CASE, REGION, MEMBER_ACCOUNT)

    assert [c.forensic_snapshot_id for c in again] == [c.forensic_snapshot_id for c in copies]
    owned = forensic_ec2.describe_snapshots(Filters=[{"Name": f"tag:{CASE_TAG}", "Values": [CASE]}])["Snapshots"]
    assert len(owned) == 2
    for copy in copies:
        described = forensic_ec2.describe_snapshots(SnapshotIds=[copy.forensic_snapshot_id])["Snapshots"][0]
        assert described["Encrypted"] and described["KmsKeyId"] == forensic_key
        tags = tags_of(forensic_ec2, copy.forensic_snapshot_id)
        assert tags[CASE_TAG] == CASE and tags[ARTEFACT_TAG] == FORENSIC_COPY
        assert tags[SOURCE_SNAPSHOT_TAG] == copy.snapshot_id and tags[SOURCE_VOLUME_TAG] == copy.volume_id


def test_a_snapshot_not_shared_with_the_forensic_account_cannot_be_copied(
    member: boto3.Session, forensic: boto3.Session
) -> None:
    forensic_key = make_key(forensic, "alias/acme-forensic")
    refs = snapshot_set(member.client("ec2"), launch_suspect(member), CASE)
    unshared = [SnapshotRef(**{**r.__dict__, "shareable_snapshot_id": r.snapshot_id}) for r in refs]
    with pytest.raises(Exception, match=r"InvalidSnapshot\.NotFound"):
        snapshots.copy_into_forensic_account(forensic.client("ec2"), unshared, forensic_key, CASE, REGION)


def _stubbed_ec2() -> tuple[Any, Stubber]:
    ec2 = boto3.client("ec2", region_name=REGION)
    return ec2, Stubber(ec2)


def test_lock_applies_the_retention_and_reports_the_expiry() -> None:
    ec2, stub = _stubbed_ec2()
    expires = datetime.datetime(2027, 1, 1, tzinfo=datetime.UTC)
    stub.add_response(
        "lock_snapshot",
        {"SnapshotId": "snap-0aaa", "LockState": "governance", "LockDuration": 365, "LockExpiresOn": expires},
        {"SnapshotId": "snap-0aaa", "LockMode": "governance", "LockDuration": 365},
    )
    with stub:
        [result] = snapshots.lock_snapshots(ec2, ["snap-0aaa"], 365)
    stub.assert_no_pending_responses()
    assert result.locked and "governance lock for 365 days" in result.detail and "2027-01-01" in result.detail


def test_compliance_mode_is_passed_through() -> None:
    ec2, stub = _stubbed_ec2()
    stub.add_response(
        "lock_snapshot",
        {"SnapshotId": "snap-0aaa", "LockState": "compliance-cooloff"},
        {"SnapshotId": "snap-0aaa", "LockMode": "compliance", "LockDuration": 30},
    )
    with stub:
        [result] = snapshots.lock_snapshots(ec2, ["snap-0aaa"], 30, mode="compliance")
    assert result.locked and result.detail.startswith("compliance-cooloff")


def test_an_endpoint_without_snapshot_lock_is_reported_as_not_locked() -> None:
    ec2, stub = _stubbed_ec2()
    stub.add_client_error(
        "lock_snapshot",
        service_error_code="InvalidAction",
        service_message="The action LockSnapshot is not valid for this web service.",
    )
    with stub:
        [result] = snapshots.lock_snapshots(ec2, ["snap-0bbb"], 365)
    assert not result.locked and result.detail.startswith("lock skipped: InvalidAction")


def test_moto_without_lock_snapshot_is_reported_as_not_locked(forensic: boto3.Session) -> None:
    ec2 = forensic.client("ec2")
    volume = ec2.create_volume(Size=1, AvailabilityZone=f"{REGION}a")["VolumeId"]
    snapshot_id = ec2.create_snapshot(VolumeId=volume)["SnapshotId"]
    [result] = snapshots.lock_snapshots(ec2, [snapshot_id], 365)
    assert (result.snapshot_id, result.locked) == (snapshot_id, False)
    assert result.detail.startswith("lock skipped")


def test_a_lock_refused_for_another_reason_fails_the_acquisition() -> None:
    ec2, stub = _stubbed_ec2()
    stub.add_client_error("lock_snapshot", service_error_code="UnauthorizedOperation", service_message="denied")
    with stub, pytest.raises(AcquisitionFailed, match="could not lock snapshot snap-0ccc"):
        snapshots.lock_snapshots(ec2, ["snap-0ccc"], 365)


def test_cleanup_deletes_only_this_cases_intermediate_snapshots(member: boto3.Session, forensic: boto3.Session) -> None:
    member_key = make_key(member, "alias/acme-ebs")
    forensic_key = make_key(forensic, "alias/acme-forensic")
    ec2 = member.client("ec2")
    instance_id = launch_suspect(member)
    refs = snapshot_set(ec2, instance_id, CASE)
    shared = snapshots.prepare_for_forensic_account(ec2, refs, member_key, FORENSIC_ACCOUNT, CASE).snapshots
    copies = snapshots.copy_into_forensic_account(forensic.client("ec2"), shared, forensic_key, CASE, REGION)
    other_case = snapshot_set(ec2, instance_id, "another-case")
    volume = refs[0].volume_id
    unrelated = ec2.create_snapshot(
        VolumeId=volume, TagSpecifications=[{"ResourceType": "snapshot", "Tags": [{"Key": CASE_TAG, "Value": CASE}]}]
    )["SnapshotId"]
    kept = refs[0].snapshot_id

    deleted = snapshots.cleanup_intermediate(ec2, CASE, keep={kept})

    intermediate = {r.snapshot_id for r in refs} | {r.shareable_snapshot_id for r in shared}
    assert set(deleted) == intermediate - {kept}
    remaining = {s["SnapshotId"] for s in ec2.describe_snapshots()["Snapshots"]}
    assert remaining.isdisjoint(deleted)
    assert {kept, unrelated, *(r.snapshot_id for r in other_case)} <= remaining
    forensic_ids = {s["SnapshotId"] for s in forensic.client("ec2").describe_snapshots()["Snapshots"]}
    assert {c.forensic_snapshot_id for c in copies} <= forensic_ids
