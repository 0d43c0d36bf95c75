"""What `irf simulate` imports is installed, not merely importable from the repository's folder.

The `irf` console script runs with its own folder, not the repository, on `sys.path`; a package
missing from pyproject's package list imports fine in pytest (rootdir on the path) and then fails
for the responder on the first `irf simulate`. This imports the simulation's entry modules from a
neutral folder with the environment's interpreter and without PYTHONPATH.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ENTRY_MODULES = ("irf.cli", "simulation.simulate", "simulation.sandbox", "simulation.deploy_local", "examiner.runner")


def test_the_simulation_imports_from_the_installed_packages_alone(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-I", "-c", "import " + ", ".join(ENTRY_MODULES)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr.strip().splitlines()[-1:]
