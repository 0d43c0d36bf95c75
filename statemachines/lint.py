"""Validate every generated state machine definition with statelint (`python -m statemachines.lint`)."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from statemachines import examination, lime_factory, response
from statemachines.functions import FUNCTIONS


def example_arns(account: str = "111122223333", region: str = "eu-west-1") -> dict[str, str]:
    return {spec.function: f"arn:aws:lambda:{region}:{account}:function:irf-{spec.function}" for spec in FUNCTIONS}


def definitions() -> dict[str, dict[str, Any]]:
    return {
        "response": response.build_definition(example_arns()),
        "examination": examination.build_definition(example_arns()),
        "lime-factory": lime_factory.build_definition(example_arns()),
    }


def statelint(definition: dict[str, Any]) -> list[str]:
    """Problems statelint reports for one definition (empty when valid)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "definition.json"
        path.write_text(json.dumps(definition))
        done = subprocess.run(
            [sys.executable, "-m", "statelint", str(path)], capture_output=True, text=True, check=False
        )
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    return [] if done.returncode == 0 else lines or [f"statelint exited {done.returncode}"]


def main() -> int:
    failed = False
    for name, definition in definitions().items():
        problems = statelint(definition)
        print(f"{name}: {'ok' if not problems else 'INVALID'}")
        for problem in problems:
            print(f"  {problem}")
        failed = failed or bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
