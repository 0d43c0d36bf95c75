from __future__ import annotations

import hashlib
import json

import boto3
import pytest

from handlers.common import evidence
from handlers.common.errors import EvidenceConflict
from handlers.common.evidence import EvidenceStore

BUCKET = "acme-ir-artifacts-222222222222-eu-west-1"
CASE = "333333333333-i-0abc1234def567890-eu-west-1-1700000000"


@pytest.fixture
def store(aws: None) -> EvidenceStore:
    s3 = boto3.client("s3")
    s3.create_bucket(
        Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}, ObjectLockEnabledForBucket=True
    )
    return EvidenceStore(s3, BUCKET, CASE)


def test_layout_keys_follow_the_design() -> None:
    assert evidence.containment_key(CASE, "before") == f"{CASE}/containment/before.json"
    assert evidence.disk_image_key(CASE, "vol-1") == f"{CASE}/disk/vol-1.img"
    assert evidence.digest_key(evidence.disk_image_key(CASE, "vol-1")) == f"{CASE}/disk/vol-1.img.sha256"
    assert evidence.memory_image_key(CASE, "i-1") == f"{CASE}/memory/i-1.lime"
    assert evidence.custody_key(CASE, 7, "Case Opened") == f"{CASE}/custody/000007-case-opened.json"
    with pytest.raises(ValueError):
        evidence.containment_key(CASE, "during")


def test_repeating_a_write_with_the_same_bytes_is_accepted(store: EvidenceStore) -> None:
    first = store.put_bytes(f"{CASE}/analysis/x", b"abc", source="test", tool="pytest")
    again = store.put_bytes(f"{CASE}/analysis/x", b"abc", source="test", tool="pytest")
    assert first.sha256 == again.sha256 == hashlib.sha256(b"abc").hexdigest()


def test_different_bytes_under_an_existing_key_are_refused(store: EvidenceStore) -> None:
    store.put_bytes(f"{CASE}/analysis/x", b"abc", source="test", tool="pytest")
    with pytest.raises(EvidenceConflict):
        store.put_bytes(f"{CASE}/analysis/x", b"abd", source="test", tool="pytest")
    body = store.s3.get_object(Bucket=BUCKET, Key=f"{CASE}/analysis/x")["Body"].read()
    assert body == b"abc"


def test_writes_outside_the_case_prefix_are_refused(store: EvidenceStore) -> None:
    with pytest.raises(ValueError):
        store.put_bytes("other-case/analysis/x", b"abc", source="test", tool="pytest")


def test_custody_events_get_increasing_sequence_numbers(store: EvidenceStore) -> None:
    keys = [store.custody(name, {"n": n}, actor="pytest") for n, name in enumerate(["opened", "contained", "imaged"])]
    assert [k.rsplit("/", 1)[-1] for k in keys] == ["000001-opened.json", "000002-contained.json", "000003-imaged.json"]
    record = json.loads(store.s3.get_object(Bucket=BUCKET, Key=keys[1])["Body"].read())
    assert record["seq"] == 2 and record["event"] == "contained" and record["detail"] == {"n": 1}


def test_manifest_lists_every_artefact_with_size_and_sha256(store: EvidenceStore) -> None:
    store.put_json(evidence.containment_key(CASE, "before"), {"a": 1}, source="i-1", tool="irforensics")
    image_key = evidence.disk_image_key(CASE, "vol-1")
    store.s3.put_object(Bucket=BUCKET, Key=image_key, Body=b"\0" * 4096)
    digest = hashlib.sha256(b"\0" * 4096).hexdigest()
    store.put_bytes(
        evidence.digest_key(image_key), evidence.digest_line(digest, image_key), source="vol-1", tool="irforensics"
    )
    manifest = store.write_manifest({"memory": {"Acquired": False}})
    entries = {a["key"]: a for a in manifest["artefacts"]}
    assert entries[image_key]["sha256"] == digest and entries[image_key]["size"] == 4096
    assert evidence.manifest_key(CASE) not in entries
    assert manifest["memory"] == {"Acquired": False}
