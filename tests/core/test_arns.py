"""core.arns: ARNs in the partition of the region they are about."""

from __future__ import annotations

import pytest

from core import arns
from handlers.common import naming
from handlers.common.settings import Settings


@pytest.mark.parametrize(
    "region, partition",
    [
        ("eu-west-1", "aws"),
        ("il-central-1", "aws"),
        ("cn-north-1", "aws-cn"),
        ("cn-northwest-1", "aws-cn"),
        ("us-gov-west-1", "aws-us-gov"),
        ("us-iso-east-1", "aws-iso"),
        ("us-isob-east-1", "aws-iso-b"),
        ("", "aws"),
    ],
)
def test_the_partition_follows_the_region(region: str, partition: str) -> None:
    assert arns.partition(region) == partition


def test_role_arns_the_handlers_assume_are_in_the_regions_partition() -> None:
    assert naming.member_responder_role_arn("acme", "333333333333", "cn-north-1") == (
        "arn:aws-cn:iam::333333333333:role/acme-ir-responder-cn-north-1"
    )
    settings = Settings(
        prefix="acme", security_account="123456789012", forensic_account="222222222222", forensic_region="us-gov-west-1"
    )
    assert settings.forensic_role_arn == "arn:aws-us-gov:iam::222222222222:role/acme-ir-forensic-automation"
    assert settings.member_role_arn("333333333333", "eu-west-1").startswith("arn:aws:iam::333333333333:role/")


def test_regional_and_global_arns() -> None:
    assert (
        arns.ec2_instance("333333333333", "cn-north-1", "i-0abc")
        == "arn:aws-cn:ec2:cn-north-1:333333333333:instance/i-0abc"
    )
    assert arns.s3_bucket("evidence", region="us-gov-east-1") == "arn:aws-us-gov:s3:::evidence"
    assert arns.lambda_layer("017000801446", "eu-west-1", "Powertools", 18) == (
        "arn:aws:lambda:eu-west-1:017000801446:layer:Powertools:18"
    )
