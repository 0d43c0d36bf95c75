"""The response's last states: whatever error name was caught, the execution fails and names the case.

Step Functions reserves `States.*` error names, and moto (like AWS) refuses a Fail state that
raises one (the execution then ends States.Runtime and says nothing of the case). These run the
response definition's own final states in moto's interpreter, fed what RecordFailure answers.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from handlers.case.handler import RESERVED_ERROR_STAND_IN, execution_failure
from simulation.local_aws import REGION, SECURITY_ACCOUNT
from simulation.sandbox import wait_for_execution
from statemachines import response
from statemachines.functions import FUNCTIONS

CASE = "333333333333-i-0abc1234def567890-eu-west-1-1717300000"
ARNS = {spec.function: f"arn:aws:lambda:{REGION}:{SECURITY_ACCOUNT}:function:irf-{spec.function}" for spec in FUNCTIONS}
FINAL = ("FailExecution", "FailAsRecorded", "FailUnrecorded")


def run_states(start: str, states: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
    """Some states of the response (or stand-ins for the states they lead to), run from `start` on `state`."""
    definition = {"StartAt": start, "States": states}
    sfn = boto3.client("stepfunctions", region_name=REGION)
    arn = sfn.create_state_machine(
        name=f"part-{abs(hash(json.dumps([definition, state], sort_keys=True)))}",
        definition=json.dumps(definition),
        roleArn=f"arn:aws:iam::{SECURITY_ACCOUNT}:role/irf-test",
    )["stateMachineArn"]
    execution = sfn.start_execution(stateMachineArn=arn, input=json.dumps(state))["executionArn"]
    return wait_for_execution(sfn, execution)


def run_final_states(state: dict[str, Any]) -> dict[str, Any]:
    states = response.build_definition(ARNS)["States"]
    return run_states("FailExecution", {name: states[name] for name in FINAL}, state)


def recorded(error: str, cause: str, stage: str) -> dict[str, Any]:
    name, text = execution_failure(CASE, {"error": error, "cause": cause, "stage": stage})
    return {"CaseId": CASE, "Error": error, "Cause": cause, "ExecutionError": name, "ExecutionCause": text}


@pytest.mark.parametrize(
    "error, expected",
    [
        ("AcquisitionFailed", "AcquisitionFailed"),
        ("States.Timeout", RESERVED_ERROR_STAND_IN),
        ("States.TaskFailed", RESERVED_ERROR_STAND_IN),
    ],
)
def test_the_execution_fails_with_a_raisable_name_and_a_cause_naming_the_case(
    aws: None, error: str, expected: str
) -> None:
    state = {
        "Case": {"CaseId": CASE},
        "Failure": {"Error": error, "Cause": "the examine task ran out of time"},
        "FailureRecord": recorded(error, "the examine task ran out of time", "examine"),
    }
    execution = run_final_states(state)
    assert (execution["status"], execution["error"]) == ("FAILED", expected), execution
    assert execution["cause"].startswith(f"case {CASE} failed at examine: ")
    assert "the examine task ran out of time" in execution["cause"]
    # The original name is the error, or (reserved) in the cause.
    assert error in (execution["error"], *execution["cause"].split(": "))


def test_when_recording_the_failure_failed_too_the_cause_still_names_the_case(aws: None) -> None:
    state = {
        "Case": {"CaseId": CASE},
        "Failure": {"Error": "States.Timeout", "Cause": ""},
        "FailureRecordError": {"Error": "Lambda.Unknown", "Cause": "record-failure crashed"},
    }
    execution = run_final_states(state)
    assert (execution["status"], execution["error"]) == ("FAILED", "ResponseFailed"), execution
    assert execution["cause"].startswith(f"case {CASE} failed and its failure could not be recorded")
    assert "record-failure crashed" in execution["cause"] and "States.Timeout" in execution["cause"]
