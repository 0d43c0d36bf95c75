"""The forensic stack and the LimeFactory in the China and GovCloud partitions, under Pulumi mocks.

Every ARN the components write (policies, managed-policy attachments, the LimeFactory's CodeBuild
integration) takes the partition of the stack's region; rendered for another partition, a stack
differs from the commercial one in its partition and region only. The mocks give each resource
the ARN AWS would, in its region's partition. SecurityAccount and MemberResponder are checked by
their own tests.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from components import naming
from simulation import pulumi_mocks
from simulation.pulumi_mocks import RegisteredResource
from statemachines import lime_factory, lint
from tests.infra.helpers import policy_documents, resources_of, statements_of

COMMERCIAL = "eu-west-1"
OTHER_PARTITIONS = {"cn-north-1": "aws-cn", "us-gov-west-1": "aws-us-gov"}
SECURITY = "123456789012"
FORENSIC = "222222222222"
LIME_PROGRAM = """
from components.lime_factory import LimeFactory, LimeFactoryArgs
from config import read_pulumi_config

LimeFactory("lime", LimeFactoryArgs.from_config(read_pulumi_config()))
"""


def forensic_config(region: str) -> dict[str, Any]:
    return {
        "prefix": "acme",
        "securityAccount": SECURITY,
        "forensicAccount": FORENSIC,
        "analysisAzs": [f"{region}a", f"{region}b"],
    }


def render_forensic(region: str) -> list[RegisteredResource]:
    return pulumi_mocks.run_program("forensic", forensic_config(region), account=FORENSIC, region=region)


def render_lime_factory(region: str, root: Path) -> list[RegisteredResource]:
    (root / "__main__.py").write_text(LIME_PROGRAM)
    saved = pulumi_mocks.ROOT
    pulumi_mocks.ROOT = root
    try:
        config = {"prefix": "acme", "securityAccount": SECURITY, "forensicAccount": FORENSIC}
        return pulumi_mocks.run_program("security", config, account=SECURITY, region=region)
    finally:
        pulumi_mocks.ROOT = saved


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], list[RegisteredResource]]:
    stacks: dict[tuple[str, str], list[RegisteredResource]] = {}
    for region in (COMMERCIAL, *OTHER_PARTITIONS):
        stacks[("forensic", region)] = render_forensic(region)
        stacks[("lime", region)] = render_lime_factory(region, tmp_path_factory.mktemp(f"lime-{region}"))
    return stacks


# Image Builder versions carry a digest of the component document, which names the region's bucket.
CONTENT_VERSIONED = ("aws:imagebuilder/component:Component", "aws:imagebuilder/imageRecipe:ImageRecipe")


def inputs_text(resources: list[RegisteredResource], *, versioned: bool = True) -> list[str]:
    """Each resource's type, name and inputs as canonical JSON, in a stable order (registration is
    concurrent); assets are named by their type only (their repr carries an address). Unless
    `versioned`, content-digest versions are left out."""

    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: plain(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [plain(item) for item in value]
        if isinstance(value, str | int | float | bool) or value is None:
            return value
        return type(value).__name__

    def shown(res: RegisteredResource) -> dict[str, Any]:
        inputs = plain(res.inputs)
        if not versioned and res.type in CONTENT_VERSIONED:
            inputs.pop("version", None)
        return dict(inputs)

    return sorted(json.dumps([res.type, res.name, shown(res)], sort_keys=True) for res in resources)


def arns_in(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [arn for item in value.values() for arn in arns_in(item)]
    if isinstance(value, list):
        return [arn for item in value for arn in arns_in(item)]
    return [value] if isinstance(value, str) and value.startswith("arn:") else []


STACKS = ("forensic", "lime")


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("region", sorted(OTHER_PARTITIONS))
def test_no_input_of_the_stack_names_the_commercial_partition(
    rendered: dict[tuple[str, str], list[RegisteredResource]], stack: str, region: str
) -> None:
    resources = rendered[(stack, region)]
    commercial = [line for line in inputs_text(resources) if "arn:aws:" in line]
    assert commercial == []


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("region", sorted(OTHER_PARTITIONS))
def test_every_arn_in_every_policy_is_of_the_regions_partition(
    rendered: dict[tuple[str, str], list[RegisteredResource]], stack: str, region: str
) -> None:
    expected = f"arn:{OTHER_PARTITIONS[region]}:"
    found: list[str] = []
    for res in rendered[(stack, region)]:
        for _, document in policy_documents(res):
            for statement in statements_of(document):
                found.extend(arns_in(statement))
    assert found, "the stack's policies name ARNs"
    assert [arn for arn in found if not arn.startswith(expected)] == []


@pytest.mark.parametrize("region", sorted(OTHER_PARTITIONS))
def test_managed_policies_are_attached_by_the_partitions_arn(
    rendered: dict[tuple[str, str], list[RegisteredResource]], region: str
) -> None:
    attachments = resources_of(rendered[("forensic", region)], "aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    assert sorted(res.input("policyArn") for res in attachments) == [
        f"arn:{OTHER_PARTITIONS[region]}:iam::aws:policy/AmazonSSMManagedInstanceCore",
        f"arn:{OTHER_PARTITIONS[region]}:iam::aws:policy/AmazonSSMManagedInstanceCore",
        f"arn:{OTHER_PARTITIONS[region]}:iam::aws:policy/EC2InstanceProfileForImageBuilder",
    ]


@pytest.mark.parametrize("region", sorted(OTHER_PARTITIONS))
def test_the_lime_factory_machine_calls_codebuild_in_its_partition(
    rendered: dict[tuple[str, str], list[RegisteredResource]], region: str
) -> None:
    (machine,) = resources_of(rendered[("lime", region)], "aws:sfn/stateMachine:StateMachine")
    definition = json.loads(machine.input("definition"))
    start = definition["States"]["BuildEach"]["ItemProcessor"]["States"]["StartBuild"]
    assert start["Resource"] == f"arn:{OTHER_PARTITIONS[region]}:states:::codebuild:startBuild.sync"


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("region", sorted(OTHER_PARTITIONS))
def test_the_stack_differs_from_the_commercial_one_only_in_partition_and_region(
    rendered: dict[tuple[str, str], list[RegisteredResource]], stack: str, region: str
) -> None:
    other = [
        line.replace(f"arn:{OTHER_PARTITIONS[region]}:", "arn:aws:").replace(region, COMMERCIAL)
        for line in inputs_text(rendered[(stack, region)], versioned=False)
    ]
    assert sorted(other) == inputs_text(rendered[(stack, COMMERCIAL)], versioned=False)


@pytest.mark.parametrize("region", sorted(OTHER_PARTITIONS))
def test_the_lime_factory_definition_is_statelint_clean_in_every_partition(region: str) -> None:
    assert lint.statelint(lime_factory.build_definition(prefix="acme", region=region)) == []


@pytest.mark.parametrize("region", sorted(OTHER_PARTITIONS))
def test_the_cross_account_role_arns_the_stacks_derive_are_of_the_regions_partition(region: str) -> None:
    iam = f"arn:{OTHER_PARTITIONS[region]}:iam::"
    assert naming.release_role_arn("acme", "333333333333", region) == f"{iam}333333333333:role/acme-ir-release-{region}"
    assert naming.member_responder_role_arn("acme", "333333333333", region).startswith(iam)
    assert naming.forensic_automation_role_arn("acme", FORENSIC, region).startswith(iam)
    assert naming.lambda_role_pattern("acme", SECURITY, region) == f"{iam}{SECURITY}:role/acme-ir-lambda-*"
