"""Suspicious findings: what a responder should look at first, decided from the timeline and YARA hits.

Pure functions. Rules that speak of "changed" or "created" need the incident window (when the
compromise is believed to have happened); without one they are not applied rather than
guessed, and `skipped_rules` says so in findings.json.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from examiner.timeline import BodyfileEntry
from examiner.yarascan import YaraHit

SEVERITIES = ("critical", "high", "medium", "low", "info")
TEMP_DIRS = ("/tmp/", "/var/tmp/", "/dev/shm/")
WEB_ROOTS = ("/var/www/", "/usr/share/nginx/html/", "/srv/www/")
CRON_PATHS = ("/etc/crontab", "/etc/anacrontab", "/etc/cron.", "/etc/cron.d/", "/var/spool/cron/")
SCRIPT_SUFFIXES = (
    ".php",
    ".phtml",
    ".php5",
    ".php7",
    ".phar",
    ".jsp",
    ".jspx",
    ".asp",
    ".aspx",
    ".cgi",
    ".pl",
    ".py",
    ".sh",
)
AUTHORIZED_KEYS = ("authorized_keys", "authorized_keys2")
WINDOW_RULES = ("web-root", "cron", "authorized-keys", "setuid")

Window = tuple[datetime, datetime]


@dataclass(frozen=True)
class Finding:
    severity: str
    category: str
    filesystem: str
    path: str
    reason: str
    time: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "severity": self.severity,
            "category": self.category,
            "filesystem": self.filesystem,
            "path": self.path,
            "reason": self.reason,
            "time": self.time.isoformat() if self.time else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        return cls(
            severity=data["severity"],
            category=data["category"],
            filesystem=data["filesystem"],
            path=data["path"],
            reason=data["reason"],
            time=datetime.fromisoformat(data["time"]) if data.get("time") else None,
        )


def severity_rank(severity: str) -> int:
    return SEVERITIES.index(severity) if severity in SEVERITIES else len(SEVERITIES)


def _changed_in(entry: BodyfileEntry, window: Window | None) -> tuple[str, datetime] | None:
    """The first of modified/changed/born that falls in the window (access alone changes nothing)."""
    if window is None:
        return None
    start, end = window
    times = entry.times
    for flag, word in (("b", "created"), ("m", "modified"), ("c", "changed")):
        moment = times[flag]
        if moment is not None and start <= moment <= end:
            return word, moment
    return None


def _deleted_note(entry: BodyfileEntry) -> str:
    return " (deleted, still in the file system's metadata)" if entry.deleted else ""


def _entry_findings(entry: BodyfileEntry, window: Window | None) -> list[Finding]:
    path = entry.path
    found: list[Finding] = []
    changed = _changed_in(entry, window)
    when = changed[1] if changed else entry.times["m"]

    def add(severity: str, category: str, reason: str) -> None:
        found.append(
            Finding(
                severity=severity,
                category=category,
                filesystem=entry.filesystem,
                path=path,
                reason=reason + _deleted_note(entry),
                time=when,
            )
        )

    if entry.is_directory:
        return found
    if entry.is_regular_file and path.startswith(TEMP_DIRS):
        where = path.split("/")[1] if not path.startswith("/var/tmp/") else "var/tmp"
        if entry.is_executable:
            add("high", "temp-dir", f"executable file in /{where}, where nothing should be run from")
        else:
            add("medium", "temp-dir", f"file in /{where}")
    if changed and entry.is_regular_file and path.startswith(WEB_ROOTS):
        script = path.lower().endswith(SCRIPT_SUFFIXES)
        add(
            "high" if script else "medium",
            "web-root",
            f"{'server-side script' if script else 'file'} in a web root {changed[0]} during the incident window",
        )
    if changed and path.startswith(CRON_PATHS):
        what = "new cron entry" if changed[0] == "created" else "cron entry changed"
        add("high", "cron", f"{what} during the incident window")
    if changed and path.rsplit("/", 1)[-1] in AUTHORIZED_KEYS:
        add("high", "authorized-keys", f"SSH authorized_keys {changed[0]} during the incident window")
    if changed and entry.is_regular_file and entry.is_setuid_or_setgid:
        bits = " and ".join(
            b for b, on in (("SUID", entry.permissions[2] in "sS"), ("SGID", entry.permissions[5] in "sS")) if on
        )
        add("critical", "setuid", f"{bits} file {changed[0]} during the incident window")
    hidden = [part for part in path.split("/")[1:-1] if part.startswith(".") and part not in (".", "..")]
    if entry.is_regular_file and entry.is_executable and hidden:
        add(
            "high" if changed else "low",
            "hidden-executable",
            f"executable inside hidden directory {'/'.join(hidden)}"
            + (f", {changed[0]} during the incident window" if changed else ""),
        )
    return found


def _yara_finding(hit: YaraHit, entries_by_path: dict[tuple[str, str], BodyfileEntry]) -> Finding:
    entry = entries_by_path.get((hit.filesystem, hit.path))
    severity = hit.severity if hit.severity in SEVERITIES else "high"
    description = str(hit.meta.get("description", "")).strip()
    reason = f"YARA rule {hit.rule} matched" + (f": {description}" if description else "")
    return Finding(
        severity=severity,
        category="yara",
        filesystem=hit.filesystem,
        path=hit.path,
        reason=reason,
        time=entry.times["m"] if entry else None,
    )


def order_findings(findings: Iterable[Finding]) -> list[Finding]:
    """Most severe first, then most recent, then by path: the order a responder reads them in."""
    return sorted(
        findings,
        key=lambda f: (
            severity_rank(f.severity),
            -(f.time.timestamp() if f.time else float("-inf")),
            f.filesystem,
            f.path,
            f.category,
        ),
    )


def find_suspicious(
    entries: Iterable[BodyfileEntry], yara_hits: Iterable[YaraHit], incident_window: Window | None
) -> list[Finding]:
    entry_list = list(entries)
    by_path = {(e.filesystem, e.path): e for e in entry_list if not e.deleted}
    findings = [_yara_finding(hit, by_path) for hit in yara_hits]
    for entry in entry_list:
        findings.extend(_entry_findings(entry, incident_window))
    return order_findings(findings)


def skipped_rules(incident_window: Window | None) -> list[str]:
    return [] if incident_window else list(WINDOW_RULES)
