"""PythonLambda: one handler of handlers/<package> packaged with the shared code into a Lambda.

The archive holds `core/` (the shared plans and ports), `handlers/__init__.py`, `handlers/common/`
and `handlers/<package>/` only, so a function carries no code of another area and nothing of the
simulation, the operator CLI or the examiner. Powertools comes from the public AWS layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pulumi
import pulumi_aws as aws

from components import naming
from components.roles import service_role
from core import arns

ROOT = Path(__file__).resolve().parent.parent
RUNTIME = "python3.13"
ARCHITECTURE = "arm64"
# Powertools for AWS Lambda (Python) v3, published by AWS in every commercial region.
POWERTOOLS_LAYER_ACCOUNT = "017000801446"
POWERTOOLS_LAYER_VERSION = 18


def powertools_layer_arn(region: str) -> str:
    name = f"AWSLambdaPowertoolsPythonV3-{RUNTIME.replace('.', '')}-{ARCHITECTURE}"
    return arns.lambda_layer(POWERTOOLS_LAYER_ACCOUNT, region, name, POWERTOOLS_LAYER_VERSION)


def _sources(folder: Path, root: Path) -> dict[str, Path]:
    return {
        path.relative_to(root).as_posix(): path
        for path in sorted(folder.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


def package_files(package: str, root: Path = ROOT) -> dict[str, Path]:
    """Archive path -> file for one handler package plus handlers/common and core (sources only)."""
    handlers = root / "handlers"
    if not (handlers / package).is_dir():
        raise ValueError(f"no handler package handlers/{package}")
    files: dict[str, Path] = {"handlers/__init__.py": handlers / "__init__.py"}
    files |= _sources(root / "core", root)
    for folder in sorted({"common", package}):
        files |= _sources(handlers / folder, root)
    return files


@dataclass
class PythonLambdaArgs:
    prefix: str
    region: str
    function: str  # short name, e.g. "contain"; full name from naming.lambda_function_name
    package: str  # handlers/<package>
    handler: str  # e.g. "handlers.isolation.handler.contain"
    policy: pulumi.Input[str]  # least-privilege policy document (JSON)
    environment: dict[str, pulumi.Input[str]] = field(default_factory=dict)
    log_retention_days: int = 90
    timeout: int = 60
    memory_size: int = 256
    kms_key_arn: pulumi.Input[str] | None = None


class PythonLambda(pulumi.ComponentResource):
    function: aws.lambda_.Function
    role: aws.iam.Role

    def __init__(self, name: str, args: PythonLambdaArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("irforensics:lambda:PythonLambda", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        function_name = naming.lambda_function_name(args.prefix, args.function)
        module = args.handler.rsplit(".", 1)[0].replace(".", "/") + ".py"
        files = package_files(args.package)
        if module not in files:
            raise ValueError(f"handler {args.handler} is not in handlers/{args.package}")

        self.log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            name=f"/aws/lambda/{function_name}",
            retention_in_days=args.log_retention_days,
            kms_key_id=args.kms_key_arn,
            opts=child,
        )
        self.role = service_role(
            f"{name}-role",
            name=naming.lambda_role_name(args.prefix, args.function),
            service="lambda.amazonaws.com",
            policy_logical=f"{name}-policy",
            policy=args.policy,
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-logging",
            role=self.role.id,
            opts=child,
            policy=pulumi.Output.json_dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Sid": "WriteOwnLogs",
                            "Effect": "Allow",
                            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                            "Resource": pulumi.Output.concat(self.log_group.arn, ":*"),
                        },
                        {
                            "Sid": "Tracing",
                            "Effect": "Allow",
                            "Action": ["xray:PutTelemetryRecords", "xray:PutTraceSegments"],
                            "Resource": "*",
                        },
                    ],
                }
            ),
        )
        self.function = aws.lambda_.Function(
            f"{name}-function",
            name=function_name,
            runtime=RUNTIME,
            architectures=[ARCHITECTURE],
            handler=args.handler,
            role=self.role.arn,
            code=pulumi.AssetArchive({key: pulumi.FileAsset(str(path)) for key, path in files.items()}),
            timeout=args.timeout,
            memory_size=args.memory_size,
            layers=[powertools_layer_arn(args.region)],
            tracing_config={"mode": "Active"},
            logging_config={"log_format": "JSON", "log_group": self.log_group.name},
            environment={
                "variables": {
                    "POWERTOOLS_SERVICE_NAME": "irforensics",
                    "POWERTOOLS_LOG_LEVEL": "INFO",
                    **args.environment,
                }
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.log_group]),
        )
        self.register_outputs(
            {
                "function_name": self.function.name,
                "function_arn": self.function.arn,
                "role_arn": self.role.arn,
            }
        )
