"""Memory analysis with Volatility 3.

The symbol table (ISF) is the LimeFactory's prebuilt one when there is one; otherwise it is built
here from the suspect host's own BTF, /proc/kallsyms and /proc/version, which the capture uploads
beside the image (`memory/<InstanceId>.btf`, `.kallsyms`, `.version`): memory of any kernel with
BTF is analysable with no build at all.

Either Volatility's own JSON is saved per plugin (`analysis/volatility/<plugin>.json`), or the
result says "not analysed" and why (no image, no symbols, Volatility could not make sense of
the image). There is no third way: nothing here ever writes output Volatility did not produce.
Each plugin runs in its own process, so one plugin's crash is recorded and never ends the rest.
The result names the capture method (kcore or lime) the case's custody records for the image.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from examiner.symbols import BTFError, ISFBuildError, KernelImageError, SymbolFileError, build_from_files

PLUGINS = (
    "linux.pslist",
    "linux.pstree",
    "linux.psaux",
    "linux.bash",
    "linux.sockstat",
    "linux.lsof",
    "linux.malware.malfind",
    "linux.sockscan",
)
# Plugins that crash in a given Volatility release whatever the image: not run, recorded with the reason.
KNOWN_CRASHES = {
    "linux.sockscan": {
        "2.28.2": "Volatility 3 2.28.2's sockscan crashes on every image ('NoneType' object has no attribute "
        "'socket': no None check after container_of); linux.sockstat lists the sockets instead",
    },
}
# What the capture uploads beside `memory/<InstanceId>.lime` (handlers/memory/capture.py SYMBOL_SOURCES).
HOST_FILE_SUFFIXES = {"btf": (".btf",), "kallsyms": (".kallsyms",), "version": (".version",)}
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
    skipped: bool = False


@dataclass(frozen=True)
class MemoryAnalysis:
    status: str
    reason: str = ""
    image: str = ""
    plugins: list[PluginRun] = field(default_factory=list)
    symbols: str = ""  # which symbol table was used, and where it came from
    acquisition: str = ""  # kcore or lime, as the case's custody records the capture; "" with no record

    @property
    def analysed(self) -> bool:
        return self.status == ANALYSED

    @property
    def provenance(self) -> str:
        """Where the image came from, as the report states it ("" when no image was examined)."""
        if not self.image:
            return ""
        how = {
            "kcore": "captured through /proc/kcore, with no kernel module loaded",
            "lime": "captured by the LiME kernel module (the fallback where /proc/kcore is unavailable)",
        }.get(self.acquisition, "no capture record names the method")
        return f"{self.image}: {how}" + (f"; symbols: {self.symbols}" if self.symbols else "")

    @property
    def summary(self) -> str:
        if self.analysed:
            done = [run.plugin for run in self.plugins if run.succeeded]
            failed = [run.plugin for run in self.plugins if not run.succeeded and not run.skipped]
            return f"{ANALYSED}: {', '.join(done)}" + (f" (failed: {', '.join(failed)})" if failed else "")
        return f"{NOT_ANALYSED}: {self.reason}"

    @classmethod
    def not_analysed(
        cls,
        reason: str,
        *,
        image: str = "",
        plugins: list[PluginRun] | None = None,
        symbols: str = "",
        acquisition: str = "",
    ) -> MemoryAnalysis:
        return cls(
            status=NOT_ANALYSED,
            reason=reason,
            image=image,
            plugins=list(plugins or []),
            symbols=symbols,
            acquisition=acquisition,
        )

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "summary": self.summary}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MemoryAnalysis:
        return cls(
            status=data["status"],
            reason=data.get("reason", ""),
            image=data.get("image", ""),
            plugins=[PluginRun(**run) for run in data.get("plugins", [])],
            symbols=data.get("symbols", ""),
            acquisition=data.get("acquisition", ""),
        )


def acquisition_method(memory_image: Path) -> str:
    """How the image was captured ("kcore" or "lime"), from the case's custody: the last
    `memory-acquired` event naming it in `<case>/custody/`, beside `<case>/memory/`. The image's
    bytes cannot say (both methods write LiME format); "" when examined outside its case folder."""
    custody = memory_image.parent.parent / "custody"
    method = ""
    for path in sorted(custody.glob("*.json")) if custody.is_dir() else []:
        try:
            event = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        detail = event.get("detail") if isinstance(event, dict) else None
        if (
            event.get("event") == "memory-acquired"
            and isinstance(detail, dict)
            and str(detail.get("Key", "")).rsplit("/", 1)[-1] == memory_image.name
        ):
            method = str(detail.get("Method", ""))[:20]
    return method


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


def host_files(folder: Path, stem: str | None = None) -> dict[str, Path] | None:
    """The host's BTF, kallsyms and banner in `folder` (`<stem>.btf`, `<stem>.kallsyms`,
    `<stem>.version`; any stem, or bare `btf`/`kallsyms`/`version`, when no stem is given), or None."""
    found: dict[str, Path] = {}
    for what, suffixes in HOST_FILE_SUFFIXES.items():
        if stem is not None:
            candidates = [folder / f"{stem}{suffix}" for suffix in suffixes]
        else:
            candidates = [*(p for suffix in suffixes for p in sorted(folder.glob(f"*{suffix}"))), folder / what]
        present = [c for c in candidates if c.is_file()]
        if not present:
            return None
        found[what] = present[0]
    return found


def build_host_isf(files: dict[str, Path], work: Path) -> tuple[Path, str]:
    """An ISF from the host's own files, in a Volatility symbol folder under `work`."""
    root = work / "symbols"
    out = root / "linux" / "host-btf.json.xz"
    built = build_from_files(files["btf"], files["kallsyms"], files["version"], out)
    names = ", ".join(p.name for p in files.values())
    return root, (
        f"built from the host's BTF, kallsyms and banner ({names}; KASLR shift {built.kaslr_shift:#x}, "
        f"{built.types} types, {built.symbols} symbols)"
    )


def volatility_version() -> str:
    try:
        return metadata.version("volatility3")
    except metadata.PackageNotFoundError:
        return ""


def known_crash(plugin: str, version: str) -> str:
    return KNOWN_CRASHES.get(plugin, {}).get(version, "")


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


def _symbol_root(memory_image: Path, symbols_dir: Path | None, work: Path) -> tuple[Path, str] | str:
    """(Volatility symbol folder, what it holds), or why there is no symbol table.

    A prebuilt ISF wins (the LimeFactory checked it); then the host's files beside the image
    (what the capture uploaded with it); then host files in the symbols folder.
    """
    if symbols_dir is not None and symbols_dir.is_dir():
        isf = isf_files(symbols_dir)
        if isf:
            return _stage_symbols(symbols_dir, isf, work), "prebuilt ISF " + ", ".join(p.name for p in isf)
    stem = memory_image.name.removesuffix(".lime")
    files = host_files(memory_image.parent, stem)
    if files is None and symbols_dir is not None and symbols_dir.is_dir():
        files = host_files(symbols_dir)
    if files is None:
        missing = f"the host's BTF, kallsyms and banner ({stem}.btf/.kallsyms/.version) are not beside it"
        given = symbols_dir is not None and symbols_dir.is_dir()
        where = f"in {symbols_dir.name}" if given and symbols_dir else "for the instance's kernel"
        return f"no Volatility symbol table (ISF) {where}: the LimeFactory has not built one and {missing}"
    try:
        return build_host_isf(files, work)
    except (BTFError, ISFBuildError, KernelImageError, SymbolFileError, OSError) as exc:
        return f"no Volatility symbol table: the host's files could not be made into one ({exc})"


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
    version = volatility_version() if command is None else ""
    acquisition = acquisition_method(memory_image)
    with tempfile.TemporaryDirectory(prefix="irf-volatility-") as scratch:
        work = Path(scratch)
        found = _symbol_root(memory_image, symbols_dir, work)
        if isinstance(found, str):
            return MemoryAnalysis.not_analysed(found, image=memory_image.name, acquisition=acquisition)
        symbol_root, symbols_used = found
        # A private cache: the analysis host's home may be read-only, and one case's cache must not feed another's.
        (work / "cache").mkdir()
        runs = []
        for plugin in plugins:
            crash = known_crash(plugin, version)
            if crash:
                runs.append(PluginRun(plugin=plugin, succeeded=False, error=f"not run: {crash}", skipped=True))
                continue
            runs.append(
                run_plugin(
                    command or volatility_command(),
                    plugin,
                    memory_image,
                    symbol_root,
                    work / "cache",
                    output_dir,
                    timeout_seconds,
                )
            )
    attempted = [run for run in runs if not run.skipped]
    if not any(run.succeeded for run in attempted):
        first = attempted[0].error if attempted else "no plugins requested"
        if "kernel.layer_name" in first or "kernel.symbol_table_name" in first:
            why = "Volatility 3 found no Linux kernel in the image that matches the symbol tables given"
        else:
            why = "Volatility 3 could not analyse the image"
        return MemoryAnalysis.not_analysed(
            f"{why} ({first})", image=memory_image.name, plugins=runs, symbols=symbols_used, acquisition=acquisition
        )
    return MemoryAnalysis(
        status=ANALYSED, image=memory_image.name, plugins=runs, symbols=symbols_used, acquisition=acquisition
    )


def plugin_rows(output_dir: Path, analysis: MemoryAnalysis) -> dict[str, list[dict[str, Any]]]:
    """Each successful plugin's rows as Volatility wrote them (tree plugins keep their `__children`)."""
    rows: dict[str, list[dict[str, Any]]] = {}
    for run in analysis.plugins:
        if run.succeeded and run.output and (output_dir / run.output).is_file():
            loaded = json.loads((output_dir / run.output).read_text())
            rows[run.plugin] = loaded if isinstance(loaded, list) else []
    return rows
