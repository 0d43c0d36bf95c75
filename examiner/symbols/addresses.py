"""Kernel symbol addresses from System.map or /proc/kallsyms, at the kernel's link-time addresses.

An ISF holds link-time addresses; Volatility finds the KASLR shift in the image itself. A
System.map already is at link time. /proc/kallsyms shows the running kernel's addresses, so its
shift is taken off: given, or computed from `_text` against the link address of x86_64 kernels.
"""

from __future__ import annotations

from dataclasses import dataclass

# Where x86_64 kernels are linked (CONFIG_PHYSICAL_START 16 MiB above __START_KERNEL_map).
X86_64_LINK_TEXT = 0xFFFFFFFF81000000
# Symbols whose address is not relocated by KASLR: per-CPU offsets and other absolute values.
ABSOLUTE_TYPES = frozenset("aA")
TEXT_TYPES = frozenset("tTwW")  # functions; weak symbols in kallsyms are functions on x86_64
ANCHORS = ("_text", "startup_64", "_stext")


class SymbolFileError(ValueError):
    """The symbol file cannot be used; the message says why."""


@dataclass(frozen=True)
class KernelSymbol:
    name: str
    address: int
    kind: str  # the nm letter: T text, D data, B bss, R read-only, A absolute, ...

    @property
    def is_text(self) -> bool:
        return self.kind in TEXT_TYPES


def parse_symbol_map(text: str) -> list[KernelSymbol]:
    """System.map or /proc/kallsyms lines (`ADDRESS TYPE NAME [module]`); module symbols are left out."""
    symbols: list[KernelSymbol] = []
    for number, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 3:
            raise SymbolFileError(f"line {number} is not 'ADDRESS TYPE NAME': {line!r}")
        if len(parts) > 3:
            continue  # "[module]": a loadable module's symbol, not part of vmlinux
        try:
            address = int(parts[0], 16)
        except ValueError:
            raise SymbolFileError(f"line {number} has no hexadecimal address: {line!r}") from None
        symbols.append(KernelSymbol(name=parts[2], address=address, kind=parts[1]))
    relocated = [s for s in symbols if s.kind not in ABSOLUTE_TYPES]
    if not relocated:
        raise SymbolFileError(
            "no kernel symbols in the file (Debian's /boot/System.map is a placeholder; use /proc/kallsyms)"
        )
    if all(s.address == 0 for s in relocated):
        raise SymbolFileError(
            "every address is zero: /proc/kallsyms was read without root (kptr_restrict hides addresses)"
        )
    return symbols


def kaslr_shift(symbols: list[KernelSymbol], *, link_text: int = X86_64_LINK_TEXT) -> int:
    """How far the running kernel was moved from its link address, from the first anchor symbol present."""
    by_name = {s.name: s.address for s in symbols if s.kind not in ABSOLUTE_TYPES}
    for anchor in ANCHORS:
        if anchor in by_name:
            shift = by_name[anchor] - link_text
            if shift % 0x200000:
                raise SymbolFileError(
                    f"{anchor} at {by_name[anchor]:#x} is not 2 MiB-aligned against {link_text:#x}: "
                    "give --kaslr-shift explicitly"
                )
            return shift
    raise SymbolFileError(f"none of {', '.join(ANCHORS)} is in the symbol file: give --kaslr-shift explicitly")


def parse_shift(value: str, symbols: list[KernelSymbol]) -> int:
    """`auto` or a hexadecimal (0x optional, may be negative) shift."""
    if value == "auto":
        return kaslr_shift(symbols)
    try:
        return int(value, 16)
    except ValueError:
        raise SymbolFileError(f"--kaslr-shift must be 'auto' or hexadecimal, got {value!r}") from None


def unshifted(symbols: list[KernelSymbol], shift: int) -> list[KernelSymbol]:
    """Every symbol at its link-time address (same-named static symbols all kept, in file order)."""
    return [
        KernelSymbol(
            name=symbol.name,
            address=(symbol.address if symbol.kind in ABSOLUTE_TYPES else symbol.address - shift) & 0xFFFFFFFFFFFFFFFF,
            kind=symbol.kind,
        )
        for symbol in symbols
    ]
