"""config.parse_config: typed stack config, and errors that name the key and the value."""

from __future__ import annotations

from typing import Any

import pytest

from config import ConfigError, ForensicConfig, MemberTarget, SecurityConfig, parse_config

SECURITY = "123456789012"
FORENSIC = "222222222222"
MEMBER = "333333333333"
REGION = "eu-west-1"
BASE: dict[str, Any] = {"prefix": "acme", "securityAccount": SECURITY, "forensicAccount": FORENSIC}


def member(account: str = MEMBER, region: str = REGION, role: str | None = None) -> dict[str, str]:
    return {
        "account": account,
        "region": region,
        "deploymentRoleArn": role or f"arn:aws:iam::{account}:role/PulumiDeploy",
    }


def config_error(stack: str = "forensic", region: str | None = REGION, **raw: Any) -> ConfigError:
    with pytest.raises(ConfigError) as raised:
        parse_config(stack, {**BASE, **raw}, region)
    return raised.value


def test_forensic_stack_gets_typed_config_with_documented_defaults():
    cfg = parse_config("forensic", BASE, REGION)
    assert isinstance(cfg, ForensicConfig)
    assert (cfg.role, cfg.prefix, cfg.region, cfg.forensic_region) == ("forensic", "acme", REGION, REGION)
    assert (cfg.security_account, cfg.forensic_account) == (SECURITY, FORENSIC)
    assert (cfg.object_lock_mode, cfg.retention_days, cfg.glacier_after_days) == ("GOVERNANCE", 365, 30)
    assert cfg.analysis_azs == ("eu-west-1a", "eu-west-1b")


def test_security_stack_reads_its_members():
    cfg = parse_config("security", {**BASE, "members": [member(), member(region="us-east-1")]}, REGION)
    assert isinstance(cfg, SecurityConfig)
    assert cfg.members == (
        MemberTarget(MEMBER, REGION, f"arn:aws:iam::{MEMBER}:role/PulumiDeploy"),
        MemberTarget(MEMBER, "us-east-1", f"arn:aws:iam::{MEMBER}:role/PulumiDeploy"),
    )


def test_an_explicit_role_lets_any_stack_name_work():
    assert isinstance(parse_config("prod-evidence", {**BASE, "role": "forensic"}, REGION), ForensicConfig)


def test_a_stack_with_no_role_names_the_role_key():
    error = config_error(stack="dev")
    assert error.key == "role"
    assert "'dev'" in str(error) and "irforensics:role" in str(error)


def test_a_thirteen_digit_account_id_names_the_key_and_the_value():
    error = config_error(securityAccount="1234567890123")
    assert (error.key, error.value) == ("securityAccount", "1234567890123")
    assert "irforensics:securityAccount" in str(error)
    assert "'1234567890123'" in str(error) and "12-digit" in str(error)


def test_a_missing_account_says_it_is_required():
    with pytest.raises(ConfigError) as raised:
        parse_config("forensic", {"prefix": "acme", "securityAccount": SECURITY}, REGION)
    assert raised.value.key == "forensicAccount"
    assert "<missing>" in str(raised.value) and "required" in str(raised.value)


def test_a_missing_prefix_names_the_prefix_key():
    with pytest.raises(ConfigError) as raised:
        parse_config("forensic", {"securityAccount": SECURITY, "forensicAccount": FORENSIC}, REGION)
    assert raised.value.key == "prefix"
    assert "irforensics:prefix = <missing>" in str(raised.value)


def test_a_prefix_that_cannot_be_part_of_a_bucket_name_is_refused():
    error = config_error(prefix="Acme_IR")
    assert (error.key, error.value) == ("prefix", "Acme_IR")
    assert "lowercase" in str(error)


def test_a_malformed_region_names_aws_region():
    error = config_error(region="europe-west")
    assert (error.key, error.value) == ("aws:region", "europe-west")
    assert "eu-west-1" in str(error)


def test_a_missing_region_names_aws_region():
    error = config_error(region=None)
    assert error.key == "aws:region" and "required" in str(error)


def test_a_malformed_forensic_region_names_its_key():
    error = config_error(forensicRegion="eu_west_1")
    assert (error.key, error.value) == ("forensicRegion", "eu_west_1")


def test_forensic_and_security_accounts_must_differ():
    error = config_error(forensicAccount=SECURITY)
    assert (error.key, error.value) == ("forensicAccount", SECURITY)
    assert "securityAccount" in str(error)


def test_object_lock_mode_is_governance_or_compliance_in_capitals():
    error = config_error(objectLockMode="compliance")
    assert (error.key, error.value) == ("objectLockMode", "compliance")
    cfg = parse_config("forensic", {**BASE, "objectLockMode": "COMPLIANCE"}, REGION)
    assert isinstance(cfg, ForensicConfig) and cfg.object_lock_mode == "COMPLIANCE"


@pytest.mark.parametrize("value", ["a year", 365.5, True, None])
def test_retention_must_be_a_whole_number(value):
    error = config_error(retentionDays=value)
    assert error.key == "retentionDays" and "whole number" in str(error)


def test_retention_outside_its_range_says_the_range():
    error = config_error(retentionDays=0)
    assert error.key == "retentionDays" and "between 1 and 36500" in str(error)


def test_glacier_transition_must_come_before_the_end_of_retention():
    error = config_error(retentionDays=30, glacierAfterDays=30)
    assert (error.key, error.value) == ("glacierAfterDays", 30)


@pytest.mark.parametrize(
    "azs, why",
    [
        (["eu-west-1a"], "two or more"),
        (["eu-west-1a", "eu-west-1a"], "distinct"),
        (["eu-west-1a", "us-east-1a"], "not in region eu-west-1"),
        ("eu-west-1a,eu-west-1b", "list"),
    ],
)
def test_analysis_zones_must_be_two_or_more_distinct_zones_of_the_region(azs, why):
    error = config_error(analysisAzs=azs)
    assert error.key == "analysisAzs" and why in str(error)


def test_members_must_be_a_list():
    error = config_error(stack="security", members={"account": MEMBER})
    assert error.key == "members" and "list" in str(error)


def test_a_member_that_is_not_an_object_names_its_index():
    error = config_error(stack="security", members=[member(), "333333333333/eu-west-1"])
    assert (error.key, error.value) == ("members[1]", "333333333333/eu-west-1")


def test_a_member_account_id_of_thirteen_digits_names_the_member_and_the_value():
    error = config_error(stack="security", members=[member(account="3333333333333")])
    assert (error.key, error.value) == ("members[0].account", "3333333333333")
    assert "irforensics:members[0].account = '3333333333333'" in str(error)


def test_a_member_region_is_checked():
    error = config_error(stack="security", members=[member(region="mars-1")])
    assert (error.key, error.value) == ("members[0].region", "mars-1")


def test_a_member_deployment_role_must_live_in_that_member_account():
    error = config_error(stack="security", members=[member(role=f"arn:aws:iam::{FORENSIC}:role/PulumiDeploy")])
    assert error.key == "members[0].deploymentRoleArn"
    assert MEMBER in str(error)


def test_the_same_member_account_and_region_twice_is_refused():
    error = config_error(stack="security", members=[member(), member()])
    assert error.key == "members[1]" and "duplicates" in str(error)


def test_guardduty_contain_severity_cannot_be_below_the_minimum():
    error = config_error(stack="security", guardDutyMinSeverity=7, guardDutyContainSeverity=5)
    assert (error.key, error.value) == ("guardDutyContainSeverity", 5.0)
