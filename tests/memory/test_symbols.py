"""ISF from BTF: the kernel Debian ships (/boot/vmlinuz-*), validated against Volatility 3's own schema
and read back by Volatility's own symbol-table code. Symbol addresses are a small System.map written
here at the kernel's link addresses (Debian's /boot/System.map is a placeholder); the guest tests
(test_volatility_guest.py) use the running kernel's real /proc/kallsyms."""

from __future__ import annotations

import base64
import json
import lzma
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from typer.testing import CliRunner

from examiner.symbols import KernelImageError, SymbolFileError, read_btf
from examiner.symbols.addresses import X86_64_LINK_TEXT, parse_symbol_map, unshifted
from examiner.symbols.btf import ENUM, ENUM64, STRUCT, UNION, parse_btf
from examiner.symbols.isf import ISFBuildError, build_isf, dump_isf
from examiner.symbols.vmlinux import decompress_kernel, elf_section

KERNELS = sorted(Path("/boot").glob("vmlinuz-*"))
pytestmark = pytest.mark.skipif(not KERNELS, reason="no kernel in /boot (Debian package linux-image-amd64)")
SHIFT = 0x32200000
DEBIAN_PLACEHOLDER = "ffffffffffffffff B The real System.map is in the linux-image-6.1.0-57-amd64-dbg package\n"


def _system_map(shift: int = 0) -> str:
    text = X86_64_LINK_TEXT + shift
    rows = [
        (0x0, "A", "fixed_percpu_data"),
        (0x31C40, "A", "runqueues"),
        (text, "T", "_text"),
        (text, "T", "startup_64"),
        (text + 0x1000, "t", "do_one_initcall"),
        (text + 0x1100, "T", "sock_ioctl"),
        (text + 0x1200000, "D", "linux_banner"),
        (text + 0x1200100, "D", "socket_file_ops"),
        (text + 0x1200200, "D", "taint_flags"),
        (text + 0x1200240, "d", "__func__.1"),
        (text + 0x1200300, "d", "__func__.1"),
        (text + 0x1300000, "D", "init_task"),
        (text + 0x1400000, "d", "tk_core"),
        (text + 0x1500000, "D", "init_top_pgt"),
        (text + 0x1600000, "B", "_end"),
    ]
    lines = [f"{address:016x} {kind} {name}" for address, kind, name in rows]
    lines.append(f"{text + 0x2000000:016x} t ext4_fill_super\t[ext4]")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def kernel() -> dict[str, Any]:
    vmlinux = decompress_kernel(KERNELS[-1].read_bytes())
    start = vmlinux.index(b"Linux version ")
    banner = vmlinux[start : vmlinux.index(b"\x00", start)]
    return {"btf": elf_section(vmlinux, ".BTF"), "banner": banner}


@pytest.fixture(scope="module")
def isf(kernel: dict[str, Any]) -> dict[str, Any]:
    symbols = unshifted(parse_symbol_map(_system_map()), 0)
    return build_isf(kernel["btf"], symbols, kernel["banner"])


def _schema() -> dict[str, Any]:
    import volatility3.schemas

    return json.loads((Path(volatility3.schemas.__file__).parent / "schema-6.2.0.json").read_text())


def test_the_isf_validates_against_volatilitys_own_schema(isf: dict[str, Any]) -> None:
    assert isf["metadata"]["format"] == "6.2.0"
    schema = _schema()
    # The schema names no known draft; Volatility validates with jsonschema's newest, as here.
    validator = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    validator(schema).validate(isf)


def test_volatility_reads_the_table_and_lifts_anonymous_members(isf: dict[str, Any], tmp_path: Path) -> None:
    import volatility3.framework.symbols.linux.extensions.network  # noqa: F401  (the kernel table's classes)
    from volatility3.framework import contexts
    from volatility3.framework.symbols.linux import LinuxKernelIntermedSymbols

    path = tmp_path / "kernel.json"
    path.write_bytes(dump_isf(isf))
    context = contexts.Context()
    table = LinuxKernelIntermedSymbols(context, "symbols", name="kernel", isf_url=path.as_uri())
    context.symbol_space.append(table)
    task = context.symbol_space.get_type("kernel!task_struct")
    assert {"comm", "pid", "tgid", "mm", "real_parent", "tasks", "rcu_users"} <= set(task.vol.members)
    # sockstat reads addresses and ports that sit in anonymous unions of anonymous structs (include/net/sock.h).
    common = context.symbol_space.get_type("kernel!sock_common").vol.members
    offsets = {name: common[name][0] for name in ("skc_daddr", "skc_rcv_saddr", "skc_hash", "skc_dport", "skc_num")}
    assert offsets == {"skc_daddr": 0, "skc_rcv_saddr": 4, "skc_hash": 8, "skc_dport": 12, "skc_num": 14}
    assert "skc_daddr" not in isf["user_types"]["sock_common"]["fields"]
    tk_core = table.get_symbol("tk_core")
    assert tk_core.type is not None
    assert "timekeeper" in context.symbol_space.get_type(tk_core.type.vol.type_name).vol.members
    assert table.get_symbol("init_task").type.vol.type_name == "kernel!task_struct"


def test_globals_btf_leaves_untyped_get_their_types(isf: dict[str, Any]) -> None:
    symbols = isf["symbols"]
    assert symbols["init_task"]["type"] == {"kind": "struct", "name": "task_struct"}
    assert symbols["socket_file_ops"]["type"] == {"kind": "struct", "name": "file_operations"}
    assert symbols["tk_core"]["type"]["name"].startswith("unnamed_struct_")
    fields = isf["user_types"][symbols["tk_core"]["type"]["name"]]["fields"]
    assert list(fields) == ["seq", "timekeeper"]
    # taint_flags ends where the next symbol (one of two same-named statics) starts: 0x40 bytes of 3.
    assert symbols["taint_flags"]["type"]["count"] == 0x40 // 3
    # A per-CPU variable keeps its offset (not shifted) and its BTF type.
    assert symbols["runqueues"] == {"address": 0x31C40, "type": {"kind": "struct", "name": "rq"}}
    assert "init_top_pgt" in symbols and "ext4_fill_super" not in symbols


def test_text_symbols_are_functions_and_the_banner_is_exact(isf: dict[str, Any], kernel: dict[str, Any]) -> None:
    symbols = isf["symbols"]
    for name in ("_text", "startup_64", "do_one_initcall", "sock_ioctl"):
        assert symbols[name]["type"] == {"kind": "function"}
    banner = base64.b64decode(symbols["linux_banner"]["constant_data"])
    assert banner == kernel["banner"].rstrip(b"\n") + b"\n"
    assert banner.endswith(b"\n") and b"\x00" not in banner
    assert symbols["linux_banner"]["address"] == X86_64_LINK_TEXT + 0x1200000


def test_twice_named_structs_keep_both_definitions(isf: dict[str, Any], kernel: dict[str, Any]) -> None:
    btf = parse_btf(kernel["btf"])
    seen: dict[str, list[int]] = {}
    for t in btf.types:
        if t.kind in (STRUCT, UNION) and t.name:
            seen.setdefault(t.name, []).append(t.type_id)
    twice = {name: ids for name, ids in seen.items() if len(ids) > 1}
    assert twice, "Debian's vmlinux BTF has struct names defined twice"
    for name, ids in twice.items():
        renamed = [f"{name}__{i}" for i in ids if f"{name}__{i}" in isf["user_types"]]
        assert name in isf["user_types"] and len(renamed) == len(ids) - 1
    # Enums live in their own namespace: a struct and an enum of one name both stay.
    enum_names = {t.name for t in btf.types if t.kind in (ENUM, ENUM64) and t.name}
    shared = enum_names & set(seen)
    assert shared, "Debian's kernel has a struct and an enum of the same name (context)"
    assert all(name in isf["user_types"] and name in isf["enums"] for name in shared)


def test_kallsyms_with_auto_shift_gives_the_system_maps_addresses(kernel: dict[str, Any]) -> None:
    from examiner.symbols.addresses import kaslr_shift

    kallsyms = parse_symbol_map(_system_map(SHIFT))
    assert kaslr_shift(kallsyms) == SHIFT
    from_map = unshifted(parse_symbol_map(_system_map()), 0)
    assert unshifted(kallsyms, SHIFT) == from_map


def test_unusable_inputs_are_refused_with_the_reason(tmp_path: Path, kernel: dict[str, Any]) -> None:
    with pytest.raises(SymbolFileError, match="placeholder"):
        parse_symbol_map(DEBIAN_PLACEHOLDER)
    with pytest.raises(SymbolFileError, match="without root"):
        parse_symbol_map("0000000000000000 T _text\n0000000000000000 D linux_banner\n")
    symbols = unshifted(parse_symbol_map(_system_map()), 0)
    with pytest.raises(ISFBuildError, match="Linux version"):
        build_isf(kernel["btf"], symbols, b"6.1.0-57-amd64\n")
    not_kernel = tmp_path / "not-a-kernel"
    not_kernel.write_bytes(b"\x00" * 4096)
    with pytest.raises(KernelImageError):
        read_btf(not_kernel)


def test_the_same_inputs_give_the_same_bytes(kernel: dict[str, Any], isf: dict[str, Any]) -> None:
    again = build_isf(kernel["btf"], unshifted(parse_symbol_map(_system_map()), 0), kernel["banner"])
    assert dump_isf(again) == dump_isf(isf)


def test_irf_symbols_writes_an_xz_isf_from_vmlinuz(tmp_path: Path, kernel: dict[str, Any]) -> None:
    from irf.cli import app

    (tmp_path / "kallsyms").write_text(_system_map(SHIFT))
    (tmp_path / "version").write_bytes(kernel["banner"] + b"\n")
    out = tmp_path / "linux" / "kernel.json.xz"
    args = ["symbols", "--btf", str(KERNELS[-1]), "--symbols", str(tmp_path / "kallsyms")]
    done = CliRunner().invoke(app, [*args, "--banner", str(tmp_path / "version"), "-o", str(out)])
    assert done.exit_code == 0, done.output
    assert f"KASLR shift {SHIFT:#x}" in done.output
    written = json.loads(lzma.decompress(out.read_bytes()))
    assert written["symbols"]["_text"]["address"] == X86_64_LINK_TEXT
    assert written["metadata"]["linux"]["symbols"][0]["kind"] == "system-map"
    (tmp_path / "map").write_text(DEBIAN_PLACEHOLDER)
    banner = ["--banner", str(tmp_path / "version"), "-o", str(tmp_path / "refused.json.xz")]
    refused = CliRunner().invoke(app, [*args[:3], "--symbols", str(tmp_path / "map"), *banner])
    assert refused.exit_code == 2
    assert "placeholder" in refused.output
    assert not (tmp_path / "refused.json.xz").exists()


def test_the_symbols_module_needs_no_volatility_at_import() -> None:
    probe = "import sys, examiner.symbols, irf.memory_commands; print('volatility3' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
