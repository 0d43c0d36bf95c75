"""The memory branch, statelint-clean and executed on moto's interpreter with our handlers in process.

The branch runs alone inside a one-state Parallel, as it runs beside the disk branch in the
response. The suspect instance's side of SSM is the simulated agent of test_memory_handler.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from handlers.common import naming
from handlers.common.settings import Settings
from handlers.memory import kernel
from simulation import codebuild_local, lambda_local, synthetic_memory
from simulation.codebuild_local import Builder
from simulation.local_aws import FORENSIC_ACCOUNT, MEMBER_ACCOUNT, PREFIX, REGION, SECURITY_ACCOUNT, account_session
from simulation.sandbox import LIME_BUILD_PROJECTS, MOTO_CONFIG
from simulation.ssm_agent import AgentBehaviour, SimulatedAgent, install_documents
from statemachines import lime_factory, lint, memory
from statemachines.asl import PollPolicy
from tests.handlers.test_memory_handler import AMI, SAMPLES, publish_module

BUCKET = naming.evidence_bucket(PREFIX, FORENSIC_ACCOUNT, REGION)
MODULES = naming.modules_bucket(PREFIX, SECURITY_ACCOUNT, REGION)
FAST = PollPolicy(interval_seconds=1, backoff_rate=1.0, max_attempts=2, max_delay_seconds=1)
FUNCTIONS = {spec.function: spec.handler for spec in memory.MEMORY_FUNCTIONS}
FUNCTIONS["contain"] = "handlers.isolation.handler.contain"


def failing_build(project: str, environment: dict[str, str]) -> None:
    raise RuntimeError(f"{project}: kernel-devel-{environment['KERNEL_RELEASE']} is not in the repositories")


def example_arns() -> dict[str, str]:
    return {name: f"arn:aws:lambda:{REGION}:{SECURITY_ACCOUNT}:function:{PREFIX}-ir-{name}" for name in FUNCTIONS}


def branch_machine(arns: dict[str, str]) -> dict[str, Any]:
    return {
        "StartAt": "Acquire",
        "States": {
            "Acquire": {
                "Type": "Parallel",
                "Branches": [memory.memory_branch(arns, FAST, capture_poll=FAST, build_poll=FAST)],
                "ResultSelector": {"Memory.$": "$[0]"},
                "End": True,
            }
        },
    }


def test_the_branch_passes_statelint_inside_a_parallel_state() -> None:
    assert lint.statelint(branch_machine(example_arns())) == []


def test_every_path_of_the_branch_ends_in_the_memory_result_pass_state() -> None:
    states = memory.memory_branch(example_arns(), FAST)["States"]
    ends = [name for name, state in states.items() if state.get("End")]
    assert ends == ["MemoryResult"] and states["MemoryResult"] == {"Type": "Pass", "InputPath": "$.Memory", "End": True}
    assert not [name for name, state in states.items() if state["Type"] in ("Fail", "Succeed")]
    for name, state in states.items():
        if state["Type"] == "Task":
            assert state["Catch"][0]["ErrorEquals"] == ["States.ALL"], name


def test_the_lime_factory_definition_passes_statelint() -> None:
    assert lint.statelint(lime_factory.build_definition(prefix=PREFIX)) == []


@pytest.fixture
def cloud(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    builders: list[Builder] = [failing_build]

    def build(project: str, environment: dict[str, str]) -> None:
        builders[-1](project, environment)

    with (
        mock_aws(config=MOTO_CONFIG),
        lambda_local.dispatch_in_process() as calls,
        SimulatedAgent().installed() as agent,
        codebuild_local.stand_in_builds(LIME_BUILD_PROJECTS, build) as builds,
    ):
        settings = Settings(
            prefix=PREFIX, security_account=SECURITY_ACCOUNT, forensic_account=FORENSIC_ACCOUNT, forensic_region=REGION
        )
        sfn: Any = boto3.client("stepfunctions", region_name=REGION)
        install_documents(account_session(MEMBER_ACCOUNT, REGION).client("ssm"), PREFIX)
        iam: Any = boto3.client("iam", region_name=REGION)
        role = iam.create_role(RoleName="irf-test-role", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        factory = sfn.create_state_machine(
            name=naming.state_machine_name(PREFIX, "lime-factory"),
            roleArn=role,
            definition=json.dumps(lime_factory.build_definition(prefix=PREFIX)),
        )["stateMachineArn"]
        code = io.BytesIO()
        with zipfile.ZipFile(code, "w") as archive:
            archive.writestr("placeholder.txt", "handlers run in process")
        lambdas: Any = boto3.client("lambda", region_name=REGION)
        arns = {}
        for name, handler in FUNCTIONS.items():
            arns[name] = lambdas.create_function(
                FunctionName=naming.lambda_function_name(PREFIX, name),
                Runtime="python3.13",
                Role=role,
                Handler=handler,
                Code={"ZipFile": code.getvalue()},
                Timeout=300,
                Environment={
                    "Variables": {
                        **settings.to_env(),
                        "AWS_REGION": REGION,
                        "IRF_LIME_FACTORY_STATE_MACHINE_ARN": factory,
                    }
                },
            )["FunctionArn"]
        machine = sfn.create_state_machine(
            name="memory-branch", roleArn=role, definition=json.dumps(branch_machine(arns))
        )["stateMachineArn"]
        forensic, member = account_session(FORENSIC_ACCOUNT), account_session(MEMBER_ACCOUNT)
        evidence: Any = forensic.client("s3")
        evidence.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        modules: Any = boto3.client("s3", region_name=REGION)
        modules.create_bucket(Bucket=MODULES, CreateBucketConfiguration={"LocationConstraint": REGION})
        instance = member.client("ec2").run_instances(ImageId=AMI, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
        yield {
            "sfn": sfn,
            "machine": machine,
            "factory": factory,
            "agent": agent,
            "instance": instance,
            "evidence": evidence,
            "modules": modules,
            "calls": calls,
            "builders": builders,
            "builds": builds,
            "case": f"{MEMBER_ACCOUNT}-{instance}-{REGION}-1700000000",
        }


def run_branch(cloud: dict[str, Any], action: str = "Analyze") -> dict[str, Any]:
    request = {
        "InstanceId": cloud["instance"],
        "Account": MEMBER_ACCOUNT,
        "Region": REGION,
        "Action": action,
        "WaitSeconds": 0,
    }
    execution = cloud["sfn"].start_execution(
        stateMachineArn=cloud["machine"],
        name=f"memory-{time.monotonic_ns()}",
        input=json.dumps({"Case": {"CaseId": cloud["case"]}, "Request": request}),
    )["executionArn"]
    deadline = time.monotonic() + 25
    while time.monotonic() < deadline:
        described = cloud["sfn"].describe_execution(executionArn=execution)
        if described["status"] != "RUNNING":
            assert described["status"] == "SUCCEEDED", described
            return dict(json.loads(described["output"])["Memory"])
        time.sleep(0.05)
    raise AssertionError("the memory branch did not finish in 25 s")


def test_no_ssm_agent_ends_the_branch_with_acquired_false_and_the_reason(cloud: dict[str, Any]) -> None:
    memory_result = run_branch(cloud)
    assert memory_result["Acquired"] is False
    assert memory_result["Reason"].startswith(f"no SSM agent is registered for {cloud['instance']}")


def test_a_missing_module_whose_build_fails_ends_with_the_kernel_and_the_build_outcome(cloud: dict[str, Any]) -> None:
    cloud["agent"].agents[cloud["instance"]] = AgentBehaviour(
        discovery=(SAMPLES / "al2023-aarch64.discovery.txt").read_text()
    )
    memory_result = run_branch(cloud)
    assert memory_result["Acquired"] is False
    assert memory_result["Reason"].startswith(
        "memory not captured: no module for amzn 2023 kernel 6.1.119-129.201.amzn2023.aarch64 (aarch64): "
        "LimeFactory build ended FAILED"
    )
    factory_runs = cloud["sfn"].list_executions(stateMachineArn=cloud["factory"])["executions"]
    assert [run["status"] for run in factory_runs] == ["FAILED"]
    (build,) = cloud["builds"]
    assert build.status == "FAILED" and "kernel-devel-6.1.119-129.201.amzn2023.aarch64 is not in" in build.error
    assert build.project == f"{PREFIX}-ir-lime-amzn-2023-aarch64"


def test_a_missing_module_is_built_by_the_lime_factory_and_then_the_capture_runs(
    cloud: dict[str, Any], tmp_path: Path
) -> None:
    discovery = (SAMPLES / "amzn2-x86_64.discovery.txt").read_text()
    info = kernel.parse_discovery(discovery)

    def build(project: str, environment: dict[str, str]) -> None:
        built = kernel.KernelInfo.from_event(
            {
                "Distro": environment["DISTRO"],
                "DistroVersion": environment["DISTRO_VERSION"],
                "KernelRelease": environment["KERNEL_RELEASE"],
                "Arch": environment["ARCH"],
            }
        )
        publish_module(cloud["modules"], built)

    cloud["builders"].append(build)
    image = tmp_path / "mem.lime"
    synthetic_memory.synthetic_memory_image(image, seed=9, size=150_000)
    cloud["agent"].agents[cloud["instance"]] = AgentBehaviour(discovery=discovery, image=image.read_bytes())
    memory_result = run_branch(cloud)
    assert memory_result["Acquired"] is True, memory_result
    assert memory_result["Sha256"] == hashlib.sha256(image.read_bytes()).hexdigest()
    # One build, of the project of this kernel's distribution and architecture, for exactly this release.
    (build_done,) = cloud["builds"]
    assert (build_done.project, build_done.status) == (f"{PREFIX}-ir-lime-amzn-2-x86_64", "SUCCEEDED")
    assert build_done.environment == {
        "DISTRO": "amzn",
        "DISTRO_VERSION": "2",
        "KERNEL_RELEASE": info.kernel_release,
        "ARCH": "x86_64",
    }
    factory_runs = cloud["sfn"].list_executions(stateMachineArn=cloud["factory"])["executions"]
    assert [run["status"] for run in factory_runs] == ["SUCCEEDED"]
    handlers_run = [call.handler.rsplit(".", 1)[-1] for call in cloud["calls"]]
    assert handlers_run.count("check_module") == 2 and "request_module_build" in handlers_run
    assert handlers_run.index("request_module_build") < handlers_run.index("start_capture")


def test_an_unexpected_handler_error_is_caught_inside_the_branch(cloud: dict[str, Any]) -> None:
    cloud["agent"].agents[cloud["instance"]] = AgentBehaviour(discovery="### irforensics:uname-r\n$(reboot)\n")
    memory_result = run_branch(cloud)
    assert memory_result["Acquired"] is False
    assert memory_result["Reason"] == "memory not captured: reading the kernel discovery failed (DiscoveryUnreadable)"
    assert "lacks" in memory_result["Failure"]["Cause"]


def test_secure_boot_refuses_the_module_without_loading_anything(cloud: dict[str, Any]) -> None:
    cloud["agent"].agents[cloud["instance"]] = AgentBehaviour(
        discovery=(SAMPLES / "ubuntu-24.04-x86_64-secureboot.discovery.txt").read_text()
    )
    memory_result = run_branch(cloud)
    assert memory_result["Acquired"] is False and "Secure Boot is enabled" in memory_result["Reason"]
    assert "handlers.memory.handler.start_capture" not in {call.handler for call in cloud["calls"]}


def test_with_a_module_present_the_dump_lands_in_the_case_with_its_digest(
    cloud: dict[str, Any], tmp_path: Path
) -> None:
    discovery = (SAMPLES / "amzn2-x86_64.discovery.txt").read_text()
    publish_module(cloud["modules"], kernel.parse_discovery(discovery))
    image = tmp_path / "mem.lime"
    synthetic_memory.synthetic_memory_image(image, seed=5, size=200_000)
    cloud["agent"].agents[cloud["instance"]] = AgentBehaviour(discovery=discovery, image=image.read_bytes())
    memory_result = run_branch(cloud)
    digest = hashlib.sha256(image.read_bytes()).hexdigest()
    key = f"{cloud['case']}/memory/{cloud['instance']}.lime"
    assert memory_result == {
        "Acquired": True,
        # The method is named in every result (issue 16); a synthetic image carries no symbol sources.
        "Method": "lime",
        "SymbolSources": {},
        "Reason": "LiME dump streamed to the evidence bucket",
        "Key": key,
        "Sha256": digest,
        "Size": image.stat().st_size,
    }
    stored = cloud["evidence"].get_object(Bucket=BUCKET, Key=key)["Body"].read()
    assert hashlib.sha256(stored).hexdigest() == digest
