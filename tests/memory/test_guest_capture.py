"""Discovery and refusals on a real Linux kernel: Debian's, under QEMU, through the project's own SSM documents.

The document's text runs in the guest exactly as SSM's aws:runShellScript would run it; its uploads
reach moto's evidence bucket through the guest's only network path. The captures themselves (kcore
and LiME, their ranges, symbol sources and every plugin through the runner) are in
test_volatility_guest.py, which captures both ways on one boot.
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
MODULES = "acme-ir-modules-123456789012-eu-west-1"
PRESIGN = Config(signature_version="s3v4", s3={"addressing_style": "virtual"})


@pytest.fixture(scope="module")
def cloud() -> Iterator[dict[str, Any]]:
    with mock_aws():
        s3: Any = boto3.client("s3", region_name="eu-west-1", config=PRESIGN)
        for bucket in (EVIDENCE, MODULES):
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        with Guest.boot() as guest:
            yield {"s3": s3, "guest": guest}


def test_discovery_of_the_guest_says_kcore_is_readable_and_chooses_it(cloud: dict[str, Any]) -> None:
    document = capture.discovery_document()
    run = cloud["guest"].run_capture(ssm.commands_of(document), ssm.resolve(document, {}))
    info = kernel.parse_discovery(run.stdout)
    assert (info.distro, info.distro_version, info.arch) == ("debian", "12", "x86_64")
    assert info.kcore and info.btf and info.python == "3.11" and info.lockdown == "none"
    assert kernel.capture_method(info)[0] == "kcore"
    assert kernel.is_buildable(info)[0] is True


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
