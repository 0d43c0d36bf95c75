"""LimeFactory: LiME modules and Volatility 3 symbol tables, built ahead of time per kernel.

A suspect host never compiles anything and never reaches the internet: the modules are built
here, on CodeBuild workers of the right distribution and architecture, and stored in the
modules bucket under `<distro>-<version>/<kernel-release>/<arch>/` (lime.ko, symbols.json.xz,
build.json with the sources and the sha256 of each file). The LimeFactory state machine
(statemachines/lime_factory.py) runs one build per requested kernel.

Only the security account's memory Lambdas read the bucket (they pre-sign the module download);
the member accounts get nothing here.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_aws as aws

from components import naming
from components.policies import (
    account_root,
    allow,
    deny,
    logs_key_statements,
    policy_document,
    stack_arn,
)
from components.roles import service_role, state_machine_execution
from config import SecurityConfig
from core import arns
from handlers.common.tags import MANAGED_BY_TAG, MANAGED_BY_VALUE
from statemachines import lime_factory

# Pinned sources: a build is reproducible, and build.json says exactly what went into it.
LIME_REPOSITORY = "https://github.com/504ensicsLabs/LiME.git"
LIME_TAG = "v1.9.1"
DWARF2JSON_REPOSITORY = "https://github.com/volatilityfoundation/dwarf2json.git"
DWARF2JSON_COMMIT = "9f14607e0d339d463ea725fbd5c08aa7b7d40f75"  # 2024-10-08, skips Rust units
ARCH_ENVIRONMENT = {
    "x86_64": ("LINUX_CONTAINER", "BUILD_GENERAL1_MEDIUM"),
    "aarch64": ("ARM_CONTAINER", "BUILD_GENERAL1_LARGE"),
}
CODEBUILD_IMAGES = {
    "x86_64": "aws/codebuild/amazonlinux-x86_64-standard:5.0",
    "aarch64": "aws/codebuild/amazonlinux-aarch64-standard:3.0",
}
# The managed rule Step Functions' startBuild.sync integration creates to learn that a build ended.
SYNC_RULE = "StepFunctionsGetEventForCodeBuildStartBuildRule"


def build_image(distro: str, version: str, arch: str) -> tuple[str, str]:
    """(image, pull credentials) of the worker: the distribution's own userland, so its packages fit."""
    if (distro, version) == ("amzn", "2023"):
        return CODEBUILD_IMAGES[arch], "CODEBUILD"
    if distro == "amzn":
        return f"public.ecr.aws/amazonlinux/amazonlinux:{version}", "CODEBUILD"
    if distro == "debian":
        return f"public.ecr.aws/docker/library/debian:{version}", "CODEBUILD"
    return f"public.ecr.aws/ubuntu/ubuntu:{version}", "CODEBUILD"


BUILD_SCRIPT = Path(__file__).parent / "lime_build" / "build.sh"


def build_script() -> str:
    """The one script of a build (install, LiME, ISF, build.json, upload): CodeBuild and the tests run it."""
    return BUILD_SCRIPT.read_text()


def buildspec(distro: str, version: str, bucket: str) -> str:
    """The CodeBuild buildspec of one (distribution, version): run the build script, nothing else."""
    script = build_script()
    spec = {
        "version": 0.2,
        "env": {"shell": "bash", "variables": {"IRF_BUCKET": bucket}},
        "phases": {
            "build": {
                "commands": [
                    f'[ "$DISTRO" = "{distro}" ] && [ "$DISTRO_VERSION" = "{version}" ] || exit 1',
                    # The script travels inside the buildspec (the project has no source to fetch).
                    f"echo {base64.b64encode(script.encode()).decode()} | base64 -d > irforensics-build.sh",
                    f'echo "{hashlib.sha256(script.encode()).hexdigest()}  irforensics-build.sh" | sha256sum -c -',
                    "bash irforensics-build.sh",
                ]
            },
        },
    }
    return json.dumps(spec, indent=1)


@dataclass(frozen=True)
class LimeFactoryArgs:
    prefix: str
    account: str
    region: str
    log_retention_days: int = 90

    @classmethod
    def from_config(cls, cfg: SecurityConfig) -> LimeFactoryArgs:
        return cls(
            prefix=cfg.prefix,
            account=cfg.security_account,
            region=cfg.region,
            log_retention_days=cfg.log_retention_days,
        )

    @property
    def bucket_name(self) -> str:
        return naming.modules_bucket(self.prefix, self.account, self.region)

    @property
    def bucket_arn(self) -> str:
        return arns.s3_bucket(self.bucket_name, region=self.region)

    def project_arn(self, name: str) -> str:
        return stack_arn(self.region, "codebuild", self.region, self.account, f"project/{name}")


class LimeFactory(pulumi.ComponentResource):
    key: aws.kms.Key
    modules_bucket: aws.s3.Bucket
    projects: dict[tuple[str, str, str], aws.codebuild.Project]
    state_machine: aws.sfn.StateMachine

    def __init__(self, name: str, args: LimeFactoryArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("irforensics:lime:LimeFactory", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = {MANAGED_BY_TAG: MANAGED_BY_VALUE}
        root = account_root(args.account, args.region)

        self.key = aws.kms.Key(
            f"{name}-key",
            description="irforensics: LiME modules and symbol tables",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            tags=tags,
            opts=child,
            policy=policy_document(
                [
                    {
                        "Sid": "AccountAdministers",
                        "Effect": "Allow",
                        "Principal": {"AWS": root},
                        "Action": "kms:*",
                        "Resource": "*",
                    },
                    *logs_key_statements("LogsEncryptBuildLogs", args.region, args.account),
                ]
            ),
        )
        aws.kms.Alias(
            f"{name}-key-alias", name=f"alias/{args.prefix}-ir-modules", target_key_id=self.key.arn, opts=child
        )

        self.modules_bucket = aws.s3.Bucket(
            f"{name}-modules", bucket=args.bucket_name, force_destroy=False, tags=tags, opts=child
        )
        settings: list[pulumi.Resource] = [
            aws.s3.BucketPublicAccessBlock(
                f"{name}-modules-public-access",
                bucket=self.modules_bucket.id,
                block_public_acls=True,
                block_public_policy=True,
                ignore_public_acls=True,
                restrict_public_buckets=True,
                opts=child,
            ),
            aws.s3.BucketVersioning(
                f"{name}-modules-versioning",
                bucket=self.modules_bucket.id,
                versioning_configuration={"status": "Enabled"},
                opts=child,
            ),
            aws.s3.BucketServerSideEncryptionConfiguration(
                f"{name}-modules-encryption",
                bucket=self.modules_bucket.id,
                opts=child,
                rules=[
                    {
                        "apply_server_side_encryption_by_default": {
                            "sse_algorithm": "aws:kms",
                            "kms_master_key_id": self.key.arn,
                        },
                        "bucket_key_enabled": True,
                    }
                ],
            ),
        ]
        aws.s3.BucketPolicy(
            f"{name}-modules-policy",
            bucket=self.modules_bucket.id,
            policy=policy_document(
                [
                    deny(
                        "DenyInsecureTransport",
                        "s3:*",
                        [args.bucket_arn, f"{args.bucket_arn}/*"],
                        {"Bool": {"aws:SecureTransport": "false"}},
                        principal="*",
                    )
                ]
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=settings),
        )

        build_logs = aws.cloudwatch.LogGroup(
            f"{name}-build-logs",
            name=f"/aws/codebuild/{args.prefix}-ir-lime",
            retention_in_days=args.log_retention_days,
            kms_key_id=self.key.arn,
            tags=tags,
            opts=child,
        )
        build_role = service_role(
            f"{name}-build-role",
            name=f"{args.prefix}-ir-lime-build",
            service="codebuild.amazonaws.com",
            tags=tags,
            opts=child,
            policy_logical=f"{name}-build-policy",
            policy=policy_document(
                [
                    allow(
                        "WriteBuildLogs",
                        ["logs:CreateLogStream", "logs:PutLogEvents"],
                        pulumi.Output.concat(build_logs.arn, ":*"),
                    ),
                    # Builds only add files: no read, no delete, nothing outside the modules bucket.
                    allow("StoreModules", ["s3:PutObject"], f"{args.bucket_arn}/*"),
                    allow("EncryptModules", ["kms:Decrypt", "kms:GenerateDataKey"], self.key.arn),
                ]
            ),
        )

        self.projects = {}
        for distro, version, arch in lime_factory.build_targets():
            project = lime_factory.project_name(args.prefix, distro, version, arch)
            image, pull = build_image(distro, version, arch)
            environment_type, compute = ARCH_ENVIRONMENT[arch]
            self.projects[(distro, version, arch)] = aws.codebuild.Project(
                f"{name}-{distro}-{version}-{arch}".replace(".", "-"),
                name=project,
                description=f"irforensics: LiME and Volatility 3 symbols for {distro} {version} {arch} kernels",
                service_role=build_role.arn,
                build_timeout=lime_factory.BUILD_TIMEOUT_SECONDS // 60,
                encryption_key=self.key.arn,
                artifacts={"type": "NO_ARTIFACTS"},
                environment={
                    "type": environment_type,
                    "compute_type": compute,
                    "image": image,
                    "image_pull_credentials_type": pull,
                    "environment_variables": [{"name": "ARCH", "value": arch}],
                },
                source={"type": "NO_SOURCE", "buildspec": buildspec(distro, version, args.bucket_name)},
                logs_config={"cloudwatch_logs": {"group_name": build_logs.name, "status": "ENABLED"}},
                tags=tags,
                opts=child,
            )

        machine_name = naming.state_machine_name(args.prefix, "lime-factory")
        project_arns = sorted(
            args.project_arn(lime_factory.project_name(args.prefix, *target)) for target in lime_factory.build_targets()
        )
        machine_logs, machine_role = state_machine_execution(
            f"{name}-machine",
            prefix=args.prefix,
            machine="lime-factory",
            key_arn=self.key.arn,
            retention_days=args.log_retention_days,
            statements=[
                allow(
                    "RunBuilds",
                    ["codebuild:BatchGetBuilds", "codebuild:StartBuild", "codebuild:StopBuild"],
                    project_arns,
                ),
                allow(
                    "FollowBuildsToTheEnd",
                    ["events:DescribeRule", "events:PutRule", "events:PutTargets"],
                    stack_arn(args.region, "events", args.region, args.account, f"rule/{SYNC_RULE}"),
                ),
            ],
            tags=tags,
            opts=child,
        )
        self.state_machine = aws.sfn.StateMachine(
            f"{name}-machine",
            name=machine_name,
            type="STANDARD",
            role_arn=machine_role.arn,
            definition=json.dumps(lime_factory.build_definition(prefix=args.prefix, region=args.region)),
            logging_configuration={
                "log_destination": pulumi.Output.concat(machine_logs.arn, ":*"),
                "include_execution_data": True,
                "level": "ALL",
            },
            tracing_configuration={"enabled": True},
            tags=tags,
            opts=child,
        )

        self.register_outputs(
            {
                "modules_bucket": self.modules_bucket.bucket,
                "modules_key_arn": self.key.arn,
                "state_machine_arn": self.state_machine.arn,
                "projects": [project.name for project in self.projects.values()],
            }
        )
