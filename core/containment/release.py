"""Which containment record a release restores, and the checks before it may (one place for the
release Lambda; `irf release` invokes that Lambda)."""

from __future__ import annotations

from core.containment.model import ContainmentRecord
from handlers.common.errors import InvalidInput, IrfError
from handlers.common.evidence import EvidenceStore, containment_key


class ContainmentRecordNotFound(IrfError):
    def __init__(self, case_id: str) -> None:
        self.case_id = case_id
        super().__init__(
            f"case {case_id} has no containment record ({containment_key(case_id, 'before')}): "
            "it was a dry run, it never got as far as containment, or the case does not exist"
        )


def record_from_evidence(store: EvidenceStore) -> ContainmentRecord:
    """The case's containment record, rebuilt from its before/after evidence."""
    if not store.exists(containment_key(store.case_id, "before")):
        raise ContainmentRecordNotFound(store.case_id)
    return ContainmentRecord.from_documents(
        store.get_json(containment_key(store.case_id, "before")),
        store.get_json(containment_key(store.case_id, "after")),
    )


def check_release(record: ContainmentRecord, instance_id: str, account: str, region: str) -> None:
    """InvalidInput naming every field in which the request differs from what the case contained."""
    mismatched = {
        field_name: f"case {record.case_id} contained {recorded}, not {given}"
        for field_name, recorded, given in (
            ("InstanceId", record.instance_id, instance_id),
            ("Account", record.account, account),
            ("Region", record.region, region),
        )
        if recorded != given
    }
    if mismatched:
        raise InvalidInput(mismatched)
