"""Sessions for the handlers: the one client factory (core.clients) and the case's evidence store over it."""

from __future__ import annotations

from core.clients import BOTO_CONFIG, CaseSessions, assume_role, configured_session, lambda_session
from core.settings import Settings
from handlers.common.evidence import EvidenceStore

__all__ = [
    "BOTO_CONFIG",
    "CaseSessions",
    "assume_role",
    "case_sessions",
    "configured_session",
    "evidence_store",
    "lambda_session",
]


def case_sessions(settings: Settings, case_id: str) -> CaseSessions:
    """The member and forensic sessions of one case, each assumed once per invocation."""
    return CaseSessions(
        member_role=settings.member_role_arn,
        forensic_role_arn=settings.forensic_role_arn,
        forensic_region=settings.forensic_region,
        case_id=case_id,
    )


def evidence_store(settings: Settings, sessions: CaseSessions) -> EvidenceStore:
    """The case's evidence prefix in the forensic evidence bucket, written with the forensic role."""
    return EvidenceStore(sessions.forensic().client("s3"), settings.evidence_bucket, sessions.case_id)
