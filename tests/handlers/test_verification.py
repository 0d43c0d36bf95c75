"""The custody hash chain, the signed manifest and `irf verify`: it passes on an intact case and fails,
naming the object, after one byte of any artefact, custody event, manifest or signature changes."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

import boto3
import pytest
from typer.testing import CliRunner

from handlers.common import evidence
from handlers.common.evidence import EvidenceStore, ManifestSigner
from handlers.common.verification import BucketCase, FolderCase, verify_case, verify_signature
from irf.cli import app
from simulation import moto_fixes

BUCKET = "acme-ir-artifacts-222222222222-eu-west-1"
CASE = "333333333333-i-0abc1234def567890-eu-west-1-1700000000"
IMAGE = bytes(range(256)) * 64


@pytest.fixture
def signed_case(aws: None) -> tuple[EvidenceStore, ManifestSigner]:
    s3 = boto3.client("s3")
    s3.create_bucket(
        Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}, ObjectLockEnabledForBucket=True
    )
    kms = boto3.client("kms")
    key = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName=evidence.manifest_signing_key_alias("acme"), TargetKeyId=key)
    store = EvidenceStore(s3, BUCKET, CASE)
    store.custody("case-opened", {"request": {"instance_id": "i-0abc1234def567890"}}, actor="pytest")
    before = store.put_json(evidence.containment_key(CASE, "before"), {"groups": ["sg-1"]}, source="i-1", tool="t")
    store.custody("contained", {"changes": 1}, actor="pytest", artefacts=[before.key])
    image_key = evidence.disk_image_key(CASE, "vol-1")
    s3.put_object(Bucket=BUCKET, Key=image_key, Body=IMAGE)
    digest = hashlib.sha256(IMAGE).hexdigest()
    store.put_bytes(evidence.digest_key(image_key), evidence.digest_line(digest, image_key), source="v", tool="t")
    store.custody("disk-image-written", {"Key": image_key, "Sha256": digest}, actor="pytest")
    store.custody("case-closed", {"examined": False}, actor="pytest")
    signer = ManifestSigner(kms, evidence.manifest_signing_key_alias("acme"))
    store.write_manifest({"memory": {"Acquired": False}}, signer=signer)
    return store, signer


def download(store: EvidenceStore, folder: Path) -> Path:
    case_dir = folder / CASE
    for key in list(store.keys("")):
        target = case_dir / key[len(CASE) + 1 :]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(store.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    return case_dir


def test_each_custody_event_records_its_predecessor_and_its_artefacts(signed_case) -> None:
    store, _ = signed_case
    keys = store.keys("custody/")
    records = [store.get_json(k) for k in keys]
    assert records[0]["previous"] is None
    for earlier, record in zip(keys, records[1:], strict=False):
        raw = store.s3.get_object(Bucket=BUCKET, Key=earlier)["Body"].read()
        assert record["previous"] == {"key": earlier, "sha256": hashlib.sha256(raw).hexdigest()}
    image = next(r for r in records if r["event"] == "disk-image-written")
    concerned = {a["key"]: a["sha256"] for a in image["artefacts"]}
    assert concerned[evidence.disk_image_key(CASE, "vol-1")] == hashlib.sha256(IMAGE).hexdigest()
    assert evidence.digest_key(evidence.disk_image_key(CASE, "vol-1")) in concerned
    contained = next(r for r in records if r["event"] == "contained")
    assert [a["key"] for a in contained["artefacts"]] == [evidence.containment_key(CASE, "before")]


def test_the_manifest_lists_every_custody_event_and_ends_the_chain_at_the_last(signed_case) -> None:
    store, _ = signed_case
    manifest = store.get_json(evidence.manifest_key(CASE))
    listed = {a["key"]: a["sha256"] for a in manifest["artefacts"]}
    for key in store.keys("custody/"):
        assert listed[key] == hashlib.sha256(store.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()).hexdigest()
    assert manifest["custody_head"]["key"].endswith("-case-closed.json")


def test_the_signature_verifies_offline_with_the_public_key_alone(signed_case) -> None:
    store, _ = signed_case
    signature = store.get_json(evidence.signature_key(CASE))
    pem = store.s3.get_object(Bucket=BUCKET, Key=evidence.public_key_key(CASE))["Body"].read()
    manifest = store.s3.get_object(Bucket=BUCKET, Key=evidence.manifest_key(CASE))["Body"].read()
    statement = signature["statement"].encode()
    assert json.loads(statement)["manifest_sha256"] == hashlib.sha256(manifest).hexdigest()
    import base64

    verify_signature(statement, base64.b64decode(signature["signature"]), signature["signing_algorithm"], pem)


def test_an_intact_case_verifies_in_the_bucket_and_as_a_folder(signed_case, tmp_path: Path) -> None:
    store, _ = signed_case
    in_bucket = verify_case(BucketCase(store.s3, BUCKET, CASE))
    assert in_bucket.ok, in_bucket.summary()
    folder = verify_case(FolderCase(download(store, tmp_path)))
    assert folder.ok, folder.summary()
    assert folder.custody_events == 4 and folder.artefacts_checked == len(store.keys()) - 3


def test_a_local_runs_logs_beside_the_case_are_named_not_evidence_and_anything_else_unlisted_fails(
    signed_case, tmp_path: Path
) -> None:
    store, _ = signed_case
    case_dir = download(store, tmp_path)
    (case_dir / "logs").mkdir()
    (case_dir / "logs" / "lambda.jsonl").write_text('{"message": "written by irf simulate after the case closed"}\n')
    result = verify_case(FolderCase(case_dir))
    assert result.ok, result.summary()
    [logs] = [c for c in result.checks if c.name == "local logs"]
    assert "logs/lambda.jsonl" in logs.detail and "not evidence" in logs.detail
    (case_dir / "disk" / "planted.img").parent.mkdir(exist_ok=True)
    (case_dir / "disk" / "planted.img").write_bytes(b"not from the response")
    planted = verify_case(FolderCase(case_dir))
    assert not planted.ok and "disk/planted.img" in planted.summary()


def test_one_changed_byte_anywhere_fails_verification_naming_the_object(signed_case, tmp_path: Path) -> None:
    store, _ = signed_case
    pristine = download(store, tmp_path / "pristine")
    names = FolderCase(pristine).names()
    assert {"manifest.json", "manifest.json.sig", "manifest-signing-key.pem", "disk/vol-1.img"} <= set(names)
    for number, name in enumerate(names):
        copy = download(store, tmp_path / f"t{number}")
        target = copy / name
        data = bytearray(target.read_bytes())
        if data:
            # A byte inside the signature's base64 or the PEM body, not in JSON punctuation.
            at = len(data) // 2
            data[at] = ord("A") if data[at] != ord("A") else ord("B")
        else:
            data = bytearray(b"x")
        target.write_bytes(bytes(data))
        result = verify_case(FolderCase(copy))
        assert not result.ok, name
        failed = " ".join(c.detail for c in result.failures)
        named = name if name not in ("manifest.json.sig", "manifest-signing-key.pem") else "manifest.json.sig"
        assert named in failed or (name == "manifest.json" and "manifest.json" in failed), (name, failed)


def test_irf_verify_exits_non_zero_naming_the_changed_artefact(signed_case, tmp_path: Path) -> None:
    store, _ = signed_case
    case_dir = download(store, tmp_path)
    ok = CliRunner().invoke(app, ["verify", str(case_dir)])
    assert ok.exit_code == 0, ok.output
    image = case_dir / "disk" / "vol-1.img"
    data = bytearray(image.read_bytes())
    data[100] ^= 1
    image.write_bytes(bytes(data))
    failed = CliRunner().invoke(app, ["verify", str(case_dir)])
    assert failed.exit_code == 1
    assert "disk/vol-1.img has changed" in failed.output


def test_a_custody_event_removed_from_the_middle_breaks_the_chain(signed_case, tmp_path: Path) -> None:
    store, _ = signed_case
    case_dir = download(store, tmp_path)
    (case_dir / "custody" / "000002-contained.json").unlink()
    result = verify_case(FolderCase(case_dir))
    assert not result.ok
    assert any("000002-contained.json is missing" in c.detail for c in result.failures)
    assert any("a gap" in c.detail for c in result.failures)


def test_concurrent_custody_writers_never_share_a_sequence_number(signed_case) -> None:
    store, _ = signed_case
    written: list[str] = []

    def write(n: int) -> None:
        written.append(EvidenceStore(store.s3, BUCKET, CASE).custody(f"parallel-{n}", {"n": n}, actor="pytest"))

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    # As atomic as S3's conditional writes are (moto alone lets two racing claims both succeed).
    with moto_fixes.atomic_conditional_writes():
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    seqs = [evidence.custody_seq(k) for k in store.keys("custody/")]
    assert seqs == list(range(1, len(seqs) + 1))
    store.write_manifest({}, signer=signed_case[1])
    assert verify_case(BucketCase(store.s3, BUCKET, CASE)).ok


def test_irf_verify_of_a_case_in_the_bucket_checks_against_the_kms_public_key(signed_case) -> None:
    store, _ = signed_case
    options = ["--prefix", "acme", "--forensic-account", "222222222222", "--forensic-region", "eu-west-1"]
    ok = CliRunner().invoke(app, ["verify", CASE, *options, "--security-region", "eu-west-1"])
    assert ok.exit_code == 0, ok.output
    assert "manifest signature valid" in ok.output
    signature = store.get_json(evidence.signature_key(CASE))
    other = boto3.client("kms").create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    forged = boto3.client("kms").sign(
        KeyId=other, Message=signature["statement"].encode(), MessageType="RAW", SigningAlgorithm="ECDSA_SHA_256"
    )
    import base64

    signature["signature"] = base64.b64encode(forged["Signature"]).decode()
    body = json.dumps(signature, indent=2, sort_keys=True).encode()
    store.s3.put_object(Bucket=BUCKET, Key=evidence.signature_key(CASE), Body=body)
    failed = CliRunner().invoke(app, ["verify", CASE, *options, "--security-region", "eu-west-1"])
    assert failed.exit_code == 1
    assert "the signature does not match" in failed.output


def test_any_changed_byte_of_the_signature_file_fails_verification(signed_case, tmp_path: Path) -> None:
    store, _ = signed_case
    case_dir = download(store, tmp_path)
    signature = case_dir / evidence.SIGNATURE
    original = signature.read_bytes()
    for at in range(0, len(original), 5):
        changed = bytearray(original)
        changed[at] ^= 1
        signature.write_bytes(bytes(changed))
        result = verify_case(FolderCase(case_dir))
        assert not result.ok and any(c.name == "signature" for c in result.failures), at
    signature.write_bytes(original)
    assert verify_case(FolderCase(case_dir)).ok
