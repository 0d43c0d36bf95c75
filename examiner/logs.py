"""Web-server access logs and authentication logs, read out of the image, as timeline events.

Access logs: the NCSA common and combined formats, which nginx (`log_format combined`, its
default) and Apache (`LogFormat ... combined` / `common`) both write:
`host ident user [dd/Mon/yyyy:HH:MM:SS +zone] "METHOD target PROTO" status bytes "referer" "agent"`.
Authentication logs: sshd/sudo/su lines of syslog (`Mon dd HH:MM:SS host prog[pid]: ...`, whose
year is not written: it is taken from the log file's mtime) or of rsyslog's RFC 3339 format.
Lines that match neither are counted, never guessed at.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

ACCESS_LOG_NAMES = re.compile(r"(^|[._-])access([._-]log)?(\.\d+)?$|^access_log(\.\d+)?$")
AUTH_LOG_NAMES = ("auth.log", "auth.log.1", "secure", "secure.1")
_ACCESS = re.compile(
    r'^(?P<client>\S+) (?P<ident>\S+) (?P<user>\S+) \[(?P<time>[^\]]+)\] "(?P<request>[^"]*)" '
    r'(?P<status>\d{3}) (?P<bytes>\d+|-)(?: "(?P<referer>[^"]*)" "(?P<agent>[^"]*)")?'
)
_SYSLOG = re.compile(
    r"^(?P<time>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?) "
    r"(?P<host>\S+) (?P<program>[\w./-]+)(?:\[(?P<pid>\d+)\])?: (?P<message>.*)$"
)
_ACCEPTED = re.compile(
    r"^Accepted (?P<method>\S+) for (?P<user>\S+) from (?P<client>\S+) port (?P<port>\d+)(?: [a-z0-9]+)?"
    r"(?:: (?P<keytype>\S+) (?P<fingerprint>SHA256:\S+))?"
)
_FAILED = re.compile(r"^(?:Failed \S+ for (?:invalid user )?|Invalid user )(?P<user>\S+) from (?P<client>\S+)")
_SUDO = re.compile(r"^\s*(?P<user>\S+) : .*COMMAND=(?P<command>.*)$")


@dataclass(frozen=True)
class LogEvent:
    """One parsed log line: when, what, and where it is (file system, path, line number)."""

    time: datetime
    kind: str  # "web", "auth-accepted", "auth-failed", "sudo", "auth"
    filesystem: str
    path: str
    line: int
    summary: str
    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"{self.filesystem}{self.path} line {self.line}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "time": self.time.isoformat()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LogEvent:
        return cls(**{**data, "time": datetime.fromisoformat(data["time"])})


@dataclass
class ParsedLog:
    filesystem: str
    path: str
    kind: str  # "access" or "auth"
    events: list[LogEvent] = field(default_factory=list)
    lines: int = 0
    unparsed: int = 0

    @property
    def last_entry(self) -> datetime | None:
        return max((e.time for e in self.events), default=None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "filesystem": self.filesystem,
            "path": self.path,
            "kind": self.kind,
            "lines": self.lines,
            "unparsed": self.unparsed,
            "events": [e.to_dict() for e in self.events],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ParsedLog:
        return cls(
            filesystem=data["filesystem"],
            path=data["path"],
            kind=data["kind"],
            events=[LogEvent.from_dict(e) for e in data.get("events", [])],
            lines=int(data.get("lines", 0)),
            unparsed=int(data.get("unparsed", 0)),
        )


def log_kind(path: str) -> str:
    """'access', 'auth' or '' for a path inside a file system."""
    if not path.startswith("/var/log/") or path.endswith((".gz", ".xz", ".bz2", ".zst")):
        return ""
    name = path.rsplit("/", 1)[-1]
    if name in AUTH_LOG_NAMES:
        return "auth"
    if ACCESS_LOG_NAMES.search(name):
        return "access"
    return ""


def _access_time(text: str) -> datetime:
    return datetime.strptime(text, "%d/%b/%Y:%H:%M:%S %z").astimezone(UTC)


def _dated_lines(
    parsed: ParsedLog, text: str, pattern: re.Pattern[str], time_of: Callable[[str], datetime]
) -> Iterator[tuple[int, re.Match[str], datetime]]:
    """(line number, match, time) of each line that matches with a time that parses; counted in `parsed`."""
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parsed.lines += 1
        match = pattern.match(line)
        if not match:
            parsed.unparsed += 1
            continue
        try:
            moment = time_of(match["time"])
        except ValueError:
            parsed.unparsed += 1
            continue
        yield number, match, moment


def parse_access_log(text: str, filesystem: str, path: str) -> ParsedLog:
    parsed = ParsedLog(filesystem, path, "access")
    for number, match, moment in _dated_lines(parsed, text, _ACCESS, _access_time):
        method, _, rest = match["request"].partition(" ")
        target = rest.rsplit(" ", 1)[0] if " " in rest else rest
        size = 0 if match["bytes"] == "-" else int(match["bytes"])
        agent = match["agent"] or ""
        parsed.events.append(
            LogEvent(
                time=moment,
                kind="web",
                filesystem=filesystem,
                path=path,
                line=number,
                summary=f"{method} {target} from {match['client']}: status {match['status']}, {size} bytes"
                + (f", {agent}" if agent and agent != "-" else ""),
                fields={
                    "client": match["client"],
                    "method": method,
                    "target": target,
                    "status": int(match["status"]),
                    "bytes": size,
                    "agent": agent,
                    "referer": match["referer"] or "",
                },
            )
        )
    return parsed


def _syslog_time(text: str, year: int) -> datetime:
    if text[:4].isdigit():
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)
    # Classic syslog writes no year and local time; the examination host's logs are taken as UTC.
    return datetime.strptime(f"{year} {' '.join(text.split())}", "%Y %b %d %H:%M:%S").replace(tzinfo=UTC)


def parse_auth_log(text: str, filesystem: str, path: str, written: datetime | None) -> ParsedLog:
    """`written` (the file's mtime) supplies the year classic syslog lines lack."""
    parsed = ParsedLog(filesystem, path, "auth")
    year = (written or datetime.now(UTC)).year
    for number, match, moment in _dated_lines(parsed, text, _SYSLOG, partial(_syslog_time, year=year)):
        if written and moment > written and not match["time"][:4].isdigit():
            moment = moment.replace(year=year - 1)  # a December line in a log last written in January
        message, program = match["message"], match["program"]
        fields: dict[str, Any] = {"program": program, "host": match["host"]}
        kind, summary = "auth", f"{program}: {message}"
        if accepted := _ACCEPTED.match(message):
            kind = "auth-accepted"
            fields.update({k: v for k, v in accepted.groupdict().items() if v})
            summary = f"{program}: {accepted['user']} logged in from {accepted['client']} ({accepted['method']}"
            summary += f", key {accepted['fingerprint']})" if accepted["fingerprint"] else ")"
        elif failed := _FAILED.match(message):
            kind = "auth-failed"
            fields.update(failed.groupdict())
            summary = f"{program}: failed login as {failed['user']} from {failed['client']}"
        elif program == "sudo" and (sudo := _SUDO.match(message)):
            kind = "sudo"
            fields.update(sudo.groupdict())
            summary = f"sudo: {sudo['user']} ran {sudo['command']}"
        parsed.events.append(LogEvent(moment, kind, filesystem, path, number, summary, fields))
    return parsed
