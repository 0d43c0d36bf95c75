"""What the responder's `irf` commands do, as plain functions over boto3 sessions and clients.

The CLI (irf/cli.py) parses options and prints; everything here is typed, takes its AWS
clients as arguments and raises the domain errors of handlers/common/errors.py (or the few
below), so each command's behaviour can be tested against moto without a terminal.

Nothing is configured by hand: the security account is the caller's (sts GetCallerIdentity),
and every resource is found by the deterministic names of handlers/common/naming.py.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from core import ids
from core.containment import Change, ContainmentRecordNotFound
from handlers.case.store import OPEN, CaseStore
from handlers.common import naming
from handlers.common.case import ACCOUNT_ID, REGION, parse_request
from handlers.common.errors import InstanceNotFound, InvalidInput, IrfError, ResponderUnavailable
from handlers.common.evidence import EvidenceStore, report_key
from handlers.common.tags import ACTION_ANALYZE, ACTION_CONTAIN
from handlers.memory import kernel
from irf import progress

ACTIONS = {"analyze": ACTION_ANALYZE, "contain": ACTION_CONTAIN}
TERMINAL = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")
REPORT_FILES = ("report.html", "report.md", "report.json")
CLI_ACTOR = "irf-cli"
# StartExecution names: 1-80 characters of letters, digits, '-' and '_'.
_EXECUTION_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
# Codes by which a missing stack shows itself: the name was derived, so the prefix or account is wrong.
_MISSING = frozenset({"ResourceNotFoundException", "StateMachineDoesNotExist", "NoSuchBucket"})

Sleep = Callable[[float], None]
Clock = Callable[[], datetime]


_CASE_PREFIX = re.compile(r"^case [A-Za-z0-9._-]+ failed at [^:]+: ")
_ERROR_MESSAGE = re.compile(r'\{"errorType":\s*"[^"]*",\s*"errorMessage":\s*"((?:[^"\\]|\\.)*)".*', re.DOTALL)


def readable_detail(detail: str) -> str:
    """A case's failure detail with a Lambda's JSON error document (often cut short) reduced to its message."""
    found = _ERROR_MESSAGE.search(detail)
    if not found:
        return detail
    try:
        message = json.loads(f'"{found.group(1)}"')
    except json.JSONDecodeError:
        message = found.group(1)
    return detail[: found.start()] + str(message)


class CaseNotFound(IrfError):
    def __init__(self, case_id: str, table: str) -> None:
        self.case_id = case_id
        super().__init__(f"case {case_id} does not exist (no record in case table {table})")


class ReportNotFound(IrfError):
    """No report objects under `<CaseId>/report/`; the message says why, from the case record."""

    def __init__(self, case_id: str, case: Mapping[str, Any] | None) -> None:
        self.case_id = case_id
        self.case = dict(case) if case is not None else None
        if case is None:
            why = "the case does not exist"
        elif case.get("Status") == OPEN:
            why = (
                f"the response is still running (case open since {case.get('OpenedAt', '?')}); "
                f"the report is written when it closes: see `irf status {case_id}`"
            )
        else:
            detail = f": {readable_detail(str(case['Detail']))}" if case.get("Detail") else ""
            dry = "; it was a dry run, which examines nothing" if case.get("DryRun") else ""
            why = f"the case is {case.get('Status', 'unknown')}{detail}{dry}"
        super().__init__(f"case {case_id} has no report: {why}")


class DeploymentNotFound(IrfError):
    """A resource the stacks create by a deterministic name is not there (wrong prefix, account or region)."""


class MissingSetting(IrfError):
    """An option the command needs was given neither on the command line nor in the environment."""


class EvidenceIntegrityError(IrfError):
    """A downloaded evidence object does not hash to the sha256 recorded when it was written."""


# ---------------------------------------------------------------------------------------------
# Where the deployment is.


@dataclass(frozen=True)
class Deployment:
    """The security account's resources, by name, plus where the evidence lives."""

    prefix: str
    security_account: str
    security_region: str
    partition: str = "aws"
    forensic_account: str = ""
    forensic_region: str = ""
    # Who runs the command: named in the custody log for what the CLI changes.
    caller_arn: str = ""

    @property
    def response_state_machine_arn(self) -> str:
        return (
            f"arn:{self.partition}:states:{self.security_region}:{self.security_account}:stateMachine:"
            f"{naming.state_machine_name(self.prefix, 'response')}"
        )

    @property
    def lime_factory_arn(self) -> str:
        return (
            f"arn:{self.partition}:states:{self.security_region}:{self.security_account}:stateMachine:"
            f"{naming.state_machine_name(self.prefix, 'lime-factory')}"
        )

    @property
    def case_table(self) -> str:
        return naming.case_table(self.prefix)

    @property
    def evidence_bucket(self) -> str:
        missing = [
            name
            for name, value in (
                ("--forensic-account (IRF_FORENSIC_ACCOUNT)", self.forensic_account),
                ("--forensic-region (IRF_FORENSIC_REGION)", self.forensic_region),
            )
            if not value
        ]
        if missing:
            raise MissingSetting(f"the evidence bucket's name needs {' and '.join(missing)}")
        return naming.evidence_bucket(self.prefix, self.forensic_account, self.forensic_region)


def locate_deployment(
    session: boto3.Session, prefix: str, *, forensic_account: str = "", forensic_region: str = ""
) -> Deployment:
    """The caller's account is the security account; the session's region is its region."""
    errors: dict[str, str] = {}
    if not prefix:
        errors["--prefix"] = "is required (or set IRF_PREFIX)"
    else:
        try:
            naming.check_prefix(prefix)
        except ValueError as exc:
            errors["--prefix"] = str(exc)
    if forensic_account and not ACCOUNT_ID.match(forensic_account):
        errors["--forensic-account"] = f"must be a 12-digit AWS account id, got {forensic_account!r}"
    if forensic_region and not REGION.match(forensic_region):
        errors["--forensic-region"] = f"must be an AWS region like eu-west-1, got {forensic_region!r}"
    if errors:
        raise InvalidInput(errors)
    if not session.region_name:
        raise MissingSetting(
            "no region for the security account: set --security-region, IRF_SECURITY_REGION, "
            "AWS_REGION or a region in your AWS profile"
        )
    identity = session.client("sts").get_caller_identity()
    return Deployment(
        prefix=prefix,
        security_account=str(identity["Account"]),
        security_region=session.region_name,
        partition=str(identity["Arn"]).split(":")[1],
        forensic_account=forensic_account,
        forensic_region=forensic_region,
        caller_arn=str(identity["Arn"]),
    )


@contextmanager
def _deployed(what: str, deployment: Deployment) -> Iterator[None]:
    try:
        yield
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in _MISSING:
            raise
        raise DeploymentNotFound(
            f"{what} not found ({exc.response['Error'].get('Message', '')}): is the stack deployed with prefix "
            f"{deployment.prefix!r} in account {deployment.security_account}, region {deployment.security_region}?"
        ) from exc


# ---------------------------------------------------------------------------------------------
# irf respond


def build_request(
    instance_id: str,
    account: str,
    region: str,
    action: str,
    *,
    case_id: str | None = None,
    dry_run: bool = False,
    retain_artefacts: bool = True,
    wait_seconds: int | None = None,
) -> dict[str, Any]:
    """The manual-execution input of DESIGN.md, validated here exactly as the state machine's first step does."""
    request: dict[str, Any] = {
        "InstanceId": instance_id,
        "Account": account,
        "Region": region,
        "Action": ACTIONS.get(action.lower(), action),
        "RetainArtefacts": retain_artefacts,
        "DryRun": dry_run,
        "Trigger": "cli",
    }
    if case_id:
        request["CaseId"] = case_id
    if wait_seconds is not None:
        request["WaitSeconds"] = wait_seconds
    errors: dict[str, str] = {}
    if action.lower() not in ACTIONS:
        errors["Action"] = f"must be analyze or contain, got {action!r}"
    try:
        parse_request(request)
    except InvalidInput as exc:
        errors = exc.fields | errors
    if errors:
        raise InvalidInput(errors)
    return request


def execution_name(instance_id: str, moment: datetime) -> str:
    stamp = moment.astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return _EXECUTION_NAME_UNSAFE.sub("-", f"irf-{instance_id}-{stamp}")[:80]


def start_response(sfn: Any, deployment: Deployment, request: Mapping[str, Any], name: str) -> str:
    with _deployed(f"response state machine {deployment.response_state_machine_arn}", deployment):
        started = sfn.start_execution(
            stateMachineArn=deployment.response_state_machine_arn, name=name, input=json.dumps(request)
        )
    return str(started["executionArn"])


@dataclass(frozen=True)
class ResponseOutcome:
    execution_arn: str
    status: str
    case_id: str
    # False when the instance already had an open case and nothing new started.
    created: bool
    error: str = ""
    cause: str = ""
    states: tuple[str, ...] = ()

    @property
    def succeeded(self) -> bool:
        return self.status == "SUCCEEDED"

    @property
    def reason(self) -> str:
        """`error: message`; a Lambda's cause is its JSON error document, of which the message is what matters."""
        # The response's cause starts "case <id> failed at <stage>: " (so the execution alone names
        # the case); the CLI has said which case already.
        message = _CASE_PREFIX.sub("", self.cause, count=1)
        try:
            document = json.loads(message)
        except json.JSONDecodeError:
            document = None
        if isinstance(document, dict) and document.get("errorMessage"):
            message = str(document["errorMessage"])
        return f"{self.error or 'no error given'}: {message or 'no cause given'}"


def _new_events(sfn: Any, execution_arn: str, after_id: int) -> list[dict[str, Any]]:
    return progress.new_events(sfn, execution_arn, after_id)


def outcome_of(sfn: Any, execution_arn: str, tracker: progress.Tracker) -> ResponseOutcome:
    """The ended execution's outcome: DescribeExecution's status and output, the case id from the history."""
    execution = sfn.describe_execution(executionArn=execution_arn)
    case_id, created = tracker.case_id, tracker.created
    if execution["status"] == "SUCCEEDED":
        output = json.loads(execution.get("output") or "{}")
        case = output.get("Case", output)
        case_id = str(case.get("CaseId") or case_id)
        created = case.get("Created", True) is not False and created
    return ResponseOutcome(
        execution_arn=execution_arn,
        status=str(execution["status"]),
        case_id=case_id,
        created=created,
        error=str(execution.get("error", "")),
        cause=str(execution.get("cause", "")),
        states=tuple(tracker.states),
    )


def follow_response(
    sfn: Any,
    execution_arn: str,
    *,
    poll_interval: float = 5.0,
    on_state: Callable[[str], None] | None = None,
    on_line: Callable[[progress.Line], None] | None = None,
    sleep: Sleep = time.sleep,
    case_id: str = "",
) -> ResponseOutcome:
    """Poll the execution until it ends, reporting each state it enters (and each stage line), in order."""
    follower = progress.Follower(sfn, execution_arn, min_interval=0.0, max_interval=poll_interval)
    reported = 0

    def line(stage_line: progress.Line) -> None:
        nonlocal reported
        if on_line is not None:
            on_line(stage_line)
        if on_state is not None:
            for state in follower.tracker.states[reported:]:
                on_state(state)
        reported = len(follower.tracker.states)

    tracker = follower.follow(line, sleep=sleep, tick_seconds=poll_interval)
    if on_state is not None:
        for state in tracker.states[reported:]:
            on_state(state)
    tracker.case_id = tracker.case_id or case_id
    return outcome_of(sfn, execution_arn, tracker)


class ExecutionNotFound(IrfError):
    """No execution of the response state machine opened the case."""


def find_case_execution(sfn: Any, deployment: Deployment, case: Mapping[str, Any]) -> str:
    """The response execution that opened `case`: started shortly before its OpenedAt, for its instance,
    and (read from its history) OpenCase returned this case id. The case record keeps no execution ARN."""
    case_id = str(case.get("CaseId", ""))
    opened = _moment(case.get("OpenedAt"))
    instance = str(case.get("InstanceId", ""))
    with _deployed(f"response state machine {deployment.response_state_machine_arn}", deployment):
        pages = sfn.get_paginator("list_executions").paginate(stateMachineArn=deployment.response_state_machine_arn)
        for page in pages:
            for execution in page.get("executions", []):
                started = execution.get("startDate")
                if opened is not None and isinstance(started, datetime):
                    if started > opened + CASE_EXECUTION_SLACK:
                        continue
                    if started < opened - CASE_EXECUTION_WINDOW:
                        continue
                described = sfn.describe_execution(executionArn=execution["executionArn"])
                if json.loads(described.get("input") or "{}").get("InstanceId") != instance:
                    continue
                tracker = progress.Tracker()
                tracker.feed(progress.new_events(sfn, execution["executionArn"], 0))
                if tracker.case_id == case_id:
                    return str(execution["executionArn"])
    raise ExecutionNotFound(
        f"no execution of {deployment.response_state_machine_arn} opened case {case_id} "
        "(Step Functions keeps execution history for 90 days)"
    )


# A case opens seconds after its execution starts (validate, check target); the window allows slow starts.
CASE_EXECUTION_WINDOW = timedelta(hours=1)
CASE_EXECUTION_SLACK = timedelta(minutes=1)


def _moment(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    try:
        if isinstance(value, int | float) or str(value).replace(".", "", 1).isdigit():
            return datetime.fromtimestamp(float(value), UTC)
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# ---------------------------------------------------------------------------------------------
# irf status / irf cases


def check_case_id(case_id: str) -> str:
    # The CLI's argument is CASE: the error names it so.
    return ids.check_case_id(case_id, field="CASE")


@dataclass(frozen=True)
class CustodyEvent:
    seq: int
    event: str
    time: str
    actor: str
    key: str
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CaseStatus:
    case: Mapping[str, Any]
    custody: tuple[CustodyEvent, ...]


def get_case(dynamodb: Any, deployment: Deployment, case_id: str) -> dict[str, Any]:
    check_case_id(case_id)
    with _deployed(f"case table {deployment.case_table}", deployment):
        case = CaseStore(dynamodb, deployment.case_table).get_case(case_id)
    if case is None:
        raise CaseNotFound(case_id, deployment.case_table)
    return case


def custody_events(s3: Any, deployment: Deployment, case_id: str) -> tuple[CustodyEvent, ...]:
    store = EvidenceStore(s3, deployment.evidence_bucket, case_id)
    events: list[CustodyEvent] = []
    with _deployed(f"evidence bucket {deployment.evidence_bucket}", deployment):
        for key in store.keys("custody/"):
            record = store.get_json(key)
            events.append(
                CustodyEvent(
                    seq=int(record.get("seq", 0)),
                    event=str(record.get("event", "")),
                    time=str(record.get("time", "")),
                    actor=str(record.get("actor", "")),
                    key=key,
                    detail=record.get("detail") or {},
                )
            )
    return tuple(sorted(events, key=lambda e: e.seq))


def case_status(dynamodb: Any, s3: Any, deployment: Deployment, case_id: str) -> CaseStatus:
    case = get_case(dynamodb, deployment, case_id)
    return CaseStatus(case=case, custody=custody_events(s3, deployment, case_id))


def recent_cases(dynamodb: Any, deployment: Deployment, limit: int = 20) -> list[dict[str, Any]]:
    if limit < 1:
        raise InvalidInput({"--limit": f"must be at least 1, got {limit}"})
    with _deployed(f"case table {deployment.case_table}", deployment):
        return CaseStore(dynamodb, deployment.case_table).recent_cases(limit)


# ---------------------------------------------------------------------------------------------
# irf report


@dataclass(frozen=True)
class DownloadedFile:
    key: str
    path: Path
    size: int
    sha256: str
    # The sha256 the evidence store recorded when it wrote the object matched the downloaded bytes.
    verified: bool


def download_report(
    s3: Any, dynamodb: Any, deployment: Deployment, case_id: str, out_dir: Path
) -> list[DownloadedFile]:
    """Fetch `<CaseId>/report/report.{html,md,json}` and check each against its recorded sha256."""
    check_case_id(case_id)
    store = EvidenceStore(s3, deployment.evidence_bucket, case_id)
    with _deployed(f"evidence bucket {deployment.evidence_bucket}", deployment):
        present = [name for name in REPORT_FILES if store.exists(report_key(case_id, name))]
    if not present:
        with _deployed(f"case table {deployment.case_table}", deployment):
            case = CaseStore(dynamodb, deployment.case_table).get_case(case_id)
        raise ReportNotFound(case_id, case)
    out_dir.mkdir(parents=True, exist_ok=True)
    downloaded: list[DownloadedFile] = []
    for name in present:
        key = report_key(case_id, name)
        obj = s3.get_object(Bucket=deployment.evidence_bucket, Key=key)
        body = obj["Body"].read()
        digest = hashlib.sha256(body).hexdigest()
        recorded = obj.get("Metadata", {}).get("sha256", "")
        if recorded and recorded != digest:
            raise EvidenceIntegrityError(
                f"s3://{deployment.evidence_bucket}/{key} hashes to {digest}, but {recorded} was recorded when it "
                "was written; not saved"
            )
        path = out_dir / name
        path.write_bytes(body)
        downloaded.append(DownloadedFile(key=key, path=path, size=len(body), sha256=digest, verified=bool(recorded)))
    return downloaded


def local_report(case_dir: Path) -> list[DownloadedFile]:
    """A downloaded case folder's report files, each checked against the sha256 its manifest.json recorded."""
    report_dir = case_dir / "report"
    present = [report_dir / name for name in REPORT_FILES if (report_dir / name).is_file()]
    if not present:
        raise ReportNotFoundInFolder(f"{case_dir} holds no report/ ({', '.join(REPORT_FILES)})")
    recorded: dict[str, str] = {}
    manifest = case_dir / "manifest.json"
    if manifest.is_file():
        try:
            listing = json.loads(manifest.read_text()).get("artefacts", [])
        except json.JSONDecodeError as exc:
            raise EvidenceIntegrityError(f"{manifest} is not JSON ({exc})") from None
        recorded = {str(a.get("key", "")).split("/", 1)[-1]: str(a.get("sha256", "")) for a in listing}
    checked: list[DownloadedFile] = []
    for path in present:
        body = path.read_bytes()
        digest = hashlib.sha256(body).hexdigest()
        relative = path.relative_to(case_dir).as_posix()
        expected = recorded.get(relative, "")
        if expected and expected != digest:
            raise EvidenceIntegrityError(f"{path} hashes to {digest}, but the manifest recorded {expected}")
        checked.append(DownloadedFile(key=relative, path=path, size=len(body), sha256=digest, verified=bool(expected)))
    return checked


class ReportNotFoundInFolder(IrfError):
    """A case folder given to `irf report` has no report files."""


# ---------------------------------------------------------------------------------------------
# irf release: the release Lambda does it (the member role trusts only the security account's
# Lambda roles, so the CLI could not act in the member account itself); the CLI invokes it.

RELEASE_FUNCTION = "release"
# The CLI waits for the release Lambda's answer (its timeout plus the invocation's) and never
# invokes it twice on its own: a second release while the first runs would race it.
RELEASE_CLIENT_CONFIG = Config(read_timeout=330, connect_timeout=10, retries={"total_max_attempts": 1})


class RemoteInvalidInput(InvalidInput):
    """The release Lambda refused the request; its message names each bad field."""

    def __init__(self, message: str) -> None:
        self.fields = {}
        Exception.__init__(self, message)


class ReleaseFailed(IrfError):
    """The release Lambda failed for a reason that is not the request's."""


@dataclass(frozen=True)
class ReleaseOutcome:
    case_id: str
    instance_id: str
    dry_run: bool
    changes: tuple[Change, ...]
    custody_key: str = ""
    # Why the release is missing from the custody log (the evidence credentials may be read-only).
    custody_error: str = ""


def _release_error(request: Mapping[str, str], function_name: str, error_type: str, message: str) -> Exception:
    """The Lambda's error as the CLI's typed error, so its exit code and one line are the usual ones."""
    instance_id = request["InstanceId"]
    known: dict[str, Callable[[], Exception]] = {
        "InvalidInput": lambda: RemoteInvalidInput(message),
        "ContainmentRecordNotFound": lambda: ContainmentRecordNotFound(request["CaseId"]),
        "InstanceNotFound": lambda: InstanceNotFound(instance_id, message.removeprefix(f"instance {instance_id} ")),
        "ResponderUnavailable": lambda: ResponderUnavailable(message),
    }
    if error_type in known:
        return known[error_type]()
    return ReleaseFailed(f"release failed in {function_name}: {error_type or 'error'}: {message or 'no message'}")


def release_contained_instance(
    lambda_client: Any,
    deployment: Deployment,
    instance_id: str,
    case_id: str,
    account: str,
    region: str,
    *,
    dry_run: bool = False,
) -> ReleaseOutcome:
    """Restore the instance to the case's `containment/before.json` by invoking the release Lambda (synchronously)."""
    request = {"InstanceId": instance_id, "Account": account, "Region": region, "CaseId": case_id}
    parse_request(request)
    function_name = naming.lambda_function_name(deployment.prefix, RELEASE_FUNCTION)
    payload = {**request, "DryRun": dry_run, "RequestedBy": f"{CLI_ACTOR} {deployment.caller_arn}".strip()}
    with _deployed(f"release function {function_name}", deployment):
        answer = lambda_client.invoke(
            FunctionName=function_name, InvocationType="RequestResponse", Payload=json.dumps(payload).encode()
        )
    body = answer["Payload"].read()
    try:
        result = json.loads(body or b"{}")
    except json.JSONDecodeError:
        result = {"errorMessage": body.decode(errors="replace")}
    if answer.get("FunctionError"):
        raise _release_error(
            request,
            function_name,
            str(result.get("errorType", "")),
            " ".join(str(result.get("errorMessage", "")).split()),
        )
    return ReleaseOutcome(
        case_id=case_id,
        instance_id=instance_id,
        dry_run=bool(result.get("DryRun", dry_run)),
        changes=tuple(Change.from_dict(c) for c in result.get("Changes", [])),
        custody_key=str(result.get("CustodyKey", "")),
        custody_error=str(result.get("CustodyError", "")),
    )


# --- the LimeFactory, by hand ------------------------------------------------------------------


def parse_kernel_specs(specs: Sequence[str]) -> list[dict[str, str]]:
    """`distro:version:release:arch` (as `uname -r`/`-m` and os-release spell them) -> LimeFactory builds.

    InvalidInput names every spec that is malformed, unsafe or has no build recipe.
    """
    if not specs:
        raise InvalidInput(
            {
                "KERNEL": "give at least one distro:version:release:arch, e.g. "
                "amzn:2023:6.1.119-129.201.amzn2023.x86_64:x86_64"
            }
        )
    builds: list[dict[str, str]] = []
    errors: dict[str, str] = {}
    for spec in specs:
        parts = spec.split(":")
        if len(parts) != 4:
            errors[spec] = "must be distro:version:release:arch (four fields separated by ':')"
            continue
        try:
            info = kernel.KernelInfo.from_event(
                {"Distro": parts[0], "DistroVersion": parts[1], "KernelRelease": parts[2], "Arch": parts[3]}
            )
        except kernel.DiscoveryUnreadable as exc:
            errors[spec] = str(exc)
            continue
        buildable, reason = kernel.is_buildable(info)
        if not buildable:
            errors[spec] = reason
            continue
        build = {
            "Distro": info.distro,
            "DistroVersion": info.distro_version,
            "KernelRelease": info.kernel_release,
            "Arch": info.arch,
        }
        if build not in builds:
            builds.append(build)
    if errors:
        raise InvalidInput(errors)
    return builds


def start_module_builds(sfn: Any, deployment: Deployment, builds: Sequence[Mapping[str, str]], moment: datetime) -> str:
    name = f"by-hand-{moment:%Y%m%dT%H%M%S}-{len(builds)}-kernels"
    with _deployed("the LimeFactory state machine", deployment):
        return str(
            sfn.start_execution(
                stateMachineArn=deployment.lime_factory_arn,
                name=name,
                input=json.dumps({"Builds": list(builds), "RequestedBy": deployment.caller_arn}),
            )["executionArn"]
        )


@dataclass(frozen=True)
class BuildOutcome:
    status: str  # the LimeFactory execution's
    results: tuple[dict[str, Any], ...]  # one per build: Build, Succeeded, Error?


def follow_module_builds(
    sfn: Any, execution_arn: str, *, poll_interval: float = 10.0, sleep: Callable[[float], None] = time.sleep
) -> BuildOutcome:
    while True:
        described = sfn.describe_execution(executionArn=execution_arn)
        if described["status"] != "RUNNING":
            break
        sleep(poll_interval)
    results: tuple[dict[str, Any], ...] = ()
    if described.get("output"):
        results = tuple(json.loads(described["output"]).get("Results", []))
    else:  # failed: the per-build results are in the last state's input
        for event in reversed(_new_events(sfn, execution_arn, 0)):
            details = event.get("stateEnteredEventDetails") or {}
            if details.get("name") == "SomeBuildsFailed":
                results = tuple(json.loads(details.get("input") or "{}").get("Results", []))
                break
    return BuildOutcome(status=str(described["status"]), results=results)
