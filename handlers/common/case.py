"""The case model: the manual-execution input contract (DESIGN.md) and the case id."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from handlers.common.errors import InvalidInput
from handlers.common.tags import ACTION_ANALYZE, ACTIONS

INSTANCE_ID = re.compile(r"^i-(?:[0-9a-f]{8}|[0-9a-f]{17})$")
ACCOUNT_ID = re.compile(r"^\d{12}$")
REGION = re.compile(r"^[a-z]{2}(?:-gov|-iso[a-z]?)?-[a-z]+-\d{1,2}$")
# A case id becomes an S3 prefix and part of role session names: keep it to safe characters.
CASE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
TRIGGERS = ("manual", "tag", "guardduty", "securityhub", "cli", "simulation")
MAX_WAIT_SECONDS = 3600

KNOWN_FIELDS = {
    "CaseId", "InstanceId", "Account", "Region", "Action", "RetainArtefacts", "DryRun", "Trigger",
    "WaitSeconds", "Finding",
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


def new_case_id(account: str, instance_id: str, region: str, epoch_seconds: int) -> str:
    return f"{account}-{instance_id}-{region}-{epoch_seconds}"


def parse_bool(value: Any, default: bool) -> bool:
    """The contract's booleans: true/false or "true"/"false" (any case); ValueError otherwise."""
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ValueError(f'must be true/false or "true"/"false", got {value!r}')


def _as_bool(value: Any, field: str, errors: dict[str, str], default: bool) -> bool:
    try:
        return parse_bool(value, default)
    except ValueError as exc:
        errors[field] = str(exc)
        return default


def _required(event: Mapping[str, Any], field: str, pattern: re.Pattern[str], what: str,
              errors: dict[str, str]) -> str:
    value = event.get(field)
    if value is None or value == "":
        errors[field] = "is required"
        return ""
    if not isinstance(value, str) or not pattern.match(value):
        errors[field] = f"must be {what}, got {value!r}"
        return ""
    return value


def parse_request(event: Mapping[str, Any], *, default_wait_seconds: int = 30) -> CaseRequest:
    """Validate manual-execution input; raise InvalidInput naming every bad field at once."""
    if not isinstance(event, Mapping):
        raise InvalidInput({"<input>": f"must be a JSON object, got {type(event).__name__}"})
    errors: dict[str, str] = {}
    for unknown in sorted(set(event) - KNOWN_FIELDS):
        errors[unknown] = "is not a known field (known: " + ", ".join(sorted(KNOWN_FIELDS)) + ")"

    instance_id = _required(event, "InstanceId", INSTANCE_ID, "an EC2 instance id like i-0abc12345def67890",
                            errors)
    account = _required(event, "Account", ACCOUNT_ID, "a 12-digit AWS account id", errors)
    region = _required(event, "Region", REGION, "an AWS region like eu-west-1", errors)

    action = event.get("Action", ACTION_ANALYZE)
    if action not in ACTIONS:
        errors["Action"] = f"must be one of {', '.join(ACTIONS)} (case-sensitive), got {action!r}"

    case_id = event.get("CaseId")
    if case_id in (None, ""):
        case_id = None
    elif not isinstance(case_id, str) or not CASE_ID.match(case_id):
        errors["CaseId"] = f"must be 1-128 characters of letters, digits, '.', '_' or '-', got {case_id!r}"

    trigger = event.get("Trigger", "manual")
    if trigger not in TRIGGERS:
        errors["Trigger"] = f"must be one of {', '.join(TRIGGERS)}, got {trigger!r}"

    wait_seconds = event.get("WaitSeconds", default_wait_seconds)
    if isinstance(wait_seconds, bool) or not isinstance(wait_seconds, int) or not (
        0 <= wait_seconds <= MAX_WAIT_SECONDS
    ):
        errors["WaitSeconds"] = f"must be a whole number of seconds from 0 to {MAX_WAIT_SECONDS}, got {wait_seconds!r}"

    finding = event.get("Finding", "")
    if not isinstance(finding, str) or len(finding) > 2048:
        errors["Finding"] = "must be a string of at most 2048 characters"

    retain = _as_bool(event.get("RetainArtefacts"), "RetainArtefacts", errors, default=True)
    dry_run = _as_bool(event.get("DryRun"), "DryRun", errors, default=False)
    if errors:
        raise InvalidInput(errors)
    return CaseRequest(
        instance_id=instance_id, account=account, region=region, action=str(action),
        retain_artefacts=retain, dry_run=dry_run, case_id=case_id, trigger=str(trigger),
        wait_seconds=int(wait_seconds), finding=str(finding),
    )
