"""A whole deployment on moto: the accounts, both stacks deployed by the real program, and the seams.

`LocalCloud` is what the state-machine tests and the simulation stand on. Use it inside
`mock_aws(...)` (see `cloud_context`). It deploys the forensic stack into the forensic account and
the security stack (with its MemberResponders) into the security and member accounts through
simulation.deploy_local, dispatches Lambda invocations to our handlers in process, and follows moto's
EBS direct gap with a block source that walks a forensic copy's lineage back to the bytes.

What the simulation replaces reaches the handlers through their ports (`LocalCloud.ports`, passed
by simulation.lambda_local as the keyword arguments the handlers declare), never by assigning to
a handler module.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3
from moto import mock_aws

from handlers.acquisition.block_source import BlockSource, EbsDirectBlockSource
from handlers.acquisition.snapshots import SOURCE_ACCOUNT_TAG, SOURCE_VOLUME_TAG
from handlers.common import naming
from handlers.common.settings import Settings
from handlers.memory import kernel
from simulation import api_calls, codebuild_local, lambda_local, local_aws, moto_fixes, organization, stacks
from simulation.deploy_local import MotoDeployer, deploy_program
from simulation.examination_local import InProcessExaminationExecutor
from simulation.ssm_agent import AgentBehaviour, SimulatedAgent
from statemachines import lime_factory

MOTO_CONFIG: Any = {
    "lambda": {"use_docker": False},
    "stepfunctions": {"execute_state_machine": True},
    "iam": {"load_aws_managed_policies": False},
}
TERMINAL = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")
BUILDS_THE_MODULE = (
    "moto runs no CodeBuild: the LimeFactory's build is a stand-in that publishes labelled "
    "placeholder files with the build project's role (simulation.codebuild_local)"
)
LIME_BUILD_PROJECTS = tuple(
    lime_factory.project_name(local_aws.PREFIX, distro, version, arch)
    for distro, version, arch in lime_factory.build_targets()
)


def _tag(tags: Sequence[Mapping[str, Any]], key: str) -> str:
    return next((t["Value"] for t in tags if t["Key"] == key), "")


def lineage_block_source(forensic: boto3.Session, snapshot_id: str) -> BlockSource:
    """moto gap (DESIGN.md): EBS direct only reads StartSnapshot snapshots. Follow the forensic copy
    back - copy -> its source volume (tag) -> the snapshot that volume was created from - and read
    that one, which the simulation wrote with StartSnapshot/PutSnapshotBlock."""
    copy = forensic.client("ec2").describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"][0]
    volume_id = _tag(copy.get("Tags", []), SOURCE_VOLUME_TAG)
    account = _tag(copy.get("Tags", []), SOURCE_ACCOUNT_TAG)
    if not volume_id or not account:
        raise RuntimeError(f"forensic copy {snapshot_id} has no source volume/account tags to follow")
    region = forensic.region_name or local_aws.REGION
    member = local_aws.account_session(account, region)
    volume = member.client("ec2").describe_volumes(VolumeIds=[volume_id])["Volumes"][0]
    origin = volume.get("SnapshotId")
    if not origin:
        raise RuntimeError(f"volume {volume_id} was not created from a snapshot; the simulation has no bytes for it")
    return EbsDirectBlockSource(member.client("ebs"), origin)


def wait_for_execution(sfn: Any, execution_arn: str, timeout_seconds: float | None = None) -> dict[str, Any]:
    """The execution once it ended. Without `timeout_seconds` (what tests use: they must not depend
    on the machine's speed) the bound is the state machine's own TimeoutSeconds, which moto
    enforces; the CLI's `simulate` passes a wall-clock bound for its user."""
    deadline = None if timeout_seconds is None else time.monotonic() + timeout_seconds
    while True:
        execution = sfn.describe_execution(executionArn=execution_arn)
        if execution["status"] in TERMINAL:
            return dict(execution)
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"execution {execution_arn} still {execution['status']} after {timeout_seconds}s")
        time.sleep(0.05)


@dataclass
class LocalCloud:
    members: list[tuple[str, str]] = field(default_factory=lambda: [(local_aws.MEMBER_ACCOUNT, local_aws.REGION)])
    examination_notes: list[str] = field(default_factory=list)
    agent: SimulatedAgent = field(default_factory=SimulatedAgent)
    security_overrides: dict[str, Any] = field(default_factory=dict)
    deployer: MotoDeployer = field(default_factory=MotoDeployer)
    invocations: list[lambda_local.Invocation] = field(default_factory=list)
    module_builds: list[codebuild_local.StandInBuild] = field(default_factory=list)
    # Port name -> what the simulation gives the handlers that declare it (cloud_context fills it).
    ports: dict[str, Any] = field(default_factory=dict)
    # Organisation mode: the members are accounts of an OU, and the security stack's StackSet gives
    # them their responders (simulation.organization; the deployer instantiates the template).
    organisation: bool = False
    organization: organization.SimulatedOrganization | None = None

    @property
    def settings(self) -> Settings:
        return Settings(
            prefix=local_aws.PREFIX,
            security_account=local_aws.SECURITY_ACCOUNT,
            forensic_account=local_aws.FORENSIC_ACCOUNT,
            forensic_region=local_aws.REGION,
            retention_days=365,
        )

    def deploy(self) -> None:
        deploy_program(
            self.deployer,
            "forensic",
            stacks.forensic_config(),
            account=local_aws.FORENSIC_ACCOUNT,
            region=local_aws.REGION,
        )
        security = stacks.security_config(self.members, **self.security_overrides)
        if self.organisation:
            self.organization = organization.create_organization([account for account, _ in self.members])
            regions = sorted({region for _, region in self.members})
            security = stacks.organisation_security_config(
                [self.organization.workloads_ou], regions, **self.security_overrides
            )
        deploy_program(
            self.deployer,
            "security",
            security,
            account=local_aws.SECURITY_ACCOUNT,
            region=local_aws.REGION,
        )
        self.stand_in_for_toolset_build()

    def stand_in_for_toolset_build(self) -> str:
        """moto has no EC2 Image Builder: register an image as the pipeline's first build would, and
        publish its id where the pipeline's distribution does (the SSM parameter)."""
        forensic = self.session(local_aws.FORENSIC_ACCOUNT)
        ec2 = forensic.client("ec2")
        volume = ec2.create_volume(AvailabilityZone=f"{local_aws.REGION}a", Size=30)["VolumeId"]
        snapshot = ec2.create_snapshot(VolumeId=volume, Description="simulated forensic toolset build")["SnapshotId"]
        image = ec2.register_image(
            Name=f"{local_aws.PREFIX}-ir-forensic-toolset-simulated",
            Architecture="x86_64",
            RootDeviceName="/dev/xvda",
            BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": snapshot, "VolumeSize": 30}}],
            VirtualizationType="hvm",
            Description="stand-in for the Image Builder toolset image (simulation)",
        )["ImageId"]
        forensic.client("ssm").put_parameter(
            Name=naming.toolset_ami_parameter(local_aws.PREFIX), Value=image, Type="String", Overwrite=True
        )
        return str(image)

    @property
    def response_state_machine_arn(self) -> str:
        found = [
            r for r in self.deployer.find("aws:sfn/stateMachine:StateMachine") if r.id.endswith(":acme-ir-response")
        ]
        if len(found) != 1:
            raise RuntimeError("the security stack did not deploy exactly one response state machine")
        return found[0].id

    def give_instance_an_agent(self, instance_id: str, discovery: str, memory_image: bytes | None) -> None:
        """The suspect runs the SSM agent (moto has none): it answers discovery and captures this image."""
        self.agent.agents[instance_id] = AgentBehaviour(discovery=discovery, image=memory_image)

    def stand_in_for_module_build(self, project: str, environment: Mapping[str, str]) -> None:
        """moto runs no CodeBuild: when the LimeFactory starts a build, publish what the project's
        buildspec would for that kernel, labelled as a simulation stand-in (the bytes are not a kernel
        module and the symbol table is not an ISF). Written with the build project's role."""
        info = kernel.KernelInfo.from_event(
            {
                "Distro": environment.get("DISTRO", ""),
                "DistroVersion": environment.get("DISTRO_VERSION", ""),
                "KernelRelease": environment.get("KERNEL_RELEASE", ""),
                "Arch": environment.get("ARCH", ""),
            }
        )
        if project != lime_factory.project_name(local_aws.PREFIX, info.distro, info.distro_version, info.arch):
            raise RuntimeError(f"build project {project} does not build {info.describe()}")
        prefix = kernel.module_prefix(info)
        files = {
            kernel.MODULE_FILE: f"irforensics simulation stand-in for lime.ko ({info.kernel_release})".encode(),
            kernel.SYMBOLS_FILE: b"irforensics simulation stand-in: no Volatility symbol table was built",
        }
        build_role = f"arn:aws:iam::{local_aws.SECURITY_ACCOUNT}:role/{local_aws.PREFIX}-ir-lime-build"
        with api_calls.acting_as(build_role, BUILDS_THE_MODULE):
            s3 = self.session(local_aws.SECURITY_ACCOUNT).client("s3")
            bucket = naming.modules_bucket(local_aws.PREFIX, local_aws.SECURITY_ACCOUNT, local_aws.REGION)
            for name, body in files.items():
                s3.put_object(Bucket=bucket, Key=prefix + name, Body=body)
            # build.json last, as the buildspec writes it: a prefix with build.json is a complete build.
            digests = {name: {"sha256": hashlib.sha256(body).hexdigest()} for name, body in files.items()}
            s3.put_object(
                Bucket=bucket,
                Key=prefix + kernel.BUILD_FILE,
                Body=json.dumps(
                    {"simulation": True, "project": project, "kernel": info.to_event(), "files": digests}
                ).encode(),
            )

    def session(self, account: str, region: str = local_aws.REGION) -> boto3.Session:
        return local_aws.account_session(account, region)

    def start_response(self, request: dict[str, Any], name: str | None = None) -> str:
        sfn = self.session(local_aws.SECURITY_ACCOUNT).client("stepfunctions")
        # Always named: moto names every unnamed execution "None", so a second one would collide.
        params: dict[str, Any] = {
            "stateMachineArn": self.response_state_machine_arn,
            "input": json.dumps(request),
            "name": name or f"local-{uuid.uuid4()}",
        }
        return str(sfn.start_execution(**params)["executionArn"])

    def wait(self, execution_arn: str, timeout_seconds: float | None = None) -> dict[str, Any]:
        sfn = self.session(local_aws.SECURITY_ACCOUNT).client("stepfunctions")
        return wait_for_execution(sfn, execution_arn, timeout_seconds)

    def run_response(self, request: dict[str, Any], timeout_seconds: float | None = None) -> dict[str, Any]:
        return self.wait(self.start_response(request), timeout_seconds)

    def history(self, execution_arn: str) -> list[dict[str, Any]]:
        sfn = self.session(local_aws.SECURITY_ACCOUNT).client("stepfunctions")
        events: list[dict[str, Any]] = []
        for page in sfn.get_paginator("get_execution_history").paginate(executionArn=execution_arn):
            events.extend(dict(event) for event in page["events"])
        return events


@contextmanager
def cloud_context(cloud: LocalCloud | None = None, *, deploy: bool = True) -> Iterator[LocalCloud]:
    """moto for everything, Lambda dispatched in process, the lineage block source, then deploy."""
    cloud = cloud or LocalCloud()
    with ExitStack() as stack:
        stack.enter_context(mock_aws(config=MOTO_CONFIG))
        stack.enter_context(moto_fixes.aws_semantics())
        cloud.ports.setdefault("block_source", lineage_block_source)
        cloud.ports.setdefault("executor", InProcessExaminationExecutor(notes=cloud.examination_notes))
        stack.enter_context(lambda_local.dispatch_in_process(cloud.invocations, ports=cloud.ports))
        cloud.agent = stack.enter_context(SimulatedAgent().installed())
        cloud.module_builds = stack.enter_context(
            codebuild_local.stand_in_builds(LIME_BUILD_PROJECTS, cloud.stand_in_for_module_build)
        )
        if deploy:
            cloud.deploy()
        yield cloud
