"""The examination run in this process instead of on an analysis instance (simulation only).

moto gap (DESIGN.md "Known moto gaps"): SSM SendCommand runs nothing and moto has no
DescribeInstanceInformation, so the simulation passes `InProcessExaminationExecutor` to the
examination handlers as their `executor` port (simulation.sandbox registers it; the Lambda
archives never contain this module). It calls the same `examiner.remote.examine_from_bucket` the
instance runs, against the forensic account's S3, so the evidence read and written is the same.
"""

from __future__ import annotations

import json
import tempfile
import uuid
from pathlib import Path
from typing import Any

from boto3.s3.transfer import TransferConfig

from handlers.common.errors import ExaminationFailed
from handlers.examination.orchestration import CommandOutcome, ExaminationOrder

# moto serves every ranged GET by reading the whole object, so s3transfer's parallel ranged
# download of a 1 GiB image takes minutes there; one GET per object takes seconds.
SINGLE_STREAM = TransferConfig(multipart_threshold=1 << 50, use_threads=False)


class InProcessExaminationExecutor:
    """The `ExaminationExecutor` of the simulation: the examination runs inside `start`."""

    def __init__(self, work_dir: Path | None = None, notes: list[str] | None = None) -> None:
        self.work_dir = work_dir
        # What the report says was simulated (simulation.simulate.SIMULATION_NOTES).
        self.notes = list(notes or [])
        self.outcomes: dict[str, CommandOutcome] = {}
        self._by_instance: dict[str, str] = {}

    def agent_online(self, forensic: Any, instance_id: str) -> bool:
        return True

    def start(self, forensic: Any, order: ExaminationOrder) -> str:
        if order.instance_id in self._by_instance:
            return self._by_instance[order.instance_id]
        from examiner import remote  # the forensic tools: only where the examination runs

        command_id = str(uuid.uuid4())
        with tempfile.TemporaryDirectory(prefix="irf-examination-", dir=self.work_dir) as work:
            try:
                done = remote.examine_from_bucket(
                    forensic.client("s3"),
                    order.bucket,
                    order.case_id,
                    Path(work),
                    incident_window=order.incident_window,
                    transfer=SINGLE_STREAM,
                    notes=self.notes,
                )
                outcome = CommandOutcome(status="Success", stdout=json.dumps(done.to_dict()))
            except Exception as exc:  # as on the instance: any failure of the command is a Failed invocation
                outcome = CommandOutcome(status="Failed", stderr=f"examination failed: {type(exc).__name__}: {exc}")
        self.outcomes[command_id] = outcome
        self._by_instance[order.instance_id] = command_id
        return command_id

    def outcome(self, forensic: Any, command_id: str, instance_id: str) -> CommandOutcome:
        if command_id not in self.outcomes:
            raise ExaminationFailed(f"no examination {command_id} was started on {instance_id}")
        return self.outcomes[command_id]
