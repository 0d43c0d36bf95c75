"""The response state machine: one incident in, one case with verified evidence out.

ValidateInput -> CheckTarget -> OpenCase -> (Contain | Protect) -> Acquire [disk || memory] -> Cleanup? -> Finalize.
Any failure once the case is open: re-apply containment, record the failure in the case, notify,
and fail the execution with the original error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from statemachines import examination
from statemachines.asl import PollPolicy, State, lambda_task, machine, pass_state
from statemachines.functions import function_arn, task_timeout
from statemachines.memory import memory_branch

MAX_IMAGING_INVOCATIONS = 500
# An imaging invocation stopped by the Lambda runtime (timeout, out of memory) or by the task's own
# timeout: run it again with the same input. Its State is the last checkpoint, so it resumes there
# (re-sending the parts after it into the same upload); nothing it streamed before is lost.
IMAGING_KILLED = {
    "ErrorEquals": ["Sandbox.Timedout", "Lambda.Unknown", "States.Timeout"],
    "IntervalSeconds": 1,
    "MaxAttempts": 3,
    "BackoffRate": 2.0,
}


def _with_retry(state: State, retry: dict[str, Any]) -> State:
    return {**state, "Retry": [*state["Retry"], retry]}


def _member_target() -> dict[str, str]:
    return {
        "CaseId.$": "$.Case.CaseId",
        "InstanceId.$": "$.Request.InstanceId",
        "Account.$": "$.Request.Account",
        "Region.$": "$.Request.Region",
    }


def _failure_marker(stage: str, next_state: str) -> State:
    return pass_state(next_state, result=stage, result_path="$.FailedStage")


def _disk_branch(arns: Mapping[str, str], poll: PollPolicy) -> dict[str, Any]:
    """Snapshot every volume at once, move the snapshots into the forensic account, lock, image."""
    member = _member_target()
    image_item = {
        "CaseId.$": "$.CaseId",
        "VolumeId.$": "$.VolumeId",
        "ForensicSnapshotId.$": "$.ForensicSnapshotId",
        "SourceSnapshotId.$": "$.SourceSnapshotId",
        "State.$": "$.State",
    }
    imaging: dict[str, Any] = {
        "StartAt": "ImageVolume",
        "States": {
            "ImageVolume": _with_retry(
                lambda_task(
                    function_arn(arns, "image-volume"),
                    parameters=image_item,
                    result_path="$.Image",
                    next_state="CountImagingInvocation",
                    timeout=task_timeout("image-volume"),
                    comment="Stream the snapshot's raw bytes into the evidence bucket with a running SHA-256; "
                    "resumes from State when the Lambda's time budget runs out",
                ),
                IMAGING_KILLED,
            ),
            "CountImagingInvocation": pass_state(
                "ImagingDone", parameters={"n.$": "States.MathAdd($.Invocations.n, 1)"}, result_path="$.Invocations"
            ),
            "ImagingDone": {
                "Type": "Choice",
                "Choices": [
                    {"Variable": "$.Image.Done", "BooleanEquals": True, "Next": "ImageResult"},
                    {
                        "Variable": "$.Invocations.n",
                        "NumericGreaterThanEquals": MAX_IMAGING_INVOCATIONS,
                        "Next": "ImagingTooLong",
                    },
                ],
                "Default": "CarryImagingState",
            },
            "CarryImagingState": pass_state("ImageVolume", input_path="$.Image.State", result_path="$.State"),
            "ImagingTooLong": {
                "Type": "Fail",
                "Error": "AcquisitionFailed",
                "Cause": f"imaging did not finish within {MAX_IMAGING_INVOCATIONS} invocations",
            },
            "ImageResult": pass_state(
                None,
                parameters={
                    "VolumeId.$": "$.VolumeId",
                    "SourceSnapshotId.$": "$.SourceSnapshotId",
                    "ForensicSnapshotId.$": "$.ForensicSnapshotId",
                    "Key.$": "$.Image.Key",
                    "Sha256.$": "$.Image.Sha256",
                    "Size.$": "$.Image.Size",
                },
            ),
        },
    }
    return {
        "StartAt": "SnapshotVolumes",
        "States": {
            "SnapshotVolumes": lambda_task(
                function_arn(arns, "snapshot-volumes"),
                parameters=member,
                result_path="$.Snapshots",
                next_state="AnyDisks",
                timeout=task_timeout("snapshot-volumes"),
                comment="One crash-consistent CreateSnapshots call for every attached EBS volume",
            ),
            "AnyDisks": {
                "Type": "Choice",
                "Comment": "No EBS volume (an instance-store root): nothing to snapshot, and the reason kept",
                "Choices": [{"Variable": "$.Snapshots.Snapshots[0]", "IsPresent": True, "Next": "WaitForSnapshots"}],
                "Default": "NoDisks",
            },
            "NoDisks": pass_state(
                None,
                parameters={
                    "Images": [],
                    "Locks": [],
                    "MemberSnapshots": [],
                    "ForensicSnapshots": [],
                    "NotAcquired.$": "$.Snapshots.NotAcquired",
                },
            ),
            "WaitForSnapshots": {"Type": "Wait", "SecondsPath": "$.Request.WaitSeconds", "Next": "SnapshotStatus"},
            "SnapshotStatus": lambda_task(
                function_arn(arns, "snapshot-status"),
                parameters={
                    "CaseId.$": "$.Case.CaseId",
                    "Account.$": "$.Request.Account",
                    "Region.$": "$.Request.Region",
                    "SnapshotIds.$": "$.Snapshots.Snapshots[*].SnapshotId",
                },
                result_path="$.SnapshotStatus",
                next_state="ShareSnapshots",
                poll=poll,
                timeout=task_timeout("snapshot-status"),
            ),
            "ShareSnapshots": lambda_task(
                function_arn(arns, "share-snapshots"),
                parameters={
                    "CaseId.$": "$.Case.CaseId",
                    "Account.$": "$.Request.Account",
                    "Region.$": "$.Request.Region",
                    "Snapshots.$": "$.Snapshots.Snapshots",
                },
                result_path="$.Shared",
                next_state="CopyToForensic",
                poll=poll,
                timeout=task_timeout("share-snapshots"),
                comment="Re-encrypt default-key or unencrypted snapshots with the member CMK, share with forensic",
            ),
            "CopyToForensic": lambda_task(
                function_arn(arns, "copy-to-forensic"),
                parameters={
                    "CaseId.$": "$.Case.CaseId",
                    "Account.$": "$.Request.Account",
                    "Region.$": "$.Request.Region",
                    "Snapshots.$": "$.Shared.Snapshots",
                },
                result_path="$.Forensic",
                next_state="WaitForForensicCopies",
                timeout=task_timeout("copy-to-forensic"),
            ),
            "WaitForForensicCopies": {
                "Type": "Wait",
                "SecondsPath": "$.Request.WaitSeconds",
                "Next": "ForensicCopyStatus",
            },
            "ForensicCopyStatus": lambda_task(
                function_arn(arns, "snapshot-status"),
                parameters={
                    "CaseId.$": "$.Case.CaseId",
                    "Account": "forensic",
                    "Region.$": "$.Request.Region",
                    "SnapshotIds.$": "$.Forensic.Snapshots[*].ForensicSnapshotId",
                },
                result_path="$.ForensicStatus",
                next_state="LockSnapshots",
                poll=poll,
                timeout=task_timeout("snapshot-status"),
            ),
            "LockSnapshots": lambda_task(
                function_arn(arns, "lock-snapshots"),
                parameters={
                    "CaseId.$": "$.Case.CaseId",
                    "Region.$": "$.Request.Region",
                    "SnapshotIds.$": "$.Forensic.Snapshots[*].ForensicSnapshotId",
                },
                result_path="$.Locks",
                next_state="ImageVolumes",
                timeout=task_timeout("lock-snapshots"),
            ),
            "ImageVolumes": {
                "Type": "Map",
                "ItemsPath": "$.Forensic.Snapshots",
                "MaxConcurrency": 4,
                "ItemSelector": {
                    "CaseId.$": "$.Case.CaseId",
                    "VolumeId.$": "$$.Map.Item.Value.VolumeId",
                    "ForensicSnapshotId.$": "$$.Map.Item.Value.ForensicSnapshotId",
                    "SourceSnapshotId.$": "$$.Map.Item.Value.SnapshotId",
                    "State": None,
                    "Invocations": {"n": 0},
                },
                "ItemProcessor": imaging,
                "ResultPath": "$.Images",
                "Next": "DiskResult",
            },
            "DiskResult": pass_state(
                None,
                parameters={
                    "Images.$": "$.Images",
                    "Locks.$": "$.Locks.Locks",
                    "MemberSnapshots.$": "$.Shared.Snapshots",
                    "ForensicSnapshots.$": "$.Forensic.Snapshots",
                    "NotAcquired.$": "$.Snapshots.NotAcquired",
                },
            ),
        },
    }


def build_definition(function_arns: Mapping[str, str], *, poll: PollPolicy | None = None) -> dict[str, Any]:
    """The response state machine, for the given Lambda ARNs (keys: statemachines.functions names)."""
    poll = poll or PollPolicy()
    member = _member_target()
    arns = function_arns
    states: dict[str, State] = {
        "ValidateInput": {
            **lambda_task(
                function_arn(arns, "validate-input"),
                result_path="$",
                next_state="Init",
                timeout=task_timeout("validate-input"),
            ),
            # Only InvalidInput means "rejected"; any other error is a fault of ours and fails as itself.
            "Catch": [{"ErrorEquals": ["InvalidInput"], "ResultPath": "$", "Next": "Rejected"}],
        },
        "Rejected": {
            "Type": "Fail",
            "Comment": "Bad input: nothing in any account was touched",
            "ErrorPath": "$.Error",
            "CausePath": "$.Cause",
        },
        "Init": pass_state("CheckTarget", parameters={"Request.$": "$"}),
        "CheckTarget": {
            **lambda_task(
                function_arn(arns, "check-target"),
                input_path="$.Request",
                result_path="$.Target",
                next_state="OpenCase",
                timeout=task_timeout("check-target"),
                comment="Read-only: the member responder role can be assumed and the instance exists "
                "and is not terminated; no case is opened otherwise",
            ),
            "Catch": [
                {
                    "ErrorEquals": ["ResponderUnavailable", "InstanceNotFound"],
                    "ResultPath": "$.Failure",
                    "Next": "TargetRejected",
                }
            ],
        },
        "TargetRejected": {
            "Type": "Fail",
            "Comment": "Nothing to respond to, or no responder there: nothing in any account was touched",
            "ErrorPath": "$.Failure.Error",
            "CausePath": "$.Failure.Cause",
        },
        "OpenCase": lambda_task(
            function_arn(arns, "open-case"),
            input_path="$.Request",
            result_path="$.Case",
            next_state="IsNewCase",
            timeout=task_timeout("open-case"),
        ),
        "IsNewCase": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.Case.Created", "BooleanEquals": False, "Next": "AlreadyOpen"}],
            "Default": "ChooseMode",
        },
        "AlreadyOpen": {
            "Type": "Succeed",
            "Comment": "One open case per instance: nothing new starts",
            "OutputPath": "$.Case",
        },
        "ChooseMode": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.Request.Action", "StringEquals": "Contain", "Next": "Contain"}],
            "Default": "Protect",
        },
        "Contain": lambda_task(
            function_arn(arns, "contain"),
            parameters={**member, "DryRun.$": "$.Request.DryRun"},
            result_path="$.Containment",
            next_state="IsDryRun",
            timeout=task_timeout("contain"),
            catch_to="FailedAtContain",
            comment="Isolate every ENI (two-step SG swap), swap the profile, revoke its credentials, "
            "protections, EIPs, Auto Scaling detach, target deregistration",
        ),
        "FailedAtContain": _failure_marker("contain", "EnsureContained"),
        "Protect": lambda_task(
            function_arn(arns, "protect"),
            parameters={**member, "DryRun.$": "$.Request.DryRun"},
            result_path="$.Containment",
            next_state="IsDryRun",
            timeout=task_timeout("protect"),
            catch_to="FailedAtProtect",
            comment="Analyze mode: keep the workload serving; termination protection, shutdown=stop, "
            "DeleteOnTermination=false, incident tags",
        ),
        "FailedAtProtect": _failure_marker("protect", "EnsureContained"),
        "IsDryRun": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.Request.DryRun", "BooleanEquals": True, "Next": "NothingAcquired"}],
            "Default": "Acquire",
        },
        "NothingAcquired": pass_state(
            "Finalize",
            result_path="$.Acquisition",
            result={
                "Disk": {"Images": [], "Locks": [], "MemberSnapshots": [], "ForensicSnapshots": [], "NotAcquired": ""},
                "Memory": {"Acquired": False, "Reason": "not acquired: dry run (nothing was changed or copied)"},
            },
        ),
        "Acquire": {
            "Type": "Parallel",
            "Branches": [_disk_branch(arns, poll), memory_branch(arns, poll, capture_poll=poll, build_poll=poll)],
            "ResultSelector": {"Disk.$": "$[0]", "Memory.$": "$[1]"},
            "ResultPath": "$.Acquisition",
            "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.Failure", "Next": "FailedAtAcquire"}],
            "Next": "RetainArtefacts",
        },
        "FailedAtAcquire": _failure_marker("acquire", "EnsureContained"),
        "RetainArtefacts": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.Request.RetainArtefacts", "BooleanEquals": False, "Next": "Cleanup"}],
            "Default": "Finalize",
        },
        "Cleanup": lambda_task(
            function_arn(arns, "cleanup"),
            parameters={**member, "Snapshots.$": "$.Acquisition.Disk.MemberSnapshots"},
            result_path="$.Cleanup",
            next_state="Finalize",
            timeout=task_timeout("cleanup"),
            catch_to="FailedAtCleanup",
            comment="RetainArtefacts=false: remove intermediate member snapshots; never evidence",
        ),
        "FailedAtCleanup": _failure_marker("cleanup", "EnsureContained"),
        "Finalize": lambda_task(
            function_arn(arns, "finalize-case"),
            parameters={
                "CaseId.$": "$.Case.CaseId",
                "Request.$": "$.Request",
                "Containment.$": "$.Containment",
                "Images.$": "$.Acquisition.Disk.Images",
                "Locks.$": "$.Acquisition.Disk.Locks",
                "Memory.$": "$.Acquisition.Memory",
                "DisksNotAcquired.$": "$.Acquisition.Disk.NotAcquired",
            },
            result_path="$.Result",
            next_state="ShouldExamine",
            timeout=task_timeout("finalize-case"),
            catch_to="FailedAtFinalize",
            comment="Manifest of every artefact with its sha256, custody event, notification",
        ),
        "FailedAtFinalize": _failure_marker("finalize", "EnsureContained"),
        "ShouldExamine": {
            "Type": "Choice",
            "Comment": "A dry run acquired nothing; an instance without EBS volumes (instance store) has no "
            "disk image to examine: the manifest says why, and the case closes",
            "Choices": [
                {"Variable": "$.Request.DryRun", "BooleanEquals": True, "Next": "CloseCase"},
                {"Variable": "$.Acquisition.Disk.Images[0]", "IsPresent": False, "Next": "CloseCase"},
            ],
            "Default": examination.start_state(),
        },
        **examination.examination_states(
            arns,
            poll,
            next_state="CloseCase",
            failure_state="FailedAtExamine",
            case_id_path="$.Case.CaseId",
            window_path="$.Case.Window",
        ),
        "FailedAtExamine": _failure_marker("examine", "EnsureContained"),
        "CloseCase": lambda_task(
            function_arn(arns, "close-case"),
            parameters={"CaseId.$": "$.Case.CaseId", "DryRun.$": "$.Request.DryRun"},
            result_path="$.Closed",
            next_state="Done",
            timeout=task_timeout("close-case"),
            catch_to="FailedAtClose",
            comment="Manifest again (now with analysis/ and report/), case closed, report link notified",
        ),
        "FailedAtClose": _failure_marker("close", "EnsureContained"),
        "Done": {"Type": "Succeed"},
        "EnsureContained": {
            "Type": "Choice",
            "Comment": "Whatever failed, the suspect instance ends contained (unless this was a dry run)",
            "Choices": [{"Variable": "$.Request.DryRun", "BooleanEquals": True, "Next": "NoContainmentInDryRun"}],
            "Default": "ContainAfterFailure",
        },
        "NoContainmentInDryRun": pass_state(
            "RecordFailure", result={"Contained": False, "Reason": "dry run"}, result_path="$.ContainmentAfterFailure"
        ),
        "ContainAfterFailure": lambda_task(
            function_arn(arns, "contain"),
            parameters={**member, "DryRun": False},
            result_path="$.ContainmentAfterFailure",
            next_state="RecordFailure",
            timeout=task_timeout("contain"),
            catch_to="RecordFailure",
            catch_result_path="$.ContainmentAfterFailure",
        ),
        "RecordFailure": lambda_task(
            function_arn(arns, "record-failure"),
            parameters={
                "CaseId.$": "$.Case.CaseId",
                "Request.$": "$.Request",
                "Error.$": "$.Failure",
                "Stage.$": "$.FailedStage",
                "Containment.$": "$.ContainmentAfterFailure",
            },
            result_path="$.FailureRecord",
            next_state="FailExecution",
            timeout=task_timeout("record-failure"),
            catch_to="FailExecution",
            catch_result_path="$.FailureRecordError",
        ),
        "FailExecution": {"Type": "Fail", "ErrorPath": "$.Failure.Error", "CausePath": "$.Failure.Cause"},
    }
    return machine(
        "irforensics response: contain, acquire and record one suspect EC2 instance",
        "ValidateInput",
        states,
        timeout_seconds=24 * 3600,
    )
