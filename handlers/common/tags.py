"""The tag contract (DESIGN.md): one place for the keys and the values that start a response."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

INCIDENT_TAG = "SecurityIncidentStatus"
CASE_TAG = "SecurityIncidentCaseId"
ACTION_ANALYZE = "Analyze"
ACTION_CONTAIN = "Contain"
ACTIONS = (ACTION_ANALYZE, ACTION_CONTAIN)
# Tag put on every resource the flow creates (snapshots, groups, volumes) so it can be found and cleaned.
MANAGED_BY_TAG = "irforensics:managed-by"
MANAGED_BY_VALUE = "irforensics"
# EC2's limits (per resource; keys starting with "aws:" are AWS's own and do not count).
MAX_TAGS_PER_RESOURCE = 50
MAX_TAG_KEY_CHARS = 128
MAX_TAG_VALUE_CHARS = 256
AWS_RESERVED_PREFIX = "aws:"


def action_error(value: Any) -> str:
    """Why `value` is not an Action; names the intended value when only the case is wrong ("contain")."""
    shown = repr(value) if len(repr(value)) <= 64 else repr(value)[:61] + "..."
    message = f"must be one of {', '.join(ACTIONS)} (case-sensitive), got {shown}"
    if isinstance(value, str):
        meant = next((a for a in ACTIONS if a.lower() == value.strip().lower()), None)
        if meant is not None:
            message += f" (did you mean {meant!r}? the value is matched exactly)"
    return message


def counted_tags(keys: Iterable[str]) -> int:
    """How many of these tag keys count against EC2's per-resource limit."""
    return sum(1 for key in keys if not key.startswith(AWS_RESERVED_PREFIX))


def chunked_tags(base: str, value: str) -> dict[str, str]:
    """`value` as tags `<base>:00`, `<base>:01`, ... of at most MAX_TAG_VALUE_CHARS characters each.

    EC2 refuses a tag value over 256 characters; this is how a longer value is kept anyway. A value
    that fits is one tag, `<base>:00`; an empty value is one empty tag, so "remembered as empty"
    differs from "not remembered". Read it back with `unchunked_tag`.
    """
    width = MAX_TAG_VALUE_CHARS
    tags = {f"{base}:{n:02d}": value[i : i + width] for n, i in enumerate(range(0, max(len(value), 1), width))}
    too_long = [key for key in tags if len(key) > MAX_TAG_KEY_CHARS]
    if too_long:
        raise ValueError(f"tag key {too_long[-1]!r} is longer than EC2's {MAX_TAG_KEY_CHARS} characters")
    return tags


def unchunked_tag(tags: Mapping[str, str], base: str) -> str | None:
    """The value `chunked_tags(base, value)` wrote, its chunks joined in order; None when no chunk is there."""
    chunks = {
        int(suffix): value
        for key, value in tags.items()
        if key.startswith(base + ":") and (suffix := key[len(base) + 1 :]).isascii() and suffix.isdigit()
    }
    # By number, not by key: ":100" sorts before ":11" as text.
    return "".join(chunks[n] for n in sorted(chunks)) if chunks else None
