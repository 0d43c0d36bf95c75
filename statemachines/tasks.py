"""Task shapes every definition builds the same way: one of our functions with its own timeout, the member target."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from statemachines.asl import State, lambda_task
from statemachines.functions import function_arn, task_timeout


def function_task(arns: Mapping[str, str], function: str, **task: Any) -> State:
    """`lambda_task` for `function`: its ARN from `arns` and the TimeoutSeconds its FunctionSpec implies."""
    return lambda_task(function_arn(arns, function), timeout=task_timeout(function), **task)


def member_target() -> dict[str, str]:
    """Parameters naming the case and the suspect instance in its member account."""
    return {
        "CaseId.$": "$.Case.CaseId",
        "InstanceId.$": "$.Request.InstanceId",
        "Account.$": "$.Request.Account",
        "Region.$": "$.Request.Region",
    }


def member_region() -> dict[str, str]:
    """Parameters naming the case and the member account and Region (no instance)."""
    return {"CaseId.$": "$.Case.CaseId", "Account.$": "$.Request.Account", "Region.$": "$.Request.Region"}


def wait_then(next_state: str) -> State:
    """The request's WaitSeconds before `next_state` (zero in tests and the simulation)."""
    return {"Type": "Wait", "SecondsPath": "$.Request.WaitSeconds", "Next": next_state}
