"""Every Lambda archive the security stack builds holds Lambda code only.

The archives are rebuilt from what the program registered (each Function's AssetArchive: archive
path -> file) into real zip files, the way Pulumi uploads them, and read back from the zip.
"""

from __future__ import annotations

import ast
import io
import zipfile
from collections.abc import Iterator

import pytest
from pulumi.asset import AssetArchive, FileAsset

from simulation.pulumi_mocks import RegisteredResource, run_program
from statemachines.functions import FUNCTIONS
from tests.infra.test_security_account import CONFIG, REGION, SECURITY

# Packages that exist only on the operator's machine, in the simulation, in the tests, or on the
# analysis instance.
NOT_IN_A_LAMBDA = ("simulation", "moto", "irf", "examiner", "tests", "pytest", "pulumi", "pulumi_aws", "components")
# Simulation stand-ins, by the names they are defined under.
SIMULATION_ONLY = ("InProcessExaminationExecutor", "lineage_block_source", "SimulatedAgent")
SYNTHETIC_WRITERS = ("synthetic_memory_image", "synthetic_ranges")


@pytest.fixture(scope="module")
def archives() -> dict[str, zipfile.ZipFile]:
    resources: list[RegisteredResource] = run_program("security", CONFIG, account=SECURITY, region=REGION)
    built: dict[str, zipfile.ZipFile] = {}
    for function in (r for r in resources if r.type == "aws:lambda/function:Function"):
        code = function.inputs["code"]
        assert isinstance(code, AssetArchive), function.name
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            for name, asset in code.assets.items():
                assert isinstance(asset, FileAsset), (function.name, name)
                archive.write(asset.path, name)
        built[str(function.inputs["name"])] = zipfile.ZipFile(io.BytesIO(buffer.getvalue()))
    return built


def modules(archive: zipfile.ZipFile) -> Iterator[tuple[str, ast.Module]]:
    for name in archive.namelist():
        if name.endswith(".py"):
            yield name, ast.parse(archive.read(name), filename=name)


def imported(tree: ast.Module) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module


def defined(tree: ast.Module) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            yield node.name


def test_the_stack_builds_one_archive_per_function(archives: dict[str, zipfile.ZipFile]) -> None:
    assert len(archives) == len(FUNCTIONS)
    for name, archive in archives.items():
        assert "core/clients.py" in archive.namelist(), name
        assert "handlers/common/sessions.py" in archive.namelist(), name


def test_no_archive_imports_the_simulation_moto_the_cli_or_the_examiner(archives: dict[str, zipfile.ZipFile]) -> None:
    found = {
        (function, path, module)
        for function, archive in archives.items()
        for path, tree in modules(archive)
        for module in imported(tree)
        if module.split(".")[0] in NOT_IN_A_LAMBDA
    }
    assert found == set()
    for function, archive in archives.items():
        tops = {name.split("/")[0] for name in archive.namelist()}
        assert tops <= {"core", "handlers"}, (function, tops)


def test_no_archive_holds_a_simulation_stand_in(archives: dict[str, zipfile.ZipFile]) -> None:
    found = {
        (function, path, name)
        for function, archive in archives.items()
        for path, tree in modules(archive)
        for name in defined(tree)
        if name in SIMULATION_ONLY
    }
    assert found == set()


def test_no_archive_holds_the_synthetic_memory_writer(archives: dict[str, zipfile.ZipFile]) -> None:
    found = {
        (function, path, name)
        for function, archive in archives.items()
        for path, tree in modules(archive)
        for name in defined(tree)
        if name in SYNTHETIC_WRITERS
    }
    assert found == set()
