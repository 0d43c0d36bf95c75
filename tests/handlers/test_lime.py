"""LiME format writer and reader, and the simulation's synthetic memory image."""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

import pytest

from handlers.memory import lime
from handlers.memory.lime import LimeFormatError
from simulation import synthetic_memory


def test_ranges_round_trip_with_inclusive_end_addresses(tmp_path: Path) -> None:
    ranges = [(0x1000, b"a" * 100), (0x100000, bytes(range(256)) * 3)]
    path = tmp_path / "mem.lime"
    written = lime.write_lime(path, ranges)
    assert written == path.stat().st_size == 2 * 32 + 100 + 768
    back = lime.read_lime(path)
    assert [(r.start, r.end, r.data) for r in back] == [
        (0x1000, 0x1063, b"a" * 100),
        (0x100000, 0x1002FF, bytes(range(256)) * 3),
    ]


def test_header_is_little_endian_emil_version_one_and_eight_reserved_bytes(tmp_path: Path) -> None:
    path = tmp_path / "mem.lime"
    lime.write_lime(path, [(0x2000, b"xyz")])
    raw = path.read_bytes()
    assert raw[:4] == b"EMiL"
    assert struct.unpack("<IIQQ", raw[:24]) == (0x4C694D45, 1, 0x2000, 0x2002)
    assert raw[24:32] == b"\0" * 8 and raw[32:] == b"xyz"


def test_a_truncated_range_is_a_format_error(tmp_path: Path) -> None:
    path = tmp_path / "mem.lime"
    lime.write_lime(path, [(0, b"0123456789")])
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(LimeFormatError, match="truncated LiME range"):
        lime.read_lime(path)


def test_a_truncated_header_and_a_bad_magic_are_format_errors(tmp_path: Path) -> None:
    path = tmp_path / "mem.lime"
    lime.write_lime(path, [(0, b"0123456789")])
    path.write_bytes(path.read_bytes() + b"EMiL")
    with pytest.raises(LimeFormatError, match="truncated LiME header"):
        lime.read_lime(path)
    path.write_bytes(b"\0" * 40)
    with pytest.raises(LimeFormatError, match="bad LiME magic"):
        lime.read_lime(path)


def test_overlapping_ranges_are_refused_when_writing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="overlaps"):
        lime.write_lime(tmp_path / "x.lime", [(0x1000, b"a" * 16), (0x1008, b"b")])


def test_synthetic_image_is_labelled_deterministic_and_readable(tmp_path: Path) -> None:
    first, second = tmp_path / "a.lime", tmp_path / "b.lime"
    synthetic_memory.synthetic_memory_image(first, seed=7, size=1 << 20)
    synthetic_memory.synthetic_memory_image(second, seed=7, size=1 << 20)
    assert hashlib.sha256(first.read_bytes()).digest() == hashlib.sha256(second.read_bytes()).digest()
    ranges = lime.read_lime(first)
    assert lime.is_synthetic(ranges)
    assert ranges[0].data.startswith(b"IRFORENSICS SYNTHETIC MEMORY IMAGE - NOT A REAL KERNEL")
    assert sum(r.size for r in ranges) == 1 << 20
    synthetic_memory.synthetic_memory_image(second, seed=8, size=1 << 20)
    assert first.read_bytes() != second.read_bytes()
