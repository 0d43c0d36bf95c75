"""LimeFactory, registered by a small program under Pulumi mocks (SecurityAccount's stack adds it later)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from components import lime_factory as component
from simulation import pulumi_mocks
from simulation.pulumi_mocks import RegisteredResource
from statemachines import lime_factory
from tests.infra.helpers import allowed_actions, named, one, policy_of, resources_of, statements

PREFIX = "acme"
SECURITY = "123456789012"
REGION = "eu-west-1"
CONFIG: dict[str, Any] = {
    "prefix": PREFIX,
    "securityAccount": SECURITY,
    "forensicAccount": "222222222222",
    "logRetentionDays": 30,
}
PROGRAM = """
from components.lime_factory import LimeFactory, LimeFactoryArgs
from config import read_pulumi_config

LimeFactory("lime", LimeFactoryArgs.from_config(read_pulumi_config()))
"""


@pytest.fixture(scope="module")
def resources(tmp_path_factory: pytest.TempPathFactory) -> list[RegisteredResource]:
    root = tmp_path_factory.mktemp("program")
    (root / "__main__.py").write_text(PROGRAM)
    saved = pulumi_mocks.ROOT
    pulumi_mocks.ROOT = Path(root)
    try:
        return pulumi_mocks.run_program("security", CONFIG, account=SECURITY, region=REGION)
    finally:
        pulumi_mocks.ROOT = saved


def test_the_component_has_its_type_token(resources: list[RegisteredResource]) -> None:
    assert named(resources, "lime").type == "irforensics:lime:LimeFactory"


def test_the_modules_bucket_has_the_deterministic_name_versioning_kms_and_no_public_access(
    resources: list[RegisteredResource],
) -> None:
    bucket = one(resources, "aws:s3/bucket:Bucket")
    assert bucket.input("bucket") == f"{PREFIX}-ir-modules-{SECURITY}-{REGION}"
    assert (
        one(resources, "aws:s3/bucketVersioning:BucketVersioning").input("versioningConfiguration")["status"]
        == "Enabled"
    )
    rule = one(
        resources, "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
    ).input("rules")[0]
    assert rule["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "aws:kms"
    assert rule["applyServerSideEncryptionByDefault"]["kmsMasterKeyId"] == named(resources, "lime-key").outputs["arn"]
    assert rule["bucketKeyEnabled"] is True
    block = one(resources, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    assert all(
        block.input(k) is True
        for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    )
    (statement,) = policy_of(one(resources, "aws:s3/bucketPolicy:BucketPolicy"))["Statement"]
    assert statement["Effect"] == "Deny" and statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_the_modules_key_rotates(resources: list[RegisteredResource]) -> None:
    assert named(resources, "lime-key").input("enableKeyRotation") is True


def test_one_build_project_per_distribution_version_and_architecture(resources: list[RegisteredResource]) -> None:
    projects = {p.input("name"): p for p in resources_of(resources, "aws:codebuild/project:Project")}
    assert set(projects) == {lime_factory.project_name(PREFIX, *t) for t in lime_factory.build_targets()}
    al2023_arm = projects[f"{PREFIX}-ir-lime-amzn-2023-aarch64"].input("environment")
    assert (al2023_arm["type"], al2023_arm["image"]) == (
        "ARM_CONTAINER",
        "aws/codebuild/amazonlinux-aarch64-standard:3.0",
    )
    al2023_x86 = projects[f"{PREFIX}-ir-lime-amzn-2023-x86_64"].input("environment")
    assert al2023_x86["image"] == "aws/codebuild/amazonlinux-x86_64-standard:5.0"
    assert (
        projects[f"{PREFIX}-ir-lime-ubuntu-22-04-x86_64"].input("environment")["image"]
        == "public.ecr.aws/ubuntu/ubuntu:22.04"
    )
    spec = json.loads(projects[f"{PREFIX}-ir-lime-ubuntu-24-04-aarch64"].input("source")["buildspec"])
    # The build steps live in one script (issue 16) that the buildspec carries and runs unchanged.
    commands = spec["phases"]["build"]["commands"]
    carried = next(c for c in commands if c.endswith("| base64 -d > irforensics-build.sh"))
    script = base64.b64decode(carried.split()[1]).decode()
    assert script == component.build_script() and commands[-1] == "bash irforensics-build.sh"
    assert f"LIME_TAG={component.LIME_TAG}" in script and f"DWARF2JSON_COMMIT={component.DWARF2JSON_COMMIT}" in script
    assert spec["env"]["variables"]["IRF_BUCKET"] == f"{PREFIX}-ir-modules-{SECURITY}-{REGION}"
    assert 'aws s3 cp "$OUT/build.json" "s3://${IRF_BUCKET}/${PREFIX}build.json"' in script.rstrip().splitlines()[-2]


def test_the_state_machine_runs_the_factory_definition_with_logging_and_tracing(
    resources: list[RegisteredResource],
) -> None:
    machine = one(resources, "aws:sfn/stateMachine:StateMachine")
    assert machine.input("name") == f"{PREFIX}-ir-lime-factory"
    assert json.loads(machine.input("definition")) == lime_factory.build_definition(prefix=PREFIX)
    assert machine.input("loggingConfiguration")["level"] == "ALL"
    assert machine.input("tracingConfiguration")["enabled"] is True


def test_every_project_the_machine_can_start_is_a_project_the_component_created(
    resources: list[RegisteredResource],
) -> None:
    # CodeBuild names hold no dots: a name built from "24.04" would name no project at all.
    created = {p.input("name") for p in resources_of(resources, "aws:codebuild/project:Project")}
    machine = json.loads(one(resources, "aws:sfn/stateMachine:StateMachine").input("definition"))
    processor = machine["States"]["BuildEach"]["ItemProcessor"]["States"]
    started = {state["Result"]["Name"] for state in processor.values() if state.get("ResultPath") == "$.Project"}
    assert started == created and len(created) == len(lime_factory.build_targets())
    assert "ProjectName.$" in processor["StartBuild"]["Parameters"]


def test_no_role_is_allowed_every_action(resources: list[RegisteredResource]) -> None:
    for resource, statement in statements(resources):
        if statement.get("Effect") == "Allow" and "Principal" not in statement:
            assert "*" not in allowed_actions([statement]), resource.name


def test_builds_may_only_add_modules_and_the_machine_only_start_its_own_projects(
    resources: list[RegisteredResource],
) -> None:
    build = {s["Sid"]: s for s in policy_of(named(resources, "lime-build-policy"))["Statement"]}
    assert build["StoreModules"]["Action"] == ["s3:PutObject"]
    assert build["StoreModules"]["Resource"] == f"arn:aws:s3:::{PREFIX}-ir-modules-{SECURITY}-{REGION}/*"
    machine = {s["Sid"]: s for s in policy_of(named(resources, "lime-machine-policy"))["Statement"]}
    assert sorted(machine["RunBuilds"]["Resource"]) == sorted(
        f"arn:aws:codebuild:{REGION}:{SECURITY}:project/{lime_factory.project_name(PREFIX, *t)}"
        for t in lime_factory.build_targets()
    )
