"""core.clients: every client of every session it hands out carries the retry and timeout config."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

from core.clients import BOTO_CONFIG, assume_role, lambda_session
from handlers.common.sessions import case_sessions
from handlers.common.settings import Settings
from simulation.local_aws import FORENSIC_ACCOUNT, MEMBER_ACCOUNT, PREFIX, REGION, SECURITY_ACCOUNT


def carries_the_config(client: Any) -> bool:
    config = client.meta.config
    return (
        config.retries == BOTO_CONFIG.retries
        and config.connect_timeout == BOTO_CONFIG.connect_timeout
        and config.read_timeout == BOTO_CONFIG.read_timeout
    )


def test_a_plain_boto3_client_has_none_of_it() -> None:
    # What the factory exists for: boto3's defaults are legacy retries and 60 s connect timeouts.
    assert not carries_the_config(boto3.Session(region_name=REGION).client("ec2"))


def test_clients_of_the_lambda_session_carry_the_retry_and_timeout_config() -> None:
    session = lambda_session(REGION)
    for service in ("ec2", "s3", "stepfunctions", "sns", "dynamodb", "secretsmanager"):
        assert carries_the_config(session.client(service)), service


def test_clients_of_an_assumed_role_carry_it_even_when_the_caller_passes_no_config(aws: None) -> None:
    member = assume_role(f"arn:aws:iam::{MEMBER_ACCOUNT}:role/responder", REGION, "case-1")
    # containment builds its clients with no config at all: the session's default applies.
    for service in ("ec2", "iam", "autoscaling", "elbv2", "kms", "ssm", "ebs"):
        assert carries_the_config(member.client(service)), service
    assert member.client("sts").get_caller_identity()["Account"] == MEMBER_ACCOUNT


def test_a_callers_own_config_is_merged_over_it_not_instead_of_it() -> None:
    client = lambda_session(REGION).client("ebs", config=Config(max_pool_connections=20))
    assert client.meta.config.max_pool_connections == 20
    assert carries_the_config(client)


def test_case_sessions_assume_each_role_once_per_invocation(aws: None) -> None:
    settings = Settings(
        prefix=PREFIX, security_account=SECURITY_ACCOUNT, forensic_account=FORENSIC_ACCOUNT, forensic_region=REGION
    )
    sessions = case_sessions(settings, "case-2")
    assert sessions.member(MEMBER_ACCOUNT, REGION) is sessions.member(MEMBER_ACCOUNT, REGION)
    assert sessions.forensic() is sessions.forensic()
    assert sessions.forensic().client("sts").get_caller_identity()["Account"] == FORENSIC_ACCOUNT
    assert carries_the_config(sessions.forensic().client("s3"))
