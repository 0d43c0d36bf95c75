"""Typed domain errors. State machines `Catch` them by class name, so names are a contract."""

from __future__ import annotations


class IrfError(Exception):
    """Base of every error the response flow raises on purpose."""


class InvalidInput(IrfError):
    """The request is malformed; `fields` maps each bad field to what is wrong with it."""

    def __init__(self, fields: dict[str, str]) -> None:
        self.fields = dict(fields)
        detail = "; ".join(f"{name}: {why}" for name, why in sorted(self.fields.items()))
        super().__init__(f"invalid input: {detail}")


class InstanceNotFound(IrfError):
    def __init__(self, instance_id: str, detail: str = "does not exist") -> None:
        self.instance_id = instance_id
        super().__init__(f"instance {instance_id} {detail}")


class CaseAlreadyOpen(IrfError):
    def __init__(self, instance_id: str, case_id: str) -> None:
        self.instance_id = instance_id
        self.case_id = case_id
        super().__init__(f"instance {instance_id} already has open case {case_id}")


class ResponderUnavailable(IrfError):
    """The member account has no responder role we may assume (not deployed, or trust broken)."""


class ModuleUnavailable(IrfError):
    """No pre-built LiME module (or symbol table) exists for the instance's kernel."""


class AcquisitionFailed(IrfError):
    pass


class EvidenceConflict(IrfError):
    """An evidence object already exists with different content: evidence is never overwritten."""


class NotReady(IrfError):
    """A resource is still being prepared; the state machine retries this with backoff."""


class ExaminationFailed(IrfError):
    """A forensic tool could not read the evidence (not a finding: the examination itself failed)."""
