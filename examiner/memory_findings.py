"""Memory findings: what Volatility's output says a responder should look at, correlated with the disk.

Pure functions over Volatility 3's own JSON (one list of rows per plugin, as `analysis/volatility/`
holds them) and the disk findings (examiner/findings.py). Rules:
- a process whose name or executable is a disk finding's file (the miner in /tmp/.X11-unix);
- a process named like a kernel thread that has a user address space (kernel threads have none;
  `ps` and psaux show them in brackets);
- an anonymous memory mapping that is writable and executable (injected or unpacked code);
- a listening socket, and a connection to an address outside private, loopback and link-local space;
- a bash history line that matches the examination's YARA rules or a history rule below.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from examiner.findings import Finding, severity_rank

# Prefixes of the names the kernel gives its own threads; a user process named so is hiding.
KERNEL_THREAD_PREFIXES = (
    "kworker",
    "kthreadd",
    "ksoftirqd",
    "kswapd",
    "kcompactd",
    "khugepaged",
    "kblockd",
    "kauditd",
    "kdevtmpfs",
    "khungtaskd",
    "ksmd",
    "kintegrityd",
    "kthrotld",
    "kstrp",
    "migration/",
    "rcu_",
    "watchdog",
    "cpuhp/",
    "jbd2/",
    "irq/",
    "oom_reaper",
    "writeback",
    "mm_percpu_wq",
)
# Not "private" in Python's sense: that counts documentation ranges (203.0.113.0/24) as private, and
# attackers' infrastructure in examples and simulations lives exactly there.
PRIVATE_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "0.0.0.0/32",
        "::1/128",
        "::/128",
        "fc00::/7",
        "fe80::/10",
    )
)
CONNECTED_STATES = frozenset({"ESTABLISHED", "SYN_SENT", "SYN_RECV", "CLOSE_WAIT", "FIN_WAIT1", "FIN_WAIT2"})
INTERNET_FAMILIES = frozenset({"AF_INET", "AF_INET6"})
HISTORY_RULES: tuple[tuple[str, str, re.Pattern[str]], ...] = (
    ("high", "download piped to a shell", re.compile(r"\b(curl|wget)\b[^|]*\|\s*(sudo\s+)?(ba|z|da)?sh\b")),
    ("high", "file made set-user-ID", re.compile(r"\bchmod\s+([ugoa]*\+[rwx]*s|[0-7]?[4-7][0-7]{3}\b)")),
    ("high", "decoded payload run by a shell", re.compile(r"base64\s+(-d|--decode)\b[^|]*\|\s*(ba)?sh\b")),
    ("medium", "shell history cleared", re.compile(r"\bhistory\s+-c\b|\bunset\s+HISTFILE\b|HISTSIZE=0")),
)


@dataclass(frozen=True)
class MemoryFinding:
    severity: str
    category: str
    pid: int | None
    process: str
    reason: str
    evidence: str  # the row's words that made the finding (command line, address, mapping)
    plugin: str
    disk_paths: list[str] = field(default_factory=list)  # disk findings this one is tied to

    def to_dict(self) -> dict[str, Any]:
        return {
            "severity": self.severity,
            "category": self.category,
            "pid": self.pid,
            "process": self.process,
            "reason": self.reason,
            "evidence": self.evidence,
            "plugin": self.plugin,
            "disk_paths": list(self.disk_paths),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MemoryFinding:
        return cls(
            severity=data["severity"],
            category=data["category"],
            pid=data.get("pid"),
            process=data.get("process", ""),
            reason=data["reason"],
            evidence=data.get("evidence", ""),
            plugin=data.get("plugin", ""),
            disk_paths=list(data.get("disk_paths", [])),
        )


def flatten(rows: Iterable[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
    """Volatility's JSON rows with tree children (pstree) brought up to one level."""
    for row in rows:
        yield row
        children = row.get("__children")
        if isinstance(children, list):
            yield from flatten(children)


def _pid(row: Mapping[str, Any]) -> int | None:
    value = row.get("PID")
    return value if isinstance(value, int) else None


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def is_private_address(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return True  # not an IP address (a UNIX path, "-"): nothing to flag
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return any(ip in network for network in PRIVATE_NETWORKS if network.version == ip.version)


def looks_like_kernel_thread(name: str) -> bool:
    return name.startswith(KERNEL_THREAD_PREFIXES)


def _process_names(rows: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[int, str]:
    names: dict[int, str] = {}
    for plugin in ("linux.pslist", "linux.pstree", "linux.psaux"):
        for row in flatten(rows.get(plugin, [])):
            pid = _pid(row)
            if pid is not None and row.get("COMM"):
                names.setdefault(pid, _text(row["COMM"]))
    return names


def _disk_matches(
    rows: Mapping[str, Sequence[Mapping[str, Any]]], disk_findings: Sequence[Finding]
) -> list[MemoryFinding]:
    by_path: dict[str, list[Finding]] = {}
    by_name: dict[str, list[Finding]] = {}
    for finding in disk_findings:
        by_path.setdefault(finding.path, []).append(finding)
        base = posixpath.basename(finding.path)
        if base:
            # task->comm holds the first 15 bytes of the executable's name.
            by_name.setdefault(base[:15], []).append(finding)
    found: list[MemoryFinding] = []
    seen: set[int] = set()
    for row in flatten(rows.get("linux.psaux", [])):
        pid = _pid(row)
        comm = _text(row.get("COMM"))
        args = _text(row.get("ARGS"))
        executable = args.split(" ", 1)[0] if args and not args.startswith("[") else ""
        matched = by_path.get(executable, []) or by_name.get(comm, [])
        if not matched or pid in seen:
            continue
        if pid is not None:
            seen.add(pid)
        worst = min(matched, key=lambda f: severity_rank(f.severity))
        how = f"its executable {executable}" if executable in by_path else f"its name {comm}"
        found.append(
            MemoryFinding(
                severity="critical" if severity_rank(worst.severity) <= severity_rank("high") else "high",
                category="process-from-disk-finding",
                pid=pid,
                process=comm,
                reason=f"running process: {how} is a disk finding ({worst.reason})",
                evidence=args or comm,
                plugin="linux.psaux",
                disk_paths=sorted({f"{f.filesystem}{f.path}" if f.filesystem else f.path for f in matched}),
            )
        )
    return found


def _kernel_thread_impostors(rows: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[MemoryFinding]:
    found: list[MemoryFinding] = []
    for row in flatten(rows.get("linux.psaux", [])):
        comm = _text(row.get("COMM"))
        args = _text(row.get("ARGS"))
        if not looks_like_kernel_thread(comm) or args == f"[{comm}]" or not args:
            continue
        found.append(
            MemoryFinding(
                severity="high",
                category="kernel-thread-impostor",
                pid=_pid(row),
                process=comm,
                reason=f"named like a kernel thread but has a user address space (command line {args!r})",
                evidence=args,
                plugin="linux.psaux",
            )
        )
    return found


def _rwx_mappings(rows: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[MemoryFinding]:
    found: list[MemoryFinding] = []
    for row in flatten(rows.get("linux.malware.malfind", rows.get("linux.malfind", []))):
        protection = _text(row.get("Protection")).lower()
        path = _text(row.get("Path"))
        if "w" not in protection or "x" not in protection:
            continue
        anonymous = not path or path.lower() in ("anonymous mapping", "-", "n/a")
        start, end = row.get("Start"), row.get("End")
        where = f"{start:#x}-{end:#x}" if isinstance(start, int) and isinstance(end, int) else f"{start}-{end}"
        found.append(
            MemoryFinding(
                severity="high",
                category="rwx-mapping",
                pid=_pid(row),
                process=_text(row.get("Process")),
                reason=f"{'anonymous ' if anonymous else ''}memory mapping that is writable and executable "
                f"({protection}){'' if anonymous else f' backed by {path}'}",
                evidence=f"{where} {_text(row.get('Hexdump')).splitlines()[0] if row.get('Hexdump') else ''}".strip(),
                plugin="linux.malware.malfind",
            )
        )
    return found


def _sockets(rows: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[MemoryFinding]:
    found: list[MemoryFinding] = []
    seen: set[tuple[Any, ...]] = set()
    for row in flatten(rows.get("linux.sockstat", [])):
        if _text(row.get("Family")) not in INTERNET_FAMILIES:
            continue
        state = _text(row.get("State")).upper()
        proto = _text(row.get("Proto")) or _text(row.get("Type"))
        source = f"{_text(row.get('Source Addr'))}:{_text(row.get('Source Port'))}"
        destination = f"{_text(row.get('Destination Addr'))}:{_text(row.get('Destination Port'))}"
        key = (_pid(row), proto, source, destination, state)
        if key in seen:
            continue  # one socket is listed once per thread sharing the file table
        seen.add(key)
        if state == "LISTEN":
            severity, category = "medium", "listening-socket"
            reason, evidence = f"{proto} socket listening on {source}", f"{proto} {source} LISTEN"
        elif state in CONNECTED_STATES and not is_private_address(_text(row.get("Destination Addr"))):
            severity, category = "high", "external-connection"
            reason = f"{proto} connection to {destination}, outside private address space ({state})"
            evidence = f"{proto} {source} -> {destination} {state}"
        else:
            continue
        found.append(
            MemoryFinding(
                severity=severity,
                category=category,
                pid=_pid(row),
                process=_text(row.get("Process Name")),
                reason=reason,
                evidence=evidence,
                plugin="linux.sockstat",
            )
        )
    return found


def _history(rows: Mapping[str, Sequence[Mapping[str, Any]]], yara_rules: Any) -> list[MemoryFinding]:
    found: list[MemoryFinding] = []
    for row in flatten(rows.get("linux.bash", [])):
        command = _text(row.get("Command"))
        if not command.strip():
            continue
        reasons: list[tuple[str, str]] = []
        if yara_rules is not None:
            for match in yara_rules.match(data=command.encode("utf-8", errors="surrogateescape")):
                severity = str(match.meta.get("severity", "high"))
                description = str(match.meta.get("description", "")).strip()
                reasons.append(
                    (severity, f"YARA rule {match.rule} matched" + (f": {description}" if description else ""))
                )
        for severity, what, pattern in HISTORY_RULES:
            if pattern.search(command):
                reasons.append((severity, what))
        if not reasons:
            continue
        severity = min((s for s, _ in reasons), key=severity_rank)
        when = _text(row.get("CommandTime"))
        found.append(
            MemoryFinding(
                severity=severity,
                category="shell-history",
                pid=_pid(row),
                process=_text(row.get("Process")),
                reason="; ".join(r for _, r in reasons) + (f" (typed {when})" if when else ""),
                evidence=command,
                plugin="linux.bash",
            )
        )
    return found


def find_in_memory(
    rows: Mapping[str, Sequence[Mapping[str, Any]]],
    disk_findings: Sequence[Finding] = (),
    *,
    yara_rules: Any = None,
) -> list[MemoryFinding]:
    """Every memory finding, most severe first; a process's findings tied to a disk finding share its paths."""
    found = [
        *_disk_matches(rows, disk_findings),
        *_kernel_thread_impostors(rows),
        *_rwx_mappings(rows),
        *_sockets(rows),
        *_history(rows, yara_rules),
    ]
    names = _process_names(rows)
    tied = {f.pid: f.disk_paths for f in found if f.disk_paths and f.pid is not None}
    completed = [
        MemoryFinding(
            **{
                **f.to_dict(),
                "process": f.process or names.get(f.pid or -1, ""),
                "disk_paths": f.disk_paths or tied.get(f.pid or -1, []),
            }
        )
        for f in found
    ]
    return sorted(completed, key=lambda f: (severity_rank(f.severity), f.category, f.pid or 0, f.evidence))
