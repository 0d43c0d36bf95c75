"""A kernel locked down for confidentiality: no kcore, no unsigned module, memory "not acquired" with why.

One boot of the guest with `lockdown=confidentiality` on its command line. Discovery runs the
project's document in it; the capture program is then sent anyway (as a stale decision would)
and must refuse with the kernel's answer rather than produce anything.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto import mock_aws

from handlers.memory import capture, kernel
from simulation.guest import Guest, ssm, unavailable_reason

pytestmark = pytest.mark.skipif(unavailable_reason() is not None, reason=f"no guest here: {unavailable_reason()}")

EVIDENCE = "acme-ir-artifacts-222222222222-eu-west-1"


@pytest.fixture(scope="module")
def locked() -> Iterator[dict[str, Any]]:
    with mock_aws():
        s3: Any = boto3.client(
            "s3", region_name="eu-west-1", config=Config(signature_version="s3v4", s3={"addressing_style": "virtual"})
        )
        s3.create_bucket(Bucket=EVIDENCE, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        with Guest.boot(kernel_args="lockdown=confidentiality") as guest:
            yield {"s3": s3, "guest": guest}


def test_discovery_finds_kcore_blocked_and_no_method_left(locked: dict[str, Any]) -> None:
    document = capture.discovery_document()
    info = kernel.parse_discovery(locked["guest"].run_capture(ssm.commands_of(document), {}).stdout)
    assert info.lockdown == "confidentiality" and info.kcore is False
    method, reason = kernel.capture_method(info)
    assert method == "none"
    assert "lockdown (confidentiality)" in reason and "refuses unsigned modules" in reason


def test_the_capture_program_refuses_with_the_kernels_answer_and_uploads_nothing(locked: dict[str, Any]) -> None:
    s3, key = locked["s3"], "case-2/memory/i-0guestlocked.lime"
    upload = capture.presign_capture(s3, EVIDENCE, key, 40, 3600, part_size=8 << 20)
    symbols = capture.presign_symbol_sources(s3, EVIDENCE, key, 3600)
    document = capture.capture_document()
    parameters = capture.capture_parameters(upload, symbols, method="kcore", timeout_seconds=300)
    run = locked["guest"].run_capture(ssm.commands_of(document), ssm.resolve(document, parameters))
    report = capture.parse_capture_output(run.stdout)
    assert report.acquired is False and report.method == "kcore"
    assert report.reason.startswith("/proc/kcore cannot be read (Operation not permitted)")
    assert s3.list_parts(Bucket=EVIDENCE, Key=key, UploadId=upload.upload_id).get("Parts", []) == []
