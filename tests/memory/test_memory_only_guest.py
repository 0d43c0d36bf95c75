"""A memory-only case, as an instance-store instance leaves one: no disk image, a real memory image.

The guest (Debian's kernel under QEMU, the scenario's planted activity) is captured by the project's
own capture document (tests/memory/test_volatility_guest.py's fixture, one boot for this module);
the runner examines that memory alone and the case report is written from the case folder, as on
the analysis instance. The report and its narrative must name what memory shows and say plainly
that there was no disk, and why.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from typing import Any

import pytest

from examiner.casefile import write_report
from examiner.memory import ANALYSED
from examiner.narrative import MEMORY_STAGE
from examiner.runner import ExaminationResult, MemoryImage, examine_case
from simulation.guest import image as guest_image
from simulation.guest import unavailable_reason
from tests.memory.test_volatility_guest import INSTANCE, Captured, captured

pytestmark = pytest.mark.skipif(unavailable_reason() is not None, reason=f"no guest: {unavailable_reason()}")

__all__ = ["captured"]  # the capture fixture, used here by name

CASE_ID = f"333333333333-{INSTANCE}-eu-west-1-1796400000"
NO_EBS = f"{INSTANCE} boots from instance store and it has no EBS volumes: instance-store volumes cannot be acquired"


@dataclass(frozen=True)
class Reported:
    result: ExaminationResult
    html: str
    markdown: str
    document: dict[str, Any]


@pytest.fixture(scope="module")
def reported(captured: Captured, tmp_path_factory: pytest.TempPathFactory) -> Reported:
    case_dir = tmp_path_factory.mktemp("cases") / CASE_ID
    shutil.copytree(captured.image.parent, case_dir / "memory")
    (case_dir / "custody").mkdir()
    request = {"instance_id": INSTANCE, "account": "333333333333", "region": "eu-west-1", "trigger": "tag"}
    (case_dir / "custody" / "000001-case-opened.json").write_text(
        json.dumps({"seq": 1, "event": "case-opened", "detail": {"request": {**request, "action": "Contain"}}})
    )
    (case_dir / "manifest.json").write_text(
        json.dumps({"case_id": CASE_ID, "artefacts": [], "memory": {"Acquired": True}, "disks_not_acquired": NO_EBS})
    )
    result = examine_case(
        [], MemoryImage(path=case_dir / "memory" / captured.image.name), case_dir, incident_window=None
    )
    written = write_report(case_dir, result)
    return Reported(
        result=result,
        html=written["report.html"].read_text().replace("<wbr>", ""),
        markdown=written["report.md"].read_text().replace("\\", ""),
        document=json.loads(written["report.json"].read_text()),
    )


def _pid(captured: Captured, comm: str) -> int:
    return next(pid for pid, (name, _) in captured.truth.processes.items() if name == comm)


def test_the_memory_alone_is_analysed_and_the_report_says_there_was_no_disk_and_why(reported: Reported) -> None:
    assert reported.result.memory.status == ANALYSED and reported.result.filesystems == []
    summary = (
        f"no disk was examined: there was no disk to examine ({NO_EBS}); "
        "this examination is of the instance's memory alone"
    )
    assert reported.document["disk"] == {
        "examined": False,
        "volumes": [],
        "summary": summary,
        "sentence": summary[0].upper() + summary[1:] + ".",
    }
    assert reported.document["outcome"]["result"] == (
        "response succeeded: evidence acquired and examined (memory only: the instance had no disk to acquire)"
    )
    for text in (reported.html, reported.markdown):
        assert "No disk was examined: there was no disk to examine" in text
        assert "boots from instance store and it has no EBS volumes" in text


def test_the_report_names_the_planted_process_its_pid_listener_connection_and_rwx_mapping(
    captured: Captured, reported: Reported
) -> None:
    miner = _pid(captured, "kworkerd")
    findings = reported.document["memory_findings"]
    assert {f["category"] for f in findings if f["pid"] == miner} >= {
        "kernel-thread-impostor",
        "rwx-mapping",
        "listening-socket",
        "external-connection",
    }
    c2 = f"{guest_image.ATTACKER}:{guest_image.C2_PORT}"
    rwx = sorted(captured.truth.rwx)[0]
    start = f"0x{rwx.split('-')[0].lstrip('0')}"
    for text in (reported.html, reported.markdown):
        assert "kworkerd" in text and str(miner) in text
        assert f"listening on 0.0.0.0:{guest_image.MINER_LISTEN_PORT}" in text
        assert c2 in text and start in text


def test_the_narrative_tells_the_planted_activity_from_memory(captured: Captured, reported: Reported) -> None:
    steps = reported.document["narrative"]
    assert steps and {s["stage"] for s in steps} == {MEMORY_STAGE}
    miner = _pid(captured, "kworkerd")
    [step] = [s for s in steps if s["summary"].startswith(f"kworkerd (PID {miner}) was running: ")]
    assert "named like a kernel thread but has a user address space" in step["summary"]
    assert "memory mapping that is writable and executable (rwx)" in step["summary"]
    assert f"listening: TCP 0.0.0.0:{guest_image.MINER_LISTEN_PORT}" in step["summary"]
    assert f"connected to {guest_image.ATTACKER}:{guest_image.POOL_PORT}" in step["summary"]
    shells = [s for s in steps if f"{guest_image.ATTACKER}:{guest_image.C2_PORT}" in s["summary"]]
    assert shells, [s["summary"] for s in steps]
    assert "There was no disk to examine: every step comes from memory." in reported.html
