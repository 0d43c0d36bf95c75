"""A fresh clone as Pulumi's pip toolchain sets it up (Pulumi.yaml: toolchain pip, virtualenv .venv).

Pulumi's toolchain (sdk/python/toolchain/pip.go, InstallDependencies) runs, in the project folder:
`python3 -m venv <project>/.venv`, `<venv>/bin/python -m pip install --upgrade pip setuptools wheel`,
then `<venv>/bin/python -m pip install -r requirements.txt` - and nothing at all when there is no
requirements.txt. This builds the virtualenv exactly so, from a copy of the repository's files,
with no PYTHONPATH and no other virtualenv in reach, then imports the program and runs both stacks
of the copy's own stack files under Pulumi mocks with that virtualenv's Python (the program itself
runs only under the Pulumi engine). Installing needs the package index (PyPI), like `pulumi up`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def project_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return [name for name in listed if (ROOT / name).is_file()]


def pulumi_env(venv: Path) -> dict[str, str]:
    """The environment Pulumi gives pip and the program: the caller's, with the virtualenv activated."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    # Only the system's interpreters, not the development virtualenv this test runs in.
    system_path = [p for p in env.get("PATH", "").split(os.pathsep) if not (Path(p) / "activate").is_file()]
    env["PATH"] = os.pathsep.join([str(venv / "bin"), *system_path])
    env["VIRTUAL_ENV"] = str(venv)
    return env


def run(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.mark.slow
def test_the_virtualenv_pulumi_builds_from_requirements_txt_runs_the_program(tmp_path: Path):
    project = tmp_path / "irforensics"
    for name in project_files():
        target = project / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    assert (project / "requirements.txt").is_file(), "Pulumi's pip toolchain installs nothing without it"
    venv = project / ".venv"
    env = pulumi_env(venv)
    system_python = shutil.which("python3", path=env["PATH"].split(os.pathsep, 1)[1])
    assert system_python, "no python3 on PATH (Pulumi looks for python3, then python)"

    run([system_python, "-m", "venv", str(venv)], project, env)
    python = str(venv / "bin" / "python")
    run([python, "-m", "pip", "install", "--upgrade", "pip", "setuptools", "wheel"], project, env)
    run([python, "-m", "pip", "install", "-r", "requirements.txt"], project, env)

    where = run(
        [
            python,
            "-c",
            "import pulumi, pulumi_aws, config, components.security_account, components.forensic_account, "
            "components.member_responder, components.lime_factory; print(config.__file__); print(pulumi_aws.__file__)",
        ],
        project,
        env,
    ).split()
    assert Path(where[0]).resolve() == (project / "config.py").resolve()
    assert Path(where[1]).resolve().is_relative_to(venv.resolve())

    # Both stacks of the copy's own Pulumi.*.yaml, through the program, with runtime dependencies only.
    counted = run(
        [
            python,
            "-c",
            "from irf.preview import preview_stack\n"
            "for stack in ('forensic', 'security'):\n"
            "    shown = preview_stack(stack)\n"
            "    print(stack, len(shown.resources), len(shown.members))",
        ],
        project,
        env,
    )
    lines = dict(line.split(" ", 1) for line in counted.strip().splitlines())
    assert int(lines["forensic"].split()[0]) > 50 and lines["forensic"].split()[1] == "0"
    assert int(lines["security"].split()[0]) > 200 and lines["security"].split()[1] == "2"
    moto_absent = subprocess.run([python, "-c", "import moto"], cwd=project, env=env, capture_output=True)
    assert moto_absent.returncode != 0, "the Pulumi virtualenv should hold runtime dependencies only"
