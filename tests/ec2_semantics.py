"""pytest fixtures giving moto EC2's semantics (the patches live in simulation/ec2_semantics.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from moto import mock_aws

from simulation.ec2_semantics import install_ec2_semantics

__all__ = ["ec2_like_aws", "ec2_like_aws_for_class", "install_ec2_semantics"]


@pytest.fixture
def ec2_like_aws(aws: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto (the `aws` fixture) with the EC2 / Auto Scaling semantics above."""
    install_ec2_semantics(monkeypatch)
    yield


@pytest.fixture(scope="class")
def ec2_like_aws_for_class() -> Iterator[None]:
    """The same for a test class that shares one scenario: moto state lives as long as the class."""
    patches = pytest.MonkeyPatch()
    with mock_aws(config={"lambda": {"use_docker": False}, "stepfunctions": {"execute_state_machine": True}}):
        install_ec2_semantics(patches)
        yield
    patches.undo()
