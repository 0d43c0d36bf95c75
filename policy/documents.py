"""Policy documents and Pulumi's value wrappers: read one way by the policy pack, the infra tests
and the simulation's deployer.

Pure Python and standard library only, because the policy pack runs in its own virtualenv
(policy/requirements.txt) with policy/ as its root: the pack imports this module as `documents`,
the project as `policy.documents`. Nothing is vendored or copied at build time.

On the wire Pulumi wraps some values in a mapping carrying its signature key: a secret
`{SIG: SECRET, "value": v}`, an output value `{SIG: OUTPUT, "value": v, ...}`, an asset or an
archive (which carry no "value"). `unwrap` gives the value such a wrapper stands for.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

SIGNATURE_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIGNATURE = "1b47061264138c4ac30d75fd1eb44270"


def unwrap(value: Any) -> Any:
    """The value a signature wrapper stands for (None for an asset or archive); anything else as is."""
    while isinstance(value, Mapping) and SIGNATURE_KEY in value:
        value = value.get("value")
    return value


def unwrap_all(value: Any) -> Any:
    """`value` with every wrapper inside it unwrapped (mappings and lists become dicts and lists)."""
    value = unwrap(value)
    if isinstance(value, Mapping):
        return {key: unwrap_all(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [unwrap_all(item) for item in value]
    return value


def policy_document(value: Any) -> Mapping[str, Any] | None:
    """A policy document from a property (JSON text or a mapping with a Statement); None if it is none."""
    value = unwrap(value)
    if isinstance(value, str):
        text = value.strip()
        if not text.startswith("{"):
            return None
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            return None
    if isinstance(value, Mapping) and "Statement" in value:
        return value
    return None


def policy_documents(value: Any, path: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(property path, document) of every policy document anywhere in a resource's properties."""
    value = unwrap(value)
    document = policy_document(value)
    if document is not None:
        yield path, document
    elif isinstance(value, Mapping):
        for key in value:
            yield from policy_documents(value[key], f"{path}.{key}" if path else str(key))
    elif isinstance(value, Sequence) and not isinstance(value, str | bytes):
        for index, item in enumerate(value):
            yield from policy_documents(item, f"{path}[{index}]")


def statements(document: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """A document's statements as a list (IAM allows one statement object instead of a list)."""
    statement = unwrap(document.get("Statement"))
    if statement is None:
        return []
    if isinstance(statement, Mapping):
        return [statement]
    if isinstance(statement, Sequence) and not isinstance(statement, str | bytes):
        return [item for item in map(unwrap, statement) if isinstance(item, Mapping)]
    return []


def policy_text(value: Any) -> str:
    """A policy as the JSON text AWS APIs take (it may arrive as text or as a mapping)."""
    value = unwrap(value)
    return value if isinstance(value, str) else json.dumps(unwrap_all(value))
