"""docs/cli.md documents every command and option the CLI has, and nothing it does not have.

Generic over the commands: a command added in another module (registered on `irf.cli.app`) is
covered as soon as it is imported, and needs its `### \\`irf <command> ...\\`` section in docs/cli.md.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer.core
import typer.main
from typer.testing import CliRunner

from irf import cli

DOCS = Path(__file__).resolve().parents[1] / "docs" / "cli.md"
SECTION = re.compile(r"^### `irf ([a-z][a-z-]*)[^`]*`\s*$", re.MULTILINE)


def _group() -> typer.core.TyperGroup:
    group = typer.main.get_command(cli.app)
    assert isinstance(group, typer.core.TyperGroup)
    return group


def _sections() -> dict[str, str]:
    text = DOCS.read_text()
    found = list(SECTION.finditer(text))
    sections: dict[str, str] = {}
    for here, following in zip(found, [*found[1:], None], strict=True):
        end = following.start() if following else text.find("\n## ", here.end())
        sections[here.group(1)] = text[here.end() : end if end != -1 else len(text)]
    return sections


COMMANDS = sorted(_group().commands)


def test_every_documented_command_exists_and_every_command_is_documented() -> None:
    assert sorted(_sections()) == COMMANDS


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_of_the_command_is_in_its_section(command: str) -> None:
    section = _sections().get(command, "")
    # The first column of the section's option table names the options.
    first_columns = [row.split("|")[1] for row in section.splitlines() if row.startswith("| `")]
    documented = {opt for cell in first_columns for opt in re.findall(r"(?<![\w-])(--?[a-z][a-z0-9-]*)", cell)}
    options = {
        opt
        for param in _group().commands[command].params
        if isinstance(param, typer.core.TyperOption)
        for opt in (*param.opts, *param.secondary_opts)
        if opt not in ("--help", "-h")
    }
    assert options - documented == set(), f"docs/cli.md `irf {command}` lacks {sorted(options - documented)}"
    assert documented - options - {"--help", "-h"} == set(), (
        f"docs/cli.md `irf {command}` names options the command does not have: {sorted(documented - options)}"
    )


@pytest.mark.parametrize("command", COMMANDS)
def test_help_wraps_at_80_columns_and_shows_flags_as_flags(command: str) -> None:
    result = CliRunner(env={"COLUMNS": "80"}).invoke(cli.app, [command, "-h"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "\u2026" not in result.output  # nothing cut short with an ellipsis
    assert "<bool>" not in result.output
    for param in _group().commands[command].params:
        if isinstance(param, typer.core.TyperOption):
            for opt in param.opts:
                assert opt in result.output


def test_flags_take_no_value() -> None:
    result = CliRunner().invoke(cli.app, ["simulate", "--verbose", "true", "--action", "isolate"])
    # `true` is an unexpected extra argument, not the flag's value.
    assert result.exit_code == 2
    assert "true" in result.output


def test_version_and_short_help() -> None:
    version = CliRunner().invoke(cli.app, ["--version"])
    assert version.exit_code == 0
    assert re.fullmatch(r"irf \(irforensics\) \S+\n", version.output)
    short = CliRunner().invoke(cli.app, ["-h"])
    assert short.exit_code == 0
    for command in COMMANDS:
        assert command in short.output
