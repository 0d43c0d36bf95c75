"""Small builders for Amazon States Language, so definitions read as the runbook they implement."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

State = dict[str, Any]

# Transient Lambda service errors: always worth a bounded retry.
LAMBDA_TRANSIENT = [
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
]


@dataclass(frozen=True)
class PollPolicy:
    """A bounded poll: a task raising `NotReady` is retried with exponential backoff, then fails."""

    interval_seconds: int = 15
    backoff_rate: float = 1.5
    max_attempts: int = 12
    max_delay_seconds: int = 900

    def retry(self) -> dict[str, Any]:
        return {
            "ErrorEquals": ["NotReady"],
            "IntervalSeconds": self.interval_seconds,
            "BackoffRate": self.backoff_rate,
            "MaxAttempts": self.max_attempts,
            "MaxDelaySeconds": self.max_delay_seconds,
        }


def lambda_task(
    function_arn: str,
    *,
    parameters: Mapping[str, Any] | None = None,
    input_path: str | None = None,
    result_path: str | None,
    next_state: str | None = None,
    timeout: int = 120,
    poll: PollPolicy | None = None,
    catch_to: str | None = None,
    catch_result_path: str = "$.Failure",
    comment: str = "",
) -> State:
    """A Task invoking one of our Lambdas directly (the result is the function's return value)."""
    state: State = {"Type": "Task", "Resource": function_arn, "TimeoutSeconds": timeout}
    if comment:
        state["Comment"] = comment
    if input_path is not None:
        state["InputPath"] = input_path
    if parameters is not None:
        state["Parameters"] = dict(parameters)
    state["ResultPath"] = result_path
    retry = [{"ErrorEquals": LAMBDA_TRANSIENT, "IntervalSeconds": 2, "MaxAttempts": 4, "BackoffRate": 2.0}]
    if poll is not None:
        retry.append(poll.retry())
    state["Retry"] = retry
    if catch_to:
        state["Catch"] = [{"ErrorEquals": ["States.ALL"], "ResultPath": catch_result_path, "Next": catch_to}]
    if next_state:
        state["Next"] = next_state
    else:
        state["End"] = True
    return state


def pass_state(
    next_state: str | None,
    *,
    parameters: Mapping[str, Any] | None = None,
    result: Any = None,
    result_path: str | None = "$",
    input_path: str | None = None,
) -> State:
    state: State = {"Type": "Pass"}
    if input_path is not None:
        state["InputPath"] = input_path
    if parameters is not None:
        state["Parameters"] = dict(parameters)
    if result is not None:
        state["Result"] = result
    if result_path != "$":
        state["ResultPath"] = result_path
    if next_state:
        state["Next"] = next_state
    else:
        state["End"] = True
    return state


def when(variable: str, next_state: str, **test: Any) -> dict[str, Any]:
    """One Choice rule: `when("$.Case.Created", "AlreadyOpen", BooleanEquals=False)`."""
    return {"Variable": variable, **test, "Next": next_state}


def when_flag(variable: str, value: bool, next_state: str) -> dict[str, Any]:
    """A rule for a flag a step may leave out: present and equal to `value` (a bare BooleanEquals on a
    missing field is a runtime error, not a no)."""
    return {
        "And": [{"Variable": variable, "IsPresent": True}, {"Variable": variable, "BooleanEquals": value}],
        "Next": next_state,
    }


def choice(*rules: Mapping[str, Any], default: str, comment: str = "") -> State:
    """A Choice state: the first rule that holds picks the next state, else `default`."""
    state: State = {"Type": "Choice"}
    if comment:
        state["Comment"] = comment
    state["Choices"] = [dict(rule) for rule in rules]
    state["Default"] = default
    return state


def machine(
    comment: str, start_at: str, states: Mapping[str, State], timeout_seconds: int | None = None
) -> dict[str, Any]:
    definition: dict[str, Any] = {"Comment": comment, "StartAt": start_at, "States": dict(states)}
    if timeout_seconds:
        definition["TimeoutSeconds"] = timeout_seconds
    return definition
