"""The examination state machine: a case's evidence in, `analysis/` and `report/` out, no instance left behind.

LaunchAnalysisInstance -> AnalysisInstanceReady (bounded poll) -> RunExamination ->
ExaminationStatus (bounded poll) -> TerminateAnalysisInstance -> done.
Any failure, launch included (RunInstances may have succeeded before the Lambda failed):
TerminateAfterFailure, which ends every analysis instance of the case found by tag, then fail
with the original error.

`build_definition` is the standalone machine (input {"CaseId", "IncidentStart"?, "IncidentEnd"?});
`examination_states` gives the same states, prefixed, to splice into the response machine.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from statemachines.asl import PollPolicy, State, machine
from statemachines.functions import FUNCTIONS, FunctionSpec
from statemachines.tasks import function_task

EXAMINATION_FUNCTIONS: tuple[FunctionSpec, ...] = tuple(spec for spec in FUNCTIONS if spec.package == "examination")

# An instance boots and registers with SSM in a few minutes; 15 s doubling-ish, about 25 min at most.
READY_POLL = PollPolicy(interval_seconds=15, backoff_rate=1.5, max_attempts=10, max_delay_seconds=300)
# The command's own limit is orchestration.EXAMINATION_TIMEOUT_SECONDS (4 h): poll every 2 min for
# a little longer than that, so SSM reports TimedOut before the state machine gives up.
EXAMINATION_POLL = PollPolicy(interval_seconds=120, backoff_rate=1.0, max_attempts=130, max_delay_seconds=120)

LAUNCH = "LaunchAnalysisInstance"
READY = "AnalysisInstanceReady"
RUN = "RunExamination"
STATUS = "ExaminationStatus"
TERMINATE = "TerminateAnalysisInstance"
TERMINATE_AFTER_FAILURE = "TerminateAfterFailure"


def start_state(prefix: str = "Examine") -> str:
    """The name of the first examination state, for the state before it to point at."""
    return prefix + LAUNCH


def examination_states(
    function_arns: Mapping[str, str],
    poll: PollPolicy | None,
    *,
    next_state: str,
    failure_state: str,
    prefix: str = "Examine",
    case_id_path: str = "$.CaseId",
    window_path: str | None = None,
    examination_poll: PollPolicy | None = None,
    failure_result_path: str = "$.Failure",
) -> dict[str, State]:
    """The examination states, named `<prefix><State>`, first `start_state(prefix)`.

    Success goes to `next_state`. Any failure is caught into `failure_result_path` (the error and
    cause, as Catch gives them), the case's analysis instances are terminated, then `failure_state`.
    `window_path` names an object with optional IncidentStart/IncidentEnd. A caller that gives `poll`
    but no `examination_poll` gets `poll` for both waits (tests and the simulation: no long sleeps).
    """
    arns = function_arns
    ready_poll = poll or READY_POLL
    command_poll = examination_poll or poll or EXAMINATION_POLL
    name = {state: prefix + state for state in (LAUNCH, READY, RUN, STATUS, TERMINATE, TERMINATE_AFTER_FAILURE)}
    case = {"CaseId.$": case_id_path}
    on_instance = {**case, "InstanceId.$": "$.AnalysisInstance.InstanceId"}
    after_failure = name[TERMINATE_AFTER_FAILURE]

    def task(
        function: str,
        *,
        parameters: dict[str, Any],
        result_path: str | None,
        next_to: str,
        wait: PollPolicy | None = None,
        comment: str = "",
    ) -> State:
        return function_task(
            arns,
            function,
            parameters=parameters,
            result_path=result_path,
            next_state=next_to,
            poll=wait,
            catch_to=after_failure,
            catch_result_path=failure_result_path,
            comment=comment,
        )

    run_parameters: dict[str, Any] = dict(on_instance)
    if window_path is not None:
        run_parameters["Window.$"] = window_path
    return {
        name[LAUNCH]: task(
            "launch-analysis-instance",
            result_path="$.AnalysisInstance",
            next_to=name[READY],
            # The execution's name makes the launch token: a retried launch returns the same instance, a
            # new execution for the same case gets a new one.
            parameters={**case, "Attempt.$": "$$.Execution.Name"},
            comment="Toolset AMI (SSM parameter) in a private analysis subnet: no public IP, IMDSv2, analysis "
            "profile, encrypted root volume sized for the case's images",
        ),
        name[READY]: task(
            "analysis-instance-ready",
            parameters=on_instance,
            result_path=None,
            next_to=name[RUN],
            wait=ready_poll,
            comment="Running, and its SSM agent online",
        ),
        name[RUN]: task(
            "run-examination",
            parameters=run_parameters,
            result_path="$.ExaminationCommand",
            next_to=name[STATUS],
            comment="SSM Run Command: download, sha256sum -c every image, examine, report, upload",
        ),
        name[STATUS]: task(
            "examination-status",
            parameters={**on_instance, "CommandId.$": "$.ExaminationCommand.CommandId"},
            result_path="$.Examination",
            next_to=name[TERMINATE],
            wait=command_poll,
        ),
        name[TERMINATE]: task(
            "terminate-analysis-instance",
            parameters=on_instance,
            result_path="$.AnalysisInstanceTermination",
            next_to=next_state,
        ),
        after_failure: {
            **function_task(
                arns,
                "terminate-analysis-instance",
                parameters=case,
                result_path="$.AnalysisInstanceTermination",
                next_state=failure_state,
                comment="Whatever failed, no analysis instance of the case keeps running",
            ),
            # Failing to terminate must not hide the original error: note it beside the failure and go on.
            "Catch": [
                {
                    "ErrorEquals": ["States.ALL"],
                    "ResultPath": "$.AnalysisInstanceTerminationFailure",
                    "Next": failure_state,
                }
            ],
        },
    }


def build_definition(
    function_arns: Mapping[str, str], *, poll: PollPolicy | None = None, examination_poll: PollPolicy | None = None
) -> dict[str, Any]:
    """The standalone examination machine, for the given Lambda ARNs (keys: EXAMINATION_FUNCTIONS names)."""
    states = examination_states(
        function_arns,
        poll,
        next_state="Examined",
        failure_state="ExaminationFailed",
        prefix="",
        window_path="$",
        examination_poll=examination_poll,
    )
    states["Examined"] = {"Type": "Succeed"}
    states["ExaminationFailed"] = {
        "Type": "Fail",
        "Comment": "The original error, after the instance was terminated",
        "ErrorPath": "$.Failure.Error",
        "CausePath": "$.Failure.Cause",
    }
    return machine(
        "irforensics examination: analyse one case's evidence on an isolated analysis instance",
        start_state(""),
        states,
        timeout_seconds=8 * 3600,
    )
