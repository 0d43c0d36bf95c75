"""The capture's SSM document: pre-signing, no secrets, checked parameters, and the host side's planning.

That the document's program really captures a kernel's memory is tested on a real kernel in
tests/memory/test_volatility_guest.py (QEMU guest, both methods); here: what goes into SendCommand, what SSM
would refuse, and the pure parts of the program (where physical memory is, what kcore maps).
"""

from __future__ import annotations

import json
import re
import struct
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from handlers.memory import acquire, capture
from handlers.memory.capture import CaptureReportUnreadable, PresignedMultipartUpload, SymbolSourceUrls
from simulation.guest import ssm
from simulation.local_aws import FORENSIC_ACCOUNT, REGION, account_session

BUCKET = "acme-ir-artifacts-222222222222-eu-west-1"
MODULES = "acme-ir-modules-123456789012-eu-west-1"
KEY = "case-1/memory/i-0123456789abcdef0.lime"
SHA = "ab" * 32
TIMEOUT = 1800


@pytest.fixture
def presigned(aws: None) -> tuple[str, PresignedMultipartUpload, SymbolSourceUrls]:
    from handlers.memory.handler import PRESIGN_CONFIG

    forensic = account_session(FORENSIC_ACCOUNT, REGION)
    s3: Any = forensic.client("s3", config=PRESIGN_CONFIG)
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    expires = TIMEOUT + capture.URL_MARGIN_SECONDS
    upload = capture.presign_capture(s3, BUCKET, KEY, 12, expires)
    module = capture.presign_module(s3, MODULES, "amzn-2023/6.1.0/x86_64/lime.ko", expires)
    return module, upload, capture.presign_symbol_sources(s3, BUCKET, KEY, expires)


def parameters_for(presigned: tuple[str, PresignedMultipartUpload, SymbolSourceUrls]) -> dict[str, list[str]]:
    module, upload, symbols = presigned
    return capture.capture_parameters(
        upload, symbols, method="lime", timeout_seconds=TIMEOUT, module_url=module, module_sha256=SHA, port=45123
    )


def test_presigning_starts_one_multipart_upload_with_a_sigv4_url_per_part(
    presigned: tuple[str, PresignedMultipartUpload, SymbolSourceUrls],
) -> None:
    module, upload, symbols = presigned
    uploads = account_session(FORENSIC_ACCOUNT, REGION).client("s3").list_multipart_uploads(Bucket=BUCKET)["Uploads"]
    assert [(u["Key"], u["UploadId"]) for u in uploads] == [(KEY, upload.upload_id)]
    assert len(upload.part_urls) == 12
    for number, part_url in enumerate(upload.part_urls, start=1):
        query = parse_qs(urlsplit(part_url).query)
        assert query["partNumber"] == [str(number)] and query["uploadId"] == [upload.upload_id]
        assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert "X-Amz-Signature=" in module and "lime.ko" in module
    assert urlsplit(symbols.btf).path.endswith("/memory/i-0123456789abcdef0.btf")


def test_every_url_sent_expires_within_the_capture_timeout_plus_margin(
    presigned: tuple[str, PresignedMultipartUpload, SymbolSourceUrls],
) -> None:
    text = json.dumps(parameters_for(presigned))
    expiries = [int(v) for v in re.findall(r"X-Amz-Expires=(\d+)", text)]
    assert len(expiries) == 5 and all(v <= TIMEOUT + capture.URL_MARGIN_SECONDS for v in expiries)


def test_the_command_holds_no_credentials(presigned: tuple[str, PresignedMultipartUpload, SymbolSourceUrls]) -> None:
    text = json.dumps(parameters_for(presigned)) + json.dumps(capture.capture_document())
    for forbidden in (
        "AWS_SECRET",
        "aws_secret_access_key",
        "AWS_ACCESS_KEY_ID",
        "SecretAccessKey",
        "aws configure",
        "aws s3",
        "AWS_SESSION_TOKEN",
    ):
        assert forbidden.lower() not in text.lower()
    # A long-term access key id (AKIA...) must never sign anything the instance gets.
    assert not re.search(r"AKIA[0-9A-Z]{12,}", text)
    assert "X-Amz-Credential=" in text  # only the credential scope of temporary, expiring URLs


def test_no_compiler_package_manager_or_other_host_is_used(
    presigned: tuple[str, PresignedMultipartUpload, SymbolSourceUrls],
) -> None:
    document = ssm.commands_of(capture.capture_document())
    invoked = re.findall(r"(?:^|[\s;|&(\"])(gcc|cc|make|yum|dnf|apt|apt-get|pip3?|git|wget|curl)[\s\"]", document, re.M)
    assert invoked == []
    hosts = set(re.findall(r"https://([^/'\s\"]+)", json.dumps(parameters_for(presigned))))
    assert hosts <= {f"{BUCKET}.s3.{REGION}.amazonaws.com", f"{MODULES}.s3.{REGION}.amazonaws.com"}


def test_the_document_runs_the_capture_program_verbatim_under_an_isolated_python() -> None:
    document = capture.capture_document()
    text = ssm.commands_of(document)
    assert capture.capture_program() in text
    assert capture.capture_program() == Path(acquire.__file__).read_text()
    assert 'exec "$PY" -I -S - ' in text and "export TMPDIR=/dev/shm" in text
    assert document["mainSteps"][0]["inputs"]["timeoutSeconds"] == "{{ executionTimeout }}"


def test_every_parameter_has_a_pattern_that_admits_no_shell_metacharacter(
    presigned: tuple[str, PresignedMultipartUpload, SymbolSourceUrls],
) -> None:
    document = capture.capture_document()
    good = {name: values[0] for name, values in parameters_for(presigned).items()}
    assert ssm.resolve(document, good)["Method"] == "lime"
    for name, spec in document["parameters"].items():
        assert spec["allowedPattern"].startswith("^") and spec["allowedPattern"].endswith("$")
        for evil in ("'", "$(reboot)", "`id`", "\nreboot", ";reboot", "a b", '"', "\\"):
            with pytest.raises(ssm.InvalidParameters):
                ssm.resolve(document, {**good, name: good[name] + evil})


def test_rendered_shell_is_syntactically_valid_and_the_program_compiles(
    presigned: tuple[str, PresignedMultipartUpload, SymbolSourceUrls], tmp_path: Path
) -> None:
    document = capture.capture_document()
    rendered = ssm.render(ssm.commands_of(document), ssm.resolve(document, parameters_for(presigned)))
    assert "{{" not in rendered
    script = tmp_path / "capture.sh"
    script.write_text(rendered)
    done = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    compile(capture.capture_program(), "acquire.py", "exec")
    discovery = tmp_path / "discovery.sh"
    discovery.write_text(ssm.commands_of(capture.discovery_document()))
    assert subprocess.run(["sh", "-n", str(discovery)], capture_output=True).returncode == 0


def test_the_program_refuses_an_unknown_method_or_missing_parameters_with_a_result_line() -> None:
    def run(*arguments: str) -> capture.CaptureReport:
        program = ["python3", "-I", "-S", "-c", capture.capture_program(), *arguments]
        done = subprocess.run(program, capture_output=True, text=True, timeout=60)
        assert done.returncode == 1
        return capture.parse_capture_output(done.stdout)

    assert run("Method=dd").reason == "unknown capture method"
    # Sent without its parameters (here a root test run would otherwise read this host's kcore).
    missing = run("Method=kcore", "TimeoutSeconds=300")
    assert missing.acquired is False and ("parameter" in missing.reason or "root" in missing.reason)


IOMEM = """00000000-00000fff : Reserved
00001000-0009fbff : System RAM
0009fc00-0009ffff : Reserved
000f0000-000fffff : System ROM
00100000-0ffdefff : System RAM
  01000000-01e01fff : Kernel code
0ffdf000-0fffffff : Reserved
"""
NONE = acquire.NO_PHYSICAL_ADDRESS
DIRECT = 0xFFFF888000000000
SEGMENTS = [
    (0x1000, 0xFFFFFFFF81000000, 0x1000000, 0x2000000),  # kernel text: RAM a second time
    (0x4000000, 0xFFFFC90000000000, NONE, 0x1000000),  # vmalloc: no physical address
    (0x8000000, DIRECT + 0x1000, 0x1000, 0x9F000),
    (0x9000000, DIRECT + 0x100000, 0x100000, 0xFEDF000),
]


def test_the_direct_map_is_the_offset_covering_most_bytes_and_ram_is_read_through_it() -> None:
    mapped = acquire.direct_map(SEGMENTS)
    assert mapped == [(0x1000, 0x9FFFF, 0x8000000), (0x100000, 0xFFDEFFF, 0x9000000)]
    plan = acquire.plan_ranges(acquire.system_ram(IOMEM), mapped)
    assert plan == [(0x1000, 0x9FBFF, 0x8000000), (0x100000, 0xFFDEFFF, 0x9000000)]


def test_iomem_read_as_non_root_falls_back_to_kcores_segments() -> None:
    zeros = re.sub(r"[0-9a-f]{8}-[0-9a-f]{8}", "00000000-00000000", IOMEM)
    assert acquire.system_ram(zeros) == []
    plan = acquire.plan_ranges([], acquire.direct_map(SEGMENTS))
    assert [(start, end) for start, end, _ in plan] == [(0x1000, 0x9FFFF), (0x100000, 0xFFDEFFF)]


def test_kcore_program_headers_are_read_from_an_elf64_core() -> None:
    header = bytearray(64)
    header[:6] = b"\x7fELF\x02\x01"
    struct.pack_into("<Q", header, 32, 64)
    struct.pack_into("<HH", header, 54, 56, 2)
    table = struct.pack("<IIQQQQQQ", 1, 7, 0x1000, DIRECT, 0, 0x1000, 0x1000, 0x1000)
    table += struct.pack("<IIQQQQQQ", 4, 4, 0, 0, 0, 0, 0, 0)  # PT_NOTE: not memory
    segments = acquire.load_segments(bytes(header), lambda at, size: table[at - 64 : at - 64 + size])
    assert segments == [(0x1000, DIRECT, 0, 0x1000)]
    with pytest.raises(acquire.Refused):
        acquire.load_segments(b"\x7fELF\x01" + bytes(58), lambda at, size: b"")


def test_a_lime_range_header_is_the_format_volatility_reads() -> None:
    assert acquire.lime_header(0x1000, 0x9FFFF) == struct.pack("<IIQQ8s", 0x4C694D45, 1, 0x1000, 0x9FFFF, bytes(8))


def test_a_modules_vermagic_is_read_without_modinfo() -> None:
    module = b"\x7fELF....\0license=GPL\0vermagic=6.1.0-57-amd64 SMP preempt mod_unload modversions \0name=lime\0"
    assert acquire.module_vermagic(module) == "6.1.0-57-amd64"
    assert acquire.module_vermagic(b"no modinfo") == ""


def test_compact_part_lines_rebuild_urls_that_sign_the_same_request(
    presigned: tuple[str, PresignedMultipartUpload, SymbolSourceUrls],
) -> None:
    _, upload, _ = presigned
    base, joined = capture.compact_part_urls(upload.part_urls)
    lines = joined.split(",")
    assert len(lines) == len(upload.part_urls)
    for original, line in zip(upload.part_urls, lines, strict=True):
        rebuilt = capture.rebuild_part_url(base, line)
        assert urlsplit(rebuilt)[:3] == urlsplit(original)[:3]
        assert parse_qs(urlsplit(rebuilt).query) == parse_qs(urlsplit(original).query)


def test_part_plan_grows_parts_not_their_number() -> None:
    small = capture.plan_parts(1024**3)
    # One part is held in the suspect's memory: small hosts get the smallest planned parts.
    assert small.part_size == capture.MIN_PLANNED_PART_SIZE and small.capacity >= 1024**3 * 1.15
    huge = capture.plan_parts(768 * 1024**3)
    assert huge.part_count <= capture.MAX_PARTS and huge.capacity >= 768 * 1024**3 * 1.15
    assert huge.part_size % capture.MIB == 0


def test_result_lines_are_checked_field_by_field() -> None:
    good = (
        'noise\nIRFORENSICS-RESULT {"Acquired":true,"Method":"kcore","Sha256":"' + SHA + '","Size":10,"PartSize":5,'
        '"Parts":[[1,"e1"],[2,"e2"]],"Ranges":[[4096,8191]],"SymbolSources":{"Btf":{"Sha256":"' + SHA + '",'
        '"Size":3},"Kallsyms":{"Missing":"kptr_restrict"}}}\n'
    )
    report = capture.parse_capture_output(good)
    assert (report.acquired, report.method, report.size, report.parts) == (True, "kcore", 10, ((1, "e1"), (2, "e2")))
    assert report.ranges == ((4096, 8191),)
    assert report.symbol_sources == {"Btf": {"Sha256": SHA, "Size": 3}, "Kallsyms": {"Missing": "kptr_restrict"}}
    refused = capture.parse_capture_output('IRFORENSICS-RESULT {"Acquired":false,"Reason":"downloading failed"}')
    assert (refused.acquired, refused.reason) == (False, "downloading failed")
    unnamed = good.replace('"Method":"kcore",', "")
    for bad in ("", "IRFORENSICS-RESULT {", good.replace("[2,", "[3,"), good.replace(SHA, "zz"), unnamed):
        with pytest.raises(CaptureReportUnreadable):
            capture.parse_capture_output(bad)
