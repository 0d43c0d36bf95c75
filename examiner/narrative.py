"""The incident narrative: the events that matter, in time order, each with the evidence that shows it.

Stages, as an examiner writes them up: earliest access (the first sign of the attacker: a
sensitive file read before anything else happened), initial access (how they got in), persistence
(how they would come back), command and control (where the host talks to), anti-forensics (what
they did to hide), and what memory showed at capture (each suspicious process with its PID, its
sockets, writable-and-executable mappings and history lines, tied to the disk findings of the same
file). Every step names its evidence (file and line, the file's times, or the Volatility plugin and
row); nothing is stated that no evidence shows. When memory was not examined, the narrative says so
and why, so no reader takes the silence of memory for a clean bill.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from examiner.antiforensics import Observation
from examiner.findings import SCRIPT_SUFFIXES, WEB_ROOTS, Finding, Window, severity_rank
from examiner.indicators import Indicator
from examiner.logs import LogEvent
from examiner.memory import MemoryAnalysis
from examiner.memory_findings import MemoryFinding
from examiner.timeline import BodyfileEntry

MEMORY_STAGE = "in memory at capture"
STAGES = ("earliest access", "initial access", "persistence", "command and control", "anti-forensics", MEMORY_STAGE)
SENSITIVE_FILES = ("/etc/passwd", "/etc/shadow", "/etc/sudoers", "/root/.ssh/id_rsa", "/etc/ssh/sshd_config")
# How far before the initial access a read of a sensitive file still counts as the attacker's.
RECON_LOOKBACK = timedelta(hours=24)
UPLOAD_FOLLOWS_WITHIN = timedelta(minutes=15)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
PERSISTENCE = {
    "cron": "cron job",
    "authorized-keys": "SSH key",
    "setuid": "SUID binary",
    "hidden-executable": "hidden executable",
}


@dataclass(frozen=True)
class NarrativeStep:
    stage: str
    time: datetime | None
    summary: str
    evidence: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)  # filesystem+path of each file cited, for links

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "time": self.time.isoformat() if self.time else None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NarrativeStep:
        return cls(**{**data, "time": datetime.fromisoformat(data["time"]) if data.get("time") else None})


def _t(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC" if moment else "time unknown"


def _minutes(delta: timedelta) -> str:
    minutes = round(delta.total_seconds() / 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def initial_access(log_events: Sequence[LogEvent], entries: Sequence[BodyfileEntry]) -> NarrativeStep | None:
    uploads = [
        e
        for e in log_events
        if e.kind == "web"
        and e.fields.get("method") == "POST"
        and 200 <= int(e.fields.get("status", 0)) < 300
        and str(e.fields.get("target", "")).split("?")[0].lower().endswith(SCRIPT_SUFFIXES)
    ]
    if uploads:
        first = min(uploads, key=lambda e: e.time)
        f = first.fields
        evidence = [f"{first.where}: {first.summary}"]
        paths = [f"{first.filesystem}{first.path}"]
        summary = f"{f['method']} {f['target']} from {f['client']}"
        if f.get("agent") and f["agent"] != "-":
            summary += f" ({f['agent']})"
        summary += f", status {f['status']}, {f['bytes']} bytes"
        same_size = [
            e
            for e in entries
            if e.is_regular_file
            and e.path.startswith(WEB_ROOTS)
            and e.size == f["bytes"]
            and e.times["b"]
            and timedelta(0) <= e.times["b"] - first.time <= UPLOAD_FOLLOWS_WITHIN
        ]
        for dropped in same_size:
            born = dropped.times["b"]
            assert born is not None
            summary += (
                f"; {_minutes(born - first.time)} later a file of exactly {dropped.size} bytes appeared in the "
                f"web root: {dropped.path}"
            )
            evidence.append(f"{dropped.filesystem}{dropped.path}: {dropped.size} bytes, born {_t(born)}")
            paths.append(f"{dropped.filesystem}{dropped.path}")
        return NarrativeStep("initial access", first.time, summary, evidence, paths)
    logins = [e for e in log_events if e.kind == "auth-accepted"]
    if logins:
        first = min(logins, key=lambda e: e.time)
        return NarrativeStep(
            "initial access", first.time, first.summary, [f"{first.where}"], [f"{first.filesystem}{first.path}"]
        )
    return None


def earliest_access(
    entries: Sequence[BodyfileEntry], before: datetime | None, window: Window | None
) -> NarrativeStep | None:
    reads = []
    for entry in entries:
        if entry.path not in SENSITIVE_FILES or entry.deleted:
            continue
        accessed, modified = entry.times["a"], entry.times["m"]
        if not accessed or (modified and accessed <= modified):
            continue
        if before is not None and not (before - RECON_LOOKBACK <= accessed <= before):
            continue
        if before is None and window and not (window[0] <= accessed <= window[1]):
            continue
        if before is None and window is None:
            continue
        reads.append((accessed, entry))
    if not reads:
        return None
    accessed, entry = min(reads, key=lambda r: r[0])
    summary = f"{entry.path} read"
    if before is not None:
        summary += f", {_minutes(before - accessed)} before the initial access"
    summary += f" (its access time; its content last changed {_t(entry.times['m'])})"
    return NarrativeStep(
        "earliest access",
        accessed,
        summary,
        [f"{entry.filesystem}{entry.path}: atime {_t(accessed)}"],
        [f"{entry.filesystem}{entry.path}"],
    )


def _persistence(
    findings: Sequence[Finding], indicators: Sequence[Indicator], log_events: Sequence[LogEvent]
) -> list[NarrativeStep]:
    steps = []
    by_file: dict[tuple[str, str], list[Finding]] = {}
    for finding in findings:
        if finding.category in PERSISTENCE:
            by_file.setdefault((finding.filesystem, finding.path), []).append(finding)
    keys = [i for i in indicators if i.kind == "ssh-key"]
    for (filesystem, path), found in by_file.items():
        what = PERSISTENCE[found[0].category]
        summary = f"{what}: {path} ({'; '.join(sorted({f.reason for f in found}))})"
        evidence = [f"{filesystem}{path}: {_t(found[0].time)}"]
        if found[0].category == "authorized-keys":
            here = [k for k in keys if any(s.path == path and s.filesystem == filesystem for s in k.seen)]
            if here:
                last = max(here, key=lambda k: max(s.line for s in k.seen if s.path == path))
                summary += f"; last key {last.value} ({last.note})"
                evidence.append(f"{last.seen[-1].where}: {last.note}")
                used = [e for e in log_events if e.fields.get("fingerprint") == last.value]
                for login in used:
                    summary += f"; used to log in at {_t(login.time)} from {login.fields.get('client')}"
                    evidence.append(f"{login.where}: {login.summary}")
        steps.append(NarrativeStep("persistence", found[0].time, summary, evidence, [f"{filesystem}{path}"]))
    return steps


def _command_and_control(indicators: Sequence[Indicator], entries: Sequence[BodyfileEntry]) -> list[NarrativeStep]:
    by_path = {(e.filesystem, e.path): e for e in entries if not e.deleted}
    steps = []
    shells = [i for i in indicators if i.kind == "reverse-shell"]
    urls = [i for i in indicators if i.kind == "url"]
    for shell in shells:
        host = shell.value.rsplit(":", 1)[0]
        sighting = shell.seen[0]
        entry = by_path.get((sighting.filesystem, sighting.path))
        evidence = [f"{s.where}: {s.context}" for s in shell.seen]
        paths = [f"{s.filesystem}{s.path}" for s in shell.seen]
        summary = f"reverse shell to {shell.value} (`{sighting.context}`)"
        downloads = [u for u in urls if f"//{host}/" in u.value or u.value.endswith(f"//{host}")]
        for url in downloads:
            places = sorted({f"{s.filesystem}{s.path}" for s in url.seen})
            summary += f"; the same host {host} serves {url.value}, named in {', '.join(places)}"
            evidence.extend(f"{s.where}: {s.context}" for s in url.seen)
            paths.extend(places)
        if downloads:
            summary += ": one address is both the download host and the reverse-shell target"
        steps.append(
            NarrativeStep("command and control", entry.times["m"] if entry else None, summary, evidence, paths)
        )
    seen_hosts = {s.value.rsplit(":", 1)[0] for s in shells}
    for url in urls:
        if any(f"//{host}" in url.value for host in seen_hosts):
            continue
        sighting = url.seen[0]
        entry = by_path.get((sighting.filesystem, sighting.path))
        steps.append(
            NarrativeStep(
                "command and control",
                entry.times["m"] if entry else None,
                f"{url.value} named in {sighting.path}",
                [f"{s.where}: {s.context}" for s in url.seen],
                [f"{s.filesystem}{s.path}" for s in url.seen],
            )
        )
    return steps


def build_narrative(
    *,
    entries: Sequence[BodyfileEntry],
    log_events: Sequence[LogEvent],
    findings: Sequence[Finding],
    observations: Iterable[Observation],
    indicators: Sequence[Indicator],
    window: Window | None,
) -> list[NarrativeStep]:
    steps: list[NarrativeStep] = []
    initial = initial_access(log_events, entries)
    earliest = earliest_access(entries, initial.time if initial else None, window)
    steps.extend(s for s in (earliest, initial) if s)
    steps.extend(_persistence(findings, indicators, log_events))
    steps.extend(_command_and_control(indicators, entries))
    for observation in observations:
        steps.append(
            NarrativeStep(
                "anti-forensics",
                observation.time,
                f"{observation.path}: {observation.summary}",
                [observation.evidence],
                [f"{observation.filesystem}{observation.path}"],
            )
        )
    return sorted(steps, key=lambda s: (s.time is None, s.time or EPOCH, STAGES.index(s.stage)))


# How each kind of memory finding reads in a process's step, in this order.
_MEMORY_ORDER = (
    "process-from-disk-finding",
    "kernel-thread-impostor",
    "rwx-mapping",
    "listening-socket",
    "external-connection",
    "shell-history",
)


def _memory_clause(finding: MemoryFinding) -> str:
    if finding.category == "rwx-mapping":
        return f"{finding.reason} at {finding.evidence.split(' ', 1)[0]}"
    if finding.category == "listening-socket":
        return f"listening: {finding.evidence.removesuffix(' LISTEN')}"
    if finding.category == "external-connection":
        return f"connected to {finding.evidence.split(' -> ', 1)[-1]} (outside private address space)"
    if finding.category == "shell-history":
        return f"history line `{finding.evidence}` ({finding.reason})"
    return finding.reason


def memory_steps(memory: MemoryAnalysis, memory_findings: Sequence[MemoryFinding]) -> list[NarrativeStep]:
    """What memory adds to the story: one step per suspicious process (name, PID and every finding of it,
    tied to the disk findings of its file), or one step saying memory was not examined and why."""
    if not memory.analysed:
        return [
            NarrativeStep(
                MEMORY_STAGE,
                None,
                f"memory was not examined: {memory.reason}; no step of this story is corroborated from memory",
                ["analysis/memory-findings.json: memory not analysed"],
            )
        ]
    if not memory_findings:
        plugins = ", ".join(run.plugin for run in memory.plugins if run.succeeded)
        return [
            NarrativeStep(
                MEMORY_STAGE,
                None,
                f"memory was examined ({plugins}): no process, mapping, socket or history line matched a memory rule",
                [f"analysis/volatility/{run.output}" for run in memory.plugins if run.succeeded and run.output],
            )
        ]
    by_process: dict[tuple[int | None, str], list[MemoryFinding]] = {}
    for finding in memory_findings:
        by_process.setdefault((finding.pid, finding.process), []).append(finding)
    steps: list[tuple[int, NarrativeStep]] = []
    for (pid, process), found in by_process.items():
        found = sorted(found, key=lambda f: _MEMORY_ORDER.index(f.category) if f.category in _MEMORY_ORDER else 99)
        who = f"{process or 'a process'}" + (f" (PID {pid})" if pid is not None else "")
        clauses = list(dict.fromkeys(_memory_clause(f) for f in found))
        disk = sorted({path for f in found for path in f.disk_paths})
        summary = f"{who} was running: " + "; ".join(clauses)
        if disk:
            summary += f"; the same file as the disk finding {', '.join(disk)}"
        evidence = list(dict.fromkeys(f"{f.plugin}: {f.evidence}" for f in found))
        worst = min(severity_rank(f.severity) for f in found)
        steps.append((worst, NarrativeStep(MEMORY_STAGE, None, summary, evidence, disk)))
    return [step for _, step in sorted(steps, key=lambda s: (s[0], s[1].summary))]


def with_memory(
    narrative: Sequence[NarrativeStep], memory: MemoryAnalysis, memory_findings: Sequence[MemoryFinding]
) -> list[NarrativeStep]:
    """The disk's narrative with memory's steps after it (memory is a moment, the capture: it comes last)."""
    return [*(s for s in narrative if s.stage != MEMORY_STAGE), *memory_steps(memory, memory_findings)]
