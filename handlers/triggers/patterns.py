"""EventBridge event patterns that start a response, and a local matcher to test them offline.

The patterns are plain dicts (SecurityAccount and MemberResponder serialise them into rules),
each a function of the configuration only. `matches` implements the subset of the EventBridge
pattern language these patterns use, so sample events under tests/events/ can be checked
without an AWS account.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from core.arns import securityhub_custom_action
from handlers.common.tags import INCIDENT_TAG

TAG_CHANGE_DETAIL_TYPE = "Tag Change on Resource"
GUARDDUTY_DETAIL_TYPE = "GuardDuty Finding"
SECURITYHUB_ACTION_DETAIL_TYPE = "Security Hub Findings - Custom Action"
SECURITYHUB_EC2_RESOURCE = "AwsEc2Instance"

# Security Hub custom actions: id (<= 20 alphanumerics) -> (name (< 20 chars), description, Action).
SECURITYHUB_ACTIONS: dict[str, tuple[str, str, str]] = {
    "IrfForensicAnalysis": ("Forensic analysis", "Acquire and examine the EC2 instance; keep it serving", "Analyze"),
    "IrfContainAnalyze": ("Contain and analyze", "Isolate the EC2 instance, then acquire and examine it", "Contain"),
}

_ACTION_ARN = re.compile(r"^arn:aws[a-z-]*:securityhub:[a-z0-9-]+:\d{12}:action/custom/[A-Za-z0-9]{1,20}$")


def tag_change_pattern() -> dict[str, Any]:
    """Any change of SecurityIncidentStatus on an EC2 instance.

    The value is not filtered here: the trigger Lambda starts a response for `Analyze` or `Contain`
    (case-sensitive) and ignores and logs any other value (DESIGN.md's contract), so a responder
    who typed `contain` finds a log line saying which value was meant instead of silence.
    `changed-tag-keys` must hold the key: the flow itself writes SecurityIncidentCaseId back on
    the instance, and that tag change still carries SecurityIncidentStatus in `tags`; without
    this condition every case would re-trigger itself.
    """
    return {
        "source": ["aws.tag"],
        "detail-type": [TAG_CHANGE_DETAIL_TYPE],
        "detail": {
            "service": ["ec2"],
            "resource-type": ["instance"],
            "changed-tag-keys": [INCIDENT_TAG],
            # Set to some value (a removal, as release does, carries nothing to act on or log).
            "tags": {INCIDENT_TAG: [{"exists": True}]},
        },
    }


def guardduty_pattern(min_severity: float, finding_type_prefixes: Sequence[str]) -> dict[str, Any]:
    """GuardDuty findings on an EC2 instance at or above `min_severity`, of the given type prefixes."""
    if isinstance(min_severity, bool) or not 0.0 <= float(min_severity) <= 10.0:
        raise ValueError(f"GuardDuty severity threshold must be between 0 and 10, got {min_severity!r}")
    prefixes = list(finding_type_prefixes)
    if not prefixes or not all(isinstance(p, str) and p for p in prefixes):
        raise ValueError(f"GuardDuty finding type prefixes must be non-empty strings, got {prefixes!r}")
    return {
        "source": ["aws.guardduty"],
        "detail-type": [GUARDDUTY_DETAIL_TYPE],
        "detail": {
            "severity": [{"numeric": [">=", float(min_severity)]}],
            "type": [{"prefix": prefix} for prefix in prefixes],
            "resource": {"resourceType": ["Instance"]},
        },
    }


def securityhub_action_pattern(action_arns: Sequence[str]) -> dict[str, Any]:
    """A responder chose one of our custom actions on findings, at least one about an EC2 instance."""
    arns = list(action_arns)
    bad = [arn for arn in arns if not isinstance(arn, str) or not _ACTION_ARN.match(arn)]
    if not arns or bad:
        raise ValueError(
            f"Security Hub custom action ARNs must look like "
            f"arn:<partition>:securityhub:<region>:<account>:action/custom/<Id>, got {arns!r}"
        )
    return {
        "source": ["aws.securityhub"],
        "detail-type": [SECURITYHUB_ACTION_DETAIL_TYPE],
        # The custom action's ARN is the event's only resource; the findings are in the detail.
        "resources": arns,
        "detail": {"findings": {"Resources": {"Type": [SECURITYHUB_EC2_RESOURCE]}}},
    }


def securityhub_action_arn(account: str, region: str, action_id: str) -> str:
    """Security Hub names a custom action's ARN from its id: deterministic, like our other names."""
    return securityhub_custom_action(account, region, action_id)


def securityhub_action_map(account: str, region: str) -> dict[str, str]:
    """Custom action ARN -> Action, for the Security Hub trigger's configuration."""
    return {
        securityhub_action_arn(account, region, action_id): action
        for action_id, (_name, _description, action) in SECURITYHUB_ACTIONS.items()
    }


# --- Local matcher ---------------------------------------------------------------------------
#
# Implements the subset of EventBridge pattern syntax used above and nothing more:
#   exact values (strings, numbers, true/false/null, type-sensitive), {"prefix": str},
#   {"numeric": [op, n, (op, n)]}, {"exists": bool}, {"anything-but": value | [values] |
#   {"prefix": str}}; fields AND together, values in a list OR together; when the event holds
#   an array, the pattern matches if any element matches; objects inside arrays are matched
#   element by element, so two fields must match within the same element (EventBridge's
#   "array-consistent" matching); `exists` only sees leaf values.
# Other operators (suffix, wildcard, cidr, equals-ignore-case, $or) raise ValueError rather
# than guess: a pattern that uses them must be tested against EventBridge itself.

_MISSING = object()
_NUMERIC_OPS = {
    "=": lambda a, b: a == b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def matches(pattern: Mapping[str, Any], event: Mapping[str, Any]) -> bool:
    """True if EventBridge would deliver `event` to a rule with `pattern` (within the subset above)."""
    if not isinstance(pattern, Mapping):
        raise ValueError(f"an event pattern is a JSON object, got {type(pattern).__name__}")
    return _match_object(pattern, event)


def _match_object(pattern: Mapping[str, Any], event: Any) -> bool:
    fields = event if isinstance(event, Mapping) else {}
    for key, expected in pattern.items():
        if key.startswith("$"):
            raise ValueError(f"pattern key {key!r} is not in the subset this matcher implements")
        actual = fields.get(key, _MISSING)
        if isinstance(expected, Mapping):
            if not _match_nested(expected, actual):
                return False
        elif isinstance(expected, list):
            if not _match_leaf(expected, _leaf_values(actual)):
                return False
        else:
            raise ValueError(f"pattern field {key!r} must be a list of values or an object, got {expected!r}")
    return True


def _flatten(value: Any) -> list[Any]:
    if isinstance(value, list):
        return [item for element in value for item in _flatten(element)]
    return [value]


def _match_nested(pattern: Mapping[str, Any], actual: Any) -> bool:
    if isinstance(actual, list):
        objects = [element for element in _flatten(actual) if isinstance(element, Mapping)]
        return any(_match_object(pattern, element) for element in objects or [{}])
    return _match_object(pattern, actual if isinstance(actual, Mapping) else {})


def _leaf_values(actual: Any) -> list[Any]:
    """The leaf values at a path: none when the field is absent or is an object (not a leaf)."""
    if actual is _MISSING or isinstance(actual, Mapping):
        return []
    return [value for value in _flatten(actual) if not isinstance(value, Mapping)]


def _match_leaf(expected: list[Any], values: list[Any]) -> bool:
    for matcher in expected:
        if isinstance(matcher, Mapping) and "exists" in matcher:
            if _only_key(matcher, "exists") and bool(values) == _as_bool(matcher["exists"]):
                return True
        elif any(_match_value(matcher, value) for value in values):
            return True
    return False


def _only_key(matcher: Mapping[str, Any], key: str) -> bool:
    if set(matcher) != {key}:
        raise ValueError(f"a matcher object holds exactly one operator, got {dict(matcher)!r}")
    return True


def _as_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f'"exists" takes true or false, got {value!r}')
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _equal(expected: Any, value: Any) -> bool:
    # JSON types never match across kinds: "100" is not 100, true is not 1.
    if _is_number(expected) and _is_number(value):
        return float(expected) == float(value)
    return type(expected) is type(value) and expected == value


def _match_value(matcher: Any, value: Any) -> bool:
    if not isinstance(matcher, Mapping):
        if isinstance(matcher, list):
            raise ValueError(f"a pattern value cannot be a nested list: {matcher!r}")
        return _equal(matcher, value)
    operator = next(iter(matcher), None)
    if operator == "prefix" and _only_key(matcher, "prefix"):
        return _prefix(matcher["prefix"], value)
    if operator == "numeric" and _only_key(matcher, "numeric"):
        return _numeric(matcher["numeric"], value)
    if operator == "anything-but" and _only_key(matcher, "anything-but"):
        return _anything_but(matcher["anything-but"], value)
    raise ValueError(f"operator {operator!r} is not in the subset this matcher implements")


def _prefix(prefix: Any, value: Any) -> bool:
    if not isinstance(prefix, str):
        raise ValueError(f'"prefix" takes a string, got {prefix!r}')
    return isinstance(value, str) and value.startswith(prefix)


def _numeric(ranges: Any, value: Any) -> bool:
    if not isinstance(ranges, list) or not ranges or len(ranges) % 2 or len(ranges) > 4:
        raise ValueError(f'"numeric" takes [op, number] or [op, number, op, number], got {ranges!r}')
    pairs = list(zip(ranges[::2], ranges[1::2], strict=True))
    for op, bound in pairs:
        if op not in _NUMERIC_OPS or not _is_number(bound):
            raise ValueError(f'"numeric" comparison {op!r} {bound!r} is not valid')
    # Numeric matching only applies to JSON numbers; the string "8.0" never matches.
    return _is_number(value) and all(_NUMERIC_OPS[op](float(value), float(bound)) for op, bound in pairs)


def _anything_but(excluded: Any, value: Any) -> bool:
    if isinstance(excluded, Mapping):
        if set(excluded) != {"prefix"}:
            raise ValueError(f'"anything-but" with an object supports only "prefix", got {dict(excluded)!r}')
        prefix = excluded["prefix"]
        if not isinstance(prefix, str):
            raise ValueError(f'"anything-but" prefix takes a string, got {prefix!r}')
        return isinstance(value, str) and not value.startswith(prefix)
    values = excluded if isinstance(excluded, list) else [excluded]
    if not values or not (all(isinstance(v, str) for v in values) or all(_is_number(v) for v in values)):
        raise ValueError(f'"anything-but" takes strings only or numbers only, got {excluded!r}')
    return not any(_equal(v, value) for v in values)
