"""config.parse_config: typed stack config, and errors that name the key and the value."""

from __future__ import annotations

from typing import Any

import pytest

from config import ConfigError, ForensicConfig, MemberTarget, SecurityConfig, load_config, parse_config

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
    error = config_error(evidenceRetentionDays=value)
    assert error.key == "evidenceRetentionDays" and "whole number" in str(error)


def test_retention_outside_its_range_says_the_range():
    error = config_error(evidenceRetentionDays=0)
    assert error.key == "evidenceRetentionDays" and "between 1 and 36500" in str(error)


def test_snapshot_lock_outside_its_range_says_the_range():
    error = config_error(stack="security", snapshotLockDays=36501)
    assert error.key == "snapshotLockDays" and "between 1 and 36500" in str(error)


def test_each_stack_reads_its_own_retention_key():
    forensic = parse_config("forensic", {**BASE, "evidenceRetentionDays": 2555}, REGION)
    security = parse_config("security", {**BASE, "snapshotLockDays": 90}, REGION)
    assert (forensic.retention_days, security.retention_days) == (2555, 90)


def test_glacier_transition_must_come_before_the_end_of_retention():
    error = config_error(evidenceRetentionDays=30, glacierAfterDays=30)
    assert (error.key, error.value) == ("glacierAfterDays", 30)
    assert "evidenceRetentionDays" in str(error)


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


def test_a_misspelled_key_is_refused_with_the_key_and_the_closest_known_key():
    error = config_error(stack="security", pollIntervalSecond=5)
    assert (error.key, error.value) == ("pollIntervalSecond", 5)
    assert "irforensics:pollIntervalSecond = 5" in str(error)
    assert "did you mean irforensics:pollIntervalSeconds?" in str(error)


def test_a_typo_of_the_retired_retention_key_leads_to_the_key_that_replaced_it():
    assert "did you mean irforensics:evidenceRetentionDays?" in str(config_error(retentionDay="30"))
    assert "did you mean irforensics:snapshotLockDays?" in str(config_error(stack="security", retentionDay="30"))


def test_a_key_nothing_resembles_points_to_the_documentation():
    error = config_error(colour="blue")
    assert error.key == "colour" and "not a key irforensics knows (docs/config.md" in str(error)


@pytest.mark.parametrize("stack, new", [("forensic", "evidenceRetentionDays"), ("security", "snapshotLockDays")])
def test_the_retired_retention_key_names_the_key_of_this_stack_in_one_line(stack, new):
    error = config_error(stack=stack, retentionDays="365")
    assert error.key == "retentionDays"
    assert f"on the {stack} stack use irforensics:{new}" in str(error)
    assert "\n" not in str(error)


def test_a_key_of_the_other_stack_is_refused_rather_than_ignored():
    error = config_error(stack="security", objectLockMode="COMPLIANCE")
    assert error.key == "objectLockMode" and "read only by the forensic stack" in str(error)
    error = config_error(stack="forensic", members=[member()])
    assert error.key == "members" and "read only by the security stack" in str(error)


def test_one_member_account_has_one_deployment_role_for_all_its_regions():
    other = f"arn:aws:iam::{MEMBER}:role/OtherDeploy"
    error = config_error(stack="security", members=[member(), member(region="us-east-1", role=other)])
    assert (error.key, error.value) == ("members[1].deploymentRoleArn", other)
    assert "one role per account" in str(error)


def aws(**values: Any) -> dict[str, Any]:
    return {"region": REGION, **values}


def test_the_provider_must_allow_exactly_the_stacks_own_account():
    assert load_config("forensic", BASE, aws(allowedAccountIds=[FORENSIC])).forensic_account == FORENSIC
    assert load_config("security", BASE, aws(allowedAccountIds=[SECURITY])).security_account == SECURITY


@pytest.mark.parametrize(
    "stack, allowed, why",
    [
        ("forensic", None, 'is required: ["222222222222"] (irforensics:forensicAccount)'),
        ("security", None, 'is required: ["123456789012"] (irforensics:securityAccount)'),
        ("forensic", [SECURITY], "must be exactly"),
        ("security", [SECURITY, MEMBER], "must be exactly"),
        ("security", [], "must be exactly"),
    ],
)
def test_a_provider_that_would_accept_another_account_is_refused(stack, allowed, why):
    with pytest.raises(ConfigError) as raised:
        load_config(stack, BASE, aws(allowedAccountIds=allowed))
    assert raised.value.key == "aws:allowedAccountIds"
    assert "config aws:allowedAccountIds" in str(raised.value) and why in str(raised.value)


ORG_UNITS = ["ou-ab12-cdef3456", "r-ab12"]


def test_security_stack_reads_organisation_mode_instead_of_members():
    cfg = parse_config(
        "security", {**BASE, "memberOrganizationalUnits": ORG_UNITS, "memberRegions": [REGION, "us-east-1"]}, REGION
    )
    assert isinstance(cfg, SecurityConfig)
    assert cfg.organization_mode
    assert cfg.member_organizational_units == tuple(ORG_UNITS)
    assert cfg.member_regions == (REGION, "us-east-1")
    assert cfg.members == ()
    assert not parse_config("security", {**BASE, "members": [member()]}, REGION).organization_mode


def test_members_and_organisational_units_together_are_refused_in_one_line():
    error = config_error("security", members=[member()], memberOrganizationalUnits=ORG_UNITS, memberRegions=[REGION])
    assert error.key == "memberOrganizationalUnits"
    assert "irforensics:members" in str(error) and "\n" not in str(error)


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"memberOrganizationalUnits": ORG_UNITS}, "memberRegions"),
        ({"memberRegions": [REGION]}, "memberOrganizationalUnits"),
        ({"memberOrganizationalUnits": [], "memberRegions": [REGION]}, "memberOrganizationalUnits"),
        ({"memberOrganizationalUnits": "ou-ab12-cdef3456", "memberRegions": [REGION]}, "memberOrganizationalUnits"),
        ({"memberOrganizationalUnits": ["ou-AB12-cdef3456"], "memberRegions": [REGION]}, "memberOrganizationalUnits"),
        ({"memberOrganizationalUnits": ["123456789012"], "memberRegions": [REGION]}, "memberOrganizationalUnits"),
        (
            {"memberOrganizationalUnits": ["ou-ab12-cdef3456"] * 2, "memberRegions": [REGION]},
            "memberOrganizationalUnits",
        ),
        ({"memberOrganizationalUnits": ORG_UNITS, "memberRegions": ["eu-wst"]}, "memberRegions[0]"),
        ({"memberOrganizationalUnits": ORG_UNITS, "memberRegions": [REGION, REGION]}, "memberRegions"),
        ({"memberOrganizationalUnits": ORG_UNITS, "memberRegions": []}, "memberRegions"),
    ],
)
def test_a_malformed_organisation_mode_names_the_key(raw, key):
    error = config_error("security", **raw)
    assert error.key == key
    assert str(error).startswith(f"config irforensics:{key} = ") and "\n" not in str(error)


def test_organisation_mode_keys_belong_to_the_security_stack():
    error = config_error("forensic", memberRegions=[REGION])
    assert "security stack" in str(error)
