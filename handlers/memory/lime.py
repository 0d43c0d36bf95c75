"""The LiME memory image format: one 32-byte header per physical address range, then its bytes.

Header (little-endian, packed): magic 0x4C694D45 ("EMiL" on disk), version 1, start and end
physical address (end inclusive), 8 reserved bytes. Volatility 3's LiME layer reads the same.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from handlers.common.errors import IrfError

MAGIC = 0x4C694D45
VERSION = 1
HEADER = struct.Struct("<IIQQ8s")
# What simulation.synthetic_memory writes first; the examination refuses to analyse such an image.
SYNTHETIC_MARKER = b"IRFORENSICS SYNTHETIC MEMORY IMAGE - NOT A REAL KERNEL"


class LimeFormatError(IrfError):
    """A file is not a well-formed LiME image (bad magic or version, truncated range, bad addresses)."""


@dataclass(frozen=True)
class LimeRange:
    start: int
    end: int  # inclusive, as LiME writes it
    data: bytes

    @property
    def size(self) -> int:
        return self.end - self.start + 1


def encode_header(start: int, size: int) -> bytes:
    if size <= 0:
        raise ValueError("a LiME range holds at least one byte")
    if start < 0 or start + size - 1 > 0xFFFFFFFFFFFFFFFF:
        raise ValueError(f"range {start:#x}+{size} does not fit 64-bit physical addresses")
    return HEADER.pack(MAGIC, VERSION, start, start + size - 1, b"\0" * 8)


def write_lime_to(stream: BinaryIO, ranges: Sequence[tuple[int, bytes]]) -> int:
    """Write the ranges (start address, bytes) in order; returns the number of bytes written."""
    written = 0
    previous_end = -1
    for start, data in ranges:
        if start <= previous_end:
            raise ValueError(f"range at {start:#x} overlaps or precedes the previous one (ends {previous_end:#x})")
        stream.write(encode_header(start, len(data)))
        stream.write(data)
        written += HEADER.size + len(data)
        previous_end = start + len(data) - 1
    return written


def write_lime(path: Path | str, ranges: Sequence[tuple[int, bytes]]) -> int:
    with open(path, "wb") as stream:
        return write_lime_to(stream, ranges)


def read_lime_from(stream: BinaryIO) -> list[LimeRange]:
    ranges: list[LimeRange] = []
    offset = 0
    while True:
        header = stream.read(HEADER.size)
        if not header:
            break
        if len(header) < HEADER.size:
            raise LimeFormatError(f"truncated LiME header at offset {offset} ({len(header)} of {HEADER.size} bytes)")
        magic, version, start, end, _reserved = HEADER.unpack(header)
        if magic != MAGIC:
            raise LimeFormatError(f"bad LiME magic {magic:#010x} at offset {offset} (want {MAGIC:#010x})")
        if version != VERSION:
            raise LimeFormatError(f"unsupported LiME version {version} at offset {offset}")
        if end < start:
            raise LimeFormatError(f"LiME range at offset {offset} ends ({end:#x}) before it starts ({start:#x})")
        size = end - start + 1
        data = stream.read(size)
        if len(data) < size:
            raise LimeFormatError(f"truncated LiME range {start:#x}-{end:#x}: {len(data)} of {size} bytes present")
        ranges.append(LimeRange(start, end, data))
        offset += HEADER.size + size
    if not ranges:
        raise LimeFormatError("empty file: a LiME image has at least one range")
    return ranges


def read_lime(path: Path | str) -> list[LimeRange]:
    with open(path, "rb") as stream:
        return read_lime_from(stream)


def is_synthetic(ranges: Sequence[LimeRange]) -> bool:
    return bool(ranges) and ranges[0].data.startswith(SYNTHETIC_MARKER)
