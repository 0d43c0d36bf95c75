"""The response state machine: one incident in, one case with verified evidence out.

ValidateInput -> CheckTarget -> OpenCase -> (Contain | Protect) -> Acquire [disk || memory] -> Cleanup? -> Finalize
-> Examine (disk images and memory, or memory alone when the instance had no EBS volume) -> CloseCase.
Any failure once the case is open: re-apply containment, record the failure in the case, notify,
and fail the execution with the original error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from statemachines import examination
from statemachines.asl import PollPolicy, State, choice, machine, pass_state, when, when_flag
from statemachines.memory import memory_branch
from statemachines.tasks import function_task, member_region, member_target, wait_then

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


def _failure_marker(stage: str, next_state: str) -> State:
    return pass_state(next_state, result=stage, result_path="$.FailedStage")


def _disk_branch(arns: Mapping[str, str], poll: PollPolicy) -> dict[str, Any]:
    """Snapshot every volume at once, move the snapshots into the forensic account, lock, image."""
    member = member_target()
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
                function_task(
                    arns,
                    "image-volume",
                    parameters=image_item,
                    result_path="$.Image",
                    next_state="CountImagingInvocation",
                    comment="Stream the snapshot's raw bytes into the evidence bucket with a running SHA-256; "
                    "resumes from State when the Lambda's time budget runs out",
                ),
                IMAGING_KILLED,
            ),
            "CountImagingInvocation": pass_state(
                "ImagingDone", parameters={"n.$": "States.MathAdd($.Invocations.n, 1)"}, result_path="$.Invocations"
            ),
            "ImagingDone": choice(
                when("$.Image.Done", "ImageResult", BooleanEquals=True),
                when("$.Invocations.n", "ImagingTooLong", NumericGreaterThanEquals=MAX_IMAGING_INVOCATIONS),
                default="CarryImagingState",
            ),
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
    in_member = member_region()
    in_forensic = {"CaseId.$": "$.Case.CaseId", "Account": "forensic", "Region.$": "$.Request.Region"}
    forensic_ids = "$.Forensic.Snapshots[*].ForensicSnapshotId"

    def snapshot_status(parameters: dict[str, Any], result_path: str, next_state: str) -> State:
        # Member snapshots and their forensic copies are polled alike: until every one is completed.
        return function_task(
            arns, "snapshot-status", parameters=parameters, result_path=result_path, next_state=next_state, poll=poll
        )

    return {
        "StartAt": "SnapshotVolumes",
        "States": {
            "SnapshotVolumes": function_task(
                arns,
                "snapshot-volumes",
                parameters=member,
                result_path="$.Snapshots",
                next_state="AnyDisks",
                comment="One crash-consistent CreateSnapshots call for every attached EBS volume",
            ),
            "AnyDisks": choice(
                when("$.Snapshots.Snapshots[0]", "WaitForSnapshots", IsPresent=True),
                default="NoDisks",
                comment="No EBS volume (an instance-store root): nothing to snapshot, and the reason kept",
            ),
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
            "WaitForSnapshots": wait_then("SnapshotStatus"),
            "SnapshotStatus": snapshot_status(
                {**in_member, "SnapshotIds.$": "$.Snapshots.Snapshots[*].SnapshotId"},
                "$.SnapshotStatus",
                "ShareSnapshots",
            ),
            "ShareSnapshots": function_task(
                arns,
                "share-snapshots",
                parameters={**in_member, "Snapshots.$": "$.Snapshots.Snapshots"},
                result_path="$.Shared",
                next_state="CopyToForensic",
                poll=poll,
                comment="Re-encrypt default-key or unencrypted snapshots with the member CMK, share with forensic",
            ),
            "CopyToForensic": function_task(
                arns,
                "copy-to-forensic",
                parameters={**in_member, "Snapshots.$": "$.Shared.Snapshots"},
                result_path="$.Forensic",
                next_state="WaitForForensicCopies",
            ),
            "WaitForForensicCopies": wait_then("ForensicCopyStatus"),
            "ForensicCopyStatus": snapshot_status(
                {**in_forensic, "SnapshotIds.$": forensic_ids}, "$.ForensicStatus", "LockSnapshots"
            ),
            "LockSnapshots": function_task(
                arns,
                "lock-snapshots",
                parameters={"CaseId.$": "$.Case.CaseId", "Region.$": "$.Request.Region", "SnapshotIds.$": forensic_ids},
                result_path="$.Locks",
                next_state="ImageVolumes",
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
    member = member_target()
    arns = function_arns

    def contain_mode(function: str, comment: str) -> State:
        # Contain and Protect are the two answers to the request's Action: same input, same result slot.
        return function_task(
            arns,
            function,
            parameters={**member, "DryRun.$": "$.Request.DryRun"},
            result_path="$.Containment",
            next_state="IsDryRun",
            catch_to=f"FailedAt{function.capitalize()}",
            comment=comment,
        )

    states: dict[str, State] = {
        "ValidateInput": {
            **function_task(
                arns,
                "validate-input",
                result_path="$",
                next_state="Init",
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
            **function_task(
                arns,
                "check-target",
                input_path="$.Request",
                result_path="$.Target",
                next_state="OpenCase",
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
        "OpenCase": function_task(
            arns,
            "open-case",
            input_path="$.Request",
            result_path="$.Case",
            next_state="IsNewCase",
        ),
        "IsNewCase": choice(when("$.Case.Created", "AlreadyOpen", BooleanEquals=False), default="ChooseMode"),
        "AlreadyOpen": {
            "Type": "Succeed",
            "Comment": "One open case per instance: nothing new starts",
            "OutputPath": "$.Case",
        },
        "ChooseMode": choice(when("$.Request.Action", "Contain", StringEquals="Contain"), default="Protect"),
        "Contain": contain_mode(
            "contain",
            "Isolate every ENI (two-step SG swap), swap the profile, revoke its credentials, "
            "protections, EIPs, Auto Scaling detach, target deregistration",
        ),
        "FailedAtContain": _failure_marker("contain", "EnsureContained"),
        "Protect": contain_mode(
            "protect",
            "Analyze mode: keep the workload serving; termination protection, shutdown=stop, "
            "DeleteOnTermination=false, incident tags",
        ),
        "FailedAtProtect": _failure_marker("protect", "EnsureContained"),
        "IsDryRun": choice(when("$.Request.DryRun", "NothingAcquired", BooleanEquals=True), default="Acquire"),
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
        "RetainArtefacts": choice(
            when("$.Request.RetainArtefacts", "Cleanup", BooleanEquals=False), default="Finalize"
        ),
        "Cleanup": function_task(
            arns,
            "cleanup",
            parameters={**member, "Snapshots.$": "$.Acquisition.Disk.MemberSnapshots"},
            result_path="$.Cleanup",
            next_state="Finalize",
            catch_to="FailedAtCleanup",
            comment="RetainArtefacts=false: remove intermediate member snapshots; never evidence",
        ),
        "FailedAtCleanup": _failure_marker("cleanup", "EnsureContained"),
        "Finalize": function_task(
            arns,
            "finalize-case",
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
            catch_to="FailedAtFinalize",
            comment="Manifest of every artefact with its sha256, custody event, notification",
        ),
        "FailedAtFinalize": _failure_marker("finalize", "EnsureContained"),
        "ShouldExamine": choice(
            when("$.Request.DryRun", "CloseCase", BooleanEquals=True),
            when("$.Acquisition.Disk.Images[0]", examination.start_state(), IsPresent=True),
            when_flag("$.Acquisition.Memory.Acquired", True, examination.start_state()),
            default="NothingToExamine",
            comment="Examine what was acquired: the disk images, or the memory image alone (an instance-store "
            "instance has no EBS volume); a dry run acquired nothing",
        ),
        "NothingToExamine": pass_state(
            "CloseCase",
            parameters={
                "Examined": False,
                "Reason": "neither a disk image nor a memory image was acquired; Disks and Memory say why",
                "Disks.$": "$.Acquisition.Disk.NotAcquired",
                "Memory.$": "$.Acquisition.Memory",
            },
            result_path="$.Examination",
        ),
        **examination.examination_states(
            arns,
            poll,
            next_state="CloseCase",
            failure_state="FailedAtExamine",
            case_id_path="$.Case.CaseId",
            window_path="$.Case.Window",
        ),
        "FailedAtExamine": _failure_marker("examine", "EnsureContained"),
        "CloseCase": function_task(
            arns,
            "close-case",
            parameters={"CaseId.$": "$.Case.CaseId", "DryRun.$": "$.Request.DryRun"},
            result_path="$.Closed",
            next_state="Done",
            catch_to="FailedAtClose",
            comment="Manifest again (now with analysis/ and report/), case closed, report link notified",
        ),
        "FailedAtClose": _failure_marker("close", "EnsureContained"),
        "Done": {"Type": "Succeed"},
        "EnsureContained": choice(
            when("$.Request.DryRun", "NoContainmentInDryRun", BooleanEquals=True),
            default="ContainAfterFailure",
            comment="Whatever failed, the suspect instance ends contained (unless this was a dry run)",
        ),
        "NoContainmentInDryRun": pass_state(
            "RecordFailure", result={"Contained": False, "Reason": "dry run"}, result_path="$.ContainmentAfterFailure"
        ),
        "ContainAfterFailure": function_task(
            arns,
            "contain",
            parameters={**member, "DryRun": False},
            result_path="$.ContainmentAfterFailure",
            next_state="RecordFailure",
            catch_to="RecordFailure",
            catch_result_path="$.ContainmentAfterFailure",
        ),
        "RecordFailure": function_task(
            arns,
            "record-failure",
            parameters={
                "CaseId.$": "$.Case.CaseId",
                "Request.$": "$.Request",
                "Error.$": "$.Failure",
                "Stage.$": "$.FailedStage",
                "Containment.$": "$.ContainmentAfterFailure",
            },
            result_path="$.FailureRecord",
            next_state="FailExecution",
            catch_to="FailExecution",
            catch_result_path="$.FailureRecordError",
        ),
        # The failure record names the error the execution fails with (never a reserved States.* name) and
        # a cause that starts with the case id: the execution alone leads to the case.
        "FailExecution": choice(
            when("$.FailureRecord.ExecutionError", "FailAsRecorded", IsPresent=True), default="FailUnrecorded"
        ),
        "FailAsRecorded": {
            "Type": "Fail",
            "ErrorPath": "$.FailureRecord.ExecutionError",
            "CausePath": "$.FailureRecord.ExecutionCause",
        },
        "FailUnrecorded": {
            "Type": "Fail",
            "Comment": "Recording the failure failed too: a fixed error name, the case id and both errors in the cause",
            "Error": "ResponseFailed",
            "CausePath": "States.Format('case {} failed and its failure could not be recorded ({}): {}', "
            "$.Case.CaseId, States.JsonToString($.FailureRecordError), States.JsonToString($.Failure))",
        },
    }
    return machine(
        "irforensics response: contain, acquire and record one suspect EC2 instance",
        "ValidateInput",
        states,
        timeout_seconds=24 * 3600,
    )
