"""Lambda handlers of the case lifecycle (thin: parse, call, shape the answer)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from handlers.case.store import CLOSED, FAILED, CaseStore
from handlers.common import evidence
from handlers.common.case import parse_request
from handlers.common.evidence import EvidenceStore, ManifestSigner
from handlers.common.lineage import disk_lineage
from handlers.common.notify import notify_stage
from handlers.common.sessions import case_sessions, evidence_store, lambda_session
from handlers.common.settings import Settings

logger = Logger(service="irforensics")
ACTOR = "irforensics-response"
INCIDENT_LOOKBACK = timedelta(hours=24)
# What an execution fails with when the original error's name is one Step Functions reserves.
RESERVED_ERROR_STAND_IN = "ResponseFailed"
# Step Functions keeps at most 32768 characters of a cause.
MAX_EXECUTION_CAUSE = 32000
SIGNING_UNAVAILABLE = frozenset(
    {"NotFoundException", "AccessDeniedException", "DisabledException", "KMSInvalidStateException"}
)


def _request_dict(event: dict[str, Any]) -> dict[str, Any]:
    # Only the wait default comes from the settings: validation itself touches nothing.
    request = parse_request(event, default_wait_seconds=Settings.from_env().default_wait_seconds)
    return {
        "CaseId": request.case_id,
        "InstanceId": request.instance_id,
        "Account": request.account,
        "Region": request.region,
        "Action": request.action,
        "RetainArtefacts": request.retain_artefacts,
        "DryRun": request.dry_run,
        "Trigger": request.trigger,
        "WaitSeconds": request.wait_seconds,
        "Finding": request.finding,
    }


def validate_input(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """First state: reject bad input (InvalidInput names every bad field) before anything is touched."""
    return _request_dict(event)


def _stores(settings: Settings, case_id: str) -> tuple[CaseStore, EvidenceStore]:
    cases = CaseStore(lambda_session().client("dynamodb"), settings.case_table)
    return cases, evidence_store(settings, case_sessions(settings, case_id))


def _signed_manifest(settings: Settings, store: EvidenceStore, extra: dict[str, Any]) -> dict[str, Any]:
    """Write the manifest and sign its digest with the forensic account's manifest key.

    A deployment without the key (or a refused Sign) still gets its manifest: the case is not
    failed for it, and `irf verify` then reports the missing signature by name.
    """
    forensic = case_sessions(settings, store.case_id).forensic()
    signer = ManifestSigner(forensic.client("kms"), evidence.manifest_signing_key_alias(settings.prefix))
    try:
        return store.write_manifest(extra, signer=signer)
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in SIGNING_UNAVAILABLE:
            raise
        logger.error("manifest not signed", extra={"error": exc.response["Error"]})
        return dict(store.get_json(evidence.manifest_key(store.case_id)))


def _notify(settings: Settings, stage: str, case: dict[str, Any]) -> None:
    notify_stage(settings, stage, case)


def open_case(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Open the case, or report the case already open for this instance (then nothing new starts)."""
    request = parse_request(event)
    settings = Settings.from_env()
    now = time.time()
    cases = CaseStore(lambda_session().client("dynamodb"), settings.case_table)
    opened = cases.open_case(request, now_epoch=int(now), now_iso=evidence.isotime())
    logger.append_keys(case_id=opened.case_id)
    if not opened.created:
        logger.info("instance already has an open case; nothing new starts", extra={"instance": request.instance_id})
        _notify(
            settings,
            "duplicate",
            {
                "CaseId": opened.case_id,
                "InstanceId": request.instance_id,
                "Account": request.account,
                "Region": request.region,
            },
        )
        return {"CaseId": opened.case_id, "Created": False, "OpenedAt": now, "Window": _incident_window(now)}
    _, store = _stores(settings, opened.case_id)
    store.custody("case-opened", {"request": request.to_dict()}, actor=ACTOR)
    logger.info("case opened", extra={"instance": request.instance_id, "action": request.action})
    _notify(settings, "opened", {**_request_dict(event), "CaseIdGiven": request.case_id, "CaseId": opened.case_id})
    return {"CaseId": opened.case_id, "Created": True, "OpenedAt": now, "Window": _incident_window(now)}


def _incident_window(opened_epoch: float) -> dict[str, str]:
    """The window the examination calls "during the incident": the day before the case opened."""
    opened = datetime.fromtimestamp(opened_epoch, UTC)
    return {"IncidentStart": evidence.isotime(opened - INCIDENT_LOOKBACK), "IncidentEnd": evidence.isotime(opened)}


def finalize_case(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Write the manifest (every artefact with size and sha256), a custody event, close the case."""
    settings = Settings.from_env()
    case_id = event["CaseId"]
    logger.append_keys(case_id=case_id)
    _, store = _stores(settings, case_id)
    memory = event.get("Memory") or {"Acquired": False, "Reason": "no memory result"}
    locks = event.get("Locks") or []
    images = event.get("Images") or []
    # Why some (or all) of the instance's disks could not be acquired by snapshot, e.g. instance store.
    disks_not_acquired = str(event.get("DisksNotAcquired") or "")
    lineage = disk_lineage((store.get_json(k) for k in store.keys("custody/")), settings.forensic_account)
    store.custody(
        "evidence-acquired",
        {
            "lineage": lineage,
            "images": [
                {
                    k: image.get(k)
                    for k in ("Key", "Sha256", "Size", "VolumeId", "SourceSnapshotId", "ForensicSnapshotId")
                }
                for image in images
            ],
            "memory": memory,
            "locks": locks,
            "disks_not_acquired": disks_not_acquired,
        },
        actor=ACTOR,
    )
    manifest = _signed_manifest(
        settings,
        store,
        {
            "request": event.get("Request", {}),
            "memory": memory,
            "snapshot_locks": locks,
            "disks_not_acquired": disks_not_acquired,
            "lineage": lineage,
            "volumes": [
                {
                    k: image.get(k)
                    for k in ("VolumeId", "SourceSnapshotId", "ForensicSnapshotId", "Key", "Sha256", "Size")
                }
                for image in images
            ],
        },
    )
    _notify(
        settings,
        "acquired",
        {
            "CaseId": case_id,
            "Images": images,
            "Memory": memory,
            "Manifest": f"s3://{settings.evidence_bucket}/{evidence.manifest_key(case_id)}",
        },
    )
    return {"CaseId": case_id, "Manifest": evidence.manifest_key(case_id), "Artefacts": len(manifest["artefacts"])}


def close_case(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Last step: the manifest once more (the examination added analysis/ and report/), case closed."""
    settings = Settings.from_env()
    case_id = event["CaseId"]
    logger.append_keys(case_id=case_id)
    cases, store = _stores(settings, case_id)
    previous = store.get_json(evidence.manifest_key(case_id)) if store.exists(evidence.manifest_key(case_id)) else {}
    carried = {
        k: v for k, v in previous.items() if k not in ("case_id", "bucket", "written_at", "artefacts", "custody_head")
    }
    examined = not event.get("DryRun") and store.exists(evidence.report_key(case_id, "report.html"))
    # The closing event first, so the final manifest lists it and anchors the chain at it.
    store.custody(
        "case-closed",
        {"examined": examined, "reports": store.keys("report/")},
        actor=ACTOR,
    )
    manifest = _signed_manifest(settings, store, carried)
    cases.close_case(
        case_id, status=CLOSED, now_iso=evidence.isotime(), detail="examined" if examined else "evidence acquired"
    )
    report = f"s3://{settings.evidence_bucket}/{evidence.report_key(case_id, 'report.html')}" if examined else ""
    if examined:
        _notify(settings, "examined", {"CaseId": case_id, "ReportUrl": report})
    return {"CaseId": case_id, "Artefacts": len(manifest["artefacts"]), "Report": report}


def _readable_cause(cause: Any) -> str:
    """A Lambda error's Cause is its JSON error document; the case keeps the message, not the stack."""
    try:
        document = json.loads(cause) if isinstance(cause, str) else cause
    except ValueError:
        return str(cause)
    if isinstance(document, dict) and "errorMessage" in document:
        return str(document["errorMessage"])
    return str(cause)


def _containment_outcome(containment: Any) -> str:
    """What the failure path's re-containment did, in words for the case and the notification."""
    if not isinstance(containment, dict) or not containment:
        return "containment after the failure: not attempted"
    if containment.get("Error"):
        return (
            f"WARNING: containment after the failure did not succeed ({containment['Error']}); check the instance now"
        )
    if containment.get("Contained"):
        return "the instance is contained"
    return f"the instance was not contained ({containment.get('Reason', 'no reason given')})"


def record_failure(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """After any failure once the case is open: write what failed and where, close as failed, notify.

    The state machine has already re-applied containment before calling this; the original error is
    returned so the execution fails with it.
    """
    settings = Settings.from_env()
    case_id = event["CaseId"]
    logger.append_keys(case_id=case_id)
    error = event.get("Error") or {}
    failure = {
        "error": error.get("Error", "Unknown"),
        "cause": _readable_cause(error.get("Cause", ""))[:8000],
        "stage": event.get("Stage", "unknown"),
        "contained_after_failure": event.get("Containment"),
    }
    cases, store = _stores(settings, case_id)
    store.custody("failure", failure, actor=ACTOR)
    _signed_manifest(settings, store, {"request": event.get("Request", {}), "failure": failure})
    cases.close_case(
        case_id,
        status=FAILED,
        now_iso=evidence.isotime(),
        detail=f"{failure['error']} at {failure['stage']}: {failure['cause'][:500]}; "
        f"{_containment_outcome(event.get('Containment'))}",
    )
    logger.error("case failed", extra=failure)
    _notify(settings, "failed", {"CaseId": case_id, **failure})
    error_name, cause = execution_failure(case_id, failure)
    return {
        "CaseId": case_id,
        "Error": failure["error"],
        "Cause": failure["cause"][:30000],
        "ExecutionError": error_name,
        "ExecutionCause": cause,
    }


def execution_failure(case_id: str, failure: dict[str, Any]) -> tuple[str, str]:
    """(Error, Cause) the execution fails with: the original error's name, and a cause that starts
    with the case id, so whoever reads only the execution (DescribeExecution) finds the case.

    Step Functions reserves the `States.` prefix (States.Timeout, States.TaskFailed, ...): a Fail
    state re-raising such a name is refused, so those fail as RESERVED_ERROR_STAND_IN with the
    original name in the cause."""
    error = str(failure["error"])
    cause = f"case {case_id} failed at {failure['stage']}: {failure['cause']}"
    if error.startswith("States."):
        error, cause = (
            RESERVED_ERROR_STAND_IN,
            f"case {case_id} failed at {failure['stage']}: {error}: {failure['cause']}",
        )
    return error, cause[:MAX_EXECUTION_CAUSE]
