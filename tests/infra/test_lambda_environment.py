"""The Lambdas' environment: read in one place (core.settings), and only what a component sets."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.settings import RUNTIME_VARIABLES, VARIABLES, Settings
from simulation.pulumi_mocks import RegisteredResource, run_program
from statemachines.functions import FUNCTIONS
from tests.infra.test_security_account import CONFIG, REGION, SECURITY

ROOT = Path(__file__).resolve().parent.parent.parent


class RecordedEnvironment(dict[str, str]):
    """An environment that remembers every variable asked for."""

    def __init__(self, values: dict[str, str]) -> None:
        super().__init__(values)
        self.asked: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        self.asked.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.asked.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        self.asked.add(str(key))
        return super().__contains__(key)


@pytest.fixture(scope="module")
def environments() -> dict[str, dict[str, str]]:
    resources: list[RegisteredResource] = run_program("security", CONFIG, account=SECURITY, region=REGION)
    return {
        str(r.inputs["name"]): dict(r.inputs["environment"]["variables"])
        for r in resources
        if r.type == "aws:lambda/function:Function"
    }


def read_by_settings(environment: dict[str, str]) -> set[str]:
    recorded = RecordedEnvironment(environment)
    Settings.from_env(recorded)
    return recorded.asked


def test_every_variable_a_handler_reads_is_one_the_component_sets(environments: dict[str, dict[str, str]]) -> None:
    assert len(environments) == len(FUNCTIONS)
    for function, environment in environments.items():
        unset = read_by_settings(environment) - set(environment) - set(RUNTIME_VARIABLES)
        assert unset == set(), function
        assert set(VARIABLES.values()) <= set(environment), function


def test_the_settings_a_lambda_reads_are_the_settings_the_component_wrote(
    environments: dict[str, dict[str, str]],
) -> None:
    for function, environment in environments.items():
        settings = Settings.from_env(environment)
        assert (settings.prefix, settings.security_account, settings.forensic_region) == ("acme", SECURITY, REGION)
        assert settings.retention_days == 400 and settings.analysis_instance_type == "m7i.xlarge", function
        assert settings.to_env(topic_arn=settings.topic_arn) == {
            k: v for k, v in environment.items() if k in VARIABLES.values()
        }


def python_sources(*folders: str) -> Iterator[Path]:
    for folder in folders:
        yield from (path for path in (ROOT / folder).rglob("*.py") if "__pycache__" not in path.parts)


def reads_the_environment(tree: ast.Module) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "environb"):
            return True
        if (
            isinstance(node, ast.ImportFrom)
            and node.module == "os"
            and any(alias.name in ("environ", "getenv") for alias in node.names)
        ):
            return True
    return False


def test_only_core_settings_reads_the_lambda_environment() -> None:
    readers = {
        path.relative_to(ROOT).as_posix()
        for path in python_sources("handlers", "core")
        if reads_the_environment(ast.parse(path.read_text(), filename=str(path)))
    }
    assert readers == {"core/settings.py"}
