"""Snapshots as evidence: take them, make them shareable, move them to the forensic account, lock them.

The runbook, one function per step, each safe to repeat (steps find their earlier results by
tag rather than redo them):
1. `take_snapshot_set`: one crash-consistent `CreateSnapshots` set over
   every attached EBS volume; an instance with none gets an explicit "nothing to snapshot" answer.
2. `snapshot_progress`: poll until the set (or any later copy) is complete.
3. `prepare_for_forensic_account`: re-encrypt with the member CMK where needed, then share.
4. `copy_into_forensic_account`: the forensic account's own copies under the forensic CMK.
5. `lock_snapshots`: EBS Snapshot Lock on the forensic copies for the case retention.
6. `cleanup_intermediate`: with RetainArtefacts=false, delete the member-account snapshots.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from botocore.exceptions import ClientError

from core.instances import INSTANCE_STORE, InstanceState, read_instance
from handlers.common.case import require_valid_ids
from handlers.common.errors import AcquisitionFailed, InstanceNotFound
from handlers.common.tags import CASE_TAG, MANAGED_BY_TAG, MANAGED_BY_VALUE

ARTEFACT_TAG = "irforensics:artefact"
SOURCE_SNAPSHOT_TAG = "irforensics:source-snapshot"
SOURCE_VOLUME_TAG = "irforensics:source-volume"
SOURCE_ACCOUNT_TAG = "irforensics:source-account"
SHARED_SNAPSHOT_TAG = "irforensics:shared-snapshot"
MEMBER_SNAPSHOT = "member-snapshot"
REENCRYPTED_COPY = "reencrypted-copy"
FORENSIC_COPY = "forensic-copy"
INTERMEDIATE = (MEMBER_SNAPSHOT, REENCRYPTED_COPY)
LOCK_MODES = ("governance", "compliance")
MAX_LOCK_DAYS = 36500
# What an endpoint says when it does not offer an operation at all (an older partition, an emulator).
UNSUPPORTED_CODES = frozenset(
    {"InvalidAction", "UnsupportedOperation", "NotImplemented", "UnknownOperation", "UnknownOperationException"}
)


@dataclass(frozen=True)
class SnapshotRef:
    """One volume's snapshot as it moves from the member account to the forensic account."""

    snapshot_id: str
    volume_id: str
    volume_size: int
    device_name: str = ""
    encrypted: bool = False
    kms_key_id: str = ""
    shareable_snapshot_id: str = ""
    forensic_snapshot_id: str = ""

    def to_event(self) -> dict[str, Any]:
        event: dict[str, Any] = {
            "SnapshotId": self.snapshot_id,
            "VolumeId": self.volume_id,
            "VolumeSize": self.volume_size,
            "DeviceName": self.device_name,
            "Encrypted": self.encrypted,
            "KmsKeyId": self.kms_key_id,
        }
        if self.shareable_snapshot_id:
            event["ShareableSnapshotId"] = self.shareable_snapshot_id
        if self.forensic_snapshot_id:
            event["ForensicSnapshotId"] = self.forensic_snapshot_id
        return event

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> SnapshotRef:
        return cls(
            snapshot_id=str(event["SnapshotId"]),
            volume_id=str(event["VolumeId"]),
            volume_size=int(event.get("VolumeSize", 0)),
            device_name=str(event.get("DeviceName", "")),
            encrypted=bool(event.get("Encrypted", False)),
            kms_key_id=str(event.get("KmsKeyId") or ""),
            shareable_snapshot_id=str(event.get("ShareableSnapshotId", "")),
            forensic_snapshot_id=str(event.get("ForensicSnapshotId", "")),
        )


@dataclass(frozen=True)
class Progress:
    completed: list[str]
    pending: list[str]

    @property
    def complete(self) -> bool:
        return not self.pending


@dataclass(frozen=True)
class Preparation:
    snapshots: list[SnapshotRef]
    pending: list[str]  # re-encrypted copies still being made: not shared yet, call again
    newly_shared: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class LockResult:
    snapshot_id: str
    locked: bool
    detail: str


def _tags(case_id: str, artefact: str, **extra: str) -> list[dict[str, str]]:
    tags = {CASE_TAG: case_id, MANAGED_BY_TAG: MANAGED_BY_VALUE, ARTEFACT_TAG: artefact}
    tags.update({k: v for k, v in extra.items() if v})
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def _tag(snapshot: dict[str, Any], key: str) -> str:
    return next((t["Value"] for t in snapshot.get("Tags", []) if t["Key"] == key), "")


def _own_snapshots(ec2: Any, case_id: str, artefact: str | Iterable[str]) -> list[dict[str, Any]]:
    kinds = [artefact] if isinstance(artefact, str) else list(artefact)
    found: list[dict[str, Any]] = []
    for page in ec2.get_paginator("describe_snapshots").paginate(
        OwnerIds=["self"],
        Filters=[
            {"Name": f"tag:{CASE_TAG}", "Values": [case_id]},
            {"Name": f"tag:{MANAGED_BY_TAG}", "Values": [MANAGED_BY_VALUE]},
            {"Name": f"tag:{ARTEFACT_TAG}", "Values": kinds},
        ],
    ):
        found.extend(s for s in page.get("Snapshots", []) if s.get("State") != "error")
    return sorted(found, key=lambda s: str(s.get("StartTime", "")))


@dataclass(frozen=True)
class SnapshotSet:
    """What one instance's disks yielded: the snapshot set, and what could not be snapshotted and why.

    `snapshots` is empty (and `not_acquired` says why) for an instance with no EBS volume: an
    instance-store root, or a root volume detached from a stopped instance. Instance-store
    volumes are never in a snapshot set: EBS snapshots cover EBS volumes only.
    """

    instance_id: str
    snapshots: list[SnapshotRef]
    not_acquired: str = ""

    def to_event(self) -> dict[str, Any]:
        return {"Snapshots": [r.to_event() for r in self.snapshots], "NotAcquired": self.not_acquired}


def _instance(ec2: Any, instance_id: str) -> InstanceState:
    require_valid_ids(InstanceId=instance_id)
    instance = read_instance(ec2, instance_id)
    if instance.gone:
        # A terminated instance's volumes are gone (or no longer its own): nothing to acquire.
        raise InstanceNotFound(instance_id, f"is {instance.state}: its volumes can no longer be snapshotted")
    return instance


def _not_acquired(instance: InstanceState, devices: dict[str, str]) -> str:
    """Why some (or all) of the instance's storage is not in its snapshot set; "" when nothing is missing."""
    instance_id = instance.instance_id
    if instance.root_device_type == INSTANCE_STORE:
        ebs = f"its {len(devices)} EBS volume(s) are snapshotted" if devices else "it has no EBS volumes"
        return (
            f"instance {instance_id} boots from instance store and {ebs}: instance-store volumes cannot be "
            "acquired by snapshot (EBS snapshots cover EBS volumes only); image them from inside the running "
            "instance"
        )
    if not devices:
        return (
            f"instance {instance_id} has no EBS volumes attached (was its root volume detached?): "
            "there is nothing to snapshot"
        )
    return ""


def _refs(ec2: Any, snapshot_ids: list[str], devices: dict[str, str]) -> list[SnapshotRef]:
    described = ec2.describe_snapshots(SnapshotIds=snapshot_ids)["Snapshots"]
    refs = [
        SnapshotRef(
            snapshot_id=s["SnapshotId"],
            volume_id=s["VolumeId"],
            volume_size=int(s["VolumeSize"]),
            device_name=devices.get(s["VolumeId"], ""),
            encrypted=bool(s.get("Encrypted")),
            kms_key_id=str(s.get("KmsKeyId") or ""),
        )
        for s in described
    ]
    return sorted(refs, key=lambda r: (r.device_name, r.volume_id))


def take_snapshot_set(ec2_member: Any, instance_id: str, case_id: str) -> SnapshotSet:
    """Snapshot every attached EBS volume in one crash-consistent set; reuse the case's set if taken.

    No EBS volume: no call at all, and an empty set that says why (see SnapshotSet).
    """
    require_valid_ids(InstanceId=instance_id, CaseId=case_id)
    instance = _instance(ec2_member, instance_id)
    devices = instance.attached_volumes
    reason = _not_acquired(instance, devices)
    if not devices:
        return SnapshotSet(instance_id, [], reason)
    existing: dict[str, str] = {}
    for snapshot in _own_snapshots(ec2_member, case_id, MEMBER_SNAPSHOT):
        if snapshot["VolumeId"] in devices:
            existing[snapshot["VolumeId"]] = snapshot["SnapshotId"]
    if set(existing) == set(devices):
        return SnapshotSet(instance_id, _refs(ec2_member, sorted(existing.values()), devices), reason)
    # A set missing a volume (one attached since) is not crash-consistent with it: take a new full set.
    # The volumes' own tags are not copied (CopyTagsFromSource): a volume with 48 tags would push its
    # snapshot over EC2's 50, failing the whole set, and tags the suspect host may have written do not
    # belong on evidence. The snapshot's VolumeId names its source.
    answer = ec2_member.create_snapshots(
        InstanceSpecification={"InstanceId": instance_id, "ExcludeBootVolume": False},
        Description=f"irforensics case {case_id}: {instance_id}",
        TagSpecifications=[{"ResourceType": "snapshot", "Tags": _tags(case_id, MEMBER_SNAPSHOT)}],
    )
    ids = [s["SnapshotId"] for s in answer["Snapshots"]]
    if not ids:
        raise AcquisitionFailed(f"CreateSnapshots for {instance_id} returned no snapshots")
    return SnapshotSet(instance_id, _refs(ec2_member, ids, devices), reason)


def snapshot_progress(ec2: Any, snapshot_ids: list[str]) -> Progress:
    if not snapshot_ids:
        return Progress([], [])
    described = ec2.describe_snapshots(SnapshotIds=list(snapshot_ids))["Snapshots"]
    by_id = {s["SnapshotId"]: s for s in described}
    completed: list[str] = []
    pending: list[str] = []
    for snapshot_id in snapshot_ids:
        snapshot = by_id.get(snapshot_id)
        if snapshot is None:
            raise AcquisitionFailed(f"snapshot {snapshot_id} has disappeared")
        state = snapshot.get("State")
        if state == "error":
            raise AcquisitionFailed(
                f"snapshot {snapshot_id} of volume {snapshot.get('VolumeId')} failed: "
                f"{snapshot.get('StateMessage') or 'no reason given'}"
            )
        (completed if state == "completed" else pending).append(snapshot_id)
    return Progress(completed, pending)


def needs_reencryption(snapshot: SnapshotRef, member_key_arn: str) -> bool:
    # Only our CMK's key policy is known to grant the forensic account; unencrypted, aws/ebs
    # (never shareable) and any other key are copied under it first.
    return not snapshot.encrypted or snapshot.kms_key_id != member_key_arn


def _case_copies(ec2: Any, case_id: str, purpose: str) -> dict[str, str]:
    """Original snapshot id -> the copy this case already made of it for `purpose` (by the copies' tags)."""
    return {_tag(s, SOURCE_SNAPSHOT_TAG): s["SnapshotId"] for s in _own_snapshots(ec2, case_id, purpose)}


def _encrypted_copy(
    ec2: Any, source_id: str, source_region: str, key_arn: str, description: str, tags: list[dict[str, str]]
) -> str:
    """Start a copy of snapshot `source_id` encrypted under `key_arn`, tagged with `tags`; its id."""
    return str(
        ec2.copy_snapshot(
            SourceSnapshotId=source_id,
            SourceRegion=source_region,
            Encrypted=True,
            KmsKeyId=key_arn,
            Description=description,
            TagSpecifications=[{"ResourceType": "snapshot", "Tags": tags}],
        )["SnapshotId"]
    )


def start_reencryption(
    ec2_member: Any, snapshots: list[SnapshotRef], member_key_arn: str, case_id: str
) -> list[SnapshotRef]:
    """Start (once) a copy under the member CMK of each snapshot that cannot be shared as it is."""
    copies = _case_copies(ec2_member, case_id, REENCRYPTED_COPY)
    region = ec2_member.meta.region_name
    prepared = []
    for ref in snapshots:
        if not needs_reencryption(ref, member_key_arn):
            prepared.append(replace(ref, shareable_snapshot_id=ref.snapshot_id))
            continue
        tags = _tags(
            case_id, REENCRYPTED_COPY, **{SOURCE_SNAPSHOT_TAG: ref.snapshot_id, SOURCE_VOLUME_TAG: ref.volume_id}
        )
        description = f"irforensics case {case_id}: {ref.snapshot_id} re-encrypted for sharing"
        copy_id = copies.get(ref.snapshot_id) or _encrypted_copy(
            ec2_member, ref.snapshot_id, region, member_key_arn, description, tags
        )
        prepared.append(replace(ref, shareable_snapshot_id=copy_id))
    return prepared


def share_with(ec2_member: Any, snapshot_ids: list[str], account: str) -> list[str]:
    """Grant createVolumePermission to `account`; return the snapshots that were not shared before."""
    newly = []
    for snapshot_id in snapshot_ids:
        granted = ec2_member.describe_snapshot_attribute(SnapshotId=snapshot_id, Attribute="createVolumePermission")
        if any(p.get("UserId") == account for p in granted.get("CreateVolumePermissions", [])):
            continue
        ec2_member.modify_snapshot_attribute(
            SnapshotId=snapshot_id, Attribute="createVolumePermission", OperationType="add", UserIds=[account]
        )
        newly.append(snapshot_id)
    return newly


def prepare_for_forensic_account(
    ec2_member: Any, snapshots: list[SnapshotRef], member_key_arn: str, forensic_account: str, case_id: str
) -> Preparation:
    """Re-encrypt where needed and share whatever is complete; call again until `pending` is empty.

    A copy has to complete before it can be shared, so one call starts the copies and shares
    what is ready, and the state machine waits and calls again.
    """
    prepared = start_reencryption(ec2_member, snapshots, member_key_arn, case_id)
    progress = snapshot_progress(ec2_member, [r.shareable_snapshot_id for r in prepared])
    newly = share_with(ec2_member, progress.completed, forensic_account)
    return Preparation(prepared, progress.pending, newly)


def copy_into_forensic_account(
    ec2_forensic: Any,
    shared: list[SnapshotRef],
    forensic_key_arn: str,
    case_id: str,
    source_region: str,
    source_account: str = "",
) -> list[SnapshotRef]:
    """The forensic account's own copy of each shared snapshot, under the forensic CMK (once per snapshot)."""
    copies = _case_copies(ec2_forensic, case_id, FORENSIC_COPY)
    result = []
    for ref in shared:
        if not ref.shareable_snapshot_id:
            raise AcquisitionFailed(f"snapshot {ref.snapshot_id} has not been shared with the forensic account")
        extra = {
            SOURCE_SNAPSHOT_TAG: ref.snapshot_id,
            SOURCE_VOLUME_TAG: ref.volume_id,
            SOURCE_ACCOUNT_TAG: source_account,
        }
        if ref.shareable_snapshot_id != ref.snapshot_id:
            extra[SHARED_SNAPSHOT_TAG] = ref.shareable_snapshot_id
        tags = _tags(case_id, FORENSIC_COPY, **extra)
        description = f"irforensics case {case_id}: evidence copy of {ref.snapshot_id} ({ref.volume_id})"
        copy_id = copies.get(ref.snapshot_id) or _encrypted_copy(
            ec2_forensic, ref.shareable_snapshot_id, source_region, forensic_key_arn, description, tags
        )
        result.append(replace(ref, forensic_snapshot_id=copy_id))
    return result


def lock_snapshots(
    ec2_forensic: Any, snapshot_ids: list[str], retention_days: int, mode: str = "governance"
) -> list[LockResult]:
    """EBS Snapshot Lock for the case retention; an endpoint without the API is reported, never assumed locked."""
    if mode not in LOCK_MODES:
        raise ValueError(f"lock mode is one of {LOCK_MODES}, not {mode!r}")
    if not 1 <= retention_days <= MAX_LOCK_DAYS:
        raise ValueError(f"lock duration must be 1-{MAX_LOCK_DAYS} days, not {retention_days}")
    results = []
    for snapshot_id in snapshot_ids:
        try:
            answer = ec2_forensic.lock_snapshot(SnapshotId=snapshot_id, LockMode=mode, LockDuration=retention_days)
        except NotImplementedError as exc:  # an in-process emulator (moto) without LockSnapshot
            results.append(LockResult(snapshot_id, False, f"lock skipped: LockSnapshot is not available here ({exc})"))
            continue
        except ClientError as exc:
            error = exc.response["Error"]
            if error.get("Code") in UNSUPPORTED_CODES:
                results.append(
                    LockResult(
                        snapshot_id,
                        False,
                        f"lock skipped: {error.get('Code')}: {error.get('Message', '')}".rstrip(": "),
                    )
                )
                continue
            raise AcquisitionFailed(
                f"could not lock snapshot {snapshot_id}: {error.get('Code')}: {error.get('Message', '')}"
            ) from exc
        results.append(
            LockResult(
                snapshot_id,
                True,
                f"{answer.get('LockState', mode)} lock for {answer.get('LockDuration', retention_days)} days"
                + (f", expires {answer['LockExpiresOn']}" if answer.get("LockExpiresOn") else ""),
            )
        )
    return results


def cleanup_intermediate(ec2_member: Any, case_id: str, keep: set[str] | None = None) -> list[str]:
    """Delete the member-account snapshots this case created (the set and the re-encrypted copies).

    Only snapshots carrying the case id, the managed-by tag and an intermediate artefact tag
    are touched; the forensic copies live in another account and evidence objects in S3.
    """
    deleted = []
    for snapshot in _own_snapshots(ec2_member, case_id, INTERMEDIATE):
        snapshot_id = snapshot["SnapshotId"]
        if snapshot_id in (keep or set()):
            continue
        try:
            ec2_member.delete_snapshot(SnapshotId=snapshot_id)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "InvalidSnapshot.NotFound":
                raise
        deleted.append(snapshot_id)
    return sorted(deleted)
