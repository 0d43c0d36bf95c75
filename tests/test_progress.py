"""Execution history -> stage lines (irf/progress.py), on a history recorded from a whole simulated response.

tests/events/history/contain_tag.json is GetExecutionHistory of one `irf simulate` response (Contain,
started by the tag), as moto's Step Functions interpreter recorded it: the events the console reads.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from irf import progress
from statemachines import response

HISTORY = Path(__file__).parent / "events" / "history" / "contain_tag.json"


def _recorded() -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = json.loads(HISTORY.read_text())["events"]
    return events


def _lines(events: list[dict[str, Any]]) -> list[progress.Line]:
    tracker = progress.Tracker()
    return tracker.feed(events)


def test_every_stage_of_a_contain_response_starts_and_ends_in_order() -> None:
    lines = _lines(_recorded())
    ended = [line.stage for line in lines if line.kind == "end"]
    volumes = sorted(stage for stage in ended if stage.startswith("image "))
    assert len(volumes) == 2
    for stage in ("validate", "open case", "contain", "snapshot", "copy", "memory", "manifest", "examine", "report"):
        assert stage in ended, stage
    assert ended[-1] == "close"
    assert not [line for line in lines if line.kind == "fail"]
    # Every stage but the one-shot report line starts before it ends.
    started = {line.stage for line in lines if line.kind == "start"}
    assert set(ended) - {"report"} <= started
    order = [ended.index(stage) for stage in ("validate", "open case", "contain", "copy", "manifest", "close")]
    assert order == sorted(order)


def test_stage_lines_carry_the_executions_elapsed_time_and_what_was_done() -> None:
    events = _recorded()
    lines = _lines(events)
    by_stage = {line.stage: line for line in lines if line.kind == "end"}
    started = datetime.fromisoformat(events[0]["timestamp"])
    closed = next(e for e in events if (e.get("stateExitedEventDetails") or {}).get("name") == "CloseCase")
    assert by_stage["close"].elapsed == pytest.approx(
        (datetime.fromisoformat(closed["timestamp"]) - started).total_seconds()
    )
    assert by_stage["contain"].detail == "19 changes"
    assert by_stage["snapshot"].detail == "2 snapshots"
    assert by_stage["open case"].detail == "333333333333-i-09e6997dac1d245ed-eu-west-1-1796409772"
    assert by_stage["memory"].detail.startswith("8.0 MiB captured, sha256 b4e781a205ea297f")
    image = by_stage["image vol-b32f36471fd90a3b1"]
    assert "1.0 GiB, sha256 f3c6a2df09abe2b9" in image.detail and "2 invocations" in image.detail
    assert image.seconds is not None and image.seconds > 0
    assert by_stage["report"].detail.endswith("/report/report.html")


def test_the_tracker_reads_the_history_in_any_number_of_polls() -> None:
    events = _recorded()
    whole = [line.text for line in _lines(events)]
    tracker = progress.Tracker()
    pieces: list[str] = []
    for start in range(0, len(events), 7):
        # Each poll returns what is new; a repeated event (a page overlapping the last) is ignored.
        pieces += [line.text for line in tracker.feed(events[max(0, start - 3) : start + 7])]
    assert pieces == whole
    assert tracker.status == "SUCCEEDED"
    assert tracker.case_id.endswith("-1796409772")


def test_while_imaging_the_status_line_shows_bytes_of_the_volume_size_and_the_rate() -> None:
    events = _recorded()
    tracker = progress.Tracker()
    # Up to the first ImageVolume return of vol-841... (it is still imaging after it).
    first_return = next(
        e["id"]
        for e in events
        if e["type"] == "TaskStateExited" and e["stateExitedEventDetails"]["name"] == "ImageVolume"
    )
    tracker.feed([e for e in events if e["id"] < first_return])
    key = next(v.key for v in tracker.volumes.values() if v.volume_id == "vol-841ae766ac37cb986")
    assert tracker.active_uploads() == [v.key for v in tracker.volumes.values()]
    tracker.uploaded(key, 300 * 1024**2)
    moment = tracker.volumes["vol-841ae766ac37cb986"].started
    assert moment is not None
    phrases = tracker.activity(moment + timedelta(seconds=10))
    imaging = next(p for p in phrases if "vol-841ae766ac37cb986" in p)
    # The snapshot's 8 GiB until the imaging state (which knows the readable size) comes back.
    assert imaging == "imaging vol-841ae766ac37cb986: 300.0 MiB of 8.0 GiB (3%), 30.0 MiB/s"


def _event(event_id: int, kind: str, seconds: float, **details: Any) -> dict[str, Any]:
    started = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    return {
        "id": event_id,
        "previousEventId": event_id - 1,
        "type": kind,
        "timestamp": started + timedelta(seconds=seconds),
        **details,
    }


def _entered(event_id: int, name: str, seconds: float, given: dict[str, Any] | None = None) -> dict[str, Any]:
    kind = "TaskStateEntered" if name[0].isupper() else "PassStateEntered"
    return _event(event_id, kind, seconds, stateEnteredEventDetails={"name": name, "input": json.dumps(given or {})})


def test_a_rejected_input_ends_validate_as_failed_with_the_cause() -> None:
    cause = "invalid input: Account: must be a 12-digit AWS account id, got '12'"
    events = [
        _event(1, "ExecutionStarted", 0, executionStartedEventDetails={"input": "{}"}),
        _entered(2, "ValidateInput", 0.1),
        _entered(3, "Rejected", 0.4, {"Error": "InvalidInput", "Cause": cause}),
        _event(4, "ExecutionFailed", 0.4, executionFailedEventDetails={"error": "InvalidInput", "cause": cause}),
    ]
    tracker = progress.Tracker()
    lines = tracker.feed(events)
    assert [(line.kind, line.stage) for line in lines] == [("start", "validate"), ("fail", "validate")]
    assert lines[-1].detail == f"InvalidInput: {cause}"
    assert tracker.status == "FAILED"


def test_an_acquisition_failure_fails_every_running_acquisition_stage() -> None:
    lambda_cause = json.dumps({"errorType": "AcquisitionFailed", "errorMessage": "snapshot snap-1 is in error state"})
    events = [
        _event(1, "ExecutionStarted", 0, executionStartedEventDetails={"input": "{}"}),
        _entered(2, "SnapshotVolumes", 1),
        _entered(3, "OpenCapturePath", 1),
        _entered(4, "FailedAtAcquire", 9, {"Failure": {"Error": "AcquisitionFailed", "Cause": lambda_cause}}),
    ]
    lines = progress.Tracker().feed(events)
    failed = {line.stage: line.detail for line in lines if line.kind == "fail"}
    assert failed == {
        "snapshot": "AcquisitionFailed: snapshot snap-1 is in error state",
        "memory": "AcquisitionFailed: snapshot snap-1 is in error state",
    }


def test_a_second_trigger_for_an_open_case_says_nothing_new_started() -> None:
    events = [
        _event(1, "ExecutionStarted", 0, executionStartedEventDetails={"input": "{}"}),
        _entered(2, "OpenCase", 1),
        _event(
            3,
            "TaskStateExited",
            2,
            stateExitedEventDetails={
                "name": "OpenCase",
                "output": json.dumps({"Case": {"CaseId": "c-1", "Created": False}}),
            },
        ),
        _entered(4, "AlreadyOpen", 2),
    ]
    tracker = progress.Tracker()
    lines = tracker.feed(events)
    assert lines[-2].detail == "c-1 (already open)"
    assert lines[-1].detail == "the instance already has an open case"
    assert tracker.created is False


def test_the_stage_table_names_states_the_response_state_machine_has() -> None:
    arns = {name: f"arn:aws:lambda:eu-west-1:123456789012:function:{name}" for name in _function_names()}
    definition = response.build_definition(arns)
    names = set(_state_names(definition))
    known = set(progress.STAGE_OF) | progress.MEMORY_STATES | progress.IMAGING_STATES
    assert set(progress.STAGE_OF) <= names
    assert names >= progress.IMAGING_STATES
    memory_names = set(_state_names(definition["States"]["Acquire"]["Branches"][1]))
    assert memory_names <= progress.MEMORY_STATES
    # Every task of the response (a state that runs a Lambda) belongs to a stage.
    tasks = {name for name, state in _states(definition) if state.get("Type") == "Task"}
    assert tasks <= known


def _function_names() -> list[str]:
    from statemachines import functions

    return list(functions.by_name())


def _states(definition: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    for name, state in definition.get("States", {}).items():
        found.append((name, state))
        for branch in state.get("Branches", []):
            found += _states(branch)
        if "ItemProcessor" in state:
            found += _states(state["ItemProcessor"])
        if "Iterator" in state:
            found += _states(state["Iterator"])
    return found


def _state_names(definition: dict[str, Any]) -> list[str]:
    return [name for name, _ in _states(definition)]


class _Sfn:
    """GetExecutionHistory over a recorded history, a page at a time, newest first (as AWS pages it)."""

    def __init__(self, events: list[dict[str, Any]], throttle_first: int = 0) -> None:
        self.events = events
        self.visible = 0
        self.calls = 0
        self.throttle = throttle_first

    def get_execution_history(self, **params: Any) -> dict[str, Any]:
        self.calls += 1
        if self.throttle:
            self.throttle -= 1
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "GetExecutionHistory")
        shown = list(reversed(self.events[: self.visible]))
        start = int(params.get("nextToken") or 0)
        page = shown[start : start + 3]
        answer: dict[str, Any] = {"events": page}
        if start + 3 < len(shown):
            answer["nextToken"] = str(start + 3)
        return answer


def test_the_follower_pages_back_to_what_it_has_seen_backs_off_and_survives_throttling() -> None:
    events = _recorded()
    sfn = _Sfn(events, throttle_first=1)
    clock = [0.0]
    follower = progress.Follower(sfn, "arn:exec", clock=lambda: clock[0], min_interval=1.0, max_interval=4.0)
    lines: list[str] = []
    for visible in range(0, len(events) + 20, 9):
        sfn.visible = min(visible, len(events))
        lines += [line.text for line in follower.step()]
        clock[0] += 5.0
    assert lines == [line.text for line in _lines(events)]
    assert follower.done
    # Quiet polls back off; a throttled one doubles the pause.
    quiet = progress.Follower(_Sfn(events[:1]), "arn:exec", clock=lambda: clock[0], min_interval=1.0, max_interval=4.0)
    quiet.sfn.visible = 1
    pauses = []
    for _ in range(5):
        quiet.step()
        pauses.append(quiet.interval)
        clock[0] += 10
    assert pauses == [1.0, 1.5, 2.25, 3.375, 4.0]


def test_sizes_and_times_read_as_people_write_them() -> None:
    assert [progress.human_size(n) for n in (0, 1023, 1536, 8 * 1024**2 + 64, 1024**3)] == [
        "0 B",
        "1023 B",
        "1.5 KiB",
        "8.0 MiB",
        "1.0 GiB",
    ]
    assert [progress.clock_text(s) for s in (0.4, 59.9, 65, 3725)] == ["0s", "59s", "1m05s", "1h02m"]


class _GrowingHistory(_Sfn):
    """Each call shows a few more events, as a running execution's history grows."""

    def get_execution_history(self, **params: Any) -> dict[str, Any]:
        if "nextToken" not in params:
            self.visible = min(len(self.events), self.visible + 11)
        return super().get_execution_history(**params)


def test_following_live_polls_in_its_own_thread_and_delivers_every_line_then_the_end() -> None:
    events = _recorded()
    follower = progress.Follower(_GrowingHistory(events), "arn:exec", min_interval=0.0, max_interval=0.0)
    lines: list[str] = []
    ticks: list[progress.Tick] = []
    tracker = follower.follow_live(
        lambda line: lines.append(line.text), ticks.append, tick_seconds=0.001, poll_pause=0.0
    )
    assert lines == [line.text for line in _lines(events)]
    assert tracker.status == "SUCCEEDED"
    assert all(tick.text.strip() for tick in ticks)


def test_a_failing_poll_is_raised_in_the_followers_thread() -> None:
    class Refusing:
        def get_execution_history(self, **params: Any) -> dict[str, Any]:
            raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "GetExecutionHistory")

    follower = progress.Follower(Refusing(), "arn:exec")
    with pytest.raises(ClientError, match="AccessDeniedException"):
        follower.follow_live(lambda line: None, lambda tick: None, tick_seconds=0.001)
