"""One deployed cloud for the end-to-end tests: both stacks deployed once, one incident per action.

Deploying into moto and running two whole responses is the expensive part of the suite, so it is
done once for the package (moto stays up for tests/e2e only) and shared by the modules that assert
on it. Every AWS API call the handlers make during the two responses is recorded (simulation.api_calls)
for the least-privilege test. The responses run under injected faults they must absorb: throttling
of the calls that matter (simulation.faults) and a Lambda timeout in the middle of imaging a volume.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from unittest import mock

import boto3
import pytest

from handlers.acquisition import handler as acquisition_handler
from handlers.acquisition import imaging
from handlers.acquisition.block_source import BlockSource
from handlers.common import naming
from simulation import api_calls, faults, lambda_local, local_aws, simulate
from simulation.examination_local import InProcessExaminationExecutor
from simulation.local_aws import FORENSIC_ACCOUNT, MEMBER_ACCOUNT
from simulation.sandbox import LocalCloud, cloud_context
from tests.e2e.helpers import auto_scaling_group

FINDS_THE_BYTES = (
    "moto gap: EBS direct reads only StartSnapshot snapshots, so the simulation follows the "
    "forensic copy back to one (simulation.sandbox.lineage_block_source); on AWS nothing does this"
)
READS_THE_COPY = (
    "moto gap: on AWS the forensic automation role reads the forensic copy with the EBS direct "
    "APIs; the simulation reads the snapshot holding the same bytes"
)
EXAMINES_ON_THE_INSTANCE = (
    "moto runs no SSM commands: the examination runs in process; on AWS it runs on the "
    "analysis instance with the analysis role"
)


class _ReadsAsForensicCopy:
    """A block source whose reads count as the forensic automation role's reads of the copy."""

    def __init__(self, inner: BlockSource, role_arn: str) -> None:
        self._inner = inner
        self._role_arn = role_arn

    def _as_copy(self) -> Any:
        return api_calls.acting_as(self._role_arn, READS_THE_COPY)

    @property
    def name(self) -> str:
        return self._inner.name

    @property
    def block_size(self) -> int:
        with self._as_copy():
            return self._inner.block_size

    @property
    def volume_size_bytes(self) -> int:
        with self._as_copy():
            return self._inner.volume_size_bytes

    def list_blocks(self, start: int = 0) -> Iterator[tuple[int, str]]:
        blocks = self._inner.list_blocks(start)
        while True:
            with self._as_copy():
                block = next(blocks, None)
            if block is None:
                return
            yield block

    def read(self, index: int, token: str) -> bytes:
        with self._as_copy():
            return self._inner.read(index, token)


def _attributed_like_aws(stack: ExitStack, cloud: LocalCloud) -> None:
    """Attribute the simulation's stand-ins' calls to the roles that make them on AWS."""
    automation = naming.forensic_automation_role_arn(local_aws.PREFIX, local_aws.FORENSIC_ACCOUNT)
    analysis = f"arn:aws:iam::{local_aws.FORENSIC_ACCOUNT}:role/{naming.analysis_profile(local_aws.PREFIX)}"
    lineage: Callable[[boto3.Session, str], BlockSource] = cloud.ports["block_source"]

    def block_source(forensic: boto3.Session, snapshot_id: str) -> BlockSource:
        with api_calls.acting_as(None, FINDS_THE_BYTES):
            source = lineage(forensic, snapshot_id)
        return _ReadsAsForensicCopy(source, automation)

    stack.enter_context(mock.patch.dict(cloud.ports, {"block_source": block_source}))
    examine = InProcessExaminationExecutor.start

    def start(self: InProcessExaminationExecutor, forensic: Any, order: Any) -> str:
        with api_calls.acting_as(analysis, EXAMINES_ON_THE_INSTANCE):
            return examine(self, forensic, order)

    stack.enter_context(mock.patch.object(InProcessExaminationExecutor, "start", start))


class KilledMidImaging:
    """A Lambda timeout in imaging: the first volume imaged is imaged one part per invocation, and its
    second invocation is stopped by the runtime (lambda_local.SimulatedTimeout) after it streamed its
    part. Step Functions retries the task with the last checkpoint; imaging must resume from there."""

    def __init__(self) -> None:
        self.location = ""
        self.invocations = 0
        self.killed = False
        self._image_snapshot = imaging.image_snapshot

    def __call__(self, source: BlockSource, sink: Any, state: Any = None, **kwargs: Any) -> Any:
        if not self.location and state is None:
            self.location = str(sink.location)
        if sink.location != self.location or self.killed:
            return self._image_snapshot(source, sink, state, **kwargs)
        self.invocations += 1
        advanced = self._image_snapshot(source, sink, state, **{**kwargs, "max_blocks": 1})
        if self.invocations == 2:
            self.killed = True
            raise lambda_local.SimulatedTimeout()
        return advanced


def world_faults() -> list[faults.Fault]:
    """Throttling the responses must absorb (botocore retries with backoff), in the calls that matter."""
    return [
        faults.throttling("ec2", "CreateSnapshots", times=2, account=MEMBER_ACCOUNT),
        faults.throttling("ec2", "ModifyNetworkInterfaceAttribute", times=1, account=MEMBER_ACCOUNT),
        faults.throttling("ec2", "CopySnapshot", times=1, account=FORENSIC_ACCOUNT),
        faults.throttling("s3", "UploadPart", times=2, account=FORENSIC_ACCOUNT),
        faults.throttling("dynamodb", "TransactWriteItems", times=1),
    ]


def raw_volume_sha256(image: Path) -> str:
    """The sha256 of the whole volume holding `image` from byte 0: the file, then zeros to a whole GiB."""
    digest = hashlib.sha256(image.read_bytes())
    size = image.stat().st_size
    padding = -(-size // 1024**3) * 1024**3 - size
    zeros = bytes(1024**2)
    while padding:
        step = min(padding, len(zeros))
        digest.update(zeros[:step])
        padding -= step
    return digest.hexdigest()


@pytest.fixture(scope="package")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Both actions run to completion in one deployed cloud; moto stays up for the assertions."""
    local_aws.use_fake_credentials()
    simulate.quiet_moto()
    out = tmp_path_factory.mktemp("cases")
    cloud = LocalCloud(examination_notes=simulate.SIMULATION_NOTES)
    with tempfile.TemporaryDirectory() as work, cloud_context(cloud), ExitStack() as recording:
        incidents = {
            "contain": simulate.build_incident(cloud, Path(work), name="web"),
            "analyze": simulate.build_incident(cloud, Path(work), name="shop"),
        }
        capacity = {
            action: auto_scaling_group(cloud, incident)["DesiredCapacity"] for action, incident in incidents.items()
        }
        sources = {
            incident.tier.root_volume_id: raw_volume_sha256(Path(work) / name / "root.ext4")
            for name, incident in (("web", incidents["contain"]), ("shop", incidents["analyze"]))
        }
        sources |= {
            incident.tier.data_volume_id: raw_volume_sha256(Path(work) / name / "data.xfs")
            for name, incident in (("web", incidents["contain"]), ("shop", incidents["analyze"]))
        }
        _attributed_like_aws(recording, cloud)
        calls = recording.enter_context(api_calls.record_api_calls())
        killed = KilledMidImaging()
        recording.enter_context(mock.patch.object(acquisition_handler, "image_snapshot", killed))
        injector = recording.enter_context(faults.injected(*world_faults()))
        executions = {
            action: simulate.trigger_by_tag(cloud, incident, action) for action, incident in incidents.items()
        }
        results = {}
        for action, arn in executions.items():
            execution = cloud.wait(arn)
            results[action] = simulate.collect(cloud, execution, incidents[action], action, out, [])
        recording.close()
        yield {
            "cloud": cloud,
            "incidents": incidents,
            "results": results,
            "capacity": capacity,
            "executions": executions,
            "api_calls": list(calls),
            "injected": list(injector.injected),
            "killed_imaging": killed,
            "source_sha256": sources,
        }
