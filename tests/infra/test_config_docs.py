"""docs/config.md lists exactly the keys config.py knows, each for the stack that reads it."""

from __future__ import annotations

import re
from pathlib import Path

import config

DOC = Path(__file__).resolve().parents[2] / "docs" / "config.md"
ROW = re.compile(r"^\| `irforensics:(\w+)` \| (both|forensic|security) \| ([^|]+) \| ([^|]+) \| ([^|]+) \|$")


def documented() -> dict[str, str]:
    """key -> stack column of the irforensics key table (every row must have type, default and effect)."""
    section = DOC.read_text().split("## irforensics keys", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, str] = {}
    for line in section.splitlines():
        if line.startswith("| `irforensics:"):
            match = ROW.match(line)
            assert match, f"not a full row (key, stack, type, default, effect): {line}"
            assert match.group(1) not in rows, f"{match.group(1)} documented twice"
            rows[match.group(1)] = match.group(2)
    return rows


def test_docs_list_exactly_the_keys_config_knows():
    assert sorted(documented()) == sorted(config.KEYS)


def test_docs_say_which_stack_reads_each_key():
    stacks = {key: "both" for key in config.COMMON_KEYS}
    stacks.update({key: "forensic" for key in config.FORENSIC_KEYS})
    stacks.update({key: "security" for key in config.SECURITY_KEYS})
    assert documented() == stacks


def test_docs_name_the_replacement_of_every_retired_key():
    text = DOC.read_text()
    for old, new in config.RETIRED_KEYS.items():
        assert f"| `irforensics:{old}` | `irforensics:{new['forensic']}` | `irforensics:{new['security']}` |" in text
