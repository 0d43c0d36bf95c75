"""The acquisition Lambdas, called as the state machine calls them, across three moto accounts."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.ec2.models import ec2_backends

from handlers.acquisition import handler
from handlers.acquisition.block_source import EBS_BLOCK_SIZE, BlockSource, FileBlockSource
from handlers.acquisition.imaging import MIB, TOOL
from handlers.common import naming
from handlers.common.errors import InvalidInput, NotReady
from handlers.common.settings import Settings
from simulation.local_aws import FORENSIC_ACCOUNT, MEMBER_ACCOUNT, PREFIX, REGION, SECURITY_ACCOUNT
from tests.handlers.test_imaging import make_sparse_file
from tests.handlers.test_snapshots import launch_suspect, make_key, moto_with_ebs_semantics

CASE = f"{MEMBER_ACCOUNT}-i-0abc12345def67890-{REGION}-1700000000"
BUCKET = naming.evidence_bucket(PREFIX, FORENSIC_ACCOUNT, REGION)


class LambdaContext:
    def __init__(self, remaining_ms: int) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@pytest.fixture
def accounts(member: boto3.Session, forensic: boto3.Session, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    moto_with_ebs_semantics(monkeypatch)
    settings = Settings(
        prefix=PREFIX,
        security_account=SECURITY_ACCOUNT,
        forensic_account=FORENSIC_ACCOUNT,
        forensic_region=REGION,
        retention_days=30,
    )
    for key, value in settings.to_env().items():
        monkeypatch.setenv(key, value)
    member_key = make_key(member, naming.member_ebs_key_alias(PREFIX))
    forensic_key = make_key(forensic, naming.forensic_key_alias(PREFIX))
    s3: Any = forensic.client("s3")
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    return {
        "member_key": member_key,
        "forensic_key": forensic_key,
        "s3": s3,
        "instance": launch_suspect(member),
        "member": member,
        "forensic": forensic,
    }


def custody(s3: Any) -> dict[str, dict[str, Any]]:
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{CASE}/custody/").get("Contents", [])
    events = [json.loads(s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read()) for o in listed]
    return {e["event"]: e for e in events}


def acquire_snapshots(accounts: dict[str, Any]) -> list[dict[str, Any]]:
    """Snapshot, share and copy as the state machine does, looping where it loops."""
    taken = handler.snapshot_volumes(
        {"CaseId": CASE, "InstanceId": accounts["instance"], "Account": MEMBER_ACCOUNT, "Region": REGION}, None
    )["Snapshots"]
    status = handler.snapshot_status(
        {"CaseId": CASE, "Account": MEMBER_ACCOUNT, "Region": REGION, "SnapshotIds": [s["SnapshotId"] for s in taken]},
        None,
    )
    assert status == {"Complete": True, "Pending": []}
    shared: dict[str, Any] = {}
    for _ in range(5):
        try:
            shared = handler.share_snapshots(
                {"CaseId": CASE, "Account": MEMBER_ACCOUNT, "Region": REGION, "Snapshots": taken}, None
            )
            break
        except NotReady:
            continue  # re-encrypted copies still being made: the state machine retries
    assert shared["PendingCopies"] == []
    copied = handler.copy_to_forensic(
        {"CaseId": CASE, "Region": REGION, "Account": MEMBER_ACCOUNT, "Snapshots": shared["Snapshots"]}, None
    )["Snapshots"]
    return list(copied)


def test_snapshots_travel_from_the_member_to_the_forensic_account_with_custody_records(
    accounts: dict[str, Any],
) -> None:
    copied = acquire_snapshots(accounts)

    assert len(copied) == 2
    assert set(copied[0]) >= {
        "SnapshotId",
        "VolumeId",
        "VolumeSize",
        "DeviceName",
        "Encrypted",
        "KmsKeyId",
        "ShareableSnapshotId",
        "ForensicSnapshotId",
    }
    forensic_ec2 = accounts["forensic"].client("ec2")
    ids = [c["ForensicSnapshotId"] for c in copied]
    for described in forensic_ec2.describe_snapshots(SnapshotIds=ids)["Snapshots"]:
        assert described["KmsKeyId"] == accounts["forensic_key"]
    status = handler.snapshot_status({"CaseId": CASE, "Account": "forensic", "SnapshotIds": ids}, None)
    assert status["Complete"]

    locks = handler.lock_snapshots({"CaseId": CASE, "Snapshots": copied}, None)["Locks"]
    assert [lock["SnapshotId"] for lock in locks] == ids
    assert all(not lock["Locked"] and lock["Detail"].startswith("lock skipped") for lock in locks)

    events = custody(accounts["s3"])
    assert {
        "disk-snapshots-taken",
        "disk-snapshots-shared",
        "disk-snapshots-copied-to-forensic",
        "disk-snapshots-locked",
    } <= set(events)
    assert events["disk-snapshots-shared"]["detail"]["SharedWith"] == FORENSIC_ACCOUNT
    assert events["disk-snapshots-locked"]["detail"]["Locks"] == locks
    assert events["disk-snapshots-locked"]["detail"]["RetentionDays"] == 30


def test_image_volume_resumes_through_json_state_and_records_the_digest(
    accounts: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    volume = make_sparse_file(tmp_path / "disk.raw", 24 * MIB, EBS_BLOCK_SIZE, [0, 1, 17, 30, 47], seed=4)
    opened: list[str] = []

    def source_for(session: boto3.Session, snapshot_id: str) -> BlockSource:
        opened.append(snapshot_id)
        return FileBlockSource(tmp_path / "disk.raw")

    event: dict[str, Any] = {
        "CaseId": CASE,
        "VolumeId": "vol-0aaa",
        "ForensicSnapshotId": "snap-0f0f",
        "SourceSnapshotId": "snap-0m0m",
        "Account": MEMBER_ACCOUNT,
        "State": None,
    }
    answers = []
    for _ in range(10):
        answer = handler.image_volume(
            json.loads(json.dumps(event)), LambdaContext(remaining_ms=61_000), block_source=source_for
        )
        answers.append(answer)
        if answer["Done"]:
            break
        event["State"] = answer["State"]
    final = answers[-1]
    key = f"{CASE}/disk/vol-0aaa.img"
    assert final["Done"] and final["Key"] == key and final["Size"] == len(volume)
    assert final["Sha256"] == hashlib.sha256(volume).hexdigest()
    assert accounts["s3"].get_object(Bucket=BUCKET, Key=key)["Body"].read() == volume
    assert (
        accounts["s3"].get_object(Bucket=BUCKET, Key=key + ".sha256")["Body"].read()
        == f"{final['Sha256']}  vol-0aaa.img\n".encode()
    )
    assert set(opened) == {"snap-0f0f"}
    record = custody(accounts["s3"])["disk-image-written"]
    written = record["detail"]
    assert (written["Sha256"], written["Size"], written["Tool"]) == (final["Sha256"], len(volume), TOOL)
    # The hash chain: the event names the image and its digest file with their sha256.
    concerned = {a["key"]: a["sha256"] for a in record["artefacts"]}
    assert concerned[key] == final["Sha256"] and key + ".sha256" in concerned
    assert written["SourceBytes"] == len(volume) and written["Account"] == MEMBER_ACCOUNT
    assert (written["MemberSnapshotId"], written["ForensicSnapshotId"], written["VolumeId"]) == (
        "snap-0m0m",
        "snap-0f0f",
        "vol-0aaa",
    )

    repeated = handler.image_volume({**event, "State": final["State"]}, None)
    assert repeated["Done"] and repeated["Sha256"] == final["Sha256"]
    image_events = [
        k
        for k in accounts["s3"].list_objects_v2(Bucket=BUCKET, Prefix=f"{CASE}/custody/")["Contents"]
        if k["Key"].endswith("disk-image-written.json")
    ]
    assert len(image_events) == 1


def test_cleanup_removes_member_snapshots_only_when_artefacts_are_not_retained(accounts: dict[str, Any]) -> None:
    copied = acquire_snapshots(accounts)
    member_ec2 = accounts["member"].client("ec2")
    base = {"CaseId": CASE, "Account": MEMBER_ACCOUNT, "Region": REGION}

    kept = handler.cleanup({**base, "RetainArtefacts": "true"}, None)
    assert kept["Deleted"] == []
    deleted = handler.cleanup({**base, "RetainArtefacts": "false"}, None)["Deleted"]

    member_snapshots = {c["SnapshotId"] for c in copied} | {c["ShareableSnapshotId"] for c in copied}
    assert set(deleted) == member_snapshots
    remaining = {s["SnapshotId"] for s in member_ec2.describe_snapshots()["Snapshots"]}
    assert remaining.isdisjoint(member_snapshots)
    forensic_ids = {s["SnapshotId"] for s in accounts["forensic"].client("ec2").describe_snapshots()["Snapshots"]}
    assert {c["ForensicSnapshotId"] for c in copied} <= forensic_ids
    assert custody(accounts["s3"])["intermediate-snapshots-deleted"]["detail"]["SnapshotIds"] == deleted


def test_missing_fields_are_named_in_invalid_input(accounts: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput, match="InstanceId: is required"):
        handler.snapshot_volumes({"CaseId": CASE, "Account": MEMBER_ACCOUNT, "Region": REGION}, None)
    with pytest.raises(InvalidInput, match="Snapshots"):
        handler.copy_to_forensic({"CaseId": CASE, "Region": REGION, "Snapshots": []}, None)


def test_snapshot_status_is_not_ready_while_any_snapshot_is_pending(accounts: dict[str, Any]) -> None:
    taken = handler.snapshot_volumes(
        {"CaseId": CASE, "InstanceId": accounts["instance"], "Account": MEMBER_ACCOUNT, "Region": REGION}, None
    )["Snapshots"]
    ids = [s["SnapshotId"] for s in taken]
    # moto completes snapshots at once; on EBS a snapshot of a busy volume is pending for minutes.
    ec2_backends[MEMBER_ACCOUNT][REGION].snapshots[ids[0]].status = "pending"
    with pytest.raises(NotReady, match=f"1 of 2 snapshots in {MEMBER_ACCOUNT} still pending: {ids[0]}"):
        handler.snapshot_status({"CaseId": CASE, "Account": MEMBER_ACCOUNT, "Region": REGION, "SnapshotIds": ids}, None)
    ec2_backends[MEMBER_ACCOUNT][REGION].snapshots[ids[0]].status = "completed"
    assert handler.snapshot_status(
        {"CaseId": CASE, "Account": MEMBER_ACCOUNT, "Region": REGION, "SnapshotIds": ids}, None
    ) == {"Complete": True, "Pending": []}
