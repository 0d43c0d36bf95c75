"""Volatility 3 through our runner on a real memory image: Debian's kernel booted under QEMU with the
scenario's planted activity, captured by the project's own capture document (kcore method), the ISF
built from the host files the capture uploaded beside the image. One boot for the whole module."""

from __future__ import annotations

import json
import lzma
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto import mock_aws
from typer.testing import CliRunner

from examiner.findings import Finding
from examiner.memory import ANALYSED, PLUGINS
from examiner.memory_findings import find_in_memory, flatten
from examiner.runner import MemoryImage, examine_case
from examiner.symbols import build_from_files
from handlers.memory import capture
from simulation import disk_images
from simulation.guest import Guest, ssm, unavailable_reason
from simulation.guest import image as guest_image

pytestmark = pytest.mark.skipif(unavailable_reason() is not None, reason=f"no guest: {unavailable_reason()}")

BUCKET = "irf-evidence-guest"
CASE = "case-guest-0001"
INSTANCE = "i-0a1b2c3d4e5f60718"
PLANTED = ("kworkerd", "bash", "nc", "httpd")
TCP_STATES = {"01": "ESTABLISHED", "0A": "LISTEN"}


@dataclass(frozen=True)
class Truth:
    processes: dict[int, tuple[str, int]]  # pid -> (comm, ppid), read live from the guest's /proc
    sockets: set[tuple[str, int, int, str]]  # (family, local port, remote port, state) from /proc/net/tcp{,6}
    rwx: list[str]  # the miner's rwx mappings, from /proc/<pid>/maps
    system_ram: list[tuple[int, int]]


@dataclass(frozen=True)
class Captured:
    image: Path
    truth: Truth
    report: capture.CaptureReport


def _live_truth(guest: Guest) -> Truth:
    stat = guest.run("for f in /proc/[0-9]*/stat; do cat $f 2>/dev/null; echo; done").stdout
    processes: dict[int, tuple[str, int]] = {}
    for line in stat.splitlines():
        if ") " not in line:
            continue
        head, tail = line.rsplit(") ", 1)
        pid, comm = head.split(" (", 1)
        processes[int(pid)] = (comm, int(tail.split()[1]))
    sockets: set[tuple[str, int, int, str]] = set()
    for table, family in (("/proc/net/tcp", "AF_INET"), ("/proc/net/tcp6", "AF_INET6")):
        for line in guest.read_file(table).decode().splitlines()[1:]:
            fields = line.split()
            state = TCP_STATES.get(fields[3])
            if state:
                ports = (int(fields[1].rsplit(":", 1)[1], 16), int(fields[2].rsplit(":", 1)[1], 16))
                sockets.add((family, *ports, state))
    miner = next(pid for pid, (comm, _) in processes.items() if comm == "kworkerd")
    maps = guest.read_file(f"/proc/{miner}/maps").decode().splitlines()
    rwx = [line.split()[0] for line in maps if line.split()[1].startswith("rwx")]
    return Truth(processes, sockets, rwx, [(r.start, r.end) for r in guest.system_ram()])


@pytest.fixture(scope="module")
def captured(tmp_path_factory: pytest.TempPathFactory) -> Captured:
    case_dir = tmp_path_factory.mktemp("case")
    key = f"{CASE}/memory/{INSTANCE}.lime"
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1", config=Config(signature_version="s3v4"))
        s3.create_bucket(Bucket=BUCKET)
        with Guest.boot() as guest:
            truth = _live_truth(guest)
            plan = capture.plan_parts(guest_image_memory_bytes(guest))
            upload = capture.presign_capture(s3, BUCKET, key, plan.part_count, 3600, part_size=plan.part_size)
            sources = capture.presign_symbol_sources(s3, BUCKET, key, 3600)
            document = capture.capture_document()
            values = ssm.resolve(
                document, capture.capture_parameters(upload, sources, method="kcore", timeout_seconds=900)
            )
            run = guest.run_capture(ssm.commands_of(document), values, timeout=900)
        report = capture.parse_capture_output(run.stdout)
        assert report.acquired, (report.reason, run.stderr[-2000:])
        s3.complete_multipart_upload(
            Bucket=BUCKET,
            Key=key,
            UploadId=upload.upload_id,
            MultipartUpload={"Parts": [{"PartNumber": n, "ETag": etag} for n, etag in report.parts]},
        )
        memory = case_dir / "memory"
        memory.mkdir()
        for object_key in [key, *capture.symbol_source_keys(key).values()]:
            name = object_key.rsplit("/", 1)[1]
            (memory / name).write_bytes(s3.get_object(Bucket=BUCKET, Key=object_key)["Body"].read())
    return Captured(image=memory / f"{INSTANCE}.lime", truth=truth, report=report)


def guest_image_memory_bytes(guest: Guest) -> int:
    meminfo = guest.read_file("/proc/meminfo").decode()
    return int(meminfo.split("MemTotal:", 1)[1].split()[0]) * 1024


@pytest.fixture(scope="module")
def examined(captured: Captured, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("examined")
    # Memory only, as for an instance without EBS volumes; no prebuilt ISF: the host's files are used.
    result = examine_case([], MemoryImage(path=captured.image), out, incident_window=None)
    rows = {
        run.plugin: json.loads((out / "analysis" / "volatility" / run.output).read_text())
        for run in result.memory.plugins
        if run.succeeded
    }
    return {"result": result, "rows": rows, "out": out}


def _flat(rows: dict[str, Any], plugin: str) -> list[dict[str, Any]]:
    return [dict(row) for row in flatten(rows[plugin])]


def test_the_image_holds_the_guests_system_ram(captured: Captured) -> None:
    assert captured.report.method == "kcore"
    # kcore maps whole pages: a System RAM range ending mid-page (low RAM) ends at its last whole page.
    whole_pages = [(start, (end + 1) // 4096 * 4096 - 1) for start, end in captured.truth.system_ram]
    assert [tuple(r) for r in captured.report.ranges] == whole_pages
    assert captured.image.read_bytes()[:4] == (0x4C694D45).to_bytes(4, "little")


def test_every_plugin_ran_through_the_runner_and_sockscan_is_recorded_not_fatal(examined: dict[str, Any]) -> None:
    result = examined["result"]
    assert result.memory.status == ANALYSED
    assert result.memory.symbols.startswith("built from the host's BTF, kallsyms and banner")
    runs = {run.plugin: run for run in result.memory.plugins}
    assert list(runs) == list(PLUGINS)
    for plugin in PLUGINS:
        if plugin == "linux.sockscan":
            assert not runs[plugin].succeeded and runs[plugin].skipped and "container_of" in runs[plugin].error
            continue
        assert runs[plugin].succeeded, runs[plugin].error
        assert runs[plugin].rows > 0
        written = examined["out"] / "analysis" / "volatility" / f"{plugin}.json"
        assert isinstance(json.loads(written.read_text()), list)


def test_every_planted_process_has_its_pid_and_parent_in_pslist_and_pstree(
    captured: Captured, examined: dict[str, Any]
) -> None:
    planted = {pid: entry for pid, entry in captured.truth.processes.items() if entry[0] in PLANTED}
    assert {comm for comm, _ in planted.values()} == set(PLANTED)
    for plugin in ("linux.pslist", "linux.pstree", "linux.psaux"):
        seen = {row["PID"]: (row["COMM"], row["PPID"]) for row in _flat(examined["rows"], plugin)}
        for pid, entry in planted.items():
            assert seen.get(pid) == entry, (plugin, pid, entry)


def test_every_listening_and_established_socket_has_its_port_and_state_in_sockstat(
    captured: Captured, examined: dict[str, Any]
) -> None:
    seen = {
        (row["Family"], int(row["Source Port"]), int(row["Destination Port"]), row["State"])
        for row in _flat(examined["rows"], "linux.sockstat")
        if row["Proto"] == "TCP"
    }
    planted_ports = {guest_image.C2_PORT, guest_image.POOL_PORT, guest_image.MINER_LISTEN_PORT, 80}
    wanted = {s for s in captured.truth.sockets if planted_ports & {s[1], s[2]}}
    assert {s[3] for s in wanted} == {"LISTEN", "ESTABLISHED"}
    assert wanted <= seen


def test_every_history_line_is_in_linux_bash(examined: dict[str, Any]) -> None:
    commands = {row["Command"] for row in _flat(examined["rows"], "linux.bash")}
    assert set(disk_images.REVERSE_SHELL_HISTORY.decode().splitlines()) <= commands


def test_the_miners_rwx_mapping_is_in_malfind_with_its_code(captured: Captured, examined: dict[str, Any]) -> None:
    rows = [row for row in _flat(examined["rows"], "linux.malware.malfind") if row["Process"] == "kworkerd"]
    found = {f"{row['Start']:x}-{row['End']:x}" for row in rows if row["Protection"] == "rwx"}
    assert found == set(captured.truth.rwx)
    assert any(row["Hexdump"].startswith("f3 0f 1e fa 55 48 89 e5") for row in rows)


def test_memory_findings_name_the_miner_its_sockets_and_the_reverse_shell(
    captured: Captured, examined: dict[str, Any]
) -> None:
    written = json.loads((examined["out"] / "analysis" / "memory-findings.json").read_text())
    by_category: dict[str, list[dict[str, Any]]] = {}
    for finding in written["findings"]:
        by_category.setdefault(finding["category"], []).append(finding)
    miner = next(pid for pid, (comm, _) in captured.truth.processes.items() if comm == "kworkerd")
    assert any(f["pid"] == miner for f in by_category["kernel-thread-impostor"])
    assert any(f["pid"] == miner for f in by_category["rwx-mapping"])
    external = {f["evidence"].split(" -> ")[1].split()[0] for f in by_category["external-connection"]}
    assert {
        f"{guest_image.ATTACKER}:{guest_image.C2_PORT}",
        f"{guest_image.ATTACKER}:{guest_image.POOL_PORT}",
    } <= external
    assert any("reverse_shell_command" in f["reason"] for f in by_category["shell-history"])
    assert any(f["pid"] == miner and "LISTEN" in f["evidence"] for f in by_category["listening-socket"])


def test_a_process_running_a_disk_findings_file_is_tied_to_it(captured: Captured, examined: dict[str, Any]) -> None:
    on_disk = Finding(
        severity="critical",
        category="setuid",
        filesystem="/vol-0abc/p1",
        path="/tmp/.X11-unix/kworkerd",
        reason="SUID file created during the incident window",
        time=None,
    )
    found = find_in_memory(examined["rows"], [on_disk])
    miner = next(pid for pid, (comm, _) in captured.truth.processes.items() if comm == "kworkerd")
    [tied] = [f for f in found if f.category == "process-from-disk-finding"]
    assert (tied.pid, tied.process, tied.severity) == (miner, "kworkerd", "critical")
    assert tied.disk_paths == ["/vol-0abc/p1/tmp/.X11-unix/kworkerd"]
    # The miner's other findings carry the same disk path, so the report can group them.
    assert all(f.disk_paths == tied.disk_paths for f in found if f.pid == miner)


def test_an_isf_from_the_hosts_btf_equals_one_from_vmlinuz(captured: Captured, tmp_path: Path) -> None:
    memory = captured.image.parent
    kernel = Path(f"/boot/vmlinuz-{guest_image.kernel_release()}")
    names = {what: key.rsplit("/", 1)[-1] for what, key in capture.symbol_source_keys(captured.image.name).items()}
    common = (memory / names["Kallsyms"], memory / names["Version"])
    from_host = build_from_files(memory / names["Btf"], *common, tmp_path / "host.json.xz")
    from_vmlinuz = build_from_files(kernel, *common, tmp_path / "vmlinuz.json.xz")
    host = json.loads(lzma.decompress(from_host.path.read_bytes()))
    vmlinuz = json.loads(lzma.decompress(from_vmlinuz.path.read_bytes()))
    for section in ("base_types", "user_types", "enums", "symbols"):
        assert host[section] == vmlinuz[section], section
    assert host["symbols"]["linux_banner"]["constant_data"]
    assert from_host.kaslr_shift == from_vmlinuz.kaslr_shift != 0


def test_irf_examine_memory_writes_volatility_json_and_memory_findings(captured: Captured, tmp_path: Path) -> None:
    from irf.cli import app

    out = tmp_path / "out"
    done = CliRunner().invoke(
        app,
        [
            "examine-memory",
            str(captured.image),
            "--symbols",
            str(captured.image.parent),
            "--out",
            str(out),
            "--plugin",
            "linux.psaux",
        ],
        terminal_width=200,
    )
    assert done.exit_code == 0, done.output
    rows = json.loads((out / "volatility" / "linux.psaux.json").read_text())
    assert any(row["COMM"] == "kworkerd" for row in rows)
    findings = json.loads((out / "memory-findings.json").read_text())
    assert findings["memory"]["status"] == ANALYSED
    assert any(f["category"] == "kernel-thread-impostor" for f in findings["findings"])
