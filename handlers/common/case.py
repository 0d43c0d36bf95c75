"""The case model: the manual-execution input contract (DESIGN.md) and the case id."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import botocore.session

from core.ids import (
    ACCOUNT_ID,
    ACCOUNT_ID_SHAPE,
    CASE_ID,
    CASE_ID_SHAPE,
    INSTANCE_ID,
    INSTANCE_ID_SHAPE,
    REGION,
    REGION_SHAPE,
    is_case_id,
    is_instance_id,
    new_case_id,
)
from handlers.common.errors import InvalidInput
from handlers.common.tags import ACTION_ANALYZE, ACTIONS, action_error

TRIGGERS = ("manual", "tag", "guardduty", "securityhub", "cli", "simulation")
MAX_WAIT_SECONDS = 3600
MAX_FINDING_CHARS = 2048
# Hostile input must not become a hostile error: values and names are shown shortened, and
# only so many unknown fields are listed (Step Functions keeps at most 32768 characters of a cause).
SHOWN_CHARS = 64
MAX_UNKNOWN_FIELDS_NAMED = 20

__all__ = [
    "ACCOUNT_ID",
    "CASE_ID",
    "INSTANCE_ID",
    "REGION",
    "CaseRequest",
    "is_case_id",
    "is_instance_id",
    "new_case_id",
    "parse_bool",
    "parse_request",
    "require_valid_ids",
    "shown",
]

KNOWN_FIELDS = {
    "CaseId",
    "InstanceId",
    "Account",
    "Region",
    "Action",
    "RetainArtefacts",
    "DryRun",
    "Trigger",
    "WaitSeconds",
    "Finding",
}


@dataclass(frozen=True)
class CaseRequest:
    """A validated request to respond to one instance."""

    instance_id: str
    account: str
    region: str
    action: str = ACTION_ANALYZE
    retain_artefacts: bool = True
    dry_run: bool = False
    case_id: str | None = None
    trigger: str = "manual"
    # Seconds between status polls in the state machine; small in tests and the simulation.
    wait_seconds: int = 30
    finding: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def shown(value: Any) -> str:
    """repr(value), shortened: error messages quote what was given, never megabytes of it."""
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 3] + "..."


@lru_cache(maxsize=1)
def known_regions() -> frozenset[str]:
    """Every region of every partition the SDK knows (botocore's endpoint data; no network)."""
    session = botocore.session.get_session()
    return frozenset(
        region
        for partition in session.get_available_partitions()
        for region in session.get_available_regions("ec2", partition_name=partition)
    )


def require_valid_ids(**ids: Any) -> None:
    """InvalidInput naming each malformed id (keywords InstanceId, CaseId): for checks before any AWS call."""
    checks = {"InstanceId": (is_instance_id, INSTANCE_ID_SHAPE), "CaseId": (is_case_id, CASE_ID_SHAPE)}
    errors = {
        name: f"must be {checks[name][1]}, got {shown(value)}"
        for name, value in ids.items()
        if not checks[name][0](value)
    }
    if errors:
        raise InvalidInput(errors)


def parse_bool(value: Any, default: bool) -> bool:
    """The contract's booleans: true/false or "true"/"false" (any case); ValueError otherwise."""
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ValueError(f'must be true/false or "true"/"false", got {shown(value)}')


def _as_bool(value: Any, field: str, errors: dict[str, str], default: bool) -> bool:
    try:
        return parse_bool(value, default)
    except ValueError as exc:
        errors[field] = str(exc)
        return default


def _required(event: Mapping[str, Any], field: str, pattern: re.Pattern[str], what: str, errors: dict[str, str]) -> str:
    value = event.get(field)
    if value is None or value == "":
        errors[field] = "is required"
        return ""
    if not isinstance(value, str) or not pattern.fullmatch(value):
        errors[field] = f"must be {what}, got {shown(value)}"
        return ""
    return value


def _unknown_fields(event: Mapping[str, Any], errors: dict[str, str]) -> None:
    unknown = sorted((str(name) for name in event if name not in KNOWN_FIELDS), key=lambda n: (len(n), n))
    by_lower = {known.lower(): known for known in KNOWN_FIELDS}
    for name in unknown[:MAX_UNKNOWN_FIELDS_NAMED]:
        meant = by_lower.get(name.strip().lower())
        hint = (
            f"did you mean {meant!r}? field names are case-sensitive"
            if meant
            else "known: " + ", ".join(sorted(KNOWN_FIELDS))
        )
        label = name if len(name) <= SHOWN_CHARS else name[: SHOWN_CHARS - 3] + "..."
        errors[label] = f"is not a known field ({hint})"
    if len(unknown) > MAX_UNKNOWN_FIELDS_NAMED:
        errors["<input>"] = f"has {len(unknown) - MAX_UNKNOWN_FIELDS_NAMED} more unknown fields"


def parse_request(event: Mapping[str, Any], *, default_wait_seconds: int = 30) -> CaseRequest:
    """Validate manual-execution input; raise InvalidInput naming every bad field at once.

    An optional field given as null takes its default, like an absent one.
    """
    if not isinstance(event, Mapping):
        raise InvalidInput({"<input>": f"must be a JSON object, got {type(event).__name__}"})
    errors: dict[str, str] = {}
    _unknown_fields(event, errors)

    instance_id = _required(event, "InstanceId", INSTANCE_ID, INSTANCE_ID_SHAPE, errors)
    account = _required(event, "Account", ACCOUNT_ID, ACCOUNT_ID_SHAPE, errors)
    region = _required(event, "Region", REGION, REGION_SHAPE, errors)
    if region and region not in known_regions():
        errors["Region"] = (
            f"must be {REGION_SHAPE}, got {shown(region)}: no partition has a region "
            f"of that name (as of botocore {botocore.__version__})"
        )

    action = _optional(event, "Action", ACTION_ANALYZE)
    if action not in ACTIONS:
        errors["Action"] = action_error(action)

    case_id = event.get("CaseId")
    if case_id in (None, ""):
        case_id = None
    elif not is_case_id(case_id):
        errors["CaseId"] = f"must be {CASE_ID_SHAPE}, got {shown(case_id)}"

    trigger = _optional(event, "Trigger", "manual")
    if trigger not in TRIGGERS:
        errors["Trigger"] = f"must be one of {', '.join(TRIGGERS)}, got {shown(trigger)}"

    wait_seconds = _optional(event, "WaitSeconds", default_wait_seconds)
    if (
        isinstance(wait_seconds, bool)
        or not isinstance(wait_seconds, int)
        or not (0 <= wait_seconds <= MAX_WAIT_SECONDS)
    ):
        errors["WaitSeconds"] = (
            f"must be a whole number of seconds from 0 to {MAX_WAIT_SECONDS}, got {shown(wait_seconds)}"
        )

    finding = _optional(event, "Finding", "")
    if not isinstance(finding, str) or len(finding) > MAX_FINDING_CHARS:
        errors["Finding"] = f"must be a string of at most {MAX_FINDING_CHARS} characters"

    retain = _as_bool(event.get("RetainArtefacts"), "RetainArtefacts", errors, default=True)
    dry_run = _as_bool(event.get("DryRun"), "DryRun", errors, default=False)
    if errors:
        raise InvalidInput(errors)
    return CaseRequest(
        instance_id=instance_id,
        account=account,
        region=region,
        action=str(action),
        retain_artefacts=retain,
        dry_run=dry_run,
        case_id=case_id,
        trigger=str(trigger),
        wait_seconds=int(wait_seconds),
        finding=str(finding),
    )


def _optional(event: Mapping[str, Any], field: str, default: Any) -> Any:
    value = event.get(field)
    return default if value is None else value
