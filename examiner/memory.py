"""Memory analysis with Volatility 3, using the symbol table (ISF) the LimeFactory built for the kernel.

Either Volatility's own JSON is saved per plugin (`analysis/volatility/<plugin>.json`), or the
result says "not analysed" and why (no image, no symbols, Volatility could not make sense of
the image). There is no third way: nothing here ever writes output Volatility did not produce.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

PLUGINS = ("linux.pslist", "linux.pstree", "linux.bash", "linux.sockstat", "linux.malfind")
PLUGIN_TIMEOUT_SECONDS = 1800.0
ISF_SUFFIXES = (".json", ".json.xz", ".json.gz", ".json.bz2")
ANALYSED = "analysed"
NOT_ANALYSED = "not analysed"


@dataclass(frozen=True)
class PluginRun:
    plugin: str
    succeeded: bool
    output: str = ""
    rows: int = 0
    error: str = ""


@dataclass(frozen=True)
class MemoryAnalysis:
    status: str
    reason: str = ""
    image: str = ""
    plugins: list[PluginRun] = field(default_factory=list)

    @property
    def analysed(self) -> bool:
        return self.status == ANALYSED

    @property
    def summary(self) -> str:
        if self.analysed:
            done = [run.plugin for run in self.plugins if run.succeeded]
            return f"{ANALYSED}: {', '.join(done)}"
        return f"{NOT_ANALYSED}: {self.reason}"

    @classmethod
    def not_analysed(cls, reason: str, *, image: str = "", plugins: list[PluginRun] | None = None) -> MemoryAnalysis:
        return cls(status=NOT_ANALYSED, reason=reason, image=image, plugins=list(plugins or []))

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "summary": self.summary}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MemoryAnalysis:
        return cls(
            status=data["status"],
            reason=data.get("reason", ""),
            image=data.get("image", ""),
            plugins=[PluginRun(**run) for run in data.get("plugins", [])],
        )


def volatility_command() -> list[str]:
    """`vol` next to this Python (the venv or the toolset image), else on PATH, else the module itself."""
    beside = Path(sys.executable).parent / "vol"
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("vol")
    if found:
        return [found]
    return [sys.executable, "-c", "import sys; from volatility3.cli import main; sys.exit(main())"]


def isf_files(symbols_dir: Path) -> list[Path]:
    return sorted(p for p in symbols_dir.rglob("*") if p.is_file() and p.name.endswith(ISF_SUFFIXES))


def _stage_symbols(symbols_dir: Path, isf: list[Path], work: Path) -> Path:
    """Volatility looks for Linux tables under `<symbol dir>/linux/`; the LimeFactory stores them per kernel."""
    if (symbols_dir / "linux").is_dir():
        return symbols_dir
    linux = work / "symbols" / "linux"
    linux.mkdir(parents=True)
    for number, table in enumerate(isf):
        (linux / f"{number:03d}-{table.name}").symlink_to(table.resolve())
    return work / "symbols"


def _count_rows(rows: Any) -> int:
    if not isinstance(rows, list):
        return 0
    return sum(1 + _count_rows(row.get("__children", [])) for row in rows if isinstance(row, dict))


def _failure(done: subprocess.CompletedProcess[bytes]) -> str:
    lines = [line.strip() for line in done.stderr.decode(errors="replace").splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith("Volatility 3 Framework")]
    return f"exit {done.returncode}: " + (" / ".join(useful[-3:]) if useful else "no error message")


def run_plugin(
    command: list[str],
    plugin: str,
    memory_image: Path,
    symbol_root: Path,
    cache: Path,
    output_dir: Path,
    timeout_seconds: float,
) -> PluginRun:
    args = [
        *command,
        "-q",
        "--offline",
        "-s",
        str(symbol_root),
        "--cache-path",
        str(cache),
        "-r",
        "json",
        "-f",
        str(memory_image),
        plugin,
    ]
    try:
        done = subprocess.run(args, capture_output=True, timeout=timeout_seconds, check=False)
    except subprocess.TimeoutExpired:
        return PluginRun(plugin=plugin, succeeded=False, error=f"did not finish within {timeout_seconds:g} s")
    except FileNotFoundError:
        return PluginRun(plugin=plugin, succeeded=False, error=f"{command[0]} is not installed")
    if done.returncode != 0:
        return PluginRun(plugin=plugin, succeeded=False, error=_failure(done))
    try:
        rows = json.loads(done.stdout)
    except ValueError:
        return PluginRun(plugin=plugin, succeeded=False, error="Volatility did not print JSON")
    output_dir.mkdir(parents=True, exist_ok=True)
    output = output_dir / f"{plugin}.json"
    output.write_bytes(done.stdout)
    return PluginRun(plugin=plugin, succeeded=True, output=output.name, rows=_count_rows(rows))


def analyse_memory(
    memory_image: Path | None,
    symbols_dir: Path | None,
    output_dir: Path,
    *,
    plugins: tuple[str, ...] = PLUGINS,
    timeout_seconds: float = PLUGIN_TIMEOUT_SECONDS,
    command: list[str] | None = None,
) -> MemoryAnalysis:
    """Run each plugin into `output_dir/<plugin>.json`; "not analysed: <reason>" when that cannot be done."""
    if memory_image is None:
        return MemoryAnalysis.not_analysed("no memory image was acquired for this case")
    if not memory_image.is_file():
        return MemoryAnalysis.not_analysed(f"memory image {memory_image.name} is missing", image=memory_image.name)
    if symbols_dir is None or not symbols_dir.is_dir():
        return MemoryAnalysis.not_analysed(
            "no Volatility symbol table (ISF) for the instance's kernel: the LimeFactory has not built one",
            image=memory_image.name,
        )
    isf = isf_files(symbols_dir)
    if not isf:
        return MemoryAnalysis.not_analysed(
            f"no Volatility symbol table (ISF) in {symbols_dir.name}: the LimeFactory has not built one",
            image=memory_image.name,
        )
    with tempfile.TemporaryDirectory(prefix="irf-volatility-") as scratch:
        work = Path(scratch)
        symbol_root = _stage_symbols(symbols_dir, isf, work)
        # A private cache: the analysis host's home may be read-only, and one case's cache must not feed another's.
        (work / "cache").mkdir()
        runs = [
            run_plugin(
                command or volatility_command(),
                plugin,
                memory_image,
                symbol_root,
                work / "cache",
                output_dir,
                timeout_seconds,
            )
            for plugin in plugins
        ]
    if not any(run.succeeded for run in runs):
        first = runs[0].error if runs else "no plugins requested"
        if "kernel.layer_name" in first or "kernel.symbol_table_name" in first:
            why = "Volatility 3 found no Linux kernel in the image that matches the symbol tables given"
        else:
            why = "Volatility 3 could not analyse the image"
        return MemoryAnalysis.not_analysed(f"{why} ({first})", image=memory_image.name, plugins=runs)
    return MemoryAnalysis(status=ANALYSED, image=memory_image.name, plugins=runs)
