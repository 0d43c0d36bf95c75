"""Assemble a case report from the case folder alone (the evidence layout of DESIGN.md).

The analysis instance and the local simulation both hold the case prefix as a folder: the
containment records, the manifest, the custody events and the examination results. Everything
the report states is read from there, so the report says nothing the evidence does not.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from examiner.report import CaseReportInput, EvidenceItem, StageTime, render_report
from examiner.runner import ExaminationResult


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else None


def _moment(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def custody_events(case_dir: Path) -> list[dict[str, Any]]:
    events = [json.loads(p.read_text()) for p in sorted((case_dir / "custody").glob("*.json"))]
    return sorted(events, key=lambda e: (e.get("seq", 0), e.get("time", "")))


def stages_from_custody(events: list[dict[str, Any]]) -> list[StageTime]:
    """Each custody event closes a stage that began with the event before it."""
    stages: list[StageTime] = []
    previous: datetime | None = None
    for event in events:
        moment = _moment(event.get("time"))
        status = "failed" if event.get("event") == "failure" else "done"
        stages.append(
            StageTime(stage=str(event.get("event", "?")), start=previous or moment, end=moment, status=status)
        )
        previous = moment
    return stages


def report_input(case_dir: Path, examination: ExaminationResult, *, notes: list[str] | None = None) -> CaseReportInput:
    case_id = case_dir.name
    events = custody_events(case_dir)
    opened = next((e for e in events if e.get("event") == "case-opened"), {})
    request = (opened.get("detail") or {}).get("request") or {}
    manifest = _read_json(case_dir / "manifest.json") or {}
    # Isolation's record when the instance was contained (Contain, or after a failure); else protection's.
    before = _read_json(case_dir / "containment" / "before.json") or _read_json(
        case_dir / "containment" / "protect-before.json"
    )
    after = _read_json(case_dir / "containment" / "after.json") or _read_json(
        case_dir / "containment" / "protect-after.json"
    )
    all_notes = list(notes or [])
    if manifest.get("disks_not_acquired"):
        all_notes.append(f"Disks: {manifest['disks_not_acquired']}")
    memory = manifest.get("memory") or {}
    if memory and not memory.get("Acquired", False):
        all_notes.append(f"Memory: {memory.get('Reason', 'not acquired')}")
    for lock in manifest.get("snapshot_locks") or []:
        if not lock.get("Locked"):
            all_notes.append(f"EBS snapshot lock of {lock.get('SnapshotId')}: {lock.get('Detail')}")
    if manifest.get("failure"):
        failure = manifest["failure"]
        all_notes.append(f"Case failed at {failure.get('stage')}: {failure.get('error')}: {failure.get('cause')}")
    return CaseReportInput(
        case_id=case_id,
        instance_id=str(request.get("instance_id", "")),
        account=str(request.get("account", "")),
        region=str(request.get("region", "")),
        trigger=str(request.get("trigger", "")),
        action=str(request.get("action", "")),
        stages=stages_from_custody(events),
        containment_before=before,
        containment_after=after,
        evidence=[EvidenceItem.from_artefact(a) for a in manifest.get("artefacts", [])],
        findings=examination.findings,
        timeline=examination.entries,
        memory=examination.memory,
        memory_findings=examination.memory_findings,
        notes=all_notes,
        incident_window=examination.incident_window,
    )


def write_report(case_dir: Path, examination: ExaminationResult, *, notes: list[str] | None = None) -> dict[str, Path]:
    """Render report.html/.md/.json into `<case_dir>/report/`; returns the written paths."""
    rendered = render_report(report_input(case_dir, examination, notes=notes))
    out = case_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for name, body in rendered.items():
        path = out / name
        path.write_bytes(body)
        paths[name] = path
    return paths
