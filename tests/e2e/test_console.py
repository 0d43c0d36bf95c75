"""`irf simulate` as a responder sees it: run under tmux, its screens captured while it runs.

What is asserted, and why it holds on a loaded machine:
- Progress: the console writes every emission it put on the screen (stage lines and the live status
  line, each stamped with the execution's elapsed time) to `<case>/logs/progress.jsonl`. The test
  asserts that between the first and the last emission no two consecutive ones are more than 5 s
  apart in the execution's own elapsed time, and that what the captured screens show are those
  emissions. The capture loop's own pace is not asserted (a starved test process captures less
  often; that says nothing about the console). The console ticks every second from a thread that
  makes no API calls (the polling has its own thread), so a slow GetExecutionHistory or ListParts
  on a busy machine delays the news, not the screen: 5 s is five ticks of headroom.
- No Lambda JSON log line ever reaches the screen (every capture and the whole scrollback).
- Every stage line appears, and no line is wider than the terminal (wrapped lines, rejoined by
  `capture-pane -J`, would be longer).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

from tests.tools import requires

WIDTH, HEIGHT = 120, 40
# A whole response on a shared two-core machine takes minutes; this bounds a hung run, it is not a timing.
GIVE_UP_AFTER = 1800
STATUS_LINE = re.compile(r"^\S\s+((?:\d+h)?(?:\d+m)?\d+s)  (.*)$")
STAGES = ("validate", "open case", "contain", "snapshot", "copy", "memory", "manifest", "examine", "report", "close")

pytestmark = requires("tmux", "tmux")


def _tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], check=True, capture_output=True, text=True).stdout


def _seconds(text: str) -> int:
    total = 0
    for amount, unit in re.findall(r"(\d+)([hms])", text):
        total += int(amount) * {"h": 3600, "m": 60, "s": 1}[unit]
    return total


def test_simulate_under_tmux_shows_progress_every_stage_and_no_logs(tmp_path: Path) -> None:
    session = f"irf-console-{uuid.uuid4().hex[:8]}"
    out = tmp_path / "cases"
    done_marker = tmp_path / "exit-code"
    env = " ".join(
        f"{name}={value}"
        for name, value in {
            "PYTHONPATH": os.environ.get("PYTHONPATH", str(Path(__file__).resolve().parents[2])),
            "PATH": os.environ["PATH"],
            "TERM": "xterm-256color",
        }.items()
    )
    command = f"env {env} {sys.executable} -m irf.cli simulate --out {out}; echo $? > {done_marker}; sleep 3600"
    _tmux("new-session", "-d", "-s", session, "-x", str(WIDTH), "-y", str(HEIGHT), command)
    screens: list[str] = []
    try:
        started = time.monotonic()
        while not done_marker.exists() and time.monotonic() - started < GIVE_UP_AFTER:
            screens.append(_tmux("capture-pane", "-p", "-t", session))
            time.sleep(0.5)
        assert done_marker.exists(), "irf simulate did not finish"
        scrollback = _tmux("capture-pane", "-p", "-J", "-S", "-", "-t", session)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False, capture_output=True)

    assert done_marker.read_text().strip() == "0", scrollback[-3000:]
    # No Lambda log line, at any moment.
    for screen in [*screens, scrollback]:
        assert '{"level"' not in screen and '"service":' not in screen, screen
    # Nothing wrapped: rejoined lines fit the terminal.
    assert max(len(line) for line in scrollback.splitlines()) <= WIDTH

    ended = [line for line in scrollback.splitlines() if "\u2713 " in line]
    for stage in STAGES:
        assert any(f"\u2713 {stage}" in line for line in ended), f"no line for {stage}: {ended}"
    assert len([line for line in ended if "\u2713 image vol-" in line]) == 2

    (case_dir,) = [p for p in out.iterdir() if p.is_dir()]
    emissions = [json.loads(line) for line in (case_dir / "logs" / "progress.jsonl").read_text().splitlines()]
    # `at`: the execution's elapsed time when the console emitted the entry (a stage line's own time is
    # its event's, which can be earlier).
    elapsed = [entry["at"] for entry in emissions if entry["at"] > 0]
    assert elapsed == sorted(elapsed)
    gaps = [later - earlier for earlier, later in itertools.pairwise(elapsed)]
    assert max(gaps) <= 5.0, sorted(gaps)[-5:]
    assert elapsed[-1] > 30  # a whole response, not a few ticks

    # The screens showed those emissions: each captured status line is one of the ticks (cut to the width).
    ticks = [entry["text"] for entry in emissions if entry["kind"] == "tick"]
    shown = []
    for screen in screens:
        for line in screen.splitlines():
            found = STATUS_LINE.match(line.rstrip())
            if found and not found.group(2).startswith(("\u25b8", "\u2713", "\u2717")):
                shown.append(line.rstrip())
    assert len(shown) >= 10
    for line in shown:
        text = line[2:].rstrip("\u2026")
        assert any(tick.startswith(text) for tick in ticks), line
    # And they moved on: the status line's elapsed time rose through the response.
    stamps = [_seconds(STATUS_LINE.match(line).group(1)) for line in shown]  # type: ignore[union-attr]
    assert stamps[-1] - stamps[0] > 30
    assert (case_dir / "logs" / "lambda.jsonl").read_text().count('"level"') > 5
