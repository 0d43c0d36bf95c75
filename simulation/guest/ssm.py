"""What SSM does with a command document's parameters, for the simulated agent and the guest.

SendCommand refuses a value that does not match the parameter's `allowedPattern` (or that is
missing with no default); the agent then replaces every `{{ Name }}` in the step's commands by
the value, as text, before it writes the script and runs it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_.]+)\s*\}\}")


class InvalidParameters(ValueError):
    """What SSM answers SendCommand with when a parameter is missing, unknown or off its pattern."""


def resolve(document: Mapping[str, Any], given: Mapping[str, list[str] | str]) -> dict[str, str]:
    """The value of every declared parameter (given or default), checked as SendCommand checks it."""
    declared = document.get("parameters", {})
    unknown = set(given) - set(declared)
    if unknown:
        raise InvalidParameters(f"parameters not in the document: {', '.join(sorted(unknown))}")
    values: dict[str, str] = {}
    for name, spec in declared.items():
        raw = given.get(name, spec.get("default"))
        if raw is None:
            raise InvalidParameters(f"parameter {name} is required")
        items = raw if isinstance(raw, list) else [raw]
        if spec.get("type", "String") == "String" and len(items) != 1:
            raise InvalidParameters(f"parameter {name} takes one value")
        pattern = spec.get("allowedPattern")
        for item in items:
            if pattern and not re.fullmatch(pattern, str(item)):
                raise InvalidParameters(f"parameter {name} does not match its allowedPattern")
        values[name] = "\n".join(str(item) for item in items)
    return values


def render(text: str, values: Mapping[str, str]) -> str:
    return _PLACEHOLDER.sub(lambda found: values.get(found.group(1), found.group(0)), text)


def commands_of(document: Mapping[str, Any]) -> str:
    """The shell text of the document's (one) aws:runShellScript step."""
    steps = [step for step in document.get("mainSteps", []) if step.get("action") == "aws:runShellScript"]
    if len(steps) != 1:
        raise ValueError("the document needs exactly one aws:runShellScript step")
    return "\n".join(steps[0]["inputs"]["runCommand"]) + "\n"
