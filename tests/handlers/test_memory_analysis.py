from __future__ import annotations

import os
from pathlib import Path

import pytest

from examiner.memory import (
    ANALYSED,
    NOT_ANALYSED,
    MemoryAnalysis,
    PluginRun,
    analyse_memory,
    isf_files,
)

# A LiME header ("EMiL", version 1, one range) followed by bytes that are not a kernel.
LIME_LIKE = b"EMiL\x01\x00\x00\x00" + (0x1000).to_bytes(8, "little") + (0x1FFF).to_bytes(8, "little") + b"\x00" * 8


@pytest.fixture
def symbols(tmp_path: Path) -> Path:
    folder = tmp_path / "amzn" / "6.1.90-99.173.amzn2023.x86_64" / "x86_64"
    folder.mkdir(parents=True)
    (folder / "vmlinux-6.1.90.json").write_text(
        '{"metadata": {"format": "6.2.0"}, "symbols": {}, "user_types": {}, "base_types": {}, "enums": {}}'
    )
    return tmp_path / "amzn"


def test_no_memory_image_is_not_analysed_and_says_why(tmp_path: Path) -> None:
    result = analyse_memory(None, None, tmp_path / "volatility")
    assert (result.status, result.analysed) == (NOT_ANALYSED, False)
    assert result.summary == "not analysed: no memory image was acquired for this case"
    assert not (tmp_path / "volatility").exists()


def test_a_missing_memory_file_is_not_analysed(tmp_path: Path, symbols: Path) -> None:
    result = analyse_memory(tmp_path / "i-0abc.lime", symbols, tmp_path / "volatility")
    assert result.reason == "memory image i-0abc.lime is missing"


def test_no_symbol_table_is_not_analysed_and_runs_nothing(tmp_path: Path) -> None:
    image = tmp_path / "i-0abc.lime"
    image.write_bytes(LIME_LIKE)
    no_dir = analyse_memory(image, None, tmp_path / "volatility")
    empty = tmp_path / "empty-symbols"
    empty.mkdir()
    no_isf = analyse_memory(image, empty, tmp_path / "volatility")
    assert "no Volatility symbol table (ISF)" in no_dir.reason
    assert "no Volatility symbol table (ISF) in empty-symbols" in no_isf.reason
    assert no_dir.plugins == no_isf.plugins == []
    assert not (tmp_path / "volatility").exists()


def test_symbol_tables_are_found_in_the_lime_factory_layout(symbols: Path) -> None:
    assert [p.name for p in isf_files(symbols)] == ["vmlinux-6.1.90.json"]


def test_volatility_on_a_file_that_is_not_memory_is_a_typed_failure_without_output(
    tmp_path: Path, symbols: Path
) -> None:
    image = tmp_path / "i-0abc.lime"
    image.write_bytes(LIME_LIKE + os.urandom(64 * 1024))
    result = analyse_memory(image, symbols, tmp_path / "volatility", plugins=("linux.pslist",), timeout_seconds=120)
    assert result.status == NOT_ANALYSED
    assert result.reason.startswith("Volatility 3 found no Linux kernel in the image")
    [run] = result.plugins
    assert (run.plugin, run.succeeded, run.output, run.rows) == ("linux.pslist", False, "", 0)
    assert "exit 1" in run.error
    assert not (tmp_path / "volatility").exists()


def test_a_volatility_that_is_not_installed_is_a_failure_not_a_crash(tmp_path: Path, symbols: Path) -> None:
    image = tmp_path / "i-0abc.lime"
    image.write_bytes(LIME_LIKE)
    result = analyse_memory(
        image, symbols, tmp_path / "volatility", plugins=("linux.bash",), command=[str(tmp_path / "no-such-vol")]
    )
    assert result.status == NOT_ANALYSED
    assert result.plugins[0].error.endswith("is not installed")


def test_memory_analysis_round_trips_through_its_json_form() -> None:
    analysed = MemoryAnalysis(
        status=ANALYSED,
        image="i-0abc.lime",
        plugins=[
            PluginRun("linux.pslist", True, "linux.pslist.json", 112),
            PluginRun("linux.malfind", False, error="exit 1"),
        ],
    )
    assert MemoryAnalysis.from_dict(analysed.to_dict()) == analysed
    assert analysed.summary == "analysed: linux.pslist (failed: linux.malfind)"
    assert analysed.to_dict()["summary"] == "analysed: linux.pslist (failed: linux.malfind)"


def test_without_a_prebuilt_isf_the_host_files_beside_the_image_are_named_when_missing(tmp_path: Path) -> None:
    image = tmp_path / "memory" / "i-0abc.lime"
    image.parent.mkdir()
    image.write_bytes(LIME_LIKE)
    result = analyse_memory(image, None, tmp_path / "volatility")
    assert result.status == NOT_ANALYSED
    assert "i-0abc.btf/.kallsyms/.version" in result.reason
    assert not (tmp_path / "volatility").exists()


def test_host_files_that_are_not_btf_make_a_reasoned_not_analysed(tmp_path: Path) -> None:
    memory = tmp_path / "memory"
    memory.mkdir()
    image = memory / "i-0abc.lime"
    image.write_bytes(LIME_LIKE)
    (memory / "i-0abc.btf").write_bytes(b"not btf at all")
    (memory / "i-0abc.kallsyms").write_text("ffffffff81000000 T _text\nffffffff82000000 D linux_banner\n")
    (memory / "i-0abc.version").write_text("Linux version 6.1.0-57-amd64 (x) #1 SMP\n")
    result = analyse_memory(image, None, tmp_path / "volatility")
    assert result.status == NOT_ANALYSED
    assert result.reason.startswith("no Volatility symbol table: the host's files could not be made into one")
    assert result.plugins == []


def test_a_prebuilt_isf_wins_over_host_files_and_sockscan_is_recorded_not_run(tmp_path: Path, symbols: Path) -> None:
    from examiner.memory import known_crash, volatility_version

    memory = tmp_path / "memory"
    memory.mkdir()
    image = memory / "i-0abc.lime"
    image.write_bytes(LIME_LIKE + os.urandom(4096))
    for suffix in (".btf", ".kallsyms", ".version"):
        (memory / f"i-0abc{suffix}").write_bytes(b"unused")
    result = analyse_memory(
        image, symbols, tmp_path / "volatility", plugins=("linux.pslist", "linux.sockscan"), timeout_seconds=120
    )
    assert result.symbols == "prebuilt ISF vmlinux-6.1.90.json"
    runs = {run.plugin: run for run in result.plugins}
    if known_crash("linux.sockscan", volatility_version()):
        assert runs["linux.sockscan"].skipped and runs["linux.sockscan"].error.startswith("not run: ")
        assert "linux.sockscan" not in result.summary
    assert not runs["linux.pslist"].succeeded
