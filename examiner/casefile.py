"""Assemble a case report from the case folder alone (the evidence layout of DESIGN.md).

The analysis instance and the local simulation both hold the case prefix as a folder: the
containment records, the manifest, the custody events and the examination results. Everything
the report states is read from there, so the report says nothing the evidence does not.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from examiner.report import CaseReportInput, EvidenceItem, StageTime, render_report
from examiner.runner import ExaminationResult

REPORT_FILES = ("report.html", "report.md", "report.json")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(8 * 1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else None


def _moment(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def custody_events(case_dir: Path) -> list[dict[str, Any]]:
    events = [json.loads(p.read_text()) for p in sorted((case_dir / "custody").glob("*.json"))]
    return sorted(events, key=lambda e: (e.get("seq", 0), e.get("time", "")))


# Custody detail fields holding a stage's own recorded start and end.
_STARTS = ("started_at", "StartedAt", "LaunchedAt")
_ENDS = ("finished_at", "FinishedAt")
# Stages recorded as two events: (start event, end events, stage name).
_PAIRED = (("memory-capture-started", ("memory-acquired", "memory-not-acquired"), "memory capture"),)


def _recorded(detail: dict[str, Any], names: tuple[str, ...]) -> datetime | None:
    return next((_moment(str(detail[n])) for n in names if detail.get(n)), None)


def stages_from_custody(events: list[dict[str, Any]]) -> list[StageTime]:
    """Each stage's start and end as recorded (the containment record's own times, the imager's, a
    capture's start and end events); an event with one recorded moment is a stage of that moment."""
    stages: list[StageTime] = []
    paired_ends = {end: (start, name) for start, ends, name in _PAIRED for end in ends}
    paired_starts = {start for start, _, _ in _PAIRED}
    opened: dict[str, datetime | None] = {}
    for event in events:
        name = str(event.get("event", "?"))
        detail = event.get("detail") or {}
        moment = _moment(event.get("time"))
        status = "failed" if name in ("failure", "memory-not-acquired") else "done"
        if name in paired_starts:
            opened[name] = moment
            continue
        if name in paired_ends and paired_ends[name][0] in opened:
            start_event, stage = paired_ends[name]
            stages.append(StageTime(stage=stage, start=opened.pop(start_event), end=moment, status=status))
            continue
        start = _recorded(detail, _STARTS)
        end = _recorded(detail, _ENDS) or moment
        label = name
        if name == "disk-image-written" and detail.get("VolumeId"):
            label = f"disk-image-written {detail['VolumeId']}"
        stages.append(StageTime(stage=label, start=start or moment, end=end, status=status))
    for start_event in opened:
        stages.append(StageTime(stage=start_event, start=opened[start_event], end=None, status="no end recorded"))
    return sorted(stages, key=lambda s: s.start or s.end or datetime.max.replace(tzinfo=UTC))


def _verification(case_dir: Path) -> dict[str, Any] | None:
    """The case as examined, verified before the report states anything (analysis/ and report/ are
    this run's output, listed by the manifest written after it)."""
    if not (case_dir / "manifest.json").is_file():
        return None
    from handlers.common.verification import FolderCase, verify_case

    # The images were hashed by `sha256sum --check` against their acquisition digests moments ago
    # (examiner.remote, before any tool read them): those digests stand, the gigabytes are not re-read.
    checked = {}
    for image in [*case_dir.glob("disk/*.img"), *case_dir.glob("memory/*.lime")]:
        sidecar = image.with_name(image.name + ".sha256")
        if sidecar.is_file() and (case_dir / "analysis").is_dir():
            checked[image.relative_to(case_dir).as_posix()] = (sidecar.read_text().split()[0], image.stat().st_size)
    result = verify_case(FolderCase(case_dir), not_yet_listed=("analysis", "report"), already_hashed=checked)
    document = result.to_dict()
    document["verified_at"] = datetime.now(UTC).isoformat()
    document["public_key"] = "the public key stored in the case (compare its fingerprint with KMS: irf verify)"
    if checked:
        document["warnings"].append(
            "disk and memory images: their sha256 was checked with sha256sum --check against the acquisition "
            "digests before the examination, and is not recomputed here; `irf verify` re-hashes them"
        )
    return document


def _examination_stage(examination: ExaminationResult) -> StageTime | None:
    summary = examination.outputs.get("examination.json")
    if summary is None or not Path(summary).is_file():
        return None
    recorded = json.loads(Path(summary).read_text())
    start, end = _moment(recorded.get("started_at")), _moment(recorded.get("examined_at"))
    return StageTime(stage="examination", start=start or end, end=end, status="done") if end else None


def _manifest_notes(manifest: dict[str, Any]) -> list[str]:
    """What the manifest says was not done: disks or memory not acquired, snapshots not locked, the failure."""
    said = []
    if manifest.get("disks_not_acquired"):
        said.append(f"Disks: {manifest['disks_not_acquired']}")
    memory = manifest.get("memory") or {}
    if memory and not memory.get("Acquired", False):
        said.append(f"Memory: {memory.get('Reason', 'not acquired')}")
    for lock in manifest.get("snapshot_locks") or []:
        if not lock.get("Locked"):
            said.append(f"EBS snapshot lock of {lock.get('SnapshotId')}: {lock.get('Detail')}")
    if manifest.get("failure"):
        failure = manifest["failure"]
        said.append(f"Case failed at {failure.get('stage')}: {failure.get('error')}: {failure.get('cause')}")
    return said


def _evidence(case_dir: Path, manifest: dict[str, Any]) -> list[EvidenceItem]:
    """The manifest's artefacts, then the examination's and the custody log's files it does not list yet."""
    case_id = case_dir.name
    listed = {str(a.get("key")) for a in manifest.get("artefacts", [])}
    evidence = [EvidenceItem.from_artefact(a) for a in manifest.get("artefacts", [])]
    for path in sorted(case_dir.rglob("*")):
        relative = path.relative_to(case_dir).as_posix()
        key = f"{case_id}/{relative}"
        if path.is_file() and key not in listed and relative.split("/", 1)[0] in ("analysis", "custody"):
            evidence.append(
                EvidenceItem(key, path.stat().st_size, sha256_file(path), f"examination of {case_id}", "irforensics")
            )
    return evidence


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
    all_notes = list(notes or []) + _manifest_notes(manifest)
    stages = stages_from_custody(events)
    examined = _examination_stage(examination)
    if examined:
        stages.append(examined)
    contained = next((e for e in events if e.get("event") == "contained"), None)
    contained_at = _recorded((contained or {}).get("detail") or {}, _ENDS) or _moment((contained or {}).get("time"))
    evidence = _evidence(case_dir, manifest)
    return CaseReportInput(
        case_id=case_id,
        instance_id=str(request.get("instance_id", "")),
        account=str(request.get("account", "")),
        region=str(request.get("region", "")),
        trigger=str(request.get("trigger", "")),
        action=str(request.get("action", "")),
        stages=stages,
        containment_before=before,
        containment_after=after,
        evidence=evidence,
        findings=examination.findings,
        timeline=examination.entries,
        memory=examination.memory,
        memory_findings=examination.memory_findings,
        notes=all_notes,
        incident_window=examination.incident_window,
        filesystems=[asdict(fs) for fs in examination.filesystems],
        examiner_notes=examination.notes,
        tools=examination.tools,
        verification=_verification(case_dir),
        lineage=list(manifest.get("lineage") or []),
        contained_at=contained_at
        if after is not None and (case_dir / "containment" / "after.json").is_file()
        else None,
        failure=manifest.get("failure"),
        disks_not_acquired=str(manifest.get("disks_not_acquired") or ""),
        later_objects=[f"{case_id}/report/{name}" for name in REPORT_FILES]
        + (
            [] if (case_dir / "analysis" / "verification.json").is_file() else [f"{case_id}/analysis/verification.json"]
        ),
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
