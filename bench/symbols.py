"""ISF build time and peak memory: our BTF -> Volatility 3 ISF, against a plain JSON dump of the same types.

    .venv/bin/python -m bench.symbols [--kernel /boot/vmlinuz-...] [--symbols kallsyms] [--banner version]

Phases, each timed on its own and then run again under tracemalloc for its peak Python memory:
- extract: the `.BTF` section out of vmlinuz (decompress the bzImage's payload, read the ELF);
- parse: BTF bytes -> type records;
- build: type records + symbol addresses + banner -> the ISF document;
- write: JSON + xz, the `.json.xz` Volatility and the LimeFactory store.
Baseline, in the same run: `json.dumps` of the parsed types as plain dicts (no ISF conversion),
the floor for "turn these types into JSON". Without --symbols, the symbol list is every BTF
function at a made-up address plus the globals Volatility reads (the build's cost is the same).
"""

from __future__ import annotations

import argparse
import json
import lzma
import resource
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from examiner.symbols.addresses import X86_64_LINK_TEXT, KernelSymbol, parse_shift, parse_symbol_map, unshifted
from examiner.symbols.btf import FUNC, parse_btf
from examiner.symbols.globals import GLOBAL_TYPES
from examiner.symbols.isf import build_isf, dump_isf
from examiner.symbols.vmlinux import decompress_kernel, elf_section

MIB = 1024 * 1024


def measure(run: Callable[[], Any]) -> tuple[Any, tuple[float, float], int]:
    """(result, (wall, CPU) seconds without tracing, peak traced bytes of a second run).

    CPU seconds are printed beside wall-clock ones: on a shared machine they are the steadier number.
    """
    started, cpu = time.perf_counter(), time.process_time()
    result = run()
    seconds = (time.perf_counter() - started, time.process_time() - cpu)
    tracemalloc.start()
    run()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return result, seconds, peak


def made_up_symbols(btf_blob: bytes, banner_present: bool = True) -> list[KernelSymbol]:
    btf = parse_btf(btf_blob)
    names = [t.name for t in btf.types if t.kind == FUNC and t.name]
    symbols = [KernelSymbol("_text", X86_64_LINK_TEXT, "T")]
    symbols += [KernelSymbol(name, X86_64_LINK_TEXT + 0x100 * (i + 1), "T") for i, name in enumerate(names)]
    data = X86_64_LINK_TEXT + 0x2000000
    globals_ = ["linux_banner", *GLOBAL_TYPES] if banner_present else list(GLOBAL_TYPES)
    symbols += [KernelSymbol(name, data + 0x10000 * i, "D") for i, name in enumerate(globals_)]
    return symbols


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.symbols", description=__doc__.split("\n")[0])
    kernels = sorted(Path("/boot").glob("vmlinuz-*"))
    parser.add_argument("--kernel", type=Path, default=kernels[-1] if kernels else None)
    parser.add_argument("--symbols", type=Path, help="/proc/kallsyms or System.map of that kernel")
    parser.add_argument("--banner", type=Path, help="/proc/version of that kernel")
    args = parser.parse_args(argv)
    if args.kernel is None or not args.kernel.is_file():
        parser.error("no kernel: give --kernel (Debian: apt-get install linux-image-amd64)")
    image = args.kernel.read_bytes()

    vmlinux_holder: dict[str, bytes] = {}

    def extract() -> bytes:
        vmlinux_holder["elf"] = decompress_kernel(image)
        return elf_section(vmlinux_holder["elf"], ".BTF")

    btf_blob, extract_s, extract_peak = measure(extract)
    elf = vmlinux_holder.pop("elf")
    if args.banner:
        banner = args.banner.read_bytes()
    else:
        start = elf.index(b"Linux version ")
        banner = elf[start : elf.index(b"\x00", start)]
    del elf
    if args.symbols:
        parsed = parse_symbol_map(args.symbols.read_text())
        symbols = unshifted(parsed, parse_shift("auto", parsed))
    else:
        symbols = made_up_symbols(btf_blob)

    btf, parse_s, parse_peak = measure(lambda: parse_btf(btf_blob))
    document, build_s, build_peak = measure(lambda: build_isf(btf_blob, symbols, banner))
    written, write_s, write_peak = measure(lambda: lzma.compress(dump_isf(document), preset=6))
    baseline_text, baseline_s, baseline_peak = measure(
        lambda: json.dumps([asdict(t) for t in btf.types], separators=(",", ":"))
    )
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    size = len(btf_blob) / MIB
    print(f"kernel {args.kernel.name}: BTF {size:.1f} MiB, {len(btf.types)} types, {len(symbols)} symbols")
    print(f"{'phase':<34}{'wall s':>9}{'CPU s':>9}{'peak MiB':>10}")
    rows = [
        ("extract .BTF from vmlinuz", extract_s, extract_peak),
        ("parse BTF", parse_s, parse_peak),
        ("build ISF document", build_s, build_peak),
        ("write .json.xz", write_s, write_peak),
        ("baseline: json.dumps of the types", baseline_s, baseline_peak),
    ]
    for name, (wall, cpu), peak in rows:
        print(f"{name:<34}{wall:>9.2f}{cpu:>9.2f}{peak / MIB:>10.0f}")
    ours = parse_s[1] + build_s[1] + write_s[1]
    print(
        f"ISF from BTF bytes: {ours:.2f} CPU s ({ours / baseline_s[1]:.1f}x the plain dump), "
        f"{len(written) / MIB:.2f} MiB .json.xz (plain dump {len(baseline_text) / MIB:.1f} MiB uncompressed); "
        f"process peak RSS {rss_mib:.0f} MiB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
