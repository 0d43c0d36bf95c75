"""Explicit mode at scale: one AWS provider per member account, each regional resource names its region."""

from __future__ import annotations

import json
from typing import Any

import pytest

from simulation.pulumi_mocks import RegisteredResource, run_program

SECURITY = "123456789012"
ACCOUNTS = ("333333333333", "444444444444")
REGIONS = ("eu-west-1", "us-east-1", "ap-southeast-2")
CONFIG: dict[str, Any] = {
    "prefix": "acme",
    "securityAccount": SECURITY,
    "forensicAccount": "222222222222",
    "forensicRegion": "eu-west-1",
    "members": [
        {
            "account": account,
            "region": region,
            "deploymentRoleArn": f"arn:aws:iam::{account}:role/OrganizationAccountAccessRole",
        }
        for account in ACCOUNTS
        for region in REGIONS
    ],
}


@pytest.fixture(scope="module")
def resources() -> list[RegisteredResource]:
    return run_program("security", CONFIG, account=SECURITY, region="eu-west-1")


def provider_name(ref: str | None) -> str:
    parts = (ref or "").split("::")
    return parts[-2] if len(parts) >= 3 else "<default provider>"


def as_list(value: Any) -> list[Any]:
    return json.loads(value) if isinstance(value, str) else list(value)


def test_each_member_account_gets_one_provider_whatever_its_number_of_regions(resources):
    providers = [res for res in resources if res.type == "pulumi:providers:aws"]
    by_account: dict[str, list[str]] = {}
    for provider in providers:
        for account in as_list(provider.inputs["allowedAccountIds"]):
            by_account.setdefault(str(account), []).append(provider.name)
    assert by_account == {account: [f"aws-{account}"] for account in ACCOUNTS}
    responders = [res for res in resources if res.type == "irforensics:member:MemberResponder"]
    assert len(responders) == len(ACCOUNTS) * len(REGIONS)


def test_every_regional_member_resource_names_the_region_of_its_responder(resources):
    checked = 0
    for account in ACCOUNTS:
        for region in REGIONS:
            kids = [res for res in resources if res.name.startswith(f"member-{account}-{region}-")]
            regional = [kid for kid in kids if not kid.type.startswith("aws:iam/")]
            assert regional, f"no regional resources for {account}/{region}"
            for kid in regional:
                # Without its own region a resource would land in the provider's default region.
                assert kid.inputs.get("region") == region, (
                    f"{kid.name} ({kid.type}) has region {kid.inputs.get('region')}"
                )
                assert provider_name(kid.provider) == f"aws-{account}"
                checked += 1
            keys = [kid for kid in kids if kid.type == "aws:kms/key:Key"]
            assert [key.outputs["arn"].split(":")[3:5] for key in keys] == [[region, account]]
    assert checked >= len(ACCOUNTS) * len(REGIONS) * 4
