"""What a file system's superblock says about itself: its size, its creation time, and (XFS) where an inode is.

Read straight from the image (big-endian XFS, little-endian ext2/3/4 on-disk structures), never
mounted. Used where the tools fall short: libfsxfs reports 0 as every directory's size (XFS keeps
the size of short-form, block and leaf directories in the inode core's `di_size`, which xfs_db
prints as `core.size`), and neither tool states when the file system was made.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

EXT_SUPERBLOCK_OFFSET = 1024
_EXT_MAGIC = 0xEF53
_XFS_INODE_MAGIC = b"IN"
_XFS_DI_SIZE = 56
_XFS_DI_CRTIME = 144  # v3 (v5 file system) inodes only
_XFS_BIGTIME_FLAG = 1 << 3  # di_flags2 XFS_DIFLAG2_BIGTIME
_XFS_DI_FLAGS2 = 120
_XFS_BIGTIME_EPOCH_OFFSET = 2**31


@dataclass(frozen=True)
class FileSystemFacts:
    fstype: str
    size_bytes: int
    created: datetime | None
    created_source: str  # where the creation time comes from, in words for the report


@dataclass(frozen=True)
class XfsGeometry:
    block_size: int
    ag_blocks: int
    inode_size: int
    inodes_per_block_log: int
    ag_blocks_log: int
    data_blocks: int
    root_inode: int

    def inode_offset(self, inode: int) -> int:
        ag = inode >> (self.ag_blocks_log + self.inodes_per_block_log)
        block_in_ag = (inode >> self.inodes_per_block_log) & ((1 << self.ag_blocks_log) - 1)
        slot = inode & ((1 << self.inodes_per_block_log) - 1)
        return (ag * self.ag_blocks + block_in_ag) * self.block_size + slot * self.inode_size


def _read(image: Path, offset: int, length: int) -> bytes:
    with image.open("rb") as disk:
        disk.seek(offset)
        return disk.read(length)


def xfs_geometry(image: Path, fs_offset: int) -> XfsGeometry:
    sb = _read(image, fs_offset, 512)
    if sb[:4] != b"XFSB":
        raise ValueError("no XFS superblock at this offset")
    block_size, data_blocks = struct.unpack_from(">IQ", sb, 4)
    (root_inode,) = struct.unpack_from(">Q", sb, 56)
    (ag_blocks,) = struct.unpack_from(">I", sb, 84)
    (inode_size,) = struct.unpack_from(">H", sb, 104)
    inopblog, agblklog = sb[123], sb[124]
    return XfsGeometry(block_size, ag_blocks, inode_size, inopblog, agblklog, data_blocks, root_inode)


def _xfs_inode(image: Path, fs_offset: int, geometry: XfsGeometry, inode: int) -> bytes:
    raw = _read(image, fs_offset + geometry.inode_offset(inode), geometry.inode_size)
    if raw[:2] != _XFS_INODE_MAGIC:
        raise ValueError(f"inode {inode} is not where the superblock's geometry puts it")
    return raw


def xfs_inode_sizes(image: Path, fs_offset: int, inodes: list[int]) -> dict[int, int]:
    """`di_size` of each inode (what `xfs_db -r -c 'inode N' -c 'print core.size'` prints)."""
    geometry = xfs_geometry(image, fs_offset)
    sizes = {}
    for inode in inodes:
        (sizes[inode],) = struct.unpack_from(">Q", _xfs_inode(image, fs_offset, geometry, inode), _XFS_DI_SIZE)
    return sizes


def _xfs_time(raw: bytes, offset: int, bigtime: bool) -> datetime | None:
    if bigtime:
        (nanoseconds,) = struct.unpack_from(">Q", raw, offset)
        seconds = nanoseconds // 1_000_000_000 - _XFS_BIGTIME_EPOCH_OFFSET
    else:
        seconds, _ = struct.unpack_from(">iI", raw, offset)
    return datetime.fromtimestamp(seconds, UTC) if seconds > 0 else None


def filesystem_facts(image: Path, fs_offset: int, fstype: str | None) -> FileSystemFacts | None:
    """Size and creation time of the ext2/3/4 or XFS file system at `fs_offset`; None for others."""
    if fstype == "xfs":
        geometry = xfs_geometry(image, fs_offset)
        root = _xfs_inode(image, fs_offset, geometry, geometry.root_inode)
        created = None
        if root[4] >= 3:
            (flags2,) = struct.unpack_from(">Q", root, _XFS_DI_FLAGS2)
            created = _xfs_time(root, _XFS_DI_CRTIME, bool(flags2 & _XFS_BIGTIME_FLAG))
        return FileSystemFacts(
            fstype="xfs",
            size_bytes=geometry.data_blocks * geometry.block_size,
            created=created,
            created_source="XFS records no creation time; the root directory's birth time (v3 inode) stands in",
        )
    if fstype in ("ext2", "ext3", "ext4"):
        sb = _read(image, fs_offset + EXT_SUPERBLOCK_OFFSET, 1024)
        if struct.unpack_from("<H", sb, 0x38)[0] != _EXT_MAGIC:
            return None
        blocks_lo, log_block = struct.unpack_from("<I", sb, 0x4)[0], struct.unpack_from("<I", sb, 0x18)[0]
        blocks_hi = struct.unpack_from("<I", sb, 0x150)[0] if struct.unpack_from("<I", sb, 0x60)[0] & 0x80 else 0
        mkfs_lo, mkfs_hi = struct.unpack_from("<I", sb, 0x108)[0], sb[0x27A]
        mkfs = mkfs_lo | (mkfs_hi << 32)
        return FileSystemFacts(
            fstype=fstype,
            size_bytes=((blocks_hi << 32) | blocks_lo) * (1024 << log_block),
            created=datetime.fromtimestamp(mkfs, UTC) if mkfs else None,
            created_source="superblock s_mkfs_time",
        )
    return None
