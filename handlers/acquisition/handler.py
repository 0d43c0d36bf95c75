"""Lambda handlers of disk acquisition (thin: parse the event, assume the roles, call the runbook, answer).

Event and result keys are the state machine's contract (statemachines/response.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import boto3
from aws_lambda_powertools import Logger
from botocore.config import Config
from botocore.exceptions import ClientError

from handlers.acquisition import snapshots
from handlers.acquisition.block_source import BlockSource, EbsDirectBlockSource
from handlers.acquisition.imaging import TOOL, ImagingState, S3MultipartSink, image_snapshot
from handlers.acquisition.snapshots import SnapshotRef
from handlers.common import naming
from handlers.common.case import parse_bool
from handlers.common.errors import InvalidInput, NotReady, ResponderUnavailable
from handlers.common.evidence import disk_image_key
from handlers.common.sessions import BOTO_CONFIG, case_sessions, evidence_store
from handlers.common.settings import Settings

logger = Logger(service="irforensics")
ACTOR = "irforensics-acquisition"
FORENSIC = "forensic"
# Left of the Lambda timeout for draining in-flight part uploads and answering.
SAFETY_MARGIN_SECONDS = 60.0
DEFAULT_BUDGET_SECONDS = 600.0
READ_WORKERS = 16
# One connection per concurrent GetSnapshotBlock, plus the listing.
EBS_CONFIG = BOTO_CONFIG.merge(Config(max_pool_connections=READ_WORKERS + 4))


# The port between imaging and where the bytes come from: (forensic session, snapshot id) -> source.
BlockSourceFactory = Callable[[boto3.Session, str], BlockSource]


def ebs_direct_source(forensic: boto3.Session, snapshot_id: str) -> BlockSource:
    """On AWS the forensic copy is read with the EBS direct APIs. (moto's EBS direct APIs only know
    StartSnapshot snapshots: the simulation passes its own factory as `image_volume(block_source=...)`.)"""
    return EbsDirectBlockSource(forensic.client("ebs", config=EBS_CONFIG), snapshot_id)


def _require(event: dict[str, Any], *names: str) -> list[Any]:
    missing = {name: "is required" for name in names if event.get(name) in (None, "")}
    if missing:
        raise InvalidInput(missing)
    return [event[name] for name in names]


def _refs(event: dict[str, Any]) -> list[SnapshotRef]:
    listed = event.get("Snapshots")
    if not isinstance(listed, list) or not listed:
        raise InvalidInput({"Snapshots": "must be a non-empty list of snapshots"})
    try:
        return [SnapshotRef.from_event(item) for item in listed]
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput({"Snapshots": f"each needs SnapshotId and VolumeId ({exc})"}) from exc


def _key_arn(session: boto3.Session, alias: str, where: str) -> str:
    try:
        return str(session.client("kms").describe_key(KeyId=alias)["KeyMetadata"]["Arn"])
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("NotFoundException", "AccessDeniedException"):
            raise ResponderUnavailable(
                f"{where} has no usable KMS key {alias}: {exc.response['Error']['Message']} (is its stack deployed?)"
            ) from exc
        raise


def snapshot_volumes(event: dict[str, Any], context: Any) -> dict[str, Any]:
    case_id, instance_id, account, region = _require(event, "CaseId", "InstanceId", "Account", "Region")
    logger.append_keys(case_id=case_id)
    settings = Settings.from_env()
    sessions = case_sessions(settings, case_id)
    ec2 = sessions.member(account, region).client("ec2")
    taken = snapshots.take_snapshot_set(ec2, instance_id, case_id)
    answer = taken.to_event()
    evidence_store(settings, sessions).custody(
        "disk-snapshots-taken", {"InstanceId": instance_id, "Account": account, "Region": region, **answer}, actor=ACTOR
    )
    if taken.not_acquired:
        logger.warning("not every disk can be acquired by snapshot", extra={"reason": taken.not_acquired})
    logger.info("snapshot set taken", extra={"snapshots": [r.snapshot_id for r in taken.snapshots]})
    return answer


def snapshot_status(event: dict[str, Any], context: Any) -> dict[str, Any]:
    case_id, account, ids = _require(event, "CaseId", "Account", "SnapshotIds")
    logger.append_keys(case_id=case_id)
    settings = Settings.from_env()
    sessions = case_sessions(settings, case_id)
    session = sessions.forensic() if account == FORENSIC else sessions.member(account, _require(event, "Region")[0])
    progress = snapshots.snapshot_progress(session.client("ec2"), list(ids))
    if not progress.complete:
        # The state machine retries NotReady with its bounded backoff; when the bound is reached the
        # response fails (and re-contains) with this message rather than copying unfinished snapshots.
        raise NotReady(
            f"{len(progress.pending)} of {len(ids)} snapshots in {account} still pending: {', '.join(progress.pending)}"
        )
    return {"Complete": True, "Pending": []}


def share_snapshots(event: dict[str, Any], context: Any) -> dict[str, Any]:
    case_id, account, region = _require(event, "CaseId", "Account", "Region")
    logger.append_keys(case_id=case_id)
    settings = Settings.from_env()
    sessions = case_sessions(settings, case_id)
    member = sessions.member(account, region)
    key_arn = _key_arn(member, naming.member_ebs_key_alias(settings.prefix), f"member account {account} {region}")
    prepared = snapshots.prepare_for_forensic_account(
        member.client("ec2"), _refs(event), key_arn, settings.forensic_account, case_id
    )
    answer = [r.to_event() for r in prepared.snapshots]
    if prepared.newly_shared:
        evidence_store(settings, sessions).custody(
            "disk-snapshots-shared",
            {
                "Account": account,
                "Region": region,
                "SharedWith": settings.forensic_account,
                "SnapshotIds": prepared.newly_shared,
                "MemberKmsKey": key_arn,
                "Snapshots": answer,
            },
            actor=ACTOR,
        )
    if prepared.pending:
        # Re-encrypted copies still being made: call again (what is shared stays shared and recorded).
        raise NotReady(
            f"{len(prepared.pending)} re-encrypted snapshot copies still pending: {', '.join(prepared.pending)}"
        )
    return {"Snapshots": answer, "PendingCopies": []}


def copy_to_forensic(event: dict[str, Any], context: Any) -> dict[str, Any]:
    case_id, region = _require(event, "CaseId", "Region")
    logger.append_keys(case_id=case_id)
    settings = Settings.from_env()
    sessions = case_sessions(settings, case_id)
    forensic = sessions.forensic()
    key_arn = _key_arn(forensic, naming.forensic_key_alias(settings.prefix), "the forensic account")
    copies = snapshots.copy_into_forensic_account(
        forensic.client("ec2"),
        _refs(event),
        key_arn,
        case_id,
        source_region=region,
        source_account=str(event.get("Account", "")),
    )
    answer = [r.to_event() for r in copies]
    evidence_store(settings, sessions).custody(
        "disk-snapshots-copied-to-forensic",
        {"SourceRegion": region, "ForensicKmsKey": key_arn, "Snapshots": answer},
        actor=ACTOR,
    )
    return {"Snapshots": answer}


def lock_snapshots(event: dict[str, Any], context: Any) -> dict[str, Any]:
    (case_id,) = _require(event, "CaseId")
    logger.append_keys(case_id=case_id)
    settings = Settings.from_env()
    sessions = case_sessions(settings, case_id)
    if event.get("SnapshotIds"):
        ids = [str(i) for i in event["SnapshotIds"]]
    else:
        ids = [r.forensic_snapshot_id for r in _refs(event)]
        if not all(ids):
            raise InvalidInput({"Snapshots": "every snapshot needs its ForensicSnapshotId before it is locked"})
    days = int(event.get("RetentionDays") or settings.retention_days)
    mode = str(event.get("LockMode") or "governance").lower()
    forensic = sessions.forensic()
    results = snapshots.lock_snapshots(forensic.client("ec2"), ids, days, mode)
    locks = [{"SnapshotId": r.snapshot_id, "Locked": r.locked, "Detail": r.detail} for r in results]
    evidence_store(settings, sessions).custody(
        "disk-snapshots-locked", {"Mode": mode, "RetentionDays": days, "Locks": locks}, actor=ACTOR
    )
    if not all(r.locked for r in results):
        logger.warning("snapshot lock not applied", extra={"locks": locks})
    return {"Locks": locks}


def _budget_seconds(event: dict[str, Any], context: Any) -> float:
    if context is not None and hasattr(context, "get_remaining_time_in_millis"):
        return max(1.0, context.get_remaining_time_in_millis() / 1000.0 - SAFETY_MARGIN_SECONDS)
    return float(event.get("BudgetSeconds") or DEFAULT_BUDGET_SECONDS)


def _forensic_copy(forensic: boto3.Session, snapshot_id: str) -> dict[str, Any]:
    """The forensic copy's lineage as its tags and EC2 record it (for the custody log; {} if unreadable)."""
    try:
        [snapshot] = forensic.client("ec2", config=BOTO_CONFIG).describe_snapshots(SnapshotIds=[snapshot_id])[
            "Snapshots"
        ]
    except (ClientError, ValueError):
        return {}
    tags = {t["Key"]: t["Value"] for t in snapshot.get("Tags", [])}
    return {
        "VolumeSize": int(snapshot.get("VolumeSize") or 0),
        "KmsKeyId": str(snapshot.get("KmsKeyId") or ""),
        "Account": tags.get(snapshots.SOURCE_ACCOUNT_TAG, ""),
        "MemberSnapshotId": tags.get(snapshots.SOURCE_SNAPSHOT_TAG, ""),
        "ReencryptedSnapshotId": tags.get(snapshots.SHARED_SNAPSHOT_TAG, ""),
    }


def image_volume(
    event: dict[str, Any], context: Any, *, block_source: BlockSourceFactory = ebs_direct_source
) -> dict[str, Any]:
    """Image one forensic snapshot into `<CaseId>/disk/<VolumeId>.img`; call again with the State until Done."""
    case_id, volume_id, forensic_snapshot_id = _require(event, "CaseId", "VolumeId", "ForensicSnapshotId")
    member_snapshot_id = str(event.get("SourceSnapshotId", ""))
    logger.append_keys(case_id=case_id)
    settings = Settings.from_env()
    sessions = case_sessions(settings, case_id)
    forensic = sessions.forensic()
    key = disk_image_key(case_id, volume_id)
    source = block_source(forensic, forensic_snapshot_id)
    sink = S3MultipartSink(
        forensic.client("s3"),
        settings.evidence_bucket,
        key,
        source=f"ebs-snapshot:{forensic_snapshot_id} volume:{volume_id} member-snapshot:{member_snapshot_id}",
    )
    previous = ImagingState.from_dict(event["State"]) if event.get("State") else None
    state = image_snapshot(
        source,
        sink,
        previous,
        max_seconds=_budget_seconds(event, context),
        workers=int(event.get("Workers") or READ_WORKERS),
    )
    if state.done and not (previous and previous.done):
        copy = _forensic_copy(forensic, forensic_snapshot_id)
        evidence_store(settings, sessions).custody(
            "disk-image-written",
            {
                "Key": key,
                "Sha256": state.sha256,
                "Size": state.volume_size,
                "DigestKey": key + ".sha256",
                "VolumeId": volume_id,
                "VolumeSize": copy.get("VolumeSize", 0),
                "Account": event.get("Account") or copy.get("Account", ""),
                "MemberSnapshotId": member_snapshot_id or copy.get("MemberSnapshotId", ""),
                "ReencryptedSnapshotId": copy.get("ReencryptedSnapshotId", ""),
                "ForensicSnapshotId": forensic_snapshot_id,
                "ForensicKmsKey": copy.get("KmsKeyId", ""),
                "Tool": TOOL,
                # What the bytes were read from, and the size it reports (on AWS the forensic copy itself).
                "Source": source.name,
                "SourceBytes": source.volume_size_bytes,
                "ListedBlocks": state.listed_blocks_read,
                "Invocations": state.invocations,
                "StartedAt": state.started_at,
                "FinishedAt": state.finished_at,
            },
            actor=ACTOR,
        )
        logger.info("disk image written", extra={"key": key, "sha256": state.sha256, "size": state.volume_size})
    return {"Done": state.done, "State": state.to_dict(), "Key": key, "Sha256": state.sha256, "Size": state.volume_size}


def _as_bool(value: Any, default: bool) -> bool:
    try:
        return parse_bool(value, default)
    except ValueError as exc:
        raise InvalidInput({"RetainArtefacts": str(exc)}) from None


def cleanup(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """RetainArtefacts=false: delete the member-account snapshots the case created. Never evidence."""
    case_id, account, region = _require(event, "CaseId", "Account", "Region")
    logger.append_keys(case_id=case_id)
    # Deleting is the exception: without an explicit RetainArtefacts=false nothing is removed (DESIGN default).
    if _as_bool(event.get("RetainArtefacts"), default=True):
        return {"Deleted": [], "Detail": "RetainArtefacts is true: nothing deleted"}
    settings = Settings.from_env()
    sessions = case_sessions(settings, case_id)
    ec2 = sessions.member(account, region).client("ec2")
    deleted = snapshots.cleanup_intermediate(ec2, case_id, keep={str(k) for k in event.get("Keep") or []})
    evidence_store(settings, sessions).custody(
        "intermediate-snapshots-deleted", {"Account": account, "Region": region, "SnapshotIds": deleted}, actor=ACTOR
    )
    return {"Deleted": deleted, "Detail": f"deleted {len(deleted)} intermediate snapshot(s) in {account}"}
