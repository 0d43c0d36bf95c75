"""The operator CLI installs and starts with the runtime dependencies only.

A fresh virtualenv, a real `pip install .` of the project (no extras: no moto, no forensic tools),
then `irf <command> --help` for every command the CLI has. The venv is built once per test run
(a few minutes: pip resolves and installs the runtime dependencies).
"""

from __future__ import annotations

import shutil
import subprocess
import venv
from pathlib import Path

import pytest
import typer.main

from irf.cli import app

ROOT = Path(__file__).resolve().parent.parent
# Only what a fresh clone has: build artefacts, caches and virtualenvs stay behind.
LEFT_BEHIND = shutil.ignore_patterns(
    ".git",
    ".venv",
    "venv",
    "build",
    "*.egg-info",
    "__pycache__",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    "cases",
)
COMMANDS = sorted(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("operator-install")
    source = work / "source"
    shutil.copytree(ROOT, source, ignore=LEFT_BEHIND)
    environment = work / "venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(environment)
    python = environment / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(source)],
        check=True,
        capture_output=True,
        text=True,
    )
    return environment / "bin"


@pytest.mark.slow
def test_the_install_has_no_simulation_dependency(installed: Path) -> None:
    for module in ("moto", "pytest", "yara"):
        found = subprocess.run([str(installed / "python"), "-c", f"import {module}"], capture_output=True)
        assert found.returncode != 0, f"{module} is installed without any extra"


@pytest.mark.slow
@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_every_operator_command_starts_without_the_simulation(installed: Path, command: str) -> None:
    arguments = [str(installed / "irf"), *([command] if command else []), "--help"]
    answer = subprocess.run(arguments, capture_output=True, text=True, cwd=installed)
    assert answer.returncode == 0, answer.stderr[-2000:]
    assert "Usage" in answer.stdout
    if command:
        assert command in answer.stdout


def test_the_cli_knows_the_commands_the_test_walks() -> None:
    assert {"status", "cases", "report", "release", "respond", "simulate", "preview"} <= set(COMMANDS)
