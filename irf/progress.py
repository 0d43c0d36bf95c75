"""Live progress of a response, read from the execution itself (the same on AWS and in the simulation).

The response state machine's execution history (GetExecutionHistory) says which state runs, in
which Parallel branch or Map iteration, and what each Lambda returned. `Tracker` turns those events
into one line per stage as it starts and ends (validate, open case, contain, snapshot, copy, image
per volume, memory, manifest, examine, report, close) with the execution's elapsed time, and keeps
what is running for a live status line. Where work is long and the history is silent (a volume
being imaged, memory being captured, both inside one Lambda invocation) the bytes come from the
in-progress multipart upload in the evidence bucket (ListMultipartUploads + ListParts): the
uploads exist on AWS as they do on moto. `Follower` polls both, with backoff.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

TERMINAL = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")
_EXECUTION_END = {
    "ExecutionSucceeded": "SUCCEEDED",
    "ExecutionFailed": "FAILED",
    "ExecutionTimedOut": "TIMED_OUT",
    "ExecutionAborted": "ABORTED",
}
THROTTLED = frozenset(
    {"ThrottlingException", "Throttling", "TooManyRequestsException", "SlowDown", "RequestLimitExceeded"}
)

# The response's states (statemachines/response.py, memory.py, examination.py) grouped into stages.
# A stage starts when one of its states is entered and ends when its last state exits.
# tests/test_progress.py checks these names against the state machine's own definition.
STAGE_OF = {
    "ValidateInput": "validate",
    "Init": "validate",
    "CheckTarget": "validate",
    "OpenCase": "open case",
    "Contain": "contain",
    "Protect": "protect",
    "SnapshotVolumes": "snapshot",
    "AnyDisks": "snapshot",
    "WaitForSnapshots": "snapshot",
    "SnapshotStatus": "snapshot",
    "NoDisks": "snapshot",
    "ShareSnapshots": "copy",
    "CopyToForensic": "copy",
    "WaitForForensicCopies": "copy",
    "ForensicCopyStatus": "copy",
    "LockSnapshots": "copy",
    "Finalize": "manifest",
    "ExamineLaunchAnalysisInstance": "examine",
    "ExamineAnalysisInstanceReady": "examine",
    "ExamineRunExamination": "examine",
    "ExamineExaminationStatus": "examine",
    "ExamineTerminateAnalysisInstance": "examine",
    "ExamineTerminateAfterFailure": "terminate analysis instance",
    "Cleanup": "cleanup",
    "CloseCase": "close",
    "ContainAfterFailure": "contain after failure",
    "RecordFailure": "record failure",
}
STAGE_ENDS = {
    "validate": {"CheckTarget"},
    "snapshot": {"SnapshotStatus", "NoDisks"},
    "copy": {"LockSnapshots"},
    "examine": {"ExamineTerminateAnalysisInstance"},
}
MEMORY_STATES = frozenset(
    {
        "OpenCapturePath",
        "OpenCapturePathFailed",
        "CapturePathOpen",
        "CapturePathRefused",
        "DiscoverKernel",
        "DiscoverKernelFailed",
        "Capturable",
        "NotCapturable",
        "WaitForDiscovery",
        "DiscoveryResult",
        "DiscoveryResultFailed",
        "Loadable",
        "NotLoadable",
        "CheckModule",
        "CheckModuleFailed",
        "ModuleAvailable",
        "RequestModuleBuild",
        "RequestModuleBuildFailed",
        "WaitForBuild",
        "BuildStatus",
        "BuildStatusFailed",
        "CheckModuleAgain",
        "CheckModuleAgainFailed",
        "ModuleBuilt",
        "ModuleNotBuilt",
        "StartCapture",
        "StartCaptureFailed",
        "WaitForCapture",
        "CaptureResult",
        "CaptureResultFailed",
        "ClosePath",
        "ClosePathFailed",
        "ReContain",
        "NotReContained",
        "MemoryResult",
        "KernelRefusesModule",
        "NoModule",
        "BuildFailed",
    }
)
MEMORY_STEPS = {
    "OpenCapturePath": "opening the capture path",
    "DiscoverKernel": "discovering the kernel (SSM)",
    "DiscoveryResult": "reading the kernel discovery",
    "CheckModule": "looking for a LiME module for the kernel",
    "RequestModuleBuild": "asking the LimeFactory to build a module",
    "WaitForBuild": "waiting for the LimeFactory build",
    "BuildStatus": "waiting for the LimeFactory build",
    "CheckModuleAgain": "checking the built module",
    "StartCapture": "capturing memory (LiME over SSM)",
    "WaitForCapture": "capturing memory (LiME over SSM)",
    "CaptureResult": "capturing memory (LiME over SSM)",
    "ClosePath": "closing the capture path",
    "ReContain": "re-containing after the capture",
}
EXAMINE_STEPS = {
    "ExamineLaunchAnalysisInstance": "launching the analysis instance",
    "ExamineAnalysisInstanceReady": "waiting for the analysis instance's SSM agent",
    "ExamineRunExamination": "examining: verify images, timeline (Sleuth Kit / libfsxfs), YARA, Volatility, report",
    "ExamineExaminationStatus": "waiting for the examination to finish",
    "ExamineTerminateAnalysisInstance": "terminating the analysis instance",
}
IMAGING_STATES = frozenset({"ImageVolume", "CountImagingInvocation", "ImagingDone", "CarryImagingState", "ImageResult"})
FAIL_STATES = {"Rejected": "validate", "TargetRejected": "validate", "ImagingTooLong": "image", "FailExecution": ""}
ACQUISITION = ("snapshot", "copy", "image", "memory")
STAGE_ORDER = (
    "validate",
    "open case",
    "contain",
    "protect",
    "snapshot",
    "copy",
    "image",
    "memory",
    "manifest",
    "examine",
    "report",
    "close",
)


def human_size(size: float | int | None) -> str:
    """1536 -> '1.5 KiB'; bytes below 1 KiB as they are."""
    if size is None:
        return "?"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def clock_text(seconds: float) -> str:
    """Elapsed time as the lines show it: 7s, 1m05s, 1h02m."""
    whole = max(0, int(seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def _timestamp(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _json(text: Any) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except (TypeError, json.JSONDecodeError):
        return {}
    return value if isinstance(value, dict) else {}


def _error_message(cause: str) -> str:
    document = _json(cause)
    return str(document.get("errorMessage") or cause or "")


@dataclass(frozen=True)
class Line:
    """One stage line: `kind` is start, end, fail or note; `elapsed` is seconds since the execution started."""

    elapsed: float
    kind: str
    stage: str
    detail: str = ""
    seconds: float | None = None  # how long the stage took (end and fail lines)

    @property
    def text(self) -> str:
        mark = {"start": "\u25b8", "end": "\u2713", "fail": "\u2717", "note": "\u00b7"}[self.kind]
        took = f" ({self.seconds:.1f} s)" if self.seconds is not None else ""
        tail = f": {self.detail}" if self.detail else ""
        verb = " started" if self.kind == "start" and not self.detail else ""
        return f"{clock_text(self.elapsed):>6} {mark} {self.stage}{verb}{took}{tail}"


@dataclass
class VolumeProgress:
    volume_id: str
    key: str = ""
    size: int | None = None  # from the imaging state once the first invocation returns, else the snapshot's
    written: int = 0
    started: datetime | None = None
    done: bool = False
    invocations: int = 0
    uploaded: int | None = None  # bytes in the in-progress multipart upload, last time it was read
    upload_rate: float | None = None


@dataclass
class Tracker:
    """Execution history events in, stage lines out; what is running now for the status line."""

    started: datetime | None = None
    case_id: str = ""
    status: str = "RUNNING"
    error: str = ""
    cause: str = ""
    output: str = ""
    created: bool = True
    running: dict[str, tuple[datetime, str]] = field(default_factory=dict)  # stage -> (since, step)
    volumes: dict[str, VolumeProgress] = field(default_factory=dict)
    snapshot_sizes: dict[str, int] = field(default_factory=dict)
    memory_key: str = ""
    memory_total: int | None = None
    memory_uploaded: int | None = None
    states: list[str] = field(default_factory=list)
    last_event: datetime | None = None
    last_id: int = 0
    # What each event belongs to, following previousEventId: (state name, volume id).
    _owner: dict[int, tuple[str, str]] = field(default_factory=dict)
    _retries: dict[str, int] = field(default_factory=dict)

    def elapsed(self, moment: datetime) -> float:
        return (moment - self.started).total_seconds() if self.started else 0.0

    def _start(self, stage: str, moment: datetime, step: str = "") -> list[Line]:
        if stage in self.running:
            self.running[stage] = (self.running[stage][0], step or self.running[stage][1])
            return []
        self.running[stage] = (moment, step)
        return [Line(self.elapsed(moment), "start", stage, step)]

    def _end(self, stage: str, moment: datetime, detail: str = "", kind: str = "end") -> list[Line]:
        since, _ = self.running.pop(stage, (moment, ""))
        return [Line(self.elapsed(moment), kind, stage, detail, (moment - since).total_seconds())]

    def feed(self, events: Sequence[Mapping[str, Any]]) -> list[Line]:
        lines: list[Line] = []
        for event in sorted(events, key=lambda e: int(e["id"])):
            if int(event["id"]) <= self.last_id:
                continue
            self.last_id = int(event["id"])
            lines.extend(self._one(event))
        return lines

    def _one(self, event: Mapping[str, Any]) -> list[Line]:
        kind = str(event.get("type", ""))
        moment = _timestamp(event["timestamp"])
        self.last_event = moment
        event_id, previous = int(event["id"]), int(event.get("previousEventId") or 0)
        owner_state, owner_volume = self._owner.get(previous, ("", ""))
        if kind == "ExecutionStarted":
            self.started = moment
            return []
        if kind in _EXECUTION_END:
            self.status = _EXECUTION_END[kind]
            details: Mapping[str, Any] = next((v for k, v in event.items() if k.endswith("EventDetails")), {}) or {}
            self.error = str(details.get("error", ""))
            self.cause = str(details.get("cause", ""))
            self.output = str(details.get("output", ""))
            return []
        entered = event.get("stateEnteredEventDetails")
        if entered and kind.endswith("StateEntered"):
            name = str(entered.get("name", ""))
            volume = owner_volume
            if name == "ImageVolume":
                volume = str(_json(entered.get("input")).get("VolumeId") or owner_volume)
            self._owner[event_id] = (name, volume)
            self.states.append(name)
            return self._entered(name, volume, _json(entered.get("input")), moment)
        exited = event.get("stateExitedEventDetails")
        if exited and kind.endswith("StateExited"):
            name = str(exited.get("name", ""))
            self._owner[event_id] = (name, owner_volume)
            return self._exited(name, owner_volume, _json(exited.get("output")), moment)
        self._owner[event_id] = (owner_state, owner_volume)
        if kind == "LambdaFunctionSucceeded":
            output = _json((event.get("lambdaFunctionSucceededEventDetails") or {}).get("output"))
            return self._returned(owner_state, owner_volume, output, moment)
        if kind in ("LambdaFunctionFailed", "LambdaFunctionTimedOut") and owner_state:
            # A task that polls by Retry (NotReady) fails until what it waits for is ready.
            self._retries[owner_state] = self._retries.get(owner_state, 0) + 1
        return []

    def _entered(self, name: str, volume: str, given: dict[str, Any], moment: datetime) -> list[Line]:
        if name == "ImageVolume":
            progress = self.volumes.setdefault(volume, VolumeProgress(volume))
            progress.key = progress.key or (f"{given.get('CaseId')}/disk/{volume}.img" if given.get("CaseId") else "")
            progress.size = progress.size or self.snapshot_sizes.get(volume)
            if progress.started is None:
                progress.started = moment
                return self._start(f"image {volume}", moment)
            return []
        if name in MEMORY_STATES:
            return self._start("memory", moment, MEMORY_STEPS.get(name, ""))
        if name.startswith("FailedAt") or name in FAIL_STATES:
            failure = given.get("Failure") or given
            stage = name.removeprefix("FailedAt").lower() if name.startswith("FailedAt") else FAIL_STATES[name]
            stage = {"finalize": "manifest"}.get(stage, stage)
            targets = ACQUISITION if stage == "acquire" else (stage,)
            message = _error_message(str(failure.get("Cause", "")))
            detail = f"{failure.get('Error', 'failed')}: {message}" if message else str(failure.get("Error", ""))
            lines: list[Line] = []
            for running in [s for s in self.running if any(s == t or s.startswith(t + " ") for t in targets if t)]:
                lines += self._end(running, moment, detail, kind="fail")
            if not lines and (stage or detail):
                lines.append(Line(self.elapsed(moment), "fail", stage or "response", detail))
            return lines
        if name == "AlreadyOpen":
            self.created = False
            return [Line(self.elapsed(moment), "note", "open case", "the instance already has an open case")]
        if name == "NothingAcquired":
            return [Line(self.elapsed(moment), "note", "acquire", "dry run: nothing acquired")]
        stage_name = STAGE_OF.get(name)
        if stage_name is None:
            return []
        stage = stage_name
        step = EXAMINE_STEPS.get(name, "") if stage == "examine" else ""
        return self._start(stage, moment, step)

    def _exited(self, name: str, volume: str, output: dict[str, Any], moment: datetime) -> list[Line]:
        if name == "OpenCase":
            case = output.get("Case") or {}
            self.case_id = str(case.get("CaseId") or self.case_id)
            self.created = case.get("Created", True) is not False
            return self._end("open case", moment, self.case_id + ("" if self.created else " (already open)"))
        if name == "ImageResult":
            progress = self.volumes.setdefault(volume, VolumeProgress(volume))
            progress.done = True
            digest = str(output.get("Sha256") or (output.get("Image") or {}).get("Sha256") or "")
            progress.size = int(output.get("Size") or progress.size or 0) or None
            detail = f"{human_size(progress.size)}, sha256 {digest[:16]}..." if digest else human_size(progress.size)
            if progress.invocations > 1:
                detail += f", {progress.invocations} invocations"
            if progress.started and progress.size:
                seconds = max((moment - progress.started).total_seconds(), 1e-3)
                detail += f", {human_size(progress.size / seconds)}/s"
            return self._end(f"image {volume}", moment, detail)
        if name == "MemoryResult":
            memory = output
            if memory.get("Acquired"):
                size = memory.get("Size")
                detail = f"{human_size(size)} captured" + (
                    f", sha256 {str(memory['Sha256'])[:16]}..." if memory.get("Sha256") else ""
                )
            else:
                detail = str(memory.get("Reason") or "not captured")
            return self._end("memory", moment, detail)
        stage = STAGE_OF.get(name)
        if stage is None:
            return []
        ends = STAGE_ENDS.get(stage, {name})
        if name not in ends or stage not in self.running:
            return []
        return self._end(stage, moment, self._summary(stage, output))

    def _summary(self, stage: str, output: dict[str, Any]) -> str:
        if stage == "validate":
            return "input valid, responder reachable"
        if stage in ("contain", "protect", "contain after failure"):
            result = output.get("Containment") or output.get("ContainmentAfterFailure") or {}
            changes = result.get("Changes")
            return f"{changes} changes" if isinstance(changes, int) else ""
        if stage == "snapshot":
            snapshots = (output.get("Snapshots") or {}).get("Snapshots") or []
            return f"{len(snapshots)} snapshots" if snapshots else "no EBS volumes"
        if stage == "copy":
            locks = (output.get("Locks") or {}).get("Locks") or []
            locked = sum(1 for lock in locks if lock.get("Locked"))
            return f"{len(locks)} snapshots in the forensic account, {locked} locked"
        if stage == "manifest":
            return f"{(output.get('Result') or {}).get('Artefacts', '?')} artefacts"
        if stage == "close":
            closed = output.get("Closed") or {}
            return f"{closed.get('Artefacts', '?')} artefacts in the manifest"
        if stage == "examine":
            return "analysis instance terminated"
        return ""

    def _returned(self, state: str, volume: str, output: dict[str, Any], moment: datetime) -> list[Line]:
        if state == "SnapshotVolumes":
            for snapshot in output.get("Snapshots") or []:
                if snapshot.get("VolumeId") and isinstance(snapshot.get("VolumeSize"), int):
                    self.snapshot_sizes[str(snapshot["VolumeId"])] = int(snapshot["VolumeSize"]) * 1024**3
        elif state == "ImageVolume" and volume:
            progress = self.volumes.setdefault(volume, VolumeProgress(volume))
            imaging = output.get("State") or {}
            progress.invocations = int(imaging.get("Invocations") or progress.invocations + 1)
            progress.size = int(imaging.get("VolumeSize") or output.get("Size") or progress.size or 0) or None
            progress.written = int(imaging.get("BytesWritten") or progress.written)
            progress.key = str(output.get("Key") or progress.key)
        elif state == "DiscoveryResult":
            memory_bytes = (output.get("Kernel") or {}).get("MemoryBytes")
            self.memory_total = int(memory_bytes) if isinstance(memory_bytes, int) else None
        elif state == "StartCapture":
            self.memory_key = str(output.get("Key") or "")
        elif state == "ExamineExaminationStatus" and output.get("Report"):
            return [Line(self.elapsed(moment), "end", "report", f"written: {output['Report']}")]
        return []

    def snapshot(self) -> Tracker:
        """A copy of what the status line reads (not the event bookkeeping), for another thread to render."""
        return Tracker(
            started=self.started,
            case_id=self.case_id,
            status=self.status,
            created=self.created,
            running=dict(self.running),
            volumes={k: VolumeProgress(**vars(v)) for k, v in self.volumes.items()},
            memory_key=self.memory_key,
            memory_total=self.memory_total,
            memory_uploaded=self.memory_uploaded,
            _retries=dict(self._retries),
        )

    # --- the live status line ----------------------------------------------------------------

    def activity(self, now: datetime) -> list[str]:
        """What is running now, one phrase each: the live status line joins them."""
        phrases: list[str] = []
        # The long work first: a cut status line loses the short waits, not the bytes.
        ordered = sorted(self.running.items(), key=lambda item: (not item[0].startswith("image "), item[0] != "memory"))
        for stage, (since, step) in ordered:
            if stage.startswith("image "):
                volume = self.volumes.get(stage.removeprefix("image "))
                phrases.append(self._imaging_phrase(volume, now) if volume else stage)
            elif stage == "memory":
                phrase = f"memory: {step or 'running'}"
                if self.memory_uploaded is not None and step.startswith("capturing"):
                    total = f" of {human_size(self.memory_total)}" if self.memory_total else ""
                    phrase += f", {human_size(self.memory_uploaded)}{total} uploaded"
                phrases.append(phrase)
            else:
                retries = sum(n for state, n in self._retries.items() if STAGE_OF.get(state) == stage)
                phrase = f"{stage}: {step}" if step else stage
                if retries:
                    phrase += f" (checked {retries + 1} times)"
                phrases.append(f"{phrase} {clock_text((now - since).total_seconds())}")
        return phrases

    def _imaging_phrase(self, volume: VolumeProgress, now: datetime) -> str:
        written = max(volume.written, volume.uploaded or 0)
        total = volume.size
        text = f"imaging {volume.volume_id}: {human_size(written)}"
        if total:
            text += f" of {human_size(total)} ({min(100, 100 * written // total)}%)"
        if volume.started and written:
            seconds = max((now - volume.started).total_seconds(), 1e-3)
            text += f", {human_size(written / seconds)}/s"
        if written >= (total or 1) and not volume.done:
            text += ", finishing"
        return text

    def active_uploads(self) -> list[str]:
        """Evidence keys whose multipart upload is worth reading now."""
        keys = [v.key for v in self.volumes.values() if v.key and not v.done and f"image {v.volume_id}" in self.running]
        step = self.running.get("memory", (None, ""))[1]
        if self.memory_key and step.startswith("capturing"):
            keys.append(self.memory_key)
        return keys

    def uploaded(self, key: str, size: int) -> None:
        for volume in self.volumes.values():
            if volume.key == key:
                volume.uploaded = size
        if key == self.memory_key:
            self.memory_uploaded = size


class UploadWatcher:
    """Bytes so far in the in-progress multipart upload of an evidence object (ListMultipartUploads, ListParts).

    Needs s3:ListBucketMultipartUploads and s3:ListMultipartUploadParts on the evidence bucket; when
    those are refused the watcher turns itself off and says why once.
    """

    def __init__(self, s3: Any, bucket: str) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.disabled = ""

    def uploaded(self, key: str) -> int | None:
        if self.disabled:
            return None
        try:
            uploads = self.s3.list_multipart_uploads(Bucket=self.bucket, Prefix=key).get("Uploads", [])
            uploads = [u for u in uploads if u.get("Key") == key]
            if not uploads:
                return None
            total = 0
            params: dict[str, Any] = {"Bucket": self.bucket, "Key": key, "UploadId": uploads[-1]["UploadId"]}
            while True:
                page = self.s3.list_parts(**params)
                total += sum(int(part.get("Size", 0)) for part in page.get("Parts", []))
                if not page.get("IsTruncated"):
                    return total
                params["PartNumberMarker"] = page["NextPartNumberMarker"]
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("NoSuchUpload",) or code in THROTTLED:
                return None
            self.disabled = f"upload progress unavailable ({code} on {exc.operation_name})"
            return None
        except BotoCoreError as exc:
            self.disabled = f"upload progress unavailable ({type(exc).__name__})"
            return None


def new_events(sfn: Any, execution_arn: str, after_id: int) -> list[dict[str, Any]]:
    """History events newer than `after_id`, oldest first (GetExecutionHistory, paginated).

    Pages are asked for newest first, so a long execution costs one page per poll. moto ignores
    `reverseOrder` and `maxResults` (one page, oldest first), hence filtering by id.
    """
    new: list[dict[str, Any]] = []
    params: dict[str, Any] = {"executionArn": execution_arn, "reverseOrder": True, "maxResults": 200}
    while True:
        page = sfn.get_execution_history(**params)
        new.extend(event for event in page["events"] if int(event["id"]) > after_id)
        reached_seen = any(int(event["id"]) <= after_id for event in page["events"])
        if reached_seen or not page.get("nextToken"):
            unique = {int(event["id"]): event for event in new}
            return [unique[i] for i in sorted(unique)]
        params["nextToken"] = page["nextToken"]


@dataclass(frozen=True)
class Tick:
    """One emission of the live status: the execution's elapsed seconds and what is running."""

    elapsed: float
    text: str


def tick_of(shown: Tracker, moment: datetime) -> Tick:
    """The status line for `moment` from a tracker's snapshot."""
    elapsed = shown.elapsed(moment)
    phrases = shown.activity(moment) or ["starting" if not shown.started else "between states"]
    return Tick(elapsed, f"{clock_text(elapsed):>6}  " + " | ".join(phrases))


class Follower:
    """Polls an execution's history (backing off while nothing changes) and its uploads; lines and ticks out.

    `step()` does one round and returns the new stage lines; `tick()` is the status line for now.
    """

    def __init__(
        self,
        sfn: Any,
        execution_arn: str,
        *,
        uploads: UploadWatcher | None = None,
        min_interval: float = 1.0,
        max_interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.sfn = sfn
        self.execution_arn = execution_arn
        self.uploads = uploads
        self.tracker = Tracker()
        self.min_interval = min_interval
        self.max_interval = max_interval
        self.interval = min_interval
        self.clock = clock
        self.now = now
        self._next_history = 0.0
        self.notes: list[str] = []
        self._lock = threading.Lock()
        # What the status line shows: replaced whole by the poller, read without a lock by the ticker.
        self._shown = Tracker()

    @property
    def done(self) -> bool:
        return self.tracker.status in TERMINAL

    def step(self) -> list[Line]:
        lines: list[Line] = []
        if self.clock() >= self._next_history:
            try:
                events = new_events(self.sfn, self.execution_arn, self.tracker.last_id)
            except ClientError as exc:
                if str(exc.response.get("Error", {}).get("Code", "")) not in THROTTLED:
                    raise
                events = []
                self.interval = min(self.interval * 2, 30.0)
            else:
                self.interval = self.min_interval if events else min(self.interval * 1.5, self.max_interval)
            with self._lock:
                lines = self.tracker.feed(events)
                self._shown = self.tracker.snapshot()
            self._next_history = self.clock() + self.interval
        if self.uploads is not None and not self.done:
            with self._lock:
                keys = self.tracker.active_uploads()
            for key in keys:
                size = self.uploads.uploaded(key)
                if size is not None:
                    with self._lock:
                        self.tracker.uploaded(key, size)
                        self._shown = self.tracker.snapshot()
            if self.uploads.disabled and self.uploads.disabled not in self.notes:
                self.notes.append(self.uploads.disabled)
        return lines

    def elapsed_now(self) -> float:
        """The execution's elapsed time now (0 until its start is known)."""
        return self._shown.elapsed(self.now())

    @property
    def shown(self) -> Tracker:
        """What the status line shows now: a snapshot the poller replaces whole (never changed in place)."""
        return self._shown

    def tick(self) -> Tick:
        # Lock-free: a slow poll (or a poller waiting for the interpreter) never holds up the status line.
        return tick_of(self._shown, self.now())

    def follow(
        self,
        on_line: Callable[[Line], None],
        on_tick: Callable[[Tick], None] | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        tick_seconds: float = 1.0,
    ) -> Tracker:
        """Until the execution ends: every `tick_seconds` new lines (history when due) and a status tick."""
        while True:
            for line in self.step():
                on_line(line)
            if self.done:
                return self.tracker
            if on_tick is not None:
                on_tick(self.tick())
            sleep(tick_seconds)

    def follow_live(
        self,
        on_line: Callable[[Line], None],
        on_tick: Callable[[Tick], None],
        *,
        tick_seconds: float = 1.0,
        poll_pause: float = 0.5,
    ) -> Tracker:
        """As `follow`, with the polling in a thread of its own: the status ticks every `tick_seconds` however
        long an API call takes (a slow GetExecutionHistory or ListParts delays the news, not the screen)."""
        lines: queue.Queue[Line | BaseException | None] = queue.Queue()
        stop = threading.Event()

        def poll() -> None:
            try:
                while not stop.is_set():
                    for line in self.step():
                        lines.put(line)
                    if self.done:
                        break
                    stop.wait(poll_pause)
            except BaseException as exc:  # handed to the caller's thread, which raises it
                lines.put(exc)
            finally:
                lines.put(None)

        poller = threading.Thread(target=poll, name="irf-progress-poller", daemon=True)
        poller.start()
        try:
            while True:
                deadline = self.clock() + tick_seconds
                while True:
                    try:
                        item = lines.get(timeout=max(0.0, deadline - self.clock()))
                    except queue.Empty:
                        break
                    if item is None:
                        return self.tracker
                    if isinstance(item, BaseException):
                        raise item
                    on_line(item)
                on_tick(self.tick())
        finally:
            stop.set()
