"""BTF plus symbol addresses plus the banner -> a Volatility 3 symbol table (ISF, schema 6.2.0).

Written from the ISF schema Volatility ships (volatility3/schemas/schema-6.2.0.json) and the BTF
format; no converter's code. What BTF does not say is supplied here:
- ISF has no typedefs or qualifiers: every type is described by what it finally is.
- Anonymous structs and unions get names (`unnamed_struct_<btf id>`) and the members holding them
  are marked `anonymous`, which makes Volatility lift their fields into the parent.
- Some struct names occur twice in vmlinux BTF (different definitions in different files); the
  largest keeps the name, the others are `<name>__<btf id>`, and every reference follows its own.
- Globals are typed from BTF's VARs (per-CPU only) and from `globals.GLOBAL_TYPES` for the rest;
  functions are typed as functions (sockscan and others look text symbols up as such).
- `linux_banner` carries the exact banner bytes, which is how Volatility matches table and image.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import lzma
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from examiner.symbols import btf as b
from examiner.symbols.addresses import ABSOLUTE_TYPES, KernelSymbol
from examiner.symbols.globals import GLOBAL_TYPES, kallsyms_num_syms_type

ISF_FORMAT = "6.2.0"
PRODUCER = "irforensics-btf"
PRODUCER_VERSION = "1.0.0"
POINTER_SIZE = 8

Descriptor = dict[str, Any]
VOID: Descriptor = {"kind": "base", "name": "void"}
FUNCTION: Descriptor = {"kind": "function"}

# Enum base types by (size, signed), named as the kernel's BTF names them.
ENUM_BASES = {
    (1, False): "unsigned char",
    (1, True): "signed char",
    (2, False): "short unsigned int",
    (2, True): "short int",
    (4, False): "unsigned int",
    (4, True): "int",
    (8, False): "long long unsigned int",
    (8, True): "long long int",
}


class ISFBuildError(ValueError):
    """The inputs cannot make a symbol table; the message says which input and why."""


@dataclass(frozen=True)
class Provenance:
    """Where the inputs came from, recorded in the ISF's metadata (names and sha256, no paths)."""

    symbols_name: str
    symbols_sha256: str
    btf_sha256: str


class _Namer:
    """ISF names for BTF's aggregate and enum types (ISF: one namespace for structs and unions, one for enums)."""

    def __init__(self, btf: b.BTF) -> None:
        self.btf = btf
        self.names: dict[int, str] = {}
        self.defined: dict[str, int] = {}  # ISF user type name -> the BTF id that defines it
        self.defined_enums: dict[str, int] = {}
        aggregates: dict[str, list[b.BTFType]] = defaultdict(list)
        enums: dict[str, list[b.BTFType]] = defaultdict(list)
        forwards: dict[str, list[b.BTFType]] = defaultdict(list)
        for t in btf.types:
            if t.kind in (b.STRUCT, b.UNION):
                if t.name:
                    aggregates[t.name].append(t)
                else:
                    self._name(t, f"unnamed_{'struct' if t.kind == b.STRUCT else 'union'}_{t.type_id}")
            elif t.kind in (b.ENUM, b.ENUM64):
                if t.name:
                    enums[t.name].append(t)
                else:
                    self._name(t, f"unnamed_enum_{t.type_id}")
            elif t.kind == b.FWD:
                forwards[t.name].append(t)
        for group in (aggregates, enums):
            for name, same in group.items():
                # The fullest definition keeps the plain name: it is the one kernel code means most often.
                ranked = sorted(same, key=lambda t: (-t.size, -len(t.members) - len(t.enumerators), t.type_id))
                self._name(ranked[0], name)
                for other in ranked[1:]:
                    self._name(other, f"{name}__{other.type_id}")
        for name, declarations in forwards.items():
            for declaration in declarations:
                self.names[declaration.type_id] = name
            if name not in self.defined:
                self.defined[name] = declarations[0].type_id

    def _name(self, t: b.BTFType, name: str) -> None:
        self.names[t.type_id] = name
        (self.defined_enums if t.kind in (b.ENUM, b.ENUM64) else self.defined)[name] = t.type_id


class ISFBuilder:
    def __init__(self, btf: b.BTF) -> None:
        self.btf = btf
        self.namer = _Namer(btf)
        self._descriptors: dict[int, Descriptor] = {}
        self._typedef_ids: dict[str, int] | None = None
        self.base_types: dict[str, dict[str, Any]] = {
            "void": {"kind": "void", "size": 0, "signed": False, "endian": "little"},
            "pointer": {"kind": "int", "size": POINTER_SIZE, "signed": False, "endian": "little"},
        }
        for t in btf.types:
            if t.kind == b.INT:
                self.base_types[t.name] = {
                    "kind": "bool"
                    if t.int_encoding & b.INT_BOOL
                    else "char"
                    if t.int_encoding & b.INT_CHAR or "char" in t.name
                    else "int",
                    "size": t.size,
                    "signed": bool(t.int_encoding & b.INT_SIGNED),
                    "endian": "little",
                }
            elif t.kind == b.FLOAT:
                self.base_types[t.name] = {"kind": "float", "size": t.size, "signed": True, "endian": "little"}

    # --- type descriptors -------------------------------------------------------------------------

    def describe(self, type_id: int) -> Descriptor:
        """The ISF type descriptor of a BTF type (shared dicts: json writes them once per use)."""
        found = self._descriptors.get(type_id)
        if found is not None:
            return found
        stripped = self.btf.strip(type_id)
        if stripped != type_id:
            behind = self.describe(stripped)
            self._descriptors[type_id] = behind
            return behind
        t = self.btf[type_id]
        result: Descriptor
        if type_id == 0:
            result = VOID
        elif t.kind in (b.INT, b.FLOAT):
            result = {"kind": "base", "name": t.name}
        elif t.kind == b.PTR:
            target = self.btf.strip(t.ref)
            if target and self.btf[target].kind == b.FUNC_PROTO:
                result = {"kind": "pointer", "subtype": FUNCTION}
            else:
                # The subtype is described lazily through the cache: self-referencing lists end at names.
                result = {"kind": "pointer", "subtype": self.describe(t.ref)}
        elif t.kind == b.ARRAY:
            result = {"kind": "array", "count": t.count, "subtype": self.describe(t.ref)}
        elif t.kind in (b.STRUCT, b.UNION):
            result = {"kind": "struct" if t.kind == b.STRUCT else "union", "name": self.namer.names[type_id]}
        elif t.kind == b.FWD:
            name = self.namer.names[type_id]
            target_type = self.btf[self.namer.defined[name]]
            is_union = target_type.kind == b.UNION or (target_type.kind == b.FWD and target_type.kind_flag)
            result = {"kind": "union" if is_union else "struct", "name": name}
        elif t.kind in (b.ENUM, b.ENUM64):
            result = {"kind": "enum", "name": self.namer.names[type_id]}
        elif t.kind in (b.FUNC_PROTO, b.FUNC):
            result = FUNCTION
        else:
            raise ISFBuildError(f"BTF type {type_id} (kind {t.kind}) has no ISF form")
        self._descriptors[type_id] = result
        return result

    def _field(self, member: b.Member) -> dict[str, Any]:
        target_id = self.btf.strip(member.type_id)
        target = self.btf[target_id]
        bits = member.bitfield_size
        bit_offset = member.bit_offset
        if not bits and target.kind == b.INT and target.int_bits and target.int_bits != target.size * 8:
            # Old-style BTF bit field: the width lives in the INT type, not in the member.
            bits, bit_offset = target.int_bits, bit_offset + target.int_offset
        if not bits:
            return {"offset": bit_offset // 8, "type": self.describe(member.type_id)}
        unit = max(target.size, 1)
        offset = (bit_offset // (unit * 8)) * unit
        position = bit_offset - offset * 8
        if position + bits > unit * 8:
            # A packed field straddling its natural unit: anchor at its first byte instead.
            offset, position = bit_offset // 8, bit_offset % 8
        return {
            "offset": offset,
            "type": {
                "kind": "bitfield",
                "bit_position": position,
                "bit_length": bits,
                "type": self.describe(target_id),
            },
        }

    def user_types(self) -> dict[str, dict[str, Any]]:
        result: dict[str, dict[str, Any]] = {}
        for name, type_id in self.namer.defined.items():
            t = self.btf[type_id]
            if t.kind == b.FWD:
                # Declared, never defined in this kernel: Volatility needs the name to exist.
                result[name] = {"kind": "union" if t.kind_flag else "struct", "size": 0, "fields": {}}
                continue
            if t.kind not in (b.STRUCT, b.UNION):
                continue
            fields: dict[str, dict[str, Any]] = {}
            for index, member in enumerate(t.members):
                if member.name:
                    fields[member.name] = self._field(member)
                    continue
                if self.btf[self.btf.strip(member.type_id)].kind in (b.STRUCT, b.UNION):
                    fields[f"unnamed_field_{index}"] = {**self._field(member), "anonymous": True}
                # An unnamed bit field is padding: nothing to read there.
            result[name] = {"kind": "struct" if t.kind == b.STRUCT else "union", "size": t.size, "fields": fields}
        return result

    def enums(self) -> dict[str, dict[str, Any]]:
        result: dict[str, dict[str, Any]] = {}
        for name, type_id in self.namer.defined_enums.items():
            t = self.btf[type_id]
            signed = t.kind_flag or any(value < 0 for _, value in t.enumerators)
            size = t.size if t.size in (1, 2, 4, 8) else 4
            base = ENUM_BASES[(size, signed)]
            if base not in self.base_types:
                self.base_types[base] = {"kind": "int", "size": size, "signed": signed, "endian": "little"}
            result[name] = {"size": t.size, "base": base, "constants": dict(t.enumerators)}
        return result

    # --- globals ----------------------------------------------------------------------------------

    def _named(self, name: str) -> int | None:
        type_id = self.namer.defined.get(name)
        return type_id

    def resolve_spec(self, spec: str, gap: int | None) -> Descriptor | None:
        """A `globals` spec as a descriptor, or None when this kernel lacks the type named."""
        if spec.startswith("*"):
            inner = self.resolve_spec(spec[1:], None)
            return None if inner is None else {"kind": "pointer", "subtype": inner}
        array = re.match(r"\[(\d*)\](.+)", spec)
        if array:
            inner = self.resolve_spec(array.group(2), None)
            if inner is None:
                return None
            if array.group(1):
                return {"kind": "array", "count": int(array.group(1)), "subtype": inner}
            size = self.descriptor_size(inner)
            if not gap or not size:
                return None
            return {"kind": "array", "count": gap // size, "subtype": inner}
        if spec == "function":
            return FUNCTION
        anonymous = re.fullmatch(r"anonymous struct\{(.+)\}", spec)
        if anonymous:
            wanted = anonymous.group(1).split(",")
            for t in self.btf.types:
                if t.kind == b.STRUCT and not t.name and [m.name for m in t.members] == wanted:
                    return self.describe(t.type_id)
            return None
        words = spec.split(" ", 1)
        if words[0] in ("struct", "union"):
            type_id = self._named(words[1])
            if type_id is None or self.btf[type_id].kind == b.FWD:
                return None
            return self.describe(type_id)
        if spec in self.base_types:
            return {"kind": "base", "name": spec}
        typedef = self._typedefs().get(spec)
        return None if typedef is None else self.describe(typedef)

    def _typedefs(self) -> dict[str, int]:
        if self._typedef_ids is None:
            self._typedef_ids = {}
            for t in self.btf.types:
                if t.kind == b.TYPEDEF and t.name:
                    self._typedef_ids.setdefault(t.name, t.type_id)
        return self._typedef_ids

    def descriptor_size(self, descriptor: Descriptor) -> int:
        kind = descriptor["kind"]
        if kind in ("pointer", "function"):
            return POINTER_SIZE
        if kind == "base":
            return int(self.base_types.get(descriptor["name"], {}).get("size", 0))
        if kind == "array":
            return int(descriptor["count"]) * self.descriptor_size(descriptor["subtype"])
        if kind in ("struct", "union"):
            return self.btf.size_of(self.namer.defined[descriptor["name"]])
        if kind == "enum":
            return self.btf[self.namer.defined_enums[descriptor["name"]]].size
        return 0

    def symbols(self, all_symbols: Sequence[KernelSymbol], banner: bytes) -> dict[str, dict[str, Any]]:
        variables: dict[str, int] = {}
        for t in self.btf.types:
            if t.kind == b.VAR and t.name:
                variables.setdefault(t.name, t.ref)
        # Same-named static symbols: the first keeps the name (nm order), as Volatility can hold only one.
        kernel_symbols: dict[str, KernelSymbol] = {}
        for symbol in all_symbols:
            kernel_symbols.setdefault(symbol.name, symbol)
        # Every symbol bounds the one before it, duplicates included: an array ends where the next symbol starts.
        addresses = sorted({s.address for s in all_symbols if s.kind not in ABSOLUTE_TYPES})
        following = dict(itertools.pairwise(addresses))
        gaps = {name: following[s.address] - s.address for name, s in kernel_symbols.items() if s.address in following}
        specs = dict(GLOBAL_TYPES)
        specs["kallsyms_num_syms"] = kallsyms_num_syms_type(set(kernel_symbols))
        result: dict[str, dict[str, Any]] = {}
        for name, symbol in kernel_symbols.items():
            entry: dict[str, Any] = {"address": symbol.address}
            if symbol.is_text:
                entry["type"] = FUNCTION
            elif name in variables:
                entry["type"] = self.describe(variables[name])
            elif name in specs:
                described = self.resolve_spec(specs[name], gaps.get(name))
                if described is not None:
                    entry["type"] = described
            result[name] = entry
        if "linux_banner" not in result:
            raise ISFBuildError("the symbol file has no linux_banner: it is not this kernel's symbol list")
        char: Descriptor = {"kind": "base", "name": "char"}
        result["linux_banner"]["type"] = {"kind": "array", "count": len(banner) + 1, "subtype": char}
        result["linux_banner"]["constant_data"] = base64.b64encode(banner).decode("ascii")
        return result


def normalise_banner(raw: bytes) -> bytes:
    """The exact `linux_banner` bytes: /proc/version's line with its newline, never a NUL.

    The kernel's banner ends in "\\n"; Volatility scans the image for the banner as given, so one
    byte more or less (a missing newline, a NUL a file picked up) and the table never matches.
    """
    text = raw.split(b"\x00", 1)[0]
    if not text.startswith(b"Linux version "):
        raise ISFBuildError("the banner file does not start with 'Linux version ' (give /proc/version)")
    return text.rstrip(b"\r\n") + b"\n"


def build_isf(
    btf_blob: bytes,
    kernel_symbols: Sequence[KernelSymbol],
    banner: bytes,
    provenance: Provenance | None = None,
) -> dict[str, Any]:
    """The ISF document. Deterministic: the same inputs give the same document (no timestamps)."""
    builder = ISFBuilder(b.parse_btf(btf_blob))
    banner = normalise_banner(banner)
    user_types = builder.user_types()
    enums = builder.enums()
    symbols = builder.symbols(kernel_symbols, banner)
    linux: dict[str, Any] = {}
    if provenance:
        linux["symbols"] = [
            {
                "kind": "system-map",
                "name": provenance.symbols_name,
                "hash_type": "sha256",
                "hash_value": provenance.symbols_sha256,
            }
        ]
    producer = {"name": PRODUCER, "version": PRODUCER_VERSION}
    if provenance:
        # The schema's kinds for type sources are DWARF-only; the BTF's digest goes with the producer.
        producer["btf_sha256"] = provenance.btf_sha256
    return {
        "metadata": {"format": ISF_FORMAT, "producer": producer, "linux": linux},
        "base_types": builder.base_types,
        "user_types": user_types,
        "enums": enums,
        "symbols": symbols,
    }


def dump_isf(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


def write_isf(document: Mapping[str, Any], out: Path) -> Path:
    """`.json.xz` (what Volatility and the LimeFactory store) or plain `.json`."""
    data = dump_isf(document)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.name.endswith(".xz"):
        data = lzma.compress(data, preset=6)
    tmp = out.with_name(out.name + ".part")
    tmp.write_bytes(data)
    tmp.replace(out)
    return out


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
