"""Anti-forensics and timestamp anomalies: what an attacker did to hide, and times that cannot be true.

- History cleared: a shell history that ends with `history -c` (or unsets/empties HISTFILE).
- A log modified after its last entry: lines were removed, or the file rewritten (nginx and sshd
  write each line as it happens, so the mtime of an untouched log is its last line's time).
- Truncated or emptied logs: a log file of 0 bytes.
- A file born after its directory last changed: creating a name updates the directory's mtime,
  so the directory's time was set back (or the file's forward).
- Times older than the file system: nothing on it can predate the superblock's creation time.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from examiner.logs import ParsedLog, log_kind
from examiner.superblock import FileSystemFacts
from examiner.timeline import BodyfileEntry

HISTORY_NAMES = (".bash_history", ".zsh_history", ".ash_history", ".sh_history", ".history")
_CLEARING = re.compile(
    r"^\s*(history\s+-c|history\s+-w\s+/dev/null|unset\s+HISTFILE|export\s+HISTFILE=/dev/null|HISTSIZE=0|"
    r"export\s+HISTSIZE=0|(rm|shred)\s+.*\.(bash_|zsh_)?history|>\s*~?/?.*\.bash_history|ln\s+-sf?\s+/dev/null\s+.*history)"
)
# A log written line by line is at most this far behind its mtime (buffered writes, clock steps).
LOG_MTIME_SLACK = timedelta(minutes=1)
LOG_ROOT = "/var/log/"
LOGIN_RECORDS = ("/var/log/wtmp", "/var/log/btmp", "/var/log/lastlog", "/var/run/utmp")


@dataclass(frozen=True)
class Observation:
    """One thing an examiner notes, with the evidence that shows it."""

    kind: str  # "history-cleared", "log-modified-after-last-entry", "log-emptied", ...
    severity: str
    filesystem: str
    path: str
    time: datetime | None
    summary: str
    evidence: str

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "time": self.time.isoformat() if self.time else None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Observation:
        return cls(**{**data, "time": datetime.fromisoformat(data["time"]) if data.get("time") else None})


def is_history(path: str) -> bool:
    return path.rsplit("/", 1)[-1] in HISTORY_NAMES


def history_cleared(entry: BodyfileEntry, text: str) -> Observation | None:
    lines = [(number, line) for number, line in enumerate(text.splitlines(), start=1) if line.strip()]
    modified = entry.times["m"]
    if not lines:
        if entry.size == 0:
            return Observation(
                "history-emptied",
                "medium",
                entry.filesystem,
                entry.path,
                modified,
                "shell history is empty",
                f"{entry.filesystem}{entry.path}: 0 bytes, modified {modified:%Y-%m-%d %H:%M:%S} UTC"
                if modified
                else f"{entry.filesystem}{entry.path}: 0 bytes",
            )
        return None
    clearing = [(number, line) for number, line in lines if _CLEARING.match(line)]
    if not clearing:
        return None
    number, line = clearing[-1]
    last = number == lines[-1][0]
    return Observation(
        "history-cleared",
        "high",
        entry.filesystem,
        entry.path,
        modified,
        f"shell history {'ends with' if last else 'contains'} `{line.strip()}`: the session's history was cleared"
        + (" as its last command" if last else ""),
        f"{entry.filesystem}{entry.path} line {number}",
    )


def log_modified_after_last_entry(entry: BodyfileEntry, parsed: ParsedLog) -> Observation | None:
    last, modified = parsed.last_entry, entry.times["m"]
    if last is None or modified is None or modified - last <= LOG_MTIME_SLACK:
        return None
    gap = modified - last
    minutes = int(gap.total_seconds() // 60)
    return Observation(
        "log-modified-after-last-entry",
        "high",
        entry.filesystem,
        entry.path,
        modified,
        f"log modified {minutes} minutes after its last entry ({last:%Y-%m-%d %H:%M:%S} UTC, "
        f"{len(parsed.events)} entr{'y' if len(parsed.events) == 1 else 'ies'}): lines removed or the file rewritten",
        f"{entry.filesystem}{entry.path}: mtime {modified:%Y-%m-%d %H:%M:%S} UTC; last entry line "
        f"{max(parsed.events, key=lambda e: e.time).line}",
    )


def emptied_log(entry: BodyfileEntry) -> Observation | None:
    path = entry.path
    if not entry.is_regular_file or entry.deleted or entry.size != 0:
        return None
    if not (path.startswith(LOG_ROOT) and (log_kind(path) or path.endswith(".log") or path in LOGIN_RECORDS)):
        return None
    modified = entry.times["m"]
    return Observation(
        "log-emptied",
        "high",
        entry.filesystem,
        path,
        modified,
        "log file is empty (truncated or emptied)",
        f"{entry.filesystem}{path}: 0 bytes" + (f", modified {modified:%Y-%m-%d %H:%M:%S} UTC" if modified else ""),
    )


@dataclass(frozen=True)
class TimestampAnomaly:
    kind: str  # "born-after-parent-changed" or "older-than-filesystem"
    filesystem: str
    path: str
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _parent(path: str) -> str:
    parent = path.rsplit("/", 1)[0]
    return parent or "/"


def timestamp_anomalies(
    entries: Iterable[BodyfileEntry], facts: Mapping[str, FileSystemFacts | None]
) -> list[TimestampAnomaly]:
    found: list[TimestampAnomaly] = []
    listed = [e for e in entries if not e.deleted and e.path not in ("/$OrphanFiles",)]
    directories = {(e.filesystem, e.path): e for e in listed if e.is_directory}
    for entry in listed:
        born = entry.times["b"]
        parent = directories.get((entry.filesystem, _parent(entry.path)))
        parent_changed = parent.times["m"] if parent else None
        if born and parent_changed and born > parent_changed and entry.path != "/":
            found.append(
                TimestampAnomaly(
                    "born-after-parent-changed",
                    entry.filesystem,
                    entry.path,
                    f"born {born:%Y-%m-%d %H:%M:%S}, after {_parent(entry.path)} last changed "
                    f"({parent_changed:%Y-%m-%d %H:%M:%S} UTC)",
                )
            )
        fs = facts.get(entry.filesystem)
        if fs and fs.created:
            older = [flag for flag, moment in entry.times.items() if moment and moment < fs.created]
            if older:
                oldest = min(m for m in entry.times.values() if m)
                found.append(
                    TimestampAnomaly(
                        "older-than-filesystem",
                        entry.filesystem,
                        entry.path,
                        f"{'/'.join(older)} time(s) as old as {oldest:%Y-%m-%d %H:%M:%S}, before the file system "
                        f"was made ({fs.created:%Y-%m-%d %H:%M:%S} UTC, {fs.created_source})",
                    )
                )
    return found
