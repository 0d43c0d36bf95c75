"""Where the file systems are on a disk image: The Sleuth Kit's `mmls`, then a look at each volume's magic.

GPT and MBR images list their partitions; an image without a partition table (an EBS volume
formatted whole, common for data volumes) is one file system at offset 0. Partition numbers
follow Linux (`nvme0n1p1`): GPT entry k is partition k+1, MBR primaries 1-4, logical
partitions from 5, and 0 stands for a whole, unpartitioned image.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path

from examiner import ExaminationFailed, run_tool

WHOLE_IMAGE = 0
_UNITS = re.compile(r"Units are in (\d+)-byte sectors")
_ROW = re.compile(r"^\s*\d+:\s+(\S+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(.*?)\s*$")
_EXT_MAGIC = 0xEF53
_EXT_COMPAT_HAS_JOURNAL = 0x4
_EXT_INCOMPAT_EXT4 = 0x40 | 0x80 | 0x200  # extents, 64bit, flex_bg


@dataclass(frozen=True)
class Partition:
    number: int
    offset_bytes: int
    length_bytes: int
    description: str
    sector_size: int = 512

    @property
    def offset_sectors(self) -> int:
        return self.offset_bytes // self.sector_size


def _partition_number(slot: str) -> int:
    if ":" not in slot:
        return int(slot) + 1
    table, entry = (int(part) for part in slot.split(":", 1))
    # mmls puts each logical partition in its own extended table 001, 002, ...; Linux numbers them from 5.
    return entry + 1 if table == 0 else 4 + table


def parse_mmls(output: str) -> list[Partition]:
    """Allocated partitions from `mmls` output (meta entries and unallocated gaps are left out)."""
    units = _UNITS.search(output)
    sector_size = int(units.group(1)) if units else 512
    table = output.lstrip().splitlines()[0].strip() if output.strip() else ""
    partitions = []
    for line in output.splitlines():
        row = _ROW.match(line)
        if not row:
            continue
        slot, start, _end, length, description = row.groups()
        if slot == "Meta" or set(slot) == {"-"}:
            continue
        partitions.append(
            Partition(
                number=_partition_number(slot),
                offset_bytes=int(start) * sector_size,
                length_bytes=int(length) * sector_size,
                description=f"{table}: {description}".strip(": "),
                sector_size=sector_size,
            )
        )
    return sorted(partitions, key=lambda p: p.offset_bytes)


def list_partitions(image: Path) -> list[Partition]:
    """Every partition of the image, or the whole image as partition 0 when it has no partition table."""
    if not image.is_file():
        raise ExaminationFailed(f"disk image {image} does not exist or is not a file")
    size = image.stat().st_size
    done = run_tool(["mmls", str(image)], what=f"partition table of {image.name}", check=False)
    # mmls exits non-zero with nothing on stdout when it finds no volume system it knows.
    partitions = parse_mmls(done.stdout.decode(errors="replace")) if done.returncode == 0 else []
    if not partitions:
        return [
            Partition(
                number=WHOLE_IMAGE, offset_bytes=0, length_bytes=size, description="no partition table: whole image"
            )
        ]
    return partitions


def detect_filesystem(image: Path, offset_bytes: int) -> str | None:
    """'xfs', 'ext4', 'ext3', 'ext2' from the superblock magic; None for anything else (TSK may still know it)."""
    with image.open("rb") as disk:
        disk.seek(offset_bytes)
        head = disk.read(2048)
    if head[:4] == b"XFSB":
        return "xfs"
    if len(head) >= 1024 + 0x68 and struct.unpack_from("<H", head, 1024 + 0x38)[0] == _EXT_MAGIC:
        compat, incompat = struct.unpack_from("<II", head, 1024 + 0x5C)
        if incompat & _EXT_INCOMPAT_EXT4:
            return "ext4"
        return "ext3" if compat & _EXT_COMPAT_HAS_JOURNAL else "ext2"
    return None
