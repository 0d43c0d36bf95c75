"""The memory branch of the response's Acquire state: LiME through SSM, or a precise reason why not.

OpenCapturePath (Contain only) -> DiscoverKernel -> DiscoveryResult -> (kcore: StartCapture) | CheckModule
  -> [RequestModuleBuild -> BuildStatus -> CheckModuleAgain] -> StartCapture -> CaptureResult
  -> ClosePath -> MemoryResult

Every path ends in `MemoryResult`, a Pass whose output is {"Acquired": bool, "Reason": str,
"Key"?, "Sha256"?, "Size"?, "Failure"?}. Every Task catches everything and turns it into that
shape, so a memory failure never fails the disk branch running beside it. The capture path is
closed on every path; if closing fails, containment is re-applied by the `contain` function.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from statemachines.asl import PollPolicy, State, choice, pass_state, when, when_flag
from statemachines.functions import FUNCTIONS, FunctionSpec
from statemachines.tasks import function_task, member_target, wait_then

MEMORY_FUNCTIONS: tuple[FunctionSpec, ...] = tuple(spec for spec in FUNCTIONS if spec.package == "memory")
# A capture of a large instance runs up to ~45 minutes; a LimeFactory build 10-30.
CAPTURE_POLL = PollPolicy(interval_seconds=60, backoff_rate=1.2, max_attempts=20, max_delay_seconds=300)
BUILD_POLL = PollPolicy(interval_seconds=60, backoff_rate=1.2, max_attempts=20, max_delay_seconds=300)


def _member() -> dict[str, str]:
    return {**member_target(), "Action.$": "$.Request.Action"}


def _task(arns: Mapping[str, str], function: str, *, failed: str, **task: Any) -> State:
    return function_task(arns, function, catch_to=failed, **task)


def _not_acquired(reason: Mapping[str, Any], next_state: str = "ClosePath") -> State:
    return pass_state(next_state, parameters={"Acquired": False, **reason}, result_path="$.Memory")


def _failed(stage: str) -> State:
    # Only Error is always present in a caught failure; the whole failure travels alongside.
    return _not_acquired(
        {
            "Reason.$": f"States.Format('memory not captured: {stage} failed ({{}})', $.Failure.Error)",
            "Failure.$": "$.Failure",
        }
    )


def memory_branch(
    function_arns: Mapping[str, str],
    poll: PollPolicy,
    *,
    capture_poll: PollPolicy | None = None,
    build_poll: PollPolicy | None = None,
) -> dict[str, Any]:
    """The Parallel branch definition; its input is the Acquire state's input ($.Case, $.Request)."""
    arns = function_arns
    capture_poll = capture_poll or CAPTURE_POLL
    build_poll = build_poll or BUILD_POLL
    member = _member()
    kernel = {"CaseId.$": "$.Case.CaseId", "Kernel.$": "$.Kernel.Kernel"}

    def step(name: str, function: str, stage: str, **task: Any) -> dict[str, State]:
        # A step and the state its failure becomes: "memory not captured: <stage> failed (<error>)".
        return {name: _task(arns, function, failed=f"{name}Failed", **task), f"{name}Failed": _failed(stage)}

    states: dict[str, State] = {
        **step(
            "OpenCapturePath",
            "memory-open-path",
            "opening the capture path",
            parameters=member,
            result_path="$.CapturePath",
            next_state="CapturePathOpen",
            comment="Contain mode: HTTPS egress to S3 and the SSM endpoints only, acquisition profile, "
            "for the capture's duration",
        ),
        "CapturePathOpen": choice(
            when_flag("$.CapturePath.Refused", True, "CapturePathRefused"), default="DiscoverKernel"
        ),
        "CapturePathRefused": _not_acquired(
            {"Reason.$": "States.Format('memory not captured: {}', $.CapturePath.Reason)"}
        ),
        **step(
            "DiscoverKernel",
            "memory-discover",
            "kernel discovery",
            parameters=member,
            result_path="$.Discovery",
            next_state="Capturable",
            poll=poll,
            comment="SSM agent online? Then uname, os-release, Secure Boot and lockdown, read-only",
        ),
        "Capturable": choice(when_flag("$.Discovery.Capturable", False, "NotCapturable"), default="WaitForDiscovery"),
        "NotCapturable": _not_acquired({"Reason.$": "$.Discovery.Reason"}),
        "WaitForDiscovery": wait_then("DiscoveryResult"),
        **step(
            "DiscoveryResult",
            "memory-discovery-result",
            "reading the kernel discovery",
            parameters={**member, "CommandId.$": "$.Discovery.CommandId"},
            result_path="$.Kernel",
            next_state="Loadable",
            poll=poll,
        ),
        "Loadable": choice(
            when_flag("$.Kernel.Loadable", False, "KernelRefusesModule"),
            # kcore needs no module: straight to the capture, no LimeFactory build.
            when("$.Kernel.Method", "StartCapture", StringEquals="kcore"),
            default="CheckModule",
        ),
        "KernelRefusesModule": _not_acquired({"Reason.$": "$.Kernel.Reason"}),
        **step(
            "CheckModule",
            "memory-check-module",
            "looking up the LiME module",
            parameters=kernel,
            result_path="$.Module",
            next_state="ModuleAvailable",
            comment="lime.ko, build.json and the ISF under <distro>/<release>/<arch>/",
        ),
        "ModuleAvailable": choice(
            when_flag("$.Module.ModuleAvailable", True, "StartCapture"), default="RequestModuleBuild"
        ),
        "RequestModuleBuild": _task(
            arns,
            "memory-request-build",
            parameters=kernel,
            result_path="$.Build",
            next_state="WaitForBuild",
            failed="BuildFailed",
            comment="Start the LimeFactory for this kernel; the host never compiles",
        ),
        "WaitForBuild": wait_then("BuildStatus"),
        "BuildStatus": _task(
            arns,
            "memory-build-status",
            parameters={"ExecutionArn.$": "$.Build.ExecutionArn"},
            result_path="$.BuildStatus",
            next_state="CheckModuleAgain",
            failed="BuildFailed",
            poll=build_poll,
        ),
        "BuildFailed": _not_acquired(
            {
                "Reason.$": "States.Format('memory not captured: no module for {}: build failed or timed out ({})', "
                "$.Kernel.Describe, $.Failure.Error)",
                "Failure.$": "$.Failure",
            }
        ),
        "CheckModuleAgain": _task(
            arns,
            "memory-check-module",
            parameters=kernel,
            result_path="$.Module",
            next_state="ModuleBuilt",
            failed="CheckModuleFailed",
        ),
        "ModuleBuilt": choice(when_flag("$.Module.ModuleAvailable", True, "StartCapture"), default="NoModule"),
        "NoModule": _not_acquired(
            {
                "Reason.$": "States.Format('memory not captured: no module for {}: LimeFactory build ended {} ({})', "
                "$.Kernel.Describe, $.BuildStatus.Status, $.Module.Reason)"
            }
        ),
        **step(
            "StartCapture",
            "memory-start-capture",
            "starting the capture",
            parameters={**member, "Kernel.$": "$.Kernel.Kernel"},
            result_path="$.Capture",
            next_state="WaitForCapture",
            comment="Pre-signed module GET and multipart upload; SSM Run Command loads LiME and streams",
        ),
        "WaitForCapture": wait_then("CaptureResult"),
        **step(
            "CaptureResult",
            "memory-capture-result",
            "the capture",
            parameters={**member, "Capture.$": "$.Capture"},
            result_path="$.Memory",
            next_state="ClosePath",
            poll=capture_poll,
            comment="Complete the upload from ListParts when it matches what the instance sent; digest file",
        ),
        "ClosePath": {
            **function_task(
                arns,
                "memory-close-path",
                parameters=member,
                result_path="$.CapturePathClosed",
                next_state="MemoryResult",
                catch_to="ClosePathFailed",
            ),
            # Closing is what keeps a contained instance contained: more patience than other steps.
            "Retry": [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 5, "MaxAttempts": 6, "BackoffRate": 2.0}],
        },
        "ClosePathFailed": choice(
            when("$.Request.Action", "ReContain", StringEquals="Contain"), default="MemoryResult"
        ),
        "ReContain": function_task(
            arns,
            "contain",
            parameters={**member_target(), "DryRun": False},
            result_path="$.ReContained",
            next_state="MemoryResult",
            catch_to="NotReContained",
            comment="The capture path could not be closed: put every ENI back on the isolation group",
        ),
        "NotReContained": pass_state(
            "MemoryResult",
            result_path="$.Memory",
            parameters={
                "Acquired.$": "$.Memory.Acquired",
                "Reason.$": "States.Format('{} - WARNING: the capture path could not be closed and containment could "
                "not be re-applied; check the instance now', $.Memory.Reason)",
                "Failure.$": "$.Failure",
            },
        ),
        "MemoryResult": {"Type": "Pass", "InputPath": "$.Memory", "End": True},
    }
    return {"StartAt": "OpenCapturePath", "States": states}
