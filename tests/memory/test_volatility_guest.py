"""Volatility 3 through our runner on real memory captured both ways: Debian's kernel booted under QEMU
with the scenario's planted activity, captured by the project's own capture document by kcore and by
the LimeFactory's LiME module (built here by its build script), each image examined with the ISF built
from the host files its own capture uploaded beside it.

One boot and one module build for the whole file. Every expectation below holds for both images:
the planted processes (name, PID, parent), sockets (port, state), history lines and the RWX mapping,
read live from the guest just before each capture.
"""

from __future__ import annotations

import hashlib
import io
import json
import lzma
import os
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto import mock_aws
from typer.testing import CliRunner

from components import lime_factory
from examiner.casefile import write_report
from examiner.findings import Finding
from examiner.memory import ANALYSED, PLUGINS
from examiner.memory_findings import find_in_memory, flatten
from examiner.narrative import MEMORY_STAGE
from examiner.runner import ExaminationResult, MemoryImage, examine_case
from examiner.symbols import BuiltISF, build_from_files
from handlers.memory import acquire, capture, lime
from simulation import disk_images
from simulation.guest import Guest, ssm, unavailable_reason
from simulation.guest import image as guest_image

pytestmark = pytest.mark.skipif(unavailable_reason() is not None, reason=f"no guest: {unavailable_reason()}")

BUCKET = "irf-evidence-guest"
MODULES = "irf-modules-guest"
CASE = "case-guest-0001"
INSTANCE = "i-0a1b2c3d4e5f60718"
METHODS = ("kcore", "lime")
LIME_PORT = 45123
PAGE = 4096
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
    method: str
    image: Path
    truth: Truth
    report: capture.CaptureReport
    listed_parts: list[tuple[int, str]]  # what S3's ListParts showed before the upload was completed
    after: list[str]  # lime modules loaded, then /dev/shm's entries, once the capture had ended


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
    miner = _miner(processes)
    maps = guest.read_file(f"/proc/{miner}/maps").decode().splitlines()
    rwx = [line.split()[0] for line in maps if line.split()[1].startswith("rwx")]
    return Truth(processes, sockets, rwx, [(r.start, r.end) for r in guest.system_ram()])


def _miner(processes: dict[int, tuple[str, int]]) -> int:
    return next(pid for pid, (comm, _) in processes.items() if comm == "kworkerd")


@pytest.fixture(scope="module")
def lime_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The LimeFactory's build script, run here for the guest's Debian 12 kernel."""
    out = tmp_path_factory.mktemp("lime-build")
    env = {
        **os.environ,
        "DISTRO": "debian",
        "DISTRO_VERSION": "12",
        "KERNEL_RELEASE": guest_image.kernel_release(),
        "ARCH": "x86_64",
        "OUT": str(out),
        "IRF_SKIP_INSTALL": "1",
    }
    subprocess.run(["bash", str(lime_factory.BUILD_SCRIPT)], env=env, check=True, capture_output=True, timeout=600)
    return out


def _capture(s3: Any, guest: Guest, method: str, case_dir: Path, **lime_arguments: Any) -> Captured:
    key = f"{CASE}-{method}/memory/{INSTANCE}.lime"
    truth = _live_truth(guest)
    plan = capture.plan_parts(guest_memory_bytes(guest))
    upload = capture.presign_capture(s3, BUCKET, key, plan.part_count, 3600, part_size=plan.part_size)
    sources = capture.presign_symbol_sources(s3, BUCKET, key, 3600)
    document = capture.capture_document()
    parameters = capture.capture_parameters(upload, sources, method=method, timeout_seconds=900, **lime_arguments)
    run = guest.run_capture(ssm.commands_of(document), ssm.resolve(document, parameters), timeout=900)
    report = capture.parse_capture_output(run.stdout)
    assert report.acquired, (report.reason, run.stderr[-2000:])
    listed = s3.list_parts(Bucket=BUCKET, Key=key, UploadId=upload.upload_id)["Parts"]
    s3.complete_multipart_upload(
        Bucket=BUCKET,
        Key=key,
        UploadId=upload.upload_id,
        MultipartUpload={"Parts": [{"PartNumber": p["PartNumber"], "ETag": p["ETag"]} for p in listed]},
    )
    after = guest.run("grep -c '^lime ' /proc/modules; ls /dev/shm").stdout.split()
    memory = case_dir / method / "memory"
    memory.mkdir(parents=True)
    for object_key in [key, *capture.symbol_source_keys(key).values()]:
        name = object_key.rsplit("/", 1)[1]
        (memory / name).write_bytes(s3.get_object(Bucket=BUCKET, Key=object_key)["Body"].read())
    return Captured(
        method=method,
        image=memory / f"{INSTANCE}.lime",
        truth=truth,
        report=report,
        listed_parts=[(p["PartNumber"], p["ETag"].strip('"')) for p in listed],
        after=after,
    )


def guest_memory_bytes(guest: Guest) -> int:
    meminfo = guest.read_file("/proc/meminfo").decode()
    return int(meminfo.split("MemTotal:", 1)[1].split()[0]) * 1024


@pytest.fixture(scope="module")
def captures(lime_build: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Captured]:
    """Both methods, one after the other, on one boot; everything the tests read is copied out of moto."""
    case_dir = tmp_path_factory.mktemp("case")
    module = (lime_build / "lime.ko").read_bytes()
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1", config=Config(signature_version="s3v4"))
        for bucket in (BUCKET, MODULES):
            s3.create_bucket(Bucket=bucket)
        module_key = f"debian-12/{guest_image.kernel_release()}/x86_64/lime.ko"
        s3.put_object(Bucket=MODULES, Key=module_key, Body=module)
        with Guest.boot() as guest:
            return {
                "kcore": _capture(s3, guest, "kcore", case_dir),
                "lime": _capture(
                    s3,
                    guest,
                    "lime",
                    case_dir,
                    module_url=capture.presign_module(s3, MODULES, module_key, 3600),
                    module_sha256=hashlib.sha256(module).hexdigest(),
                    port=LIME_PORT,
                ),
            }


@pytest.fixture(scope="module", params=METHODS)
def captured(request: pytest.FixtureRequest, captures: dict[str, Captured]) -> Captured:
    return captures[request.param]


@pytest.fixture(scope="module")
def examined(captured: Captured, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    # Memory only, as for an instance without EBS volumes (tests/memory/test_memory_only_guest.py reads
    # the report written from this case folder); no prebuilt ISF: the host's files are used.
    out = tmp_path_factory.mktemp(f"examined-{captured.method}") / f"333333333333-{INSTANCE}-eu-west-1-1796400000"
    shutil.copytree(captured.image.parent, out / "memory")
    # The custody the acquisition wrote before any examination: it is what says which method captured.
    (out / "custody").mkdir()
    request = {"instance_id": INSTANCE, "account": "333333333333", "region": "eu-west-1", "trigger": "tag"}
    events = [
        {"event": "case-opened", "detail": {"request": {**request, "action": "Contain"}}},
        {
            "event": "memory-acquired",
            "detail": {"Key": f"{out.name}/memory/{captured.image.name}", "Method": captured.method},
        },
    ]
    for seq, event in enumerate(events, start=1):
        (out / "custody" / f"{seq:06d}-{event['event']}.json").write_text(json.dumps({"seq": seq, **event}))
    result = examine_case([], MemoryImage(path=out / "memory" / captured.image.name), out, incident_window=None)
    rows = {
        run.plugin: json.loads((out / "analysis" / "volatility" / run.output).read_text())
        for run in result.memory.plugins
        if run.succeeded
    }
    return {"result": result, "rows": rows, "out": out}


def _flat(rows: dict[str, Any], plugin: str) -> list[dict[str, Any]]:
    return [dict(row) for row in flatten(rows[plugin])]


def _lime_ranges(image: bytes) -> list[lime.LimeRange]:
    """The image's ranges, checked header by header: LiME v1, back to back, nothing after the last."""
    offset = 0
    while offset < len(image):
        magic, version, start, end, reserved = lime.HEADER.unpack_from(image, offset)
        assert (magic, version, reserved) == (lime.MAGIC, lime.VERSION, b"\0" * 8)
        assert image[offset : offset + 4] == b"EMiL" and end >= start
        offset += lime.HEADER.size + end - start + 1
    assert offset == len(image)
    return lime.read_lime_from(io.BytesIO(image))


def _expected_ranges(method: str, system_ram: list[tuple[int, int]]) -> list[tuple[int, int]]:
    if method == "kcore":
        # kcore maps RAM a page at a time: a System RAM line ending inside a page ends one page earlier.
        return [(start, (end + 1) // PAGE * PAGE - 1) for start, end in system_ram]
    # LiME dumps the System RAM lines as they are (padding a partial last page with zeros).
    return system_ram


def test_the_lime_factory_script_builds_a_module_for_the_guests_kernel(lime_build: Path) -> None:
    module = (lime_build / "lime.ko").read_bytes()
    build = json.loads((lime_build / "build.json").read_text())
    assert build["files"]["lime.ko"]["sha256"] == hashlib.sha256(module).hexdigest()
    assert build["sources"]["lime"].startswith("debian:lime-forensics-dkms 1.9.1")
    assert b"vermagic=" + build["kernel"]["release"].encode() + b" " in module
    # The module skips the rest of a range it finds "too slow" unless told not to (see acquire.lime_arguments).
    assert {"timeout", "path", "format", "localhostonly"} <= acquire.module_parameters(module)
    assert acquire.lime_arguments(module, LIME_PORT)[-1] == "timeout=0"


def test_the_image_is_the_guests_system_ram_in_lime_format(captured: Captured) -> None:
    report, image = captured.report, captured.image.read_bytes()
    assert report.method == captured.method
    assert report.ranges_from == {"kcore": "/proc/iomem System RAM", "lime": "LiME module"}[captured.method]
    assert hashlib.sha256(image).hexdigest() == report.sha256 and len(image) == report.size
    assert captured.listed_parts == list(report.parts)
    ranges = [(r.start, r.end) for r in _lime_ranges(image)]
    assert ranges == _expected_ranges(captured.method, captured.truth.system_ram)
    assert list(report.ranges) == ranges and report.unreadable_bytes == 0
    assert captured.after == ["0"], "no LiME module is left loaded and tmpfs holds nothing of the capture"


def test_the_image_holds_the_kernel_and_the_capture_uploaded_its_symbol_sources(captured: Captured) -> None:
    memory = captured.image.parent
    names = {what: key.rsplit("/", 1)[-1] for what, key in capture.symbol_source_keys(captured.image.name).items()}
    banner = (memory / names["Version"]).read_bytes()
    # The kernel's banner is in RAM: the image holds the running kernel, not a well-formed run of zeros.
    assert banner.startswith(b"Linux version 6.1.")
    assert any(banner.rstrip(b"\n") in r.data for r in lime.read_lime_from(io.BytesIO(captured.image.read_bytes())))
    btf = (memory / names["Btf"]).read_bytes()
    assert struct.unpack_from("<H", btf)[0] == 0xEB9F
    kallsyms = (memory / names["Kallsyms"]).read_bytes()
    assert b" T _text\n" in kallsyms and not kallsyms.startswith(b"0000000000000000 T")
    assert b"[lime]" not in kallsyms, "read once the module was unloaded: no module's symbols in the kernel's table"
    assert captured.report.symbol_sources["Btf"] == {"Sha256": hashlib.sha256(btf).hexdigest(), "Size": len(btf)}


def test_every_plugin_ran_through_the_runner_and_sockscan_is_recorded_not_fatal(examined: dict[str, Any]) -> None:
    result = examined["result"]
    assert result.memory.status == ANALYSED, result.memory.reason
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
    miner = _miner(captured.truth.processes)
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
    miner = _miner(captured.truth.processes)
    [tied] = [f for f in found if f.category == "process-from-disk-finding"]
    assert (tied.pid, tied.process, tied.severity) == (miner, "kworkerd", "critical")
    assert tied.disk_paths == ["/vol-0abc/p1/tmp/.X11-unix/kworkerd"]
    # The miner's other findings carry the same disk path, so the report can group them.
    assert all(f.disk_paths == tied.disk_paths for f in found if f.pid == miner)


@pytest.fixture(scope="module")
def host_isf(captures: dict[str, Captured], tmp_path_factory: pytest.TempPathFactory) -> BuiltISF:
    """The ISF `irf symbols` makes from the kcore capture's host files (one build for the two tests below)."""
    image = captures["kcore"].image
    names = {what: key.rsplit("/", 1)[-1] for what, key in capture.symbol_source_keys(image.name).items()}
    out = tmp_path_factory.mktemp("host-isf") / "linux" / "host.json.xz"
    out.parent.mkdir()
    return build_from_files(
        image.parent / names["Btf"], image.parent / names["Kallsyms"], image.parent / names["Version"], out
    )


def test_an_isf_from_the_hosts_btf_equals_one_from_vmlinuz(
    captures: dict[str, Captured], host_isf: BuiltISF, tmp_path: Path
) -> None:
    image = captures["kcore"].image
    kernel = Path(f"/boot/vmlinuz-{guest_image.kernel_release()}")
    names = {what: key.rsplit("/", 1)[-1] for what, key in capture.symbol_source_keys(image.name).items()}
    from_vmlinuz = build_from_files(
        kernel, image.parent / names["Kallsyms"], image.parent / names["Version"], tmp_path / "vmlinuz.json.xz"
    )
    host = json.loads(lzma.decompress(host_isf.path.read_bytes()))
    vmlinuz = json.loads(lzma.decompress(from_vmlinuz.path.read_bytes()))
    for section in ("base_types", "user_types", "enums", "symbols"):
        assert host[section] == vmlinuz[section], section
    assert host["symbols"]["linux_banner"]["constant_data"]
    assert host_isf.kaslr_shift == from_vmlinuz.kaslr_shift != 0


def test_irf_examine_memory_writes_volatility_json_and_memory_findings(
    captures: dict[str, Captured], host_isf: BuiltISF, tmp_path: Path
) -> None:
    from irf.cli import app

    # A prebuilt ISF in --symbols (as the LimeFactory's would be): the host-file path is the runner tests' above.
    image, symbols, out = captures["kcore"].image, host_isf.path.parent.parent, tmp_path / "out"
    done = CliRunner().invoke(
        app,
        ["examine-memory", str(image), "--symbols", str(symbols), "--out", str(out), "--plugin", "linux.psaux"],
        terminal_width=200,
    )
    assert done.exit_code == 0, done.output
    rows = json.loads((out / "volatility" / "linux.psaux.json").read_text())
    assert any(row["COMM"] == "kworkerd" for row in rows)
    findings = json.loads((out / "memory-findings.json").read_text())
    assert findings["memory"]["status"] == ANALYSED
    assert findings["memory"]["symbols"] == "prebuilt ISF host.json.xz"
    assert any(f["category"] == "kernel-thread-impostor" for f in findings["findings"])


# A memory-only case, as an instance-store instance leaves one: the report and its narrative name what
# memory shows and say plainly that there was no disk, and why.
NO_EBS = f"{INSTANCE} boots from instance store and it has no EBS volumes: instance-store volumes cannot be acquired"


@dataclass(frozen=True)
class Reported:
    result: ExaminationResult
    html: str
    markdown: str
    document: dict[str, Any]


@pytest.fixture(scope="module")
def reported(examined: dict[str, Any]) -> Reported:
    """The case report written from the memory-only examination's case folder, as on the analysis instance."""
    case_dir, result = examined["out"], examined["result"]
    (case_dir / "manifest.json").write_text(
        json.dumps(
            {"case_id": case_dir.name, "artefacts": [], "memory": {"Acquired": True}, "disks_not_acquired": NO_EBS}
        )
    )
    written = write_report(case_dir, result)
    return Reported(
        result=result,
        html=written["report.html"].read_text().replace("<wbr>", ""),
        markdown=written["report.md"].read_text().replace("\\", ""),
        document=json.loads(written["report.json"].read_text()),
    )


def _pid(captured: Captured, comm: str) -> int:
    return next(pid for pid, (name, _) in captured.truth.processes.items() if name == comm)


def test_the_memory_alone_is_analysed_and_the_report_says_there_was_no_disk_and_why(reported: Reported) -> None:
    assert reported.result.memory.status == ANALYSED and reported.result.filesystems == []
    summary = (
        f"no disk was examined: there was no disk to examine ({NO_EBS}); "
        "this examination is of the instance's memory alone"
    )
    assert reported.document["disk"] == {
        "examined": False,
        "volumes": [],
        "summary": summary,
        "sentence": summary[0].upper() + summary[1:] + ".",
    }
    assert reported.document["outcome"]["result"] == (
        "response succeeded: evidence acquired and examined (memory only: the instance had no disk to acquire)"
    )
    for text in (reported.html, reported.markdown):
        assert "No disk was examined: there was no disk to examine" in text
        assert "boots from instance store and it has no EBS volumes" in text


def test_the_report_names_the_planted_process_its_pid_listener_connection_and_rwx_mapping(
    captured: Captured, reported: Reported
) -> None:
    miner = _pid(captured, "kworkerd")
    findings = reported.document["memory_findings"]
    assert {f["category"] for f in findings if f["pid"] == miner} >= {
        "kernel-thread-impostor",
        "rwx-mapping",
        "listening-socket",
        "external-connection",
    }
    c2 = f"{guest_image.ATTACKER}:{guest_image.C2_PORT}"
    rwx = sorted(captured.truth.rwx)[0]
    start = f"0x{rwx.split('-')[0].lstrip('0')}"
    for text in (reported.html, reported.markdown):
        assert "kworkerd" in text and str(miner) in text
        assert f"listening on 0.0.0.0:{guest_image.MINER_LISTEN_PORT}" in text
        assert c2 in text and start in text


def test_the_narrative_tells_the_planted_activity_from_memory(captured: Captured, reported: Reported) -> None:
    steps = reported.document["narrative"]
    assert steps and {s["stage"] for s in steps} == {MEMORY_STAGE}
    miner = _pid(captured, "kworkerd")
    [step] = [s for s in steps if s["summary"].startswith(f"kworkerd (PID {miner}) was running: ")]
    assert "named like a kernel thread but has a user address space" in step["summary"]
    assert "memory mapping that is writable and executable (rwx)" in step["summary"]
    assert f"listening: TCP 0.0.0.0:{guest_image.MINER_LISTEN_PORT}" in step["summary"]
    assert f"connected to {guest_image.ATTACKER}:{guest_image.POOL_PORT}" in step["summary"]
    shells = [s for s in steps if f"{guest_image.ATTACKER}:{guest_image.C2_PORT}" in s["summary"]]
    assert shells, [s["summary"] for s in steps]
    assert "There was no disk to examine: every step comes from memory." in reported.html


def test_the_report_says_how_the_memory_was_captured(captured: Captured, reported: Reported) -> None:
    how = {"kcore": "captured through /proc/kcore", "lime": "captured by the LiME kernel module"}[captured.method]
    assert reported.result.memory.acquisition == captured.method
    for text in (reported.html, reported.markdown):
        assert f"Image {captured.image.name}: {how}" in text
