"""A containment record as release gets it: through its before.json and after.json documents."""

from __future__ import annotations

import json

from core.containment import ContainmentRecord


def from_evidence(record: ContainmentRecord) -> ContainmentRecord:
    """`record` written as the contain Lambda writes its evidence, and read back as the release Lambda does."""
    documents = [json.loads(json.dumps(record.state_document(which))) for which in ("before", "after")]
    return ContainmentRecord.from_documents(*documents)
