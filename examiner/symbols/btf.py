"""A reader for BTF, the kernel's compact type format (Documentation/bpf/btf.rst).

BTF is what every mainstream distribution kernel built with CONFIG_DEBUG_INFO_BTF carries: in
`/sys/kernel/btf/vmlinux` on the running host and in the `.BTF` section of vmlinux. It is read
here with the standard library only, because the operator CLI and the analysis host must be able
to build symbol tables without Volatility or any BTF library installed.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field

BTF_MAGIC = 0xEB9F

INT = 1
PTR = 2
ARRAY = 3
STRUCT = 4
UNION = 5
ENUM = 6
FWD = 7
TYPEDEF = 8
VOLATILE = 9
CONST = 10
RESTRICT = 11
FUNC = 12
FUNC_PROTO = 13
VAR = 14
DATASEC = 15
FLOAT = 16
DECL_TAG = 17
TYPE_TAG = 18
ENUM64 = 19

# Kinds that only qualify another type: ISF has no notion of them, the type they wrap is what counts.
QUALIFIERS = frozenset({VOLATILE, CONST, RESTRICT, TYPE_TAG})

INT_SIGNED = 1
INT_CHAR = 2
INT_BOOL = 4


class BTFError(ValueError):
    """The bytes are not BTF this reader understands; the message says what is wrong."""


@dataclass(frozen=True)
class Member:
    name: str
    type_id: int
    bit_offset: int
    bitfield_size: int = 0  # 0: not a bit field


@dataclass
class BTFType:
    """One type record. `size` for INT/STRUCT/UNION/ENUM/FLOAT/DATASEC, `ref` for the kinds that point at
    another type (PTR, TYPEDEF, qualifiers, FUNC, VAR, FUNC_PROTO's return type, ARRAY's element)."""

    type_id: int
    kind: int
    name: str
    size: int = 0
    ref: int = 0
    kind_flag: bool = False
    vlen: int = 0
    members: list[Member] = field(default_factory=list)
    enumerators: list[tuple[str, int]] = field(default_factory=list)
    count: int = 0  # ARRAY element count
    int_encoding: int = 0
    int_bits: int = 0
    int_offset: int = 0
    linkage: int = 0  # VAR and FUNC
    datasec: list[tuple[int, int, int]] = field(default_factory=list)  # (var type id, offset, size)


@dataclass
class BTF:
    types: list[BTFType]  # index == type id; types[0] is void

    def __getitem__(self, type_id: int) -> BTFType:
        return self.types[type_id]

    def __len__(self) -> int:
        return len(self.types)

    def strip(self, type_id: int) -> int:
        """The type behind qualifiers and typedefs (what the bytes in memory are)."""
        seen = 0
        while type_id and self.types[type_id].kind in QUALIFIERS | {TYPEDEF}:
            type_id = self.types[type_id].ref
            seen += 1
            if seen > 64:
                raise BTFError(f"typedef/qualifier loop at type {type_id}")
        return type_id

    def size_of(self, type_id: int) -> int:
        type_id = self.strip(type_id)
        if not type_id:
            return 0
        t = self.types[type_id]
        if t.kind == PTR:
            return 8
        if t.kind == ARRAY:
            return t.count * self.size_of(t.ref)
        return t.size


def _strings(blob: bytes, offset: int, length: int) -> bytes:
    table = blob[offset : offset + length]
    if length and table[:1] != b"\x00":
        raise BTFError("the BTF string table does not start with an empty string")
    return table


def parse_btf(blob: bytes) -> BTF:
    """Parse a whole BTF blob (little-endian, as on x86_64 and arm64)."""
    base, type_off, type_len, strings = _header(blob)
    name = _names(strings)
    types: list[BTFType] = [BTFType(type_id=0, kind=0, name="void")]
    pos = base + type_off
    end = pos + type_len
    while pos < end:
        name_off, info, size_or_type = _UNPACK3(blob, pos)
        pos += 12
        kind = (info >> 24) & 0x1F
        vlen = info & 0xFFFF
        kind_flag = bool(info >> 31)
        t = BTFType(type_id=len(types), kind=kind, name=name(name_off), kind_flag=kind_flag, vlen=vlen)
        if kind in (INT, STRUCT, UNION, ENUM, FLOAT, DATASEC, ENUM64):
            t.size = size_or_type
        else:
            t.ref = size_or_type
        pos = _read_kind_data(t, blob, pos, name)
        types.append(t)
    if pos != end:
        raise BTFError("the BTF type section does not end on a type boundary")
    return BTF(types=types)


_UNPACK3 = struct.Struct("<III").unpack_from
_UNPACK_I = struct.Struct("<i").unpack_from


def _header(blob: bytes) -> tuple[int, int, int, bytes]:
    """Where the type section starts (header length, offset, length) and the string table."""
    if len(blob) < 24:
        raise BTFError(f"{len(blob)} bytes is too short for a BTF header")
    magic, version, _flags, hdr_len = struct.unpack_from("<HBBI", blob, 0)
    if magic != BTF_MAGIC:
        if struct.unpack_from(">H", blob, 0)[0] == BTF_MAGIC:
            raise BTFError("big-endian BTF is not supported")
        raise BTFError(f"not BTF: magic {magic:#06x}, expected {BTF_MAGIC:#06x}")
    if version != 1:
        raise BTFError(f"BTF version {version} is not supported (only version 1 exists)")
    type_off, type_len, str_off, str_len = struct.unpack_from("<IIII", blob, 8)
    if hdr_len + max(type_off + type_len, str_off + str_len) > len(blob):
        raise BTFError("the BTF header points past the end of the data")
    return hdr_len, type_off, type_len, _strings(blob, hdr_len + str_off, str_len)


def _names(strings: bytes) -> Callable[[int], str]:
    """The string at an offset of the string table (each decoded once: types share names)."""
    name_cache: dict[int, str] = {}

    def name(off: int) -> str:
        if off == 0:
            return ""
        cached = name_cache.get(off)
        if cached is None:
            end = strings.find(b"\x00", off)
            if end < 0:
                raise BTFError(f"string at {off} is not terminated")
            cached = strings[off:end].decode("utf-8", errors="replace")
            name_cache[off] = cached
        return cached

    return name


def _read_kind_data(t: BTFType, blob: bytes, pos: int, name: Callable[[int], str]) -> int:
    """Read what follows type `t`'s common header for its kind into `t`; the position after it."""
    kind, vlen, kind_flag = t.kind, t.vlen, t.kind_flag
    if kind == INT:
        (word,) = struct.unpack_from("<I", blob, pos)
        t.int_encoding = (word >> 24) & 0x0F
        t.int_offset = (word >> 16) & 0xFF
        t.int_bits = word & 0xFF
        return pos + 4
    if kind == ARRAY:
        element, _index_type, nelems = _UNPACK3(blob, pos)
        t.ref, t.count = element, nelems
        return pos + 12
    if kind in (STRUCT, UNION):
        for _ in range(vlen):
            m_name, m_type, m_offset = _UNPACK3(blob, pos)
            pos += 12
            if kind_flag:
                t.members.append(Member(name(m_name), m_type, m_offset & 0xFFFFFF, m_offset >> 24))
            else:
                t.members.append(Member(name(m_name), m_type, m_offset))
        return pos
    if kind in (ENUM, ENUM64):
        return _read_enumerators(t, blob, pos, name)
    if kind == VAR:
        (t.linkage,) = struct.unpack_from("<I", blob, pos)
        return pos + 4
    if kind == FUNC:
        t.linkage = vlen
        return pos
    if kind == DATASEC:
        for _ in range(vlen):
            t.datasec.append(_UNPACK3(blob, pos))
            pos += 12
        return pos
    if kind == FUNC_PROTO:
        return pos + 8 * vlen
    if kind == DECL_TAG:
        return pos + 4
    if kind not in (PTR, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT, FLOAT, TYPE_TAG):
        raise BTFError(f"unknown BTF kind {kind} at type {t.type_id}")
    return pos


def _read_enumerators(t: BTFType, blob: bytes, pos: int, name: Callable[[int], str]) -> int:
    for _ in range(t.vlen):
        if t.kind == ENUM:
            e_name, e_val = struct.unpack_from("<II", blob, pos)
            pos += 8
            value = _UNPACK_I(blob, pos - 4)[0] if t.kind_flag else e_val
        else:
            e_name, lo, hi = _UNPACK3(blob, pos)
            pos += 12
            value = (hi << 32) | lo
            if t.kind_flag and value >= 1 << 63:
                value -= 1 << 64
        t.enumerators.append((name(e_name), value))
    return pos
