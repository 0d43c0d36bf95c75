"""The id rules: what an instance id, account id, region and case id look like, checked one way everywhere.

Anchored with \\Z, not $: `$` also matches before a trailing newline, so "i-0abc...\\n" would pass.
Digits are [0-9], not \\d: \\d also matches other scripts' digits (fullwidth or Arabic-Indic "333...").
"""

from __future__ import annotations

import re
from typing import Any

from handlers.common.errors import InvalidInput

INSTANCE_ID = re.compile(r"^i-(?:[0-9a-f]{8}|[0-9a-f]{17})\Z")
ACCOUNT_ID = re.compile(r"^[0-9]{12}\Z")
REGION = re.compile(r"^[a-z]{2}(?:-gov|-iso[a-z]?)?-[a-z]+-[0-9]{1,2}\Z")
# A case id becomes an S3 prefix, part of role session names and of the examination's command
# text: keep it to safe characters.
CASE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")
# new_case_id(): <Account>-<InstanceId>-<Region>-<epoch seconds>
GENERATED_CASE_ID = re.compile(
    r"^(?P<account>[0-9]{12})-(?P<instance>i-[0-9a-f]+)-(?P<region>[a-z]{2}(?:-[a-z]+)+-[0-9]{1,2})-[0-9]+\Z"
)
INSTANCE_ID_SHAPE = "an EC2 instance id like i-0abc12345def67890"
ACCOUNT_ID_SHAPE = "a 12-digit AWS account id"
REGION_SHAPE = "an AWS region like eu-west-1"
CASE_ID_SHAPE = "1-128 characters of letters, digits, '.', '_' or '-'"


def new_case_id(account: str, instance_id: str, region: str, epoch_seconds: int) -> str:
    return f"{account}-{instance_id}-{region}-{epoch_seconds}"


def is_instance_id(value: Any) -> bool:
    return isinstance(value, str) and INSTANCE_ID.fullmatch(value) is not None


def is_account_id(value: Any) -> bool:
    return isinstance(value, str) and ACCOUNT_ID.fullmatch(value) is not None


def is_region(value: Any) -> bool:
    return isinstance(value, str) and REGION.fullmatch(value) is not None


def is_case_id(value: Any) -> bool:
    return isinstance(value, str) and CASE_ID.fullmatch(value) is not None


def check_case_id(value: Any, field: str = "CaseId") -> str:
    """The case id, or InvalidInput under `field` (the name the caller's user gave it: CaseId, CASE)."""
    if not is_case_id(value):
        raise InvalidInput({field: f"must be {CASE_ID_SHAPE}, got {value!r}"})
    return str(value)
