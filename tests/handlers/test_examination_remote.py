from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from examiner.remote import EvidenceDigestMismatch, RemoteExamination, examine_from_bucket, main
from handlers.common import naming
from handlers.common.evidence import (
    EvidenceStore,
    containment_key,
    digest_key,
    digest_line,
    disk_image_key,
    sha256_hex,
)
from simulation import local_aws
from simulation.disk_images import PlantedTree, build_compromised_webserver_tree, build_ext4_image
from simulation.local_aws import FORENSIC_ACCOUNT, MEMBER_ACCOUNT, PREFIX, REGION

INCIDENT = datetime(2024, 6, 1, 3, 0, tzinfo=UTC)
BUCKET = naming.evidence_bucket(PREFIX, FORENSIC_ACCOUNT, REGION)
INSTANCE = "i-0abc12345def67890"
VOLUME = "vol-0aaa1111bbbb2222c"


@dataclass(frozen=True)
class Evidence:
    tree: PlantedTree
    image: bytes


@pytest.fixture(scope="module")
def evidence(tmp_path_factory: pytest.TempPathFactory) -> Evidence:
    work = tmp_path_factory.mktemp("remote")
    tree = build_compromised_webserver_tree(work / "tree", INCIDENT)
    return Evidence(tree=tree, image=build_ext4_image(tree, work / "root.img").read_bytes())


def case_id_for(n: int) -> str:
    return f"{MEMBER_ACCOUNT}-{INSTANCE}-{REGION}-{1717210800 + n}"


def plant_case(
    s3: Any, case_id: str, image: bytes, *, recorded_sha256: str | None = None, with_digest: bool = True
) -> EvidenceStore:
    """A case as acquisition leaves it: custody, containment records, one disk image with its digest, manifest."""
    store = EvidenceStore(s3, BUCKET, case_id)
    store.custody(
        "case-opened",
        {
            "request": {
                "instance_id": INSTANCE,
                "account": MEMBER_ACCOUNT,
                "region": REGION,
                "trigger": "tag",
                "action": "Contain",
            }
        },
        actor="test",
    )
    store.put_json(
        containment_key(case_id, "before"),
        {"InstanceId": INSTANCE, "SecurityGroups": ["sg-0web"]},
        source="ec2",
        tool="test",
    )
    store.put_json(
        containment_key(case_id, "after"),
        {"InstanceId": INSTANCE, "SecurityGroups": ["sg-0isolation"]},
        source="ec2",
        tool="test",
    )
    key = disk_image_key(case_id, VOLUME)
    store.put_bytes(key, image, source=f"ebs-snapshot volume:{VOLUME}", tool="test")
    if with_digest:
        store.put_bytes(
            digest_key(key),
            digest_line(recorded_sha256 or sha256_hex(image), key),
            source=key,
            tool="test",
            content_type="text/plain",
        )
    store.custody("disk-image-written", {"Key": key, "Sha256": sha256_hex(image)}, actor="test")
    store.write_manifest({"memory": {"Acquired": False, "Reason": "not acquired: test"}})
    return store


def keys_under(s3: Any, case_id: str, folder: str) -> list[str]:
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{case_id}/{folder}/").get("Contents", [])
    return sorted(item["Key"] for item in listed)


def body(s3: Any, key: str) -> bytes:
    return bytes(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())


@pytest.fixture
def s3(aws: None) -> Any:
    client = local_aws.account_session(FORENSIC_ACCOUNT).client("s3")
    client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    return client


@dataclass(frozen=True)
class Examined:
    """The evidence bucket after one whole examination, bucket to bucket (read back before moto stops)."""

    case_id: str
    done: RemoteExamination
    again: RemoteExamination
    work: Path
    objects: dict[str, tuple[bytes, dict[str, str]]]

    def keys_under(self, folder: str) -> list[str]:
        return sorted(k for k in self.objects if k.startswith(f"{self.case_id}/{folder}/"))

    def body(self, key: str) -> bytes:
        return self.objects[key][0]


@pytest.fixture(scope="module")
def examined(evidence: Evidence, tmp_path_factory: pytest.TempPathFactory) -> Examined:
    with mock_aws():
        s3 = local_aws.account_session(FORENSIC_ACCOUNT).client("s3")
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        case_id = case_id_for(1)
        plant_case(s3, case_id, evidence.image)
        work = tmp_path_factory.mktemp("work")
        done = examine_from_bucket(s3, BUCKET, case_id, work, incident_window=evidence.tree.incident_window)
        again = examine_from_bucket(s3, BUCKET, case_id, work / "again")
        objects = {
            key: (body(s3, key), dict(s3.head_object(Bucket=BUCKET, Key=key)["Metadata"]))
            for key in keys_under(s3, case_id, "analysis") + keys_under(s3, case_id, "report")
        }
    return Examined(case_id=case_id, done=done, again=again, work=work, objects=objects)


def test_examination_writes_timeline_and_report_into_the_case(examined: Examined) -> None:
    case_id = examined.case_id
    analysis = examined.keys_under("analysis")
    assert {
        f"{case_id}/analysis/{name}"
        for name in ("bodyfile", "timeline.csv", "yara.json", "findings.json", "examination.json", "verification.json")
    } <= set(analysis)
    assert examined.keys_under("report") == [f"{case_id}/report/report.{ext}" for ext in ("html", "json", "md")]
    assert examined.done.report == f"{case_id}/report/report.html"
    assert set(examined.done.uploaded) == set(analysis) | set(examined.keys_under("report"))


def test_timeline_in_the_bucket_holds_the_planted_files(examined: Examined, evidence: Evidence) -> None:
    rows = list(csv.DictReader(io.StringIO(examined.body(f"{examined.case_id}/analysis/timeline.csv").decode())))
    paths = {row["File Name"].split(f"/{VOLUME}/p0", 1)[-1] for row in rows}
    planted = {entry.path for entry in evidence.tree.planted}
    assert planted and planted <= paths


def test_report_names_the_case_and_the_planted_files(examined: Examined, evidence: Evidence) -> None:
    html = examined.body(f"{examined.case_id}/report/report.html").decode()
    assert examined.case_id in html and INSTANCE in html
    assert any(entry.path in html for entry in evidence.tree.planted)
    report = json.loads(examined.body(f"{examined.case_id}/report/report.json"))
    assert disk_image_key(examined.case_id, VOLUME) in json.dumps(report)


def test_every_upload_carries_the_sha256_of_its_bytes(examined: Examined) -> None:
    for key, (data, metadata) in examined.objects.items():
        assert metadata["sha256"] == hashlib.sha256(data).hexdigest(), key


def test_image_is_checked_against_its_acquisition_digest_before_examination(
    examined: Examined, evidence: Evidence
) -> None:
    key = disk_image_key(examined.case_id, VOLUME)
    assert examined.done.verified == {key: sha256_hex(evidence.image)}
    record = json.loads(examined.body(f"{examined.case_id}/analysis/verification.json"))
    assert record["images"][key]["sha256"] == sha256_hex(evidence.image)
    # The copy examined is still the acquired bytes afterwards.
    copy = examined.work / examined.case_id / "disk" / f"{VOLUME}.img"
    assert sha256_hex(copy.read_bytes()) == sha256_hex(evidence.image)


def test_case_records_are_downloaded_for_the_report(examined: Examined) -> None:
    local = examined.work / examined.case_id
    assert (local / "manifest.json").is_file()
    assert sorted(p.name for p in (local / "containment").iterdir()) == ["after.json", "before.json"]
    assert len(list((local / "custody").glob("*.json"))) == 2


def test_a_case_already_reported_is_not_examined_again(examined: Examined) -> None:
    assert examined.again.already_examined and examined.again.uploaded == []
    assert not (examined.work / "again" / examined.case_id).exists()


def test_a_tampered_image_is_refused_before_any_examination(s3: Any, evidence: Evidence, tmp_path: Path) -> None:
    case_id = case_id_for(2)
    plant_case(s3, case_id, evidence.image, recorded_sha256=sha256_hex(b"the bytes acquisition saw"))
    with pytest.raises(EvidenceDigestMismatch, match="does not match the sha256 recorded at acquisition"):
        examine_from_bucket(s3, BUCKET, case_id, tmp_path)
    assert not (tmp_path / case_id / "analysis").exists()
    assert keys_under(s3, case_id, "analysis") == [] and keys_under(s3, case_id, "report") == []


def test_an_image_without_its_digest_is_refused(s3: Any, evidence: Evidence, tmp_path: Path) -> None:
    case_id = case_id_for(3)
    plant_case(s3, case_id, evidence.image, with_digest=False)
    with pytest.raises(EvidenceDigestMismatch, match="has no"):
        examine_from_bucket(s3, BUCKET, case_id, tmp_path)
    assert keys_under(s3, case_id, "analysis") == []


def test_command_line_exits_non_zero_and_says_why_on_a_tampered_image(
    s3: Any, evidence: Evidence, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case_id = case_id_for(4)
    plant_case(s3, case_id, evidence.image, recorded_sha256="0" * 64)
    code = main(["--bucket", BUCKET, "--case-id", case_id, "--work-dir", str(tmp_path)], s3=s3)
    assert code == 2
    assert "EvidenceDigestMismatch" in capsys.readouterr().err
    assert keys_under(s3, case_id, "report") == []
