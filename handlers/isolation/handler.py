"""Lambda handlers for containment: parse the event, act in the member account, keep the evidence.

`containment/before.json` and `after.json` hold the instance's state around isolation, and
`protect-before.json` / `protect-after.json` around Analyze mode's protection (documents that do not
depend on when or how often containment ran, so a retried invocation writes the same bytes and
the write-once evidence store accepts it); the changes of each invocation go to the custody log.
A dry run writes no containment state, only a custody event with the changes it would make.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from core.containment import (
    ContainmentRecord,
    check_release,
    contain_instance,
    protect_instance,
    record_from_evidence,
    release_instance,
)
from handlers.common import naming
from handlers.common.case import CaseRequest, parse_request
from handlers.common.errors import InvalidInput
from handlers.common.evidence import EvidenceStore, containment_key
from handlers.common.notify import notify_stage
from handlers.common.sessions import assume_role, case_sessions, evidence_store
from handlers.common.settings import Settings
from handlers.common.tags import ACTION_ANALYZE

logger = Logger(service="irforensics-isolation")
TOOL = "irforensics handlers.isolation"


def _request(event: Mapping[str, Any]) -> CaseRequest:
    request = parse_request(event)
    if request.case_id is None:
        raise InvalidInput({"CaseId": "is required (the state machine's first step assigns it)"})
    logger.set_correlation_id(request.case_id)
    logger.append_keys(instance_id=request.instance_id, account=request.account, region=request.region)
    return request


def _keep(store: EvidenceStore, record: ContainmentRecord, event: str, *, protected: bool = False) -> dict[str, Any]:
    source = f"ec2:{record.account}:{record.region}:{record.instance_id}"
    keys: dict[str, str | None] = {"before": None, "after": None}
    if not record.dry_run:
        for which in ("before", "after"):
            key = containment_key(record.case_id, which, protected=protected)
            store.put_json(key, record.state_document(which), source=source, tool=TOOL)
            keys[which] = key
    # Notes (e.g. bookkeeping tags that did not fit a full instance) vary between runs: they go to
    # the custody log, never into before/after.json, which a retry must write identically.
    store.custody(
        event,
        {
            "instance_id": record.instance_id,
            "dry_run": record.dry_run,
            "changes": [c.to_dict() for c in record.changes],
            "notes": list(record.notes),
            "started_at": record.started_at,
            "finished_at": record.finished_at,
        },
        actor=TOOL,
        artefacts=[key for key in keys.values() if key],
    )
    if record.notes:
        logger.warning("containment done with reservations", extra={"notes": list(record.notes)})
    logger.info(
        "containment recorded",
        extra={"changes": len(record.changes), "dry_run": record.dry_run, "custody_event": event},
    )
    return {
        "CaseId": record.case_id,
        "InstanceId": record.instance_id,
        "Contained": not record.dry_run,
        "Changes": len(record.changes),
        "Before": keys["before"],
        "After": keys["after"],
    }


def contain(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Isolate the instance; returns {"CaseId", "InstanceId", "Contained", "Changes", "Before", "After"}."""
    request = _request(event)
    settings = Settings.from_env()
    case_id = str(request.case_id)
    sessions = case_sessions(settings, case_id)
    member = sessions.member(request.account, request.region)
    record = contain_instance(member, request.instance_id, case_id, dry_run=request.dry_run, prefix=settings.prefix)
    answer = _keep(
        evidence_store(settings, sessions), record, "containment-dry-run" if request.dry_run else "contained"
    )
    notify_stage(
        settings,
        "contained",
        {**answer, "Account": request.account, "Region": request.region, "DryRun": request.dry_run},
    )
    return answer


def protect(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Analyze mode: termination protection, shutdown=stop, volumes kept, incident tags. Same answer shape."""
    request = _request(event)
    settings = Settings.from_env()
    case_id = str(request.case_id)
    sessions = case_sessions(settings, case_id)
    record = protect_instance(
        sessions.member(request.account, request.region),
        request.instance_id,
        case_id,
        action=event.get("Action", ACTION_ANALYZE),
        dry_run=request.dry_run,
    )
    event_name = "protection-dry-run" if request.dry_run else "protected"
    return _keep(evidence_store(settings, sessions), record, event_name, protected=True)


def release_role_arn(settings: Settings, account: str, region: str) -> str:
    """The member-side role the release Lambda acts through: its own, trusted by this function's role only."""
    return naming.release_role_arn(settings.prefix, account, region)


def release(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Restore the case's containment/before.json exactly; `irf release` invokes this.

    Refuses (nothing changed) when the case has no containment record or the request names another
    instance, account or region than the case contained. Returns {"CaseId", "InstanceId", "Released",
    "DryRun", "Changes": [change...], "CustodyKey", "CustodyError"}.
    """
    # Who asked (the operator CLI names its caller) is for the custody log, not part of the case request.
    requested_by = str(event.get("RequestedBy") or "")
    request = _request({k: v for k, v in event.items() if k != "RequestedBy"})
    settings = Settings.from_env()
    case_id = str(request.case_id)
    store = evidence_store(settings, case_sessions(settings, case_id))
    record = record_from_evidence(store)
    check_release(record, request.instance_id, request.account, request.region)
    member = assume_role(release_role_arn(settings, request.account, request.region), request.region, case_id)
    released = release_instance(member, request.instance_id, record, dry_run=request.dry_run)
    changes = [c.to_dict() for c in released.changes]
    custody_key, custody_error = "", ""
    try:
        custody_key = store.custody(
            "release-dry-run" if request.dry_run else "released",
            {"instance_id": request.instance_id, "dry_run": request.dry_run, "changes": changes},
            actor=f"{TOOL} for {requested_by}" if requested_by else TOOL,
        )
    except ClientError as exc:
        # The instance is already released; failing now would hide that. Say it is not in the log.
        custody_error = f"{exc.response['Error'].get('Code')}: {exc.response['Error'].get('Message', '')}"
    logger.info("release done", extra={"changes": len(changes), "dry_run": request.dry_run})
    return {
        "CaseId": case_id,
        "InstanceId": request.instance_id,
        "Released": not request.dry_run,
        "DryRun": request.dry_run,
        "Changes": changes,
        "CustodyKey": custody_key,
        "CustodyError": custody_error,
    }
