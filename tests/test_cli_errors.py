"""Every error a responder can meet is one line, `irf: <what happened>; <what to do>`, with its exit code.

Driven through typer's CliRunner. The AWS side is moto (in process) or a closed local port: no
deployment is needed to be refused, to miss a stack or a case, or to find no network.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws
from moto.core.authorization import enable_iam_authentication
from typer.testing import CliRunner, Result

from handlers.common import naming
from irf import cli

REGION = "eu-west-1"
NO_AMBIENT = {
    "AWS_PROFILE": None,
    "AWS_DEFAULT_PROFILE": None,
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/credentials",
    "AWS_CONFIG_FILE": "/nonexistent/config",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_MAX_ATTEMPTS": "1",
    "AWS_RETRY_MODE": "standard",
    "AWS_ENDPOINT_URL": None,
    "IRF_PREFIX": "acme",
    "COLUMNS": "100",
}
KEYS = {
    "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
}


def irf(*args: str, **env: str | None) -> Result:
    return CliRunner(env={**NO_AMBIENT, **env}).invoke(cli.app, list(args))


def one_line_error(result: Result, code: int, *fragments: str) -> str:
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("irf: ") and "; " in line, line
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in line, line
    return line


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        yield


def test_no_credentials_exits_4() -> None:
    env = {"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None, "AWS_SESSION_TOKEN": None}
    one_line_error(irf("cases", "--security-region", REGION, **env), 4, "no AWS credentials", "aws sso login")


def test_an_unknown_profile_exits_4() -> None:
    one_line_error(irf("cases", "--profile", "nobody", "--security-region", REGION), 4, "nobody")


def test_no_network_or_endpoint_exits_6_without_a_trace() -> None:
    # A closed local port: the connection is refused at once, as with no network.
    result = irf("cases", "--security-region", REGION, AWS_ENDPOINT_URL="http://127.0.0.1:9", **KEYS)
    one_line_error(result, 6, "cannot reach AWS", "check the network")
    respond = irf(
        "respond",
        "i-0abc12345def67890",
        "--account",
        "111122223333",
        "--region",
        REGION,
        "--security-region",
        REGION,
        AWS_ENDPOINT_URL="http://127.0.0.1:9",
        **KEYS,
    )
    one_line_error(respond, 6, "cannot reach AWS")


@pytest.mark.parametrize(
    "args",
    [
        ["cases", "--security-region", "nowhere"],
        ["status", "some-case", "--security-region", "nowhere"],
        ["report", "some-case", "--security-region", "nowhere"],
        [
            "release",
            "i-0abc12345def67890",
            "--case",
            "c",
            "--account",
            "111122223333",
            "--region",
            REGION,
            "--security-region",
            "nowhere",
        ],
        ["build-modules", "amzn:2023:6.1.119-129.201.amzn2023.x86_64:x86_64", "--security-region", "nowhere"],
    ],
)
def test_a_bad_security_region_exits_2_naming_the_option(args: list[str]) -> None:
    one_line_error(irf(*args, **KEYS), 2, "--security-region", "'nowhere'")


def test_a_bad_region_in_the_environment_exits_2() -> None:
    one_line_error(irf("cases", AWS_REGION="nowhere", AWS_DEFAULT_REGION="nowhere", **KEYS), 2, "'nowhere'")


def test_bad_forensic_region_and_instance_region_exit_2() -> None:
    one_line_error(
        irf("status", "some-case", "--security-region", REGION, "--forensic-region", "mars-1", **KEYS),
        2,
        "--forensic-region",
    )
    one_line_error(
        irf("respond", "i-0abc12345def67890", "--account", "111122223333", "--region", "mars", **KEYS), 2, "Region"
    )


def test_a_bad_action_exits_2() -> None:
    one_line_error(irf("simulate", "--action", "isolate"), 2, "--action", "'isolate'", "irf simulate --help")
    one_line_error(
        irf("respond", "i-0abc12345def67890", "--account", "111122223333", "--region", REGION, "--action", "isolate"),
        2,
        "Action",
    )
    one_line_error(irf("simulate", "--trigger", "pager"), 2, "--trigger", "'pager'")
    one_line_error(irf("simulate", "--incidents", "3", "--organisation"), 2, "--organisation", "explicit members only")
    assert "IRF_SIMULATION_MEMBERS" not in os.environ  # a refused run leaves the environment as it was


def test_an_out_that_is_a_file_or_cannot_be_made_exits_2(tmp_path: Path) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    one_line_error(irf("simulate", "--out", str(a_file)), 2, "--out", "is a file")
    one_line_error(irf("simulate", "--out", "/proc/nope"), 2, "--out", "/proc/nope", "cannot be created")
    assert not Path("/proc/nope").exists()


def test_a_stack_nobody_deployed_exits_3(aws: None) -> None:
    one_line_error(irf("cases", "--security-region", REGION), 3, "acme-ir-cases", "prefix 'acme'")
    one_line_error(
        irf(
            "respond",
            "i-0abc12345def67890",
            "--account",
            "111122223333",
            "--region",
            REGION,
            "--security-region",
            REGION,
        ),
        3,
        "response state machine",
    )


def test_a_case_that_does_not_exist_exits_3(aws: None) -> None:
    boto3.client("dynamodb", region_name=REGION).create_table(
        TableName=naming.case_table("acme"),
        KeySchema=[{"AttributeName": "Pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "Pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    line = one_line_error(irf("status", "no-such-case", "--security-region", REGION), 3, "no-such-case", "irf cases")
    assert "does not exist" in line
    one_line_error(irf("status", "no-such-case", "--follow", "--security-region", REGION), 3, "no-such-case")


def test_access_denied_exits_5_naming_the_refused_action(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    iam = boto3.client("iam", region_name=REGION)
    iam.create_user(UserName="reader")
    iam.put_user_policy(
        UserName="reader",
        PolicyName="identity-only",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "sts:GetCallerIdentity", "Resource": "*"}],
            }
        ),
    )
    key = iam.create_access_key(UserName="reader")["AccessKey"]
    with enable_iam_authentication():
        result = irf(
            "cases",
            "--security-region",
            REGION,
            AWS_SESSION_TOKEN=None,
            AWS_ACCESS_KEY_ID=key["AccessKeyId"],
            AWS_SECRET_ACCESS_KEY=key["SecretAccessKey"],
        )
    one_line_error(result, 5, "access denied", "Scan")


def test_a_report_folder_without_a_report_exits_3(tmp_path: Path) -> None:
    one_line_error(irf("report", str(tmp_path)), 3, str(tmp_path), "report")
