"""Reading what a mock run of the Pulumi program registered: resources by type, policy statements.

`simulation.pulumi_mocks.run_program` returns each resource with the inputs Pulumi sent (camelCase
keys; policy documents as JSON strings). These helpers turn that into things a test can assert
on without knowing where a policy lives (Role trust, RolePolicy, Policy, BucketPolicy, key
policy, endpoint policy, inline policies of a Role).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Iterator
from typing import Any

from policy import documents
from simulation.pulumi_mocks import RegisteredResource

Statement = dict[str, Any]


def resources_of(resources: Iterable[RegisteredResource], type_token: str) -> list[RegisteredResource]:
    """Every resource of one type, e.g. "aws:s3/bucket:Bucket"."""
    return [res for res in resources if res.type == type_token]


def one(resources: Iterable[RegisteredResource], type_token: str, name_contains: str = "") -> RegisteredResource:
    """The single resource of a type whose logical name contains `name_contains`."""
    found = [res for res in resources_of(resources, type_token) if name_contains in res.name]
    if len(found) != 1:
        raise AssertionError(f"expected one {type_token} named *{name_contains}*, found {[res.name for res in found]}")
    return found[0]


def named(resources: Iterable[RegisteredResource], name: str) -> RegisteredResource:
    found = [res for res in resources if res.name == name]
    if len(found) != 1:
        raise AssertionError(f"expected one resource named {name}, found {len(found)}")
    return found[0]


def plain(value: Any) -> Any:
    """An input value with Pulumi's secret wrapping removed (e.g. an SSM parameter's value)."""
    return documents.unwrap(value)


def parse_policy(value: Any) -> dict[str, Any] | None:
    """A policy document from an input value (JSON string or already a mapping); None if it is none."""
    document = documents.policy_document(value)
    return dict(document) if document is not None else None


def policy_documents(res: RegisteredResource) -> Iterator[tuple[str, dict[str, Any]]]:
    """(input path, document) for every policy document anywhere in a resource's inputs."""
    for path, document in documents.policy_documents(res.inputs):
        yield path, dict(document)


def statements_of(document: dict[str, Any]) -> list[Statement]:
    return [dict(statement) for statement in documents.statements(document)]


def statements(resources: Iterable[RegisteredResource]) -> Iterator[tuple[RegisteredResource, Statement]]:
    """Every IAM statement in the stack, with the resource that carries it."""
    for res in resources:
        for _, document in policy_documents(res):
            for statement in statements_of(document):
                yield res, statement


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def actions(statement: Statement) -> list[str]:
    return [str(action) for action in as_list(statement.get("Action"))]


def covers(pattern: str, action: str) -> bool:
    """IAM action matching: case-insensitive, `*` and `?` wildcards."""
    return fnmatch.fnmatchcase(action.lower(), pattern.lower())


def grants(statement: Statement, action: str) -> bool:
    """The statement's Action (not NotAction) names `action`, directly or by wildcard."""
    return any(covers(pattern, action) for pattern in actions(statement))


def allowed_actions(statements_: Iterable[Statement]) -> list[str]:
    return [action for statement in statements_ if statement.get("Effect") == "Allow" for action in actions(statement)]


def sid(statements_: Iterable[Statement], name: str) -> Statement:
    found = [statement for statement in statements_ if statement.get("Sid") == name]
    if len(found) != 1:
        raise AssertionError(f"expected one statement {name}, found {len(found)}")
    return found[0]


def policy_of(res: RegisteredResource, key: str = "policy") -> dict[str, Any]:
    document = parse_policy(plain(res.inputs.get(key)))
    if document is None:
        raise AssertionError(f"{res.name} has no policy document in input {key!r}")
    return document
