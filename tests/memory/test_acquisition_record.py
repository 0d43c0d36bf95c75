"""The examination says how its memory image was captured (kcore or LiME), as the case's custody records it.

The custody event is written by the evidence store the memory handler uses, downloaded into a case
folder laid out as examiner.remote lays it out; the image is a synthetic one (analysis fails on it:
no symbols), which shows the method is recorded whether or not Volatility could read the image.
"""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from examiner.memory import NOT_ANALYSED, MemoryAnalysis, acquisition_method, analyse_memory
from examiner.runner import MemoryImage, examine_case
from handlers.common.evidence import EvidenceStore
from simulation import synthetic_memory

BUCKET = "irf-evidence-acquisition"
CASE = "case-acq-0001"
INSTANCE = "i-0123456789abcdef0"


def _case_folder(tmp_path: Path, events: list[tuple[str, dict[str, object]]]) -> Path:
    """A case folder with a synthetic image and the custody events written through the evidence store."""
    case_dir = tmp_path / CASE
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        store = EvidenceStore(s3, BUCKET, CASE)
        for event, detail in events:
            store.custody(event, detail, actor="irforensics-memory")
        for item in s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{CASE}/custody/")["Contents"]:
            target = case_dir / item["Key"].removeprefix(f"{CASE}/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(s3.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read())
    (case_dir / "memory").mkdir(parents=True)
    synthetic_memory.synthetic_memory_image(case_dir / "memory" / f"{INSTANCE}.lime", seed=3, size=200_000)
    return case_dir


@pytest.mark.parametrize("method", ["kcore", "lime"])
def test_the_memory_analysis_names_the_method_the_custody_records(tmp_path: Path, method: str) -> None:
    key = f"{CASE}/memory/{INSTANCE}.lime"
    case_dir = _case_folder(
        tmp_path,
        [
            ("memory-capture-started", {"InstanceId": INSTANCE, "Method": method}),
            ("memory-acquired", {"InstanceId": INSTANCE, "Key": key, "Method": method, "Size": 1}),
        ],
    )
    image = case_dir / "memory" / f"{INSTANCE}.lime"
    result = examine_case([], MemoryImage(path=image), tmp_path / "out", incident_window=None)
    assert result.memory.status == NOT_ANALYSED and result.memory.acquisition == method
    written = json.loads((tmp_path / "out" / "analysis" / "memory-findings.json").read_text())
    assert written["memory"]["acquisition"] == method
    assert MemoryAnalysis.from_dict(written["memory"]).acquisition == method


def test_another_images_record_or_none_leaves_the_method_unsaid(tmp_path: Path) -> None:
    other = f"{CASE}/memory/i-0fedcba9876543210.lime"
    case_dir = _case_folder(tmp_path, [("memory-acquired", {"Key": other, "Method": "lime"})])
    image = case_dir / "memory" / f"{INSTANCE}.lime"
    assert acquisition_method(image) == ""
    loose = tmp_path / "loose.lime"
    loose.write_bytes(image.read_bytes())
    assert analyse_memory(loose, None, tmp_path / "vol").acquisition == ""
