from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from statemachines import lint, response
from statemachines.asl import PollPolicy

DEFINITION = response.build_definition(lint.example_arns())


def all_states(definition: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, state in definition["States"].items():
        yield name, state
        for branch in state.get("Branches", []):
            yield from all_states(branch)
        if "ItemProcessor" in state:
            yield from all_states(state["ItemProcessor"])


def test_every_generated_definition_passes_statelint() -> None:
    for name, definition in lint.definitions().items():
        assert lint.statelint(definition) == [], name


def test_statelint_gate_rejects_a_broken_definition() -> None:
    broken = {"StartAt": "A", "States": {"A": {"Type": "Pass", "Nxt": "B"}}}
    assert lint.statelint(broken)


def test_validation_is_the_first_state_and_rejects_as_invalid_input() -> None:
    assert DEFINITION["StartAt"] == "ValidateInput"
    validate = DEFINITION["States"]["ValidateInput"]
    assert validate["Catch"] == [{"ErrorEquals": ["InvalidInput"], "ResultPath": "$", "Next": "Rejected"}]
    assert DEFINITION["States"]["Rejected"]["Type"] == "Fail"


def test_every_task_retries_transient_lambda_errors_and_has_a_timeout() -> None:
    for name, state in all_states(DEFINITION):
        if state["Type"] == "Task":
            assert state["TimeoutSeconds"] > 0, name
            assert any({"Lambda.ServiceException", "States.ALL"} & set(r["ErrorEquals"]) for r in state["Retry"]), name


def test_every_poll_is_bounded_with_backoff() -> None:
    polls = [
        (name, r)
        for name, state in all_states(DEFINITION)
        if state["Type"] == "Task"
        for r in state["Retry"]
        if r["ErrorEquals"] == ["NotReady"]
    ]
    assert {name for name, _ in polls} >= {"SnapshotStatus", "ForensicCopyStatus", "ShareSnapshots"}
    for _, retry in polls:
        assert retry["MaxAttempts"] <= 20 and retry["BackoffRate"] >= 1.0 and retry["MaxDelaySeconds"] <= 3600


def test_poll_policy_comes_from_the_caller() -> None:
    fast = response.build_definition(
        lint.example_arns(), poll=PollPolicy(interval_seconds=1, backoff_rate=1.0, max_attempts=2)
    )
    retries = [
        r for _, s in all_states(fast) if s["Type"] == "Task" for r in s["Retry"] if r["ErrorEquals"] == ["NotReady"]
    ]
    assert retries and all(r["IntervalSeconds"] == 1 and r["MaxAttempts"] == 2 for r in retries)


def test_imaging_loop_is_bounded() -> None:
    imaging = dict(all_states(DEFINITION))["ImagingDone"]
    limits = [c for c in imaging["Choices"] if c.get("Variable") == "$.Invocations.n"]
    assert limits and limits[0]["NumericGreaterThanEquals"] == response.MAX_IMAGING_INVOCATIONS


@pytest.mark.parametrize("stage", ["Contain", "Protect", "Acquire", "Cleanup", "Finalize"])
def test_failures_after_the_case_opens_lead_to_containment_then_the_case_record(stage: str) -> None:
    states = DEFINITION["States"]
    catch = states[stage]["Catch"][0]
    marker = states[catch["Next"]]
    assert catch["ErrorEquals"] == ["States.ALL"] and marker["Next"] == "EnsureContained"
    assert states["ContainAfterFailure"]["Next"] == "RecordFailure"
    assert states["RecordFailure"]["Next"] == "FailExecution"
    # The execution fails with the name and cause the failure record gives (never a reserved States.* name).
    assert states["FailExecution"]["Type"] == "Choice"
    assert states["FailAsRecorded"] == {
        "Type": "Fail",
        "ErrorPath": "$.FailureRecord.ExecutionError",
        "CausePath": "$.FailureRecord.ExecutionCause",
    }
    assert states["FailUnrecorded"]["Error"] == "ResponseFailed"
    assert "$.Case.CaseId" in states["FailUnrecorded"]["CausePath"]


def test_memory_branch_can_never_fail_the_disk_branch() -> None:
    memory = DEFINITION["States"]["Acquire"]["Branches"][1]
    states = dict(all_states(memory))
    assert not [name for name, state in states.items() if state["Type"] == "Fail"]
    for name, state in states.items():
        if state["Type"] == "Task":
            assert any("States.ALL" in c["ErrorEquals"] for c in state.get("Catch", [])), name


def test_a_missing_function_arn_is_an_error() -> None:
    arns = lint.example_arns()
    del arns["image-volume"]
    with pytest.raises(KeyError, match="image-volume"):
        response.build_definition(arns)
