"""The capture on a real Linux kernel: Debian's, under QEMU, through the project's own SSM document.

One guest boot and one LimeFactory build for the module (each costs tens of seconds of CPU
under TCG). The document's text runs in the guest exactly as SSM's aws:runShellScript would run
it; its uploads reach moto's evidence bucket through the guest's only network path. Plugin-level
assertions (processes, sockets, history, the RWX mapping through Volatility) belong with the
examination runner's tests (tests/memory/ of the symbols work).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto import mock_aws

from components import lime_factory
from handlers.memory import capture, kernel, lime
from simulation.guest import Guest, MemoryRange, ssm, unavailable_reason
from simulation.guest import image as guest_image

pytestmark = pytest.mark.skipif(unavailable_reason() is not None, reason=f"no guest here: {unavailable_reason()}")

EVIDENCE = "acme-ir-artifacts-222222222222-eu-west-1"
MODULES = "acme-ir-modules-123456789012-eu-west-1"
PAGE = 4096
PRESIGN = Config(signature_version="s3v4", s3={"addressing_style": "virtual"})


@pytest.fixture(scope="module")
def lime_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The LimeFactory's build script, run here for the guest's Debian 12 kernel."""
    out = tmp_path_factory.mktemp("lime-build")
    release = guest_image.kernel_release()
    env = {
        **os.environ,
        "DISTRO": "debian",
        "DISTRO_VERSION": "12",
        "KERNEL_RELEASE": release,
        "ARCH": "x86_64",
        "OUT": str(out),
        "IRF_SKIP_INSTALL": "1",
    }
    subprocess.run(["bash", str(lime_factory.BUILD_SCRIPT)], env=env, check=True, capture_output=True, timeout=600)
    return out


@pytest.fixture(scope="module")
def cloud() -> Iterator[dict[str, Any]]:
    with mock_aws():
        s3: Any = boto3.client("s3", region_name="eu-west-1", config=PRESIGN)
        for bucket in (EVIDENCE, MODULES):
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        with Guest.boot() as guest:
            yield {"s3": s3, "guest": guest}


def _capture(cloud: dict[str, Any], key: str, **method: Any) -> tuple[capture.CaptureReport, bytes, str]:
    s3, guest = cloud["s3"], cloud["guest"]
    plan = capture.plan_parts(256 << 20)
    upload = capture.presign_capture(s3, EVIDENCE, key, plan.part_count, 3600, part_size=plan.part_size)
    symbols = capture.presign_symbol_sources(s3, EVIDENCE, key, 3600)
    document = capture.capture_document()
    values = ssm.resolve(document, capture.capture_parameters(upload, symbols, timeout_seconds=900, **method))
    run = guest.run_capture(ssm.commands_of(document), values)
    report = capture.parse_capture_output(run.stdout)
    assert report.acquired, run.stdout + run.stderr
    parts = s3.list_parts(Bucket=EVIDENCE, Key=key, UploadId=upload.upload_id)["Parts"]
    assert [(p["PartNumber"], p["ETag"].strip('"')) for p in parts] == list(report.parts)
    s3.complete_multipart_upload(
        Bucket=EVIDENCE,
        Key=key,
        UploadId=upload.upload_id,
        MultipartUpload={"Parts": [{"PartNumber": p["PartNumber"], "ETag": p["ETag"]} for p in parts]},
    )
    return report, s3.get_object(Bucket=EVIDENCE, Key=key)["Body"].read(), run.stdout


def _assert_lime_structure(image: bytes) -> list[lime.LimeRange]:
    offset, ranges = 0, []
    while offset < len(image):
        magic, version, start, end, reserved = lime.HEADER.unpack_from(image, offset)
        assert (magic, version, reserved) == (lime.MAGIC, lime.VERSION, b"\0" * 8)
        assert image[offset : offset + 4] == b"EMiL" and end >= start
        offset += lime.HEADER.size + end - start + 1
        ranges.append(lime.LimeRange(start, end, b""))
    assert offset == len(image)
    return lime.read_lime_from(io.BytesIO(image))


def _whole_pages(ram: list[MemoryRange]) -> list[tuple[int, int]]:
    # kcore maps RAM a page at a time: a System RAM line ending inside a page ends one page earlier.
    return [(r.start, ((r.end + 1) // PAGE) * PAGE - 1) for r in ram]


def test_discovery_of_the_guest_says_kcore_is_readable_and_chooses_it(cloud: dict[str, Any]) -> None:
    document = capture.discovery_document()
    run = cloud["guest"].run_capture(ssm.commands_of(document), ssm.resolve(document, {}))
    info = kernel.parse_discovery(run.stdout)
    assert (info.distro, info.distro_version, info.arch) == ("debian", "12", "x86_64")
    assert info.kcore and info.btf and info.python == "3.11" and info.lockdown == "none"
    assert kernel.capture_method(info)[0] == "kcore"
    assert kernel.is_buildable(info)[0] is True


def test_kcore_capture_streams_the_system_ram_of_iomem_and_the_hosts_symbol_sources(cloud: dict[str, Any]) -> None:
    key = "case-1/memory/i-0guest0kcore.lime"
    report, image, _ = _capture(cloud, key, method="kcore")
    ram = cloud["guest"].system_ram()

    assert report.method == "kcore" and report.ranges_from == "/proc/iomem System RAM"
    assert hashlib.sha256(image).hexdigest() == report.sha256 and len(image) == report.size
    ranges = _assert_lime_structure(image)
    assert [(r.start, r.end) for r in ranges] == _whole_pages(ram) == list(report.ranges)
    assert report.unreadable_bytes == 0
    # The kernel's banner is in RAM where the direct map puts it: the image holds real kernel memory.
    banner = cloud["s3"].get_object(Bucket=EVIDENCE, Key=capture.symbol_source_keys(key)["Version"])["Body"].read()
    assert banner.startswith(b"Linux version 6.1.") and any(banner.rstrip(b"\n") in r.data for r in ranges)
    btf = cloud["s3"].get_object(Bucket=EVIDENCE, Key=capture.symbol_source_keys(key)["Btf"])["Body"].read()
    assert struct.unpack_from("<H", btf)[0] == 0xEB9F
    kallsyms = cloud["s3"].get_object(Bucket=EVIDENCE, Key=capture.symbol_source_keys(key)["Kallsyms"])["Body"].read()
    assert b" T _text\n" in kallsyms and not kallsyms.startswith(b"0000000000000000 T")
    assert report.symbol_sources["Btf"] == {"Sha256": hashlib.sha256(btf).hexdigest(), "Size": len(btf)}


def test_the_lime_factory_script_builds_a_module_for_the_guests_kernel(lime_build: Path) -> None:
    module = (lime_build / "lime.ko").read_bytes()
    build = json.loads((lime_build / "build.json").read_text())
    assert build["files"]["lime.ko"]["sha256"] == hashlib.sha256(module).hexdigest()
    assert build["sources"]["lime"].startswith("debian:lime-forensics-dkms 1.9.1")
    assert b"vermagic=" + build["kernel"]["release"].encode() + b" " in module


def test_lime_capture_loads_the_module_dumps_every_range_and_unloads_it(
    cloud: dict[str, Any], lime_build: Path
) -> None:
    module = (lime_build / "lime.ko").read_bytes()
    module_key = "debian-12/6.1.0-57-amd64/x86_64/lime.ko"
    cloud["s3"].put_object(Bucket=MODULES, Key=module_key, Body=module)
    url = capture.presign_module(cloud["s3"], MODULES, module_key, 3600)
    key = "case-1/memory/i-0guest00lime.lime"
    report, image, _ = _capture(
        cloud, key, method="lime", module_url=url, module_sha256=hashlib.sha256(module).hexdigest(), port=45123
    )
    ram = cloud["guest"].system_ram()

    assert report.method == "lime" and report.ranges_from == "LiME module"
    assert hashlib.sha256(image).hexdigest() == report.sha256
    ranges = _assert_lime_structure(image)
    assert [(r.start, r.end) for r in ranges] == [(r.start, r.end) for r in ram]
    after = cloud["guest"].run("grep -c '^lime ' /proc/modules; ls /dev/shm")
    assert after.stdout.split() == ["0"], "LiME is unloaded and tmpfs holds nothing of the capture"


def test_a_tampered_module_is_refused_before_it_is_loaded(cloud: dict[str, Any]) -> None:
    module_key = "debian-12/6.1.0-57-amd64/x86_64/tampered.ko"
    cloud["s3"].put_object(Bucket=MODULES, Key=module_key, Body=b"\x7fELF not lime")
    url = capture.presign_module(cloud["s3"], MODULES, module_key, 3600)
    s3 = cloud["s3"]
    key = "case-1/memory/i-0guesttamper.lime"
    upload = capture.presign_capture(s3, EVIDENCE, key, 40, 3600, part_size=8 << 20)
    symbols = capture.presign_symbol_sources(s3, EVIDENCE, key, 3600)
    document = capture.capture_document()
    parameters = capture.capture_parameters(
        upload, symbols, method="lime", timeout_seconds=300, module_url=url, module_sha256="ab" * 32
    )
    run = cloud["guest"].run_capture(ssm.commands_of(document), ssm.resolve(document, parameters))
    report = capture.parse_capture_output(run.stdout)
    assert report.acquired is False and "sha256 in build.json" in report.reason
    assert cloud["guest"].run("grep -c '^lime ' /proc/modules").stdout.strip() == "0"
