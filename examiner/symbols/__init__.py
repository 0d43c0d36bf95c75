"""Volatility 3 symbol tables (ISF) from the kernel's own BTF: no debug packages, no dwarf2json.

`build_from_files` is what `irf symbols` and the examination call: BTF (raw, from
/sys/kernel/btf/vmlinux, or inside vmlinuz/vmlinux), symbol addresses (System.map or
/proc/kallsyms, with the KASLR shift taken off) and the banner (/proc/version).
Standard library only: the operator CLI must work without Volatility installed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from examiner.symbols.addresses import SymbolFileError, parse_shift, parse_symbol_map, unshifted
from examiner.symbols.btf import BTF_MAGIC, BTFError
from examiner.symbols.isf import ISFBuildError, Provenance, build_isf, sha256, write_isf
from examiner.symbols.vmlinux import KernelImageError, btf_from_kernel_image

__all__ = [
    "BTFError",
    "BuiltISF",
    "ISFBuildError",
    "KernelImageError",
    "SymbolFileError",
    "build_from_files",
    "read_btf",
]


@dataclass(frozen=True)
class BuiltISF:
    path: Path
    kaslr_shift: int
    types: int
    symbols: int
    banner: str


def read_btf(path: Path) -> bytes:
    """Raw BTF as is, or the `.BTF` section of a vmlinuz/vmlinux."""
    head = path.read_bytes()[:2]
    if len(head) == 2 and int.from_bytes(head, "little") == BTF_MAGIC:
        return path.read_bytes()
    return btf_from_kernel_image(path)


def build_from_files(btf: Path, symbols: Path, banner: Path, out: Path, *, kaslr_shift: str = "auto") -> BuiltISF:
    btf_blob = read_btf(btf)
    symbol_text = symbols.read_bytes()
    parsed = parse_symbol_map(symbol_text.decode("utf-8", errors="replace"))
    shift = parse_shift(kaslr_shift, parsed)
    document: dict[str, Any] = build_isf(
        btf_blob,
        unshifted(parsed, shift),
        banner.read_bytes(),
        Provenance(symbols_name=symbols.name, symbols_sha256=sha256(symbol_text), btf_sha256=sha256(btf_blob)),
    )
    write_isf(document, out)
    return BuiltISF(
        path=out,
        kaslr_shift=shift,
        types=len(document["user_types"]),
        symbols=len(document["symbols"]),
        banner=banner.read_bytes().decode(errors="replace").strip(),
    )
