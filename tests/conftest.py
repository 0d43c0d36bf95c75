"""Shared fixtures: fake credentials always, moto on demand, sessions into the simulated accounts."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from simulation import local_aws
from simulation.local_aws import FORENSIC_ACCOUNT, MEMBER_ACCOUNT, REGION, SECURITY_ACCOUNT

local_aws.use_fake_credentials()

# EC2's behaviour where moto differs (fixtures ec2_like_aws, ec2_like_aws_for_class).
pytest_plugins = ["tests.ec2_semantics"]


@pytest.hookimpl(tryfirst=True)  # before xdist turns the markers into scopes (it reads them in its own hook)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """With `pytest -n 2 --dist loadgroup`: a module's tests share a worker (module fixtures run once),
    and every test on the session's deployed cloud (`world`) shares one worker (it is deployed once)."""
    for item in items:
        uses_world = "world" in getattr(item, "fixturenames", ())
        group = "world" if uses_world else item.nodeid.split("::", 1)[0]
        item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture(autouse=True)
def _fake_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in local_aws.FAKE_CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "MOTO_ACCOUNT_ID"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def aws() -> Iterator[None]:
    """moto for every AWS service, Step Functions executing definitions, Lambda in process."""
    with mock_aws(config={"lambda": {"use_docker": False}, "stepfunctions": {"execute_state_machine": True}}):
        yield


@pytest.fixture
def security(aws: None) -> boto3.Session:
    return local_aws.account_session(SECURITY_ACCOUNT, REGION)


@pytest.fixture
def forensic(aws: None) -> boto3.Session:
    return local_aws.account_session(FORENSIC_ACCOUNT, REGION)


@pytest.fixture
def member(aws: None) -> boto3.Session:
    return local_aws.account_session(MEMBER_ACCOUNT, REGION)
