"""simulation.lambda_local passes each handler the ports it declares, and nothing else."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import boto3

from simulation import lambda_local
from simulation.local_aws import REGION


def reads_with_a_port(event: dict[str, Any], context: Any, *, reader: Any = None) -> dict[str, Any]:
    return {"Read": reader(event["Key"]) if reader else "from AWS"}


def declares_no_port(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"Echo": event["Key"]}


def deploy(handler: str, role: str) -> str:
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("placeholder.txt", "handlers run in process")
    lambdas: Any = boto3.client("lambda", region_name=REGION)
    name = handler.rsplit(".", 1)[1]
    lambdas.create_function(
        FunctionName=name,
        Runtime="python3.13",
        Role=role,
        Handler=handler,
        Code={"ZipFile": code.getvalue()},
    )
    return name


def invoke(name: str, event: dict[str, Any]) -> dict[str, Any]:
    lambdas: Any = boto3.client("lambda", region_name=REGION)
    answer = lambdas.invoke(FunctionName=name, Payload=json.dumps(event).encode())
    return dict(json.loads(answer["Payload"].read()))


def test_a_handler_gets_the_port_it_declares_and_keeps_its_default_without_one(aws: None) -> None:
    ports: dict[str, Any] = {"reader": lambda key: f"simulated {key}", "unrelated": object()}
    iam: Any = boto3.client("iam", region_name=REGION)
    trust = {
        "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"Service": "lambda.amazonaws.com"}}]
    }
    role = iam.create_role(RoleName="irf-test-ports", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    with_port = deploy(f"{__name__}.reads_with_a_port", role)
    without = deploy(f"{__name__}.declares_no_port", role)
    with lambda_local.dispatch_in_process(ports=ports) as calls:
        assert invoke(with_port, {"Key": "k"}) == {"Read": "simulated k"}
        assert invoke(without, {"Key": "k"}) == {"Echo": "k"}
        # The registry is read at each invocation: a test may swap an entry.
        ports["reader"] = lambda key: f"swapped {key}"
        assert invoke(with_port, {"Key": "k"}) == {"Read": "swapped k"}
    with lambda_local.dispatch_in_process():
        assert invoke(with_port, {"Key": "k"}) == {"Read": "from AWS"}
    assert [call.error for call in calls] == [None, None, None]
