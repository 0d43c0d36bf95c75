"""Put a disk image's bytes into a snapshot with the EBS direct APIs (what the simulation's volumes hold)."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

EBS_BLOCK_SIZE = 512 * 1024
GIB = 1024**3


def write_snapshot(ebs: Any, image: Path, *, description: str) -> str:
    """A snapshot (whole GiB, the EBS unit) holding `image` from byte 0; all-zero blocks stay unwritten,
    as on EBS, where unlisted blocks read as zeros."""
    size = image.stat().st_size
    volume_gib = max(1, -(-size // GIB))
    snapshot_id: str = ebs.start_snapshot(VolumeSize=volume_gib, Description=description)["SnapshotId"]
    written = 0
    zero = bytes(EBS_BLOCK_SIZE)
    with image.open("rb") as handle:
        index = 0
        while chunk := handle.read(EBS_BLOCK_SIZE):
            block = chunk.ljust(EBS_BLOCK_SIZE, b"\0")
            if block != zero:
                ebs.put_snapshot_block(
                    SnapshotId=snapshot_id,
                    BlockIndex=index,
                    BlockData=block,
                    DataLength=len(block),
                    Checksum=base64.b64encode(hashlib.sha256(block).digest()).decode(),
                    ChecksumAlgorithm="SHA256",
                )
                written += 1
            index += 1
    ebs.complete_snapshot(SnapshotId=snapshot_id, ChangedBlocksCount=written)
    return snapshot_id
