"""Examination of a case's evidence (DESIGN.md "Examines"): partitions, timelines, YARA, memory, report.

The same code runs in the local simulation and on the analysis instance in the forensic
account (`python -m handlers.examination.runner`). Evidence images are only ever read: no
mount, no journal replay, no loop device.
"""

from __future__ import annotations

import subprocess

from handlers.common.errors import IrfError


class ExaminationFailed(IrfError):
    """A forensic tool could not read the evidence (not a finding: the examination itself failed)."""


def run_tool(
    args: list[str], *, what: str, env: dict[str, str] | None = None, timeout: float | None = None, check: bool = True
) -> subprocess.CompletedProcess[bytes]:
    """Run one forensic command-line tool; a missing tool or a failure becomes `ExaminationFailed`."""
    try:
        done = subprocess.run(args, capture_output=True, env=env, timeout=timeout, check=False)
    except FileNotFoundError as exc:
        raise ExaminationFailed(f"{what}: {args[0]} is not installed (the forensic toolset image ships it)") from exc
    except subprocess.TimeoutExpired as exc:
        raise ExaminationFailed(f"{what}: {args[0]} did not finish within {timeout} s") from exc
    if check and done.returncode != 0:
        detail = done.stderr.decode(errors="replace").strip().splitlines()
        raise ExaminationFailed(f"{what}: {args[0]} exited {done.returncode}: {' / '.join(detail[-3:])}")
    return done
