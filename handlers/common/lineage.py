"""Each disk image's lineage, from the custody records: volume -> member snapshot -> re-encrypted copy
-> forensic copy -> image, with the account, size and KMS key at each step.

Assembled from what acquisition recorded (disk-snapshots-taken, -shared, -copied-to-forensic,
disk-image-written), so it states nothing the custody log does not; written into the manifest and
the evidence-acquired custody event. An image whose size is not its volume's is flagged, with both
numbers and what was read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

GIB = 1024**3


def _by_volume(snapshots: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    return {str(s.get("VolumeId")): s for s in snapshots if s.get("VolumeId")}


def _key_or_unencrypted(key: Any, encrypted: Any = True) -> str:
    if key:
        return str(key)
    return "unencrypted" if encrypted is False else "unknown"


def size_note(volume_gib: int, image_bytes: int, read_from: str = "", read_bytes: int = 0) -> str:
    """'' when the image holds exactly the volume; else what differs, in words for the report."""
    if not volume_gib or not image_bytes or volume_gib * GIB == image_bytes:
        return ""
    source = f" ({read_from} reports {read_bytes / GIB:g} GiB)" if read_from and read_bytes else ""
    if image_bytes < volume_gib * GIB:
        return (
            f"the image holds {image_bytes} bytes ({image_bytes / GIB:g} GiB) of a {volume_gib} GiB volume: "
            f"the snapshot that was read is smaller than the volume EC2 reports{source}; bytes beyond the image "
            "were not acquired"
        )
    return f"the image holds {image_bytes} bytes, more than the {volume_gib} GiB volume{source}"


def disk_lineage(custody: Iterable[Mapping[str, Any]], forensic_account: str = "") -> list[dict[str, Any]]:
    """One entry per imaged (or snapshotted) volume, in device order."""
    taken: dict[str, Mapping[str, Any]] = {}
    shared: dict[str, Mapping[str, Any]] = {}
    copied: dict[str, Mapping[str, Any]] = {}
    images: dict[str, Mapping[str, Any]] = {}
    member = {"Account": "", "Region": ""}
    member_key = forensic_key = ""
    for record in custody:
        event, detail = record.get("event"), record.get("detail") or {}
        if event == "disk-snapshots-taken":
            taken.update(_by_volume(detail.get("Snapshots") or []))
            member = {"Account": str(detail.get("Account", "")), "Region": str(detail.get("Region", ""))}
        elif event == "disk-snapshots-shared":
            shared.update(_by_volume(detail.get("Snapshots") or []))
            member_key = str(detail.get("MemberKmsKey", "")) or member_key
        elif event == "disk-snapshots-copied-to-forensic":
            copied.update(_by_volume(detail.get("Snapshots") or []))
            forensic_key = str(detail.get("ForensicKmsKey", "")) or forensic_key
        elif event == "disk-image-written":
            images[str(detail.get("VolumeId"))] = detail
    lineage = []
    for volume_id, original in sorted(taken.items(), key=lambda kv: (str(kv[1].get("DeviceName", "")), kv[0])):
        share, copy, image = shared.get(volume_id, {}), copied.get(volume_id, {}), images.get(volume_id, {})
        size_gib = int(original.get("VolumeSize") or 0)
        steps: list[dict[str, Any]] = [
            {
                "step": "member-snapshot",
                "snapshot_id": str(original.get("SnapshotId", "")),
                "account": member["Account"],
                "kms_key": _key_or_unencrypted(original.get("KmsKeyId"), original.get("Encrypted")),
            }
        ]
        shareable = str(share.get("ShareableSnapshotId", ""))
        if shareable and shareable != original.get("SnapshotId"):
            steps.append(
                {
                    "step": "reencrypted-copy",
                    "snapshot_id": shareable,
                    "account": member["Account"],
                    "kms_key": member_key,
                }
            )
        elif shareable:
            steps[0]["shared_as_is"] = True
        if copy.get("ForensicSnapshotId"):
            steps.append(
                {
                    "step": "forensic-copy",
                    "snapshot_id": str(copy["ForensicSnapshotId"]),
                    "account": forensic_account,
                    "kms_key": forensic_key,
                }
            )
        image_bytes = int(image.get("Size") or 0)
        if image:
            steps.append(
                {
                    "step": "image",
                    "key": str(image.get("Key", "")),
                    "sha256": str(image.get("Sha256", "")),
                    "size_bytes": image_bytes,
                    "read_from": str(image.get("Source", "")),
                    "kms_key": forensic_key,
                }
            )
        note = size_note(size_gib, image_bytes, str(image.get("Source", "")), int(image.get("SourceBytes") or 0))
        lineage.append(
            {
                "volume_id": volume_id,
                "device_name": str(original.get("DeviceName", "")),
                "account": member["Account"],
                "region": member["Region"],
                "volume_size_gib": size_gib,
                "image_size_bytes": image_bytes,
                "size_matches_volume": not note,
                "size_note": note,
                "steps": steps,
            }
        )
    return lineage
