"""`irf symbols` and `irf examine-memory`: memory forensics from the responder's machine.

Registered on irf.cli's app when the CLI is imported. Runtime dependencies only: building a
symbol table needs the standard library (examiner.symbols); examining memory runs Volatility 3
as a separate program (`vol`), and YARA only when yara-python is installed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from irf.cli import EXIT_BAD_INPUT, EXIT_NOT_FOUND, EXIT_RESPONSE_FAILED, _fail, app, console

if TYPE_CHECKING:
    from examiner.memory import MemoryAnalysis
    from examiner.memory_findings import MemoryFinding


@app.command("symbols")
def symbols(
    btf: Annotated[
        Path,
        typer.Option(help="BTF: /sys/kernel/btf/vmlinux from the host, or the kernel's vmlinuz / vmlinux"),
    ],
    symbol_file: Annotated[
        Path, typer.Option("--symbols", help="symbol addresses: /proc/kallsyms (read as root) or a real System.map")
    ],
    banner: Annotated[Path, typer.Option(help="the kernel's banner: /proc/version of the host")],
    out: Annotated[Path, typer.Option("-o", "--out", help="the ISF to write (.json.xz or .json)")],
    kaslr_shift: Annotated[
        str,
        typer.Option(help="'auto' (from _text against the x86_64 link address) or hexadecimal; 0 for a System.map"),
    ] = "auto",
) -> None:
    """Build a Volatility 3 symbol table (ISF) from the kernel's own BTF: no debug package, no dwarf2json."""
    from examiner.symbols import BTFError, ISFBuildError, KernelImageError, SymbolFileError, build_from_files

    for given, what in ((btf, "--btf"), (symbol_file, "--symbols"), (banner, "--banner")):
        if not given.is_file():
            _fail(EXIT_NOT_FOUND, f"{what} {given} does not exist")
    try:
        built = build_from_files(btf, symbol_file, banner, out, kaslr_shift=kaslr_shift)
    except (BTFError, ISFBuildError, KernelImageError, SymbolFileError) as exc:
        _fail(EXIT_BAD_INPUT, str(exc))
    console.print(
        f"ISF written: {built.path} ({built.types} types, {built.symbols} symbols, "
        f"KASLR shift {built.kaslr_shift:#x})\n{built.banner}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


def _disk_findings(path: Path | None) -> list[Any]:
    from examiner.findings import Finding

    if path is None:
        return []
    if not path.is_file():
        _fail(EXIT_NOT_FOUND, f"--disk-findings {path} does not exist")
    try:
        document = json.loads(path.read_text())
        return [Finding.from_dict(f) for f in document.get("findings", [])]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        _fail(EXIT_BAD_INPUT, f"--disk-findings {path} is not an examination's findings.json ({exc})")


def _yara_rules(extra: list[Path]) -> tuple[Any, str]:
    try:
        from examiner.yarascan import SHIPPED_RULES, compile_rules

        rules, _ = compile_rules([SHIPPED_RULES, *extra])
    except ImportError:
        return None, "yara-python is not installed: history lines were checked against the history rules only"
    return rules, ""


def _print_memory(image: str, result: MemoryAnalysis, found: list[MemoryFinding], note: str) -> None:
    """The plugins' runs, then what the memory shows (exits 1 when the memory was not analysed)."""
    runs = Table(title=f"Volatility 3 on {image}")
    for column in ("plugin", "result", "rows"):
        runs.add_column(column, overflow="fold")
    for run in result.plugins:
        runs.add_row(run.plugin, "ok" if run.succeeded else run.error, str(run.rows))
    console.print(runs)
    if result.symbols:
        console.print(f"symbols: {result.symbols}", markup=False, highlight=False, soft_wrap=True)
    if not result.analysed:
        _fail(EXIT_RESPONSE_FAILED, f"memory not analysed: {result.reason}")
    table = Table(title=f"Memory findings ({len(found)})")
    for column in ("severity", "category", "pid", "process", "reason", "evidence"):
        table.add_column(column, overflow="fold")
    for finding in found:
        table.add_row(
            finding.severity,
            finding.category,
            "" if finding.pid is None else str(finding.pid),
            finding.process,
            finding.reason,
            finding.evidence,
        )
    console.print(table)
    if note:
        console.print(note, markup=False, highlight=False, soft_wrap=True)


@app.command("examine-memory")
def examine_memory(
    image: Annotated[Path, typer.Argument(help="the memory image (LiME, raw or ELF core)")],
    symbols_dir: Annotated[
        Path,
        typer.Option(
            "--symbols",
            help="folder with the kernel's ISF, or with the host's .btf, .kallsyms and .version to build one from",
        ),
    ],
    out: Annotated[Path, typer.Option(help="folder for volatility/<plugin>.json and memory-findings.json")],
    disk_findings: Annotated[
        Path | None, typer.Option(help="an examination's findings.json, to tie processes to disk findings")
    ] = None,
    plugin: Annotated[
        list[str] | None, typer.Option(help="Volatility plugin to run (repeatable); default: the examination's set")
    ] = None,
    rules: Annotated[list[Path] | None, typer.Option(help="extra YARA rule file for history lines")] = None,
    timeout: Annotated[float, typer.Option(help="seconds each plugin may take")] = 1800.0,
) -> None:
    """Run Volatility 3 on a memory image (each plugin isolated) and report what the memory shows."""
    from examiner.memory import PLUGINS, analyse_memory, plugin_rows
    from examiner.memory_findings import find_in_memory

    if not image.is_file():
        _fail(EXIT_NOT_FOUND, f"memory image {image} does not exist")
    if not symbols_dir.is_dir():
        _fail(EXIT_NOT_FOUND, f"--symbols {symbols_dir} is not a folder")
    findings_on_disk = _disk_findings(disk_findings)
    yara_rules, note = _yara_rules(list(rules or []))
    volatility_dir = out / "volatility"
    result = analyse_memory(
        image, symbols_dir, volatility_dir, plugins=tuple(plugin or PLUGINS), timeout_seconds=timeout
    )
    found = find_in_memory(plugin_rows(volatility_dir, result), findings_on_disk, yara_rules=yara_rules)
    out.mkdir(parents=True, exist_ok=True)
    document = {"memory": result.to_dict(), "findings": [f.to_dict() for f in found], "notes": [note] if note else []}
    (out / "memory-findings.json").write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")

    _print_memory(image.name, result, found, note)
    console.print(f"written: {out / 'memory-findings.json'}", markup=False, highlight=False, soft_wrap=True)
