"""The examination runner (DESIGN.md "Examines"): partitions, timelines, YARA, memory, report.

What runs on the analysis instance in the forensic account (`python -m examiner.remote`), installed
there by the toolset image, and in the local simulation; never packaged into a Lambda. Evidence
images are only ever read: no mount, no journal replay, no loop device.
"""

from __future__ import annotations

import subprocess

from handlers.common.errors import ExaminationFailed

__all__ = ["ExaminationFailed", "run_tool"]


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
