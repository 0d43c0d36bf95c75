"""The examiner's notes: logs, anti-forensics, timestamp anomalies, indicators and the incident narrative.

`read_texts` takes the contents of the files an examiner reads by hand (logs, shell histories,
authorized_keys, cron, web roots, temporary directories) out of each file system while its reader
is open; `take_notes` turns them, the bodyfile and the findings into `analysis/notes.json` and
the report's narrative. Findings are added for what a responder must see in the per-file list
(initial access, anti-forensics).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from examiner import ExaminationFailed
from examiner.antiforensics import (
    Observation,
    TimestampAnomaly,
    emptied_log,
    history_cleared,
    is_history,
    log_modified_after_last_entry,
    timestamp_anomalies,
)
from examiner.findings import AUTHORIZED_KEYS, CRON_PATHS, TEMP_DIRS, WEB_ROOTS, Finding, Window
from examiner.indicators import Indicator, IndicatorTable, text_of
from examiner.logs import LogEvent, ParsedLog, log_kind, parse_access_log, parse_auth_log
from examiner.narrative import NarrativeStep, build_narrative
from examiner.partitions import Partition
from examiner.superblock import FileSystemFacts
from examiner.timeline import BodyfileEntry, split_filesystem_path
from examiner.yarascan import _file_reader

MAX_TEXT_BYTES = 16 * 1024 * 1024
Texts = dict[tuple[str, str], bytes]


def worth_reading(entry: BodyfileEntry) -> bool:
    path = entry.path
    if not entry.is_regular_file or entry.deleted or entry.size > MAX_TEXT_BYTES:
        return False
    return bool(
        log_kind(path)
        or is_history(path)
        or path.rsplit("/", 1)[-1] in AUTHORIZED_KEYS
        or path.startswith(CRON_PATHS)
        or path.startswith(WEB_ROOTS)
        or path.startswith(TEMP_DIRS)
    )


def read_texts(image: Path, partition: Partition, fstype: str | None, entries: Iterable[BodyfileEntry]) -> Texts:
    """Contents of the files worth reading in one file system, by (file system, path)."""
    texts: Texts = {}
    with _file_reader(image, partition, fstype) as read:
        for entry in entries:
            if not worth_reading(entry):
                continue
            try:
                texts[(entry.filesystem, entry.path)] = read(entry.inode)
            except (ExaminationFailed, OSError):
                continue  # YARA's pass records unreadable files; these notes only use what can be read
    return texts


@dataclass
class ExaminerNotes:
    logs: list[ParsedLog] = field(default_factory=list)
    observations: list[Observation] = field(default_factory=list)
    anomalies: list[TimestampAnomaly] = field(default_factory=list)
    indicators: list[Indicator] = field(default_factory=list)
    narrative: list[NarrativeStep] = field(default_factory=list)
    filesystems: dict[str, FileSystemFacts] = field(default_factory=dict)
    entries_checked: int = 0

    @property
    def log_events(self) -> list[LogEvent]:
        return sorted((e for log in self.logs for e in log.events), key=lambda e: (e.time, e.path, e.line))

    def anomaly_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for anomaly in self.anomalies:
            counts[anomaly.kind] = counts.get(anomaly.kind, 0) + 1
        return counts

    def findings(self) -> list[Finding]:
        """What goes into the per-file findings: the initial access and each anti-forensic act."""
        found = [
            Finding(
                severity=o.severity,
                category="anti-forensics",
                filesystem=o.filesystem,
                path=o.path,
                reason=o.summary,
                time=o.time,
            )
            for o in self.observations
        ]
        for step in self.narrative:
            if step.stage == "initial access" and step.paths:
                filesystem, path = split_filesystem_path(step.paths[0])
                found.append(
                    Finding(
                        severity="critical",
                        category="initial-access",
                        filesystem=filesystem,
                        path=path,
                        reason=f"initial access: {step.summary}",
                        time=step.time,
                    )
                )
        return found

    def to_dict(self) -> dict[str, Any]:
        return {
            "logs": [log.to_dict() for log in self.logs],
            "observations": [o.to_dict() for o in self.observations],
            "timestamp_anomalies": {
                "entries_checked": self.entries_checked,
                "counts": self.anomaly_counts(),
                "anomalies": [a.to_dict() for a in self.anomalies],
            },
            "indicators": [i.to_dict() for i in self.indicators],
            "narrative": [s.to_dict() for s in self.narrative],
            "filesystems": {
                prefix: {**asdict(facts), "created": facts.created.isoformat() if facts.created else None}
                for prefix, facts in self.filesystems.items()
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExaminerNotes:
        anomalies = data.get("timestamp_anomalies") or {}
        return cls(
            logs=[ParsedLog.from_dict(log) for log in data.get("logs", [])],
            observations=[Observation.from_dict(o) for o in data.get("observations", [])],
            anomalies=[TimestampAnomaly(**a) for a in anomalies.get("anomalies", [])],
            indicators=[Indicator.from_dict(i) for i in data.get("indicators", [])],
            narrative=[NarrativeStep.from_dict(s) for s in data.get("narrative", [])],
            filesystems={
                prefix: FileSystemFacts(
                    **{**facts, "created": datetime.fromisoformat(facts["created"]) if facts.get("created") else None}
                )
                for prefix, facts in (data.get("filesystems") or {}).items()
            },
            entries_checked=int(anomalies.get("entries_checked", 0)),
        )

    def write(self, path: Path) -> Path:
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True, default=str) + "\n")
        return path


def take_notes(
    entries: Sequence[BodyfileEntry],
    texts: Mapping[tuple[str, str], bytes],
    facts: Mapping[str, FileSystemFacts | None],
    findings: Sequence[Finding],
    window: Window | None,
) -> ExaminerNotes:
    by_path = {(e.filesystem, e.path): e for e in entries if not e.deleted}
    notes = ExaminerNotes(filesystems={k: v for k, v in facts.items() if v is not None})
    table = IndicatorTable()
    for (filesystem, path), data in sorted(texts.items()):
        entry = by_path.get((filesystem, path))
        if entry is None:
            continue
        text = text_of(data)
        kind = log_kind(path)
        if kind == "access":
            parsed = parse_access_log(text, filesystem, path)
        elif kind == "auth":
            parsed = parse_auth_log(text, filesystem, path, entry.times["m"])
        else:
            parsed = None
        if parsed is not None:
            notes.logs.append(parsed)
            if tampered := log_modified_after_last_entry(entry, parsed):
                notes.observations.append(tampered)
        if is_history(path) and (cleared := history_cleared(entry, text)):
            notes.observations.append(cleared)
        table.scan_text(filesystem, path, text, ssh_keys=path.rsplit("/", 1)[-1] in AUTHORIZED_KEYS)
    flagged = {(f.filesystem, f.path) for f in findings}
    for entry in entries:
        if (emptied := emptied_log(entry)) is not None:
            notes.observations.append(emptied)
    notes.indicators = [i for i in table.indicators() if i.kind != "ssh-key"] + _added_keys(table, flagged)
    notes.observations.sort(key=lambda o: (o.time is None, o.time.isoformat() if o.time else "", o.path))
    notes.anomalies = timestamp_anomalies(entries, facts)
    notes.entries_checked = sum(1 for e in entries if not e.deleted)
    notes.narrative = build_narrative(
        entries=entries,
        log_events=notes.log_events,
        findings=findings,
        observations=notes.observations,
        indicators=notes.indicators,
        window=window,
    )
    return notes


def _added_keys(table: IndicatorTable, flagged: set[tuple[str, str]]) -> list[Indicator]:
    """The last key of each authorized_keys file a finding says changed during the incident.

    Keys are appended, so the last line is the one most likely added; the file's earlier keys
    are not indicators (they are usually the owners' own).
    """
    keys = [i for i in table.indicators() if i.kind == "ssh-key"]
    added: list[Indicator] = []
    for filesystem, path in sorted(flagged):
        if path.rsplit("/", 1)[-1] not in AUTHORIZED_KEYS:
            continue
        here = [
            (max(s.line for s in k.seen if (s.filesystem, s.path) == (filesystem, path)), k)
            for k in keys
            if any((s.filesystem, s.path) == (filesystem, path) for s in k.seen)
        ]
        if here:
            _, last = max(here, key=lambda pair: pair[0])
            if last not in added:
                last.note += f"; the last key of {path}, which changed during the incident"
                added.append(last)
    return added
