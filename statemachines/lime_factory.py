"""The LimeFactory state machine: build LiME and the Volatility 3 symbol table for a list of kernels.

Input {"Builds": [{"Distro", "DistroVersion", "KernelRelease", "Arch"}, ...]} (the response's
memory branch sends one; a responder can send many ahead of time). Each build runs on a CodeBuild
project of its distribution and architecture (`startBuild.sync` waits for it); the project's
buildspec writes lime.ko, the ISF and build.json under `<distro>-<version>/<release>/<arch>/`.
The execution fails, naming the builds that failed, unless every build succeeded.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from core.arns import partition
from handlers.memory.kernel import ARCHITECTURES, SUPPORTED_DISTROS
from statemachines.asl import PollPolicy, State, choice, machine, when
from statemachines.functions import FunctionSpec

LIME_FACTORY_FUNCTIONS: tuple[FunctionSpec, ...] = ()  # CodeBuild does the work; no Lambda needed
BUILD_TIMEOUT_SECONDS = 3600
# CodeBuild throttles concurrent builds per account; more kernels queue in the Map.
MAX_CONCURRENT_BUILDS = 4
_BUILD = {
    "Build": {
        "Distro.$": "$.Distro",
        "DistroVersion.$": "$.DistroVersion",
        "KernelRelease.$": "$.KernelRelease",
        "Arch.$": "$.Arch",
    }
}
CODEBUILD_RETRYABLE = ["CodeBuild.AccountLimitExceededException", "CodeBuild.CodeBuildException"]


def project_name(prefix: str, distro: str, version: str, arch: str) -> str:
    """CodeBuild project of one (distribution, version, architecture): 2-255 of [A-Za-z0-9_-]."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", f"{prefix}-ir-lime-{distro}-{version}-{arch}")


def build_targets() -> list[tuple[str, str, str]]:
    return [(distro, version, arch) for distro, version in SUPPORTED_DISTROS for arch in ARCHITECTURES]


def _project_state(distro: str, version: str, arch: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "", f"Project{distro.title()}{version}{arch.title()}")


def _target_choices() -> list[dict[str, Any]]:
    """One choice per build project: a Pass state names it, exactly as the project was created
    (CodeBuild names cannot hold the dots of "22.04", so the name is not built from the input)."""
    return [
        {
            "And": [
                {"Variable": "$.Distro", "StringEquals": distro},
                {"Variable": "$.DistroVersion", "StringEquals": version},
                {"Variable": "$.Arch", "StringEquals": arch},
            ],
            "Next": _project_state(distro, version, arch),
        }
        for distro, version, arch in build_targets()
    ]


def _build_processor(prefix: str, region: str) -> dict[str, Any]:
    env = [
        {"Name": name, "Type": "PLAINTEXT", "Value.$": f"$.{key}"}
        for name, key in (
            ("DISTRO", "Distro"),
            ("DISTRO_VERSION", "DistroVersion"),
            ("KERNEL_RELEASE", "KernelRelease"),
            ("ARCH", "Arch"),
        )
    ]
    states: dict[str, State] = {
        "Supported": choice(
            {
                "And": [
                    {"Variable": f"$.{key}", "IsPresent": True}
                    for key in ("Distro", "DistroVersion", "KernelRelease", "Arch")
                ],
                "Next": "SupportedTarget",
            },
            default="Unsupported",
            comment="Only the distributions and architectures there is a build project for",
        ),
        "SupportedTarget": choice(*_target_choices(), default="Unsupported"),
        "Unsupported": {
            "Type": "Pass",
            "End": True,
            "Parameters": {
                "Build.$": "$",
                "Succeeded": False,
                "Error": "UnsupportedKernel",
                "Cause": "no LimeFactory build project for this distribution, version and architecture",
            },
        },
        **{
            _project_state(distro, version, arch): {
                "Type": "Pass",
                "ResultPath": "$.Project",
                "Next": "StartBuild",
                "Result": {"Name": project_name(prefix, distro, version, arch)},
            }
            for distro, version, arch in build_targets()
        },
        "StartBuild": {
            "Type": "Task",
            "Comment": "Kernel headers and debug symbols of the release, LiME at a pinned tag, dwarf2json at a "
            "pinned commit; writes lime.ko, the ISF and build.json to the modules bucket",
            "Resource": f"arn:{partition(region)}:states:::codebuild:startBuild.sync",
            "Parameters": {"ProjectName.$": "$.Project.Name", "EnvironmentVariablesOverride": env},
            # The build record holds datetimes; keep plain fields only.
            "ResultSelector": {"BuildId.$": "$.Build.Id", "BuildStatus.$": "$.Build.BuildStatus"},
            "ResultPath": "$.Result",
            "TimeoutSeconds": BUILD_TIMEOUT_SECONDS,
            "Retry": [
                {"ErrorEquals": CODEBUILD_RETRYABLE, "IntervalSeconds": 30, "MaxAttempts": 5, "BackoffRate": 2.0}
            ],
            "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.Failure", "Next": "BuildFailed"}],
            "Next": "BuildSucceeded",
        },
        "BuildSucceeded": {
            "Type": "Pass",
            "End": True,
            "Parameters": {**_BUILD, "Succeeded": True, "BuildId.$": "$.Result.BuildId"},
        },
        "BuildFailed": {
            "Type": "Pass",
            "End": True,
            "Parameters": {**_BUILD, "Succeeded": False, "Error.$": "$.Failure.Error", "Failure.$": "$.Failure"},
        },
    }
    return {"ProcessorConfig": {"Mode": "INLINE"}, "StartAt": "Supported", "States": states}


def build_definition(
    function_arns: Mapping[str, str] | None = None,
    poll: PollPolicy | None = None,
    *,
    prefix: str = "irf",
    region: str = "",
) -> dict[str, Any]:
    """The LimeFactory definition. `function_arns` and `poll` keep the signature of the other machines:
    CodeBuild's .sync integration does the waiting, so neither is needed. `region` (the machine's)
    chooses the partition of the CodeBuild integration's ARN; empty means `aws`."""
    states: dict[str, State] = {
        "HasBuilds": choice(
            {
                "And": [{"Variable": "$.Builds", "IsPresent": True}, {"Variable": "$.Builds[0]", "IsPresent": True}],
                "Next": "BuildEach",
            },
            default="NothingToBuild",
        ),
        "NothingToBuild": {
            "Type": "Fail",
            "Error": "InvalidInput",
            "Cause": 'input must be {"Builds": [{"Distro", "DistroVersion", "KernelRelease", "Arch"}]}',
        },
        "BuildEach": {
            "Type": "Map",
            "ItemsPath": "$.Builds",
            "MaxConcurrency": MAX_CONCURRENT_BUILDS,
            "ItemProcessor": _build_processor(prefix, region),
            "ResultPath": "$.Results",
            "Next": "Summarise",
        },
        "Summarise": {
            "Type": "Pass",
            "Parameters": {
                "Results.$": "$.Results",
                "AnyFailed.$": "States.ArrayContains($.Results[*].Succeeded, false)",
            },
            "Next": "AllBuilt",
        },
        "AllBuilt": choice(when("$.AnyFailed", "SomeBuildsFailed", BooleanEquals=True), default="Built"),
        "SomeBuildsFailed": {
            "Type": "Fail",
            "Error": "ModuleBuildFailed",
            "Cause": "at least one LiME/ISF build failed; see the execution's Results",
        },
        "Built": {"Type": "Succeed"},
    }
    return machine(
        "irforensics LimeFactory: LiME module and Volatility 3 symbols per kernel",
        "HasBuilds",
        states,
        timeout_seconds=4 * 3600,
    )
