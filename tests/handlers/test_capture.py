"""The capture command document: pre-signing, no secrets, bounded, and the shell really streams a dump.

The last test runs the generated bash with stand-ins for the kernel and the network only
(insmod serves a LiME image on the loopback port as LiME does; curl stores what it would PUT):
split, tee, the FIFO, sha256sum, the trap and the result line are the real thing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import socket
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from handlers.memory import capture, lime
from handlers.memory.capture import CaptureReportUnreadable, PresignedMultipartUpload
from simulation.local_aws import FORENSIC_ACCOUNT, REGION, account_session

BUCKET = "acme-ir-artifacts-222222222222-eu-west-1"
MODULES = "acme-ir-modules-123456789012-eu-west-1"
KEY = "case-1/memory/i-0123456789abcdef0.lime"
SHA = "ab" * 32
TIMEOUT = 1800


@pytest.fixture
def presigned(aws: None) -> tuple[str, PresignedMultipartUpload]:
    from handlers.memory.handler import PRESIGN_CONFIG

    forensic = account_session(FORENSIC_ACCOUNT, REGION)
    s3: Any = forensic.client("s3", config=PRESIGN_CONFIG)
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    return capture.presign_capture(
        s3, BUCKET, KEY, MODULES, "amzn-2023/6.1.0/x86_64/lime.ko", 12, TIMEOUT + capture.URL_MARGIN_SECONDS
    )


def commands_for(presigned: tuple[str, PresignedMultipartUpload]) -> list[str]:
    url, upload = presigned
    return capture.capture_commands(
        url,
        upload,
        module_sha256=SHA,
        timeout_seconds=TIMEOUT,
        port=45123,
        case_id="case-1",
        instance_id="i-0123456789abcdef0",
    )


def test_presigning_starts_one_multipart_upload_with_a_sigv4_url_per_part(
    presigned: tuple[str, PresignedMultipartUpload],
) -> None:
    url, upload = presigned
    uploads = account_session(FORENSIC_ACCOUNT, REGION).client("s3").list_multipart_uploads(Bucket=BUCKET)["Uploads"]
    assert [(u["Key"], u["UploadId"]) for u in uploads] == [(KEY, upload.upload_id)]
    assert len(upload.part_urls) == 12
    for number, part_url in enumerate(upload.part_urls, start=1):
        query = parse_qs(urlsplit(part_url).query)
        assert query["partNumber"] == [str(number)] and query["uploadId"] == [upload.upload_id]
        assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert "X-Amz-Signature=" in url and "lime.ko" in url


def test_every_url_in_the_command_expires_within_the_capture_timeout_plus_margin(
    presigned: tuple[str, PresignedMultipartUpload],
) -> None:
    text = "\n".join(commands_for(presigned))
    expiries = [int(v) for v in re.findall(r"X-Amz-Expires=(\d+)", text)]
    assert expiries and all(v <= TIMEOUT + capture.URL_MARGIN_SECONDS for v in expiries)


def test_the_command_holds_no_credentials(presigned: tuple[str, PresignedMultipartUpload]) -> None:
    text = "\n".join(commands_for(presigned))
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


def test_no_compiler_package_manager_or_other_host_is_used(presigned: tuple[str, PresignedMultipartUpload]) -> None:
    text = "\n".join(commands_for(presigned))
    invoked = re.findall(r"(?:^|[\s;|&(])(gcc|cc|make|yum|dnf|apt|apt-get|pip3?|git|wget)\s", text, re.MULTILINE)
    assert invoked == []
    hosts = set(re.findall(r"https://([^/'\s]+)", text))
    assert hosts <= {
        f"{BUCKET}.s3.{REGION}.amazonaws.com",
        f"{MODULES}.s3.{REGION}.amazonaws.com",
        f"{MODULES}.s3.amazonaws.com",
    }


def test_every_network_call_and_the_whole_run_are_bounded(presigned: tuple[str, PresignedMultipartUpload]) -> None:
    commands = commands_for(presigned)
    script = capture.script_from_commands(commands)
    curls = [chunk for chunk in re.split(r"\n(?=\S)|\$\(", script) if "curl --" in chunk]
    assert len(curls) == 2
    for call in curls:
        assert "--max-time" in call and "--connect-timeout" in call
    assert commands[-1].startswith(f"exec timeout --kill-after=30 {TIMEOUT} /bin/bash ")
    assert 'timeout "$LEFT" cat <&3' in script
    assert re.search(r"for _ in \$\(seq 1 60\)", script)


def test_lime_is_removed_by_an_exit_trap_and_listens_on_loopback_only(
    presigned: tuple[str, PresignedMultipartUpload],
) -> None:
    script = capture.script_from_commands(commands_for(presigned))
    cleanup = script[script.index("cleanup() {") : script.index("trap cleanup EXIT")]
    assert "rmmod lime" in cleanup and "trap cleanup EXIT" in script
    assert 'insmod "$WORK/lime.ko" "path=tcp:$PORT" localhostonly=1 format=lime' in script
    assert "/dev/shm" in script


def test_generated_shell_is_syntactically_valid_for_bash_and_sh(
    presigned: tuple[str, PresignedMultipartUpload], tmp_path: Path
) -> None:
    commands = commands_for(presigned)
    inner, outer = tmp_path / "inner.sh", tmp_path / "outer.sh"
    inner.write_text(capture.script_from_commands(commands))
    outer.write_text("\n".join(commands) + "\n")
    assert subprocess.run(["bash", "-n", str(inner)], capture_output=True, text=True).stderr == ""
    done = subprocess.run(["sh", "-n", str(outer)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    discovery = tmp_path / "discovery.sh"
    discovery.write_text("\n".join(capture.discovery_commands()) + "\n")
    assert subprocess.run(["sh", "-n", str(discovery)], capture_output=True).returncode == 0


def test_compact_part_lines_rebuild_urls_that_sign_the_same_request(
    presigned: tuple[str, PresignedMultipartUpload],
) -> None:
    _, upload = presigned
    base, lines = capture.compact_part_urls(upload.part_urls)
    assert len(lines) == len(upload.part_urls)
    for original, line in zip(upload.part_urls, lines, strict=True):
        rebuilt = capture.rebuild_part_url(base, line)
        assert urlsplit(rebuilt)[:3] == urlsplit(original)[:3]
        assert parse_qs(urlsplit(rebuilt).query) == parse_qs(urlsplit(original).query)


def test_part_plan_grows_parts_not_their_number() -> None:
    small = capture.plan_parts(4 * 1024**3)
    assert small.part_size == capture.DEFAULT_PART_SIZE and small.capacity >= 4 * 1024**3 * 1.15
    huge = capture.plan_parts(768 * 1024**3)
    assert huge.part_count <= capture.MAX_PARTS and huge.capacity >= 768 * 1024**3 * 1.15
    assert huge.part_size % capture.MIB == 0


def test_result_lines_are_checked_field_by_field() -> None:
    good = (
        'noise\nIRFORENSICS-RESULT {"Acquired":true,"Sha256":"' + SHA + '","Size":10,"PartSize":5,'
        '"Parts":[[1,"e1"],[2,"e2"]]}\n'
    )
    report = capture.parse_capture_output(good)
    assert (report.acquired, report.size, report.parts) == (True, 10, ((1, "e1"), (2, "e2")))
    refused = capture.parse_capture_output('IRFORENSICS-RESULT {"Acquired":false,"Reason":"downloading failed"}')
    assert (refused.acquired, refused.reason) == (False, "downloading failed")
    for bad in ("", "IRFORENSICS-RESULT {", good.replace("[2,", "[3,"), good.replace(SHA, "zz")):
        with pytest.raises(CaptureReportUnreadable):
            capture.parse_capture_output(bad)


FAKE_INSMOD = """#!{python}
# Stands in for `insmod lime.ko path=tcp:PORT ...`: serve the image to one reader, like LiME.
import os, socket, sys
port = int(next(a for a in sys.argv if a.startswith("path=tcp:")).split(":")[1])
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write("insmod " + " ".join(sys.argv[1:]) + "\\n")
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", port))
server.listen(1)
conn, _ = server.accept()
with open(os.environ["FAKE_IMAGE"], "rb") as image:
    while chunk := image.read(65536):
        conn.sendall(chunk)
conn.close()
"""
FAKE_CURL = """#!{python}
# Stands in for curl: a GET copies the module; a PUT stores the part and answers with its ETag.
import hashlib, os, shutil, sys
from urllib.parse import parse_qs, urlsplit
args = sys.argv[1:]
url = args[-1]
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write("curl " + urlsplit(url).netloc + "\\n")
if "--upload-file" in args:
    data = open(args[args.index("--upload-file") + 1], "rb").read()
    number = parse_qs(urlsplit(url).query)["partNumber"][0]
    open(os.path.join(os.environ["FAKE_S3"], number), "wb").write(data)
    sys.stdout.write('HTTP/1.1 200 OK\\r\\nETag: "%s"\\r\\n\\r\\n' % hashlib.md5(data).hexdigest())
else:
    shutil.copy(os.environ["FAKE_MODULE"], args[args.index("--output") + 1])
"""


def _tool(folder: Path, name: str, text: str) -> None:
    path = folder / name
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def test_the_capture_script_streams_hashes_splits_and_uploads_a_lime_dump(
    presigned: tuple[str, PresignedMultipartUpload], tmp_path: Path
) -> None:
    url, upload = presigned
    image, module, store, bin_dir = tmp_path / "mem.lime", tmp_path / "lime.ko", tmp_path / "s3", tmp_path / "bin"
    store.mkdir()
    bin_dir.mkdir()
    synthetic_memory.synthetic_memory_image(image, seed=3, size=1_300_000)
    module.write_bytes(b"\x7fELF pretend module")
    release = subprocess.run(["uname", "-r"], capture_output=True, text=True, check=True).stdout.strip()
    _tool(bin_dir, "insmod", FAKE_INSMOD.replace("{python}", sys.executable))
    _tool(bin_dir, "curl", FAKE_CURL.replace("{python}", sys.executable))
    _tool(bin_dir, "modinfo", f"#!/bin/sh\necho '{release} SMP mod_unload'\n")
    _tool(bin_dir, "rmmod", '#!/bin/sh\necho "rmmod $*" >> "$FAKE_LOG"\n')
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    small = dataclasses.replace(upload, part_size=512 * 1024)
    script = tmp_path / "capture.sh"
    script.write_text(
        capture.capture_script(
            url, small, module_sha256=hashlib.sha256(module.read_bytes()).hexdigest(), timeout_seconds=300, port=port
        )
    )
    log = tmp_path / "log"
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "FAKE_LOG": str(log),
        "FAKE_IMAGE": str(image),
        "FAKE_S3": str(store),
        "FAKE_MODULE": str(module),
    }
    done = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=60)

    report = capture.parse_capture_output(done.stdout)
    assert report.acquired, done.stdout + done.stderr
    data = image.read_bytes()
    assert report.sha256 == hashlib.sha256(data).hexdigest() and report.size == len(data)
    parts = sorted(store.iterdir(), key=lambda p: int(p.name))
    assert [p.name for p in parts] == ["1", "2", "3"]
    assert b"".join(p.read_bytes() for p in parts) == data
    assert report.parts == tuple((int(p.name), hashlib.md5(p.read_bytes()).hexdigest()) for p in parts)
    calls = log.read_text().splitlines()
    assert f"insmod {tmp_path}" not in calls[0] and "localhostonly=1 format=lime" in calls[1]
    assert calls[-1] == "rmmod lime"
    assert not script.exists(), "the script removes itself from tmpfs"
    assert not list(Path("/dev/shm").glob("irforensics-lime.*"))


def test_a_module_with_the_wrong_digest_is_refused_before_loading(
    presigned: tuple[str, PresignedMultipartUpload], tmp_path: Path
) -> None:
    url, upload = presigned
    bin_dir, module, log = tmp_path / "bin", tmp_path / "lime.ko", tmp_path / "log"
    bin_dir.mkdir()
    module.write_bytes(b"tampered")
    _tool(bin_dir, "curl", FAKE_CURL.replace("{python}", sys.executable))
    for name in ("insmod", "modinfo"):
        _tool(bin_dir, name, f'#!/bin/sh\necho "{name}" >> "$FAKE_LOG"\n')
    _tool(bin_dir, "rmmod", '#!/bin/sh\necho "rmmod $*" >> "$FAKE_LOG"\n')
    script = tmp_path / "capture.sh"
    script.write_text(capture.capture_script(url, upload, module_sha256=SHA, timeout_seconds=300, port=45999))
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_LOG": str(log), "FAKE_MODULE": str(module)}
    done = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=60)
    report = capture.parse_capture_output(done.stdout)
    assert report.acquired is False and "sha256 in build.json" in report.reason
    assert "insmod" not in log.read_text() and log.read_text().splitlines()[-1] == "rmmod lime"
