"""Faults the response survives, on the deployed cloud of tests/e2e (moto's interpreter, our handlers).

Absorbed (the shared world's two responses ran under them and succeeded): throttling of the calls
that matter, retried by botocore with backoff, and a Lambda timeout in the middle of imaging, from
which imaging resumed at its last checkpoint. The faults that fail a response are in
tests/e2e/test_failing_faults.py.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from handlers.common import naming
from simulation.local_aws import FORENSIC_ACCOUNT, PREFIX, REGION
from simulation.sandbox import LocalCloud
from tests.e2e.conftest import world_faults

pytestmark = pytest.mark.slow
BUCKET = naming.evidence_bucket(PREFIX, FORENSIC_ACCOUNT, REGION)


# --- absorbed by the world's responses --------------------------------------------------------


def test_every_injected_throttle_happened_and_both_responses_still_succeeded(world: dict[str, Any]) -> None:
    injected = Counter((i.service, i.operation) for i in world["injected"])
    assert injected == {(f.service, f.operation): f.times for f in world_faults()}
    assert {action: result.status for action, result in world["results"].items()} == {
        "contain": "SUCCEEDED",
        "analyze": "SUCCEEDED",
    }


def _failed_lambda_errors(cloud: LocalCloud, execution_arn: str) -> list[str]:
    return [
        event[key]["error"]
        for event in cloud.history(execution_arn)
        for key in ("lambdaFunctionFailedEventDetails", "taskFailedEventDetails")
        if key in event
    ]


def test_imaging_stopped_by_a_lambda_timeout_resumed_at_its_checkpoint_with_the_volumes_bytes(
    world: dict[str, Any],
) -> None:
    killed = world["killed_imaging"]
    assert killed.killed and killed.invocations == 2
    errors = [error for arn in world["executions"].values() for error in _failed_lambda_errors(world["cloud"], arn)]
    assert errors.count("Sandbox.Timedout") == 1, errors
    # The image of that volume is the volume, byte for byte, and says it took the extra invocations.
    key = killed.location.removeprefix(f"s3://{BUCKET}/")
    case_id, _, name = key.split("/", 2)
    volume_id = name.removeprefix("disk/").removesuffix(".img")
    result = next(r for r in world["results"].values() if r.case_id == case_id)
    assert {a["key"]: a["sha256"] for a in result.artefacts}[key] == world["source_sha256"][volume_id]
    custody = result.case_dir / "custody"
    written = [json.loads(p.read_text()) for p in sorted(custody.glob("*disk-image-written.json"))]
    [record] = [w["detail"] for w in written if w["detail"]["Key"] == key]
    assert record["Invocations"] >= 3


@pytest.mark.parametrize("action", ["contain", "analyze"])
def test_every_disk_image_is_the_volume_byte_for_byte(world: dict[str, Any], action: str) -> None:
    result = world["results"][action]
    tier = world["incidents"][action].tier
    digests = {a["key"]: a["sha256"] for a in result.artefacts}
    for volume_id in (tier.root_volume_id, tier.data_volume_id):
        assert digests[f"{result.case_id}/disk/{volume_id}.img"] == world["source_sha256"][volume_id]
