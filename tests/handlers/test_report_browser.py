"""The report of the planted web server, for a desk and a phone: what it states, and how Chromium lays
it out at 1400 and 420 CSS pixels (no horizontal scrolling, no id broken inside a part, the incident
window visible on the chart with legible, unclipped labels). Screenshots are kept in the test's
temporary folder for a person to look at."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from examiner.narrative import MEMORY_STAGE
from examiner.report import CaseReportInput, EvidenceItem, StageTime, render_report
from examiner.runner import DiskImage, ExaminationResult, examine_case
from simulation import disk_images
from tests.report_browser import measure, screenshot
from tests.tools import requires

INCIDENT = datetime(2026, 12, 4, 16, 42, tzinfo=UTC)
CASE_ID = "333333333333-i-5191aef8fbbc9b075-eu-west-1-1796409747"
KEY_ARN = "arn:aws:kms:eu-west-1:222222222222:key/34a08ac6-568c-4eb0-b506-672de8cffe14"
SHA = "c6fb7d26bd567b16ee066c79c613bc89bff570ed084ac4280f77d505003674b0"


def state(groups: str, profile: str, behaviour: str) -> dict[str, Any]:
    return {
        "state": {
            "interfaces": [
                {
                    "eni_id": "eni-7e0cced049f24d85e",
                    "groups": [groups],
                    "ipv6_addresses": ["2400:6500:cf4b:d400:d3f4:4bc1:f4e6:7ccb"],
                },
                {"eni_id": "eni-5d0980c48d4fff3e2", "groups": [groups], "private_ips": ["10.20.1.216"]},
            ],
            "profile": {"profile_arn": f"arn:aws:iam::333333333333:instance-profile/{profile}"},
            "shutdown_behavior": behaviour,
            "tags": {"Name": "web-suspect", "team": "payments"},
        }
    }


@pytest.fixture(scope="module")
def examined(tmp_path_factory: pytest.TempPathFactory) -> ExaminationResult:
    work = tmp_path_factory.mktemp("browser")
    tree = disk_images.build_compromised_webserver_tree(work / "tree", INCIDENT)
    image = disk_images.build_ext4_image(tree, work / "vol-76be05b66286499e8.img", size_mib=64)
    window = (INCIDENT - timedelta(hours=20), INCIDENT + timedelta(hours=2))
    return examine_case([DiskImage(image, "vol-76be05b66286499e8")], None, work / "case", incident_window=window)


@pytest.fixture(scope="module")
def rendered(examined: ExaminationResult, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    opened = INCIDENT + timedelta(hours=2)
    case = CaseReportInput(
        case_id=CASE_ID,
        instance_id="i-5191aef8fbbc9b075",
        account="333333333333",
        region="eu-west-1",
        trigger="tag",
        action="Contain",
        stages=[
            StageTime("contained", opened, opened + timedelta(seconds=0.99), "done"),
            StageTime(
                "disk-image-written vol-76be05b66286499e8",
                opened + timedelta(minutes=1),
                opened + timedelta(minutes=1, seconds=36),
                "done",
            ),
        ],
        containment_before=state("sg-7e173b6ac1cf6234c", "web-app", "terminate"),
        containment_after=state("sg-44eefb93dd9740aa3", "acme-ir-isolation-eu-west-1", "stop"),
        evidence=[
            EvidenceItem(f"{CASE_ID}/disk/vol-76be05b66286499e8.img", 1073741824, SHA, "ebs-snapshot:snap-1", "imager"),
            EvidenceItem(f"{CASE_ID}/custody/000009-disk-image-written.json", 2048, SHA, "custody", "irforensics"),
        ],
        findings=examined.findings,
        timeline=examined.entries,
        memory=examined.memory,
        notes=["Local simulation: AWS was simulated with moto in one process."],
        incident_window=examined.incident_window,
        filesystems=[vars(fs) for fs in examined.filesystems],
        generated_at=opened + timedelta(minutes=5),
        examiner_notes=examined.notes,
        tools=examined.tools,
        verification={
            "ok": False,
            "summary": f"FAILED: artefacts: disk/vol-76be05b66286499e8.img has changed: sha256 {SHA}, recorded {SHA}",
            "checks": [
                {"name": "signature", "ok": True, "detail": f"ECDSA_SHA_256 signature by {KEY_ARN} over sha256 {SHA}"},
                {"name": "artefacts", "ok": False, "detail": f"disk/vol-76be05b66286499e8.img has changed: {SHA}"},
            ],
            "warnings": [
                "3 custody event(s) written after the manifest: custody/000014-analysis-instance-launched.json"
            ],
        },
        lineage=[
            {
                "volume_id": "vol-76be05b66286499e8",
                "device_name": "/dev/xvda",
                "account": "333333333333",
                "volume_size_gib": 8,
                "size_matches_volume": False,
                "size_note": "the image holds 1073741824 bytes (1 GiB) of a 8 GiB volume",
                "steps": [
                    {
                        "step": "member-snapshot",
                        "snapshot_id": "snap-dde31fb5c82918dee",
                        "account": "333333333333",
                        "kms_key": "unencrypted",
                    },
                    {
                        "step": "forensic-copy",
                        "snapshot_id": "snap-fe1edc38cbda7dc44",
                        "account": "222222222222",
                        "kms_key": KEY_ARN,
                    },
                    {
                        "step": "image",
                        "key": f"{CASE_ID}/disk/vol-76be05b66286499e8.img",
                        "size_bytes": 1073741824,
                        "read_from": "ebs-snapshot:snap-3825134f945b21f75",
                        "kms_key": KEY_ARN,
                    },
                ],
            }
        ],
        contained_at=opened + timedelta(seconds=0.99),
        later_objects=[f"{CASE_ID}/report/report.html"],
    )
    out = tmp_path_factory.mktemp("rendered")
    paths = {}
    for name, body in render_report(case).items():
        paths[name] = out / name
        paths[name].write_bytes(body)
    return paths


def test_the_report_states_outcome_initial_access_anti_forensics_anomalies_and_indicators(rendered) -> None:
    html = rendered["report.html"].read_text().replace("<wbr>", "")
    markdown = rendered["report.md"].read_text()
    document = json.loads(rendered["report.json"].read_text())
    assert "Contained at 2026-12-04 18:42:00 UTC" in html
    release = f"irf release i-5191aef8fbbc9b075 --case {CASE_ID} --account 333333333333 --region eu-west-1"
    assert release in html and release in markdown and document["outcome"]["next"][0]["command"] == release
    for text in (html, markdown.replace("\\", "")):
        assert "POST /upload.php from 198.51.100.23 (python-requests/2.31), status 200, 31 bytes" in text
        assert "history -c" in text and "log modified 9 minutes after its last entry" in text
        assert "root@kali" in text and "203.0.113.66:4444" in text
    assert "were born after their directory last changed" in html and "older than the file system itself" in html
    assert [s["stage"] for s in document["narrative"]][:2] == ["earliest access", "initial access"]
    # The disk's story ends with anti-forensics; memory's step (not examined here, and said so) follows it.
    assert [s["stage"] for s in document["narrative"]][-2:] == ["anti-forensics", MEMORY_STAGE]
    assert document["narrative"][-1]["summary"].startswith("memory was not examined")
    assert {i["value"] for i in document["indicators"]} >= {"198.51.100.23", "203.0.113.66", "http://203.0.113.66/k.sh"}
    assert document["filesystems"][0]["offset_bytes"] == 0 and document["filesystems"][0]["tool"] == "fls"
    assert document["tools"]["sleuthkit"]


def test_containment_lists_only_what_changed_and_findings_list_each_file_once(rendered) -> None:
    document = json.loads(rendered["report.json"].read_text())
    changed = {row["field"] for row in document["containment_changes"]}
    assert changed == {
        "interfaces[eni-7e0cced049f24d85e].groups",
        "interfaces[eni-5d0980c48d4fff3e2].groups",
        "profile.profile_arn",
        "shutdown_behavior",
    }
    html = rendered["report.html"].read_text()
    assert html.count('id="f-') == len({(f["filesystem"], f["path"]) for f in document["findings"]})
    assert "0.99 s" in html and "36 s" in html


@requires("chromium", "chromium")
@pytest.mark.parametrize("width", [1400, 420])
def test_chromium_lays_the_report_out_without_horizontal_scrolling(rendered, width: int, tmp_path: Path) -> None:
    layout = measure(rendered["report.html"], width)
    screenshot(rendered["report.html"], width, tmp_path / f"report-{width}.png", height=3000)
    assert layout["viewport"] == width
    assert layout["scrollWidth"] == width, layout["overflowing"][:10]
    assert layout["overflowing"] == []
    assert layout["broken"] == [], "ids broken inside a part"
    assert layout["zoneLabels"] == 1, "the incident window is labelled on the visible chart"
    labels = layout["chartLabels"]
    assert labels and all(label["inside"] for label in labels), "a chart label is clipped"
    assert min(label["height"] for label in labels) >= 10, "chart labels too small to read"
    assert any(label["text"] == "time (UTC)" for label in labels)


@requires("chromium", "chromium")
def test_the_layout_check_sees_ids_broken_inside_a_part(rendered, tmp_path: Path) -> None:
    # The old report's CSS (word-break: break-all) broke ids into pieces: the check must say so.
    broken = tmp_path / "broken.html"
    broken.write_text(
        rendered["report.html"].read_text().replace("</style>", ".mono { word-break: break-all; }</style>")
    )
    assert measure(broken, 420)["broken"]
