"""MemberResponder, as the security stack registers it for two member accounts (Pulumi mocks)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from components import naming
from components.member_responder import RESPONDER_ACTIONS, UNSCOPED_ACTIONS
from handlers.triggers.patterns import matches
from simulation.pulumi_mocks import RegisteredResource, run_program

PREFIX = "acme"
SECURITY = "123456789012"
FORENSIC = "222222222222"
MEMBERS = (("333333333333", "eu-west-1"), ("444444444444", "eu-central-1"))
CONFIG: dict[str, Any] = {
    "prefix": PREFIX,
    "securityAccount": SECURITY,
    "forensicAccount": FORENSIC,
    "forensicRegion": "eu-west-1",
    "members": [
        {
            "account": account,
            "region": region,
            "deploymentRoleArn": f"arn:aws:iam::{account}:role/OrganizationAccountAccessRole",
        }
        for account, region in MEMBERS
    ],
}
EVENTS = Path(__file__).resolve().parent.parent / "events"
SECURITY_BUS = f"arn:aws:events:eu-west-1:{SECURITY}:event-bus/default"


@pytest.fixture(scope="module")
def resources() -> list[RegisteredResource]:
    return run_program("security", CONFIG, account=SECURITY, region="eu-west-1")


def component_name(account: str, region: str) -> str:
    return f"member-{account}-{region}"


def children(resources: list[RegisteredResource], account: str, region: str) -> list[RegisteredResource]:
    prefix = component_name(account, region) + "-"
    return [r for r in resources if r.name.startswith(prefix)]


def child(resources: list[RegisteredResource], account: str, region: str, suffix: str) -> RegisteredResource:
    name = f"{component_name(account, region)}-{suffix}"
    found = [r for r in resources if r.name == name]
    assert len(found) == 1, f"expected one resource named {name}, found {len(found)}"
    return found[0]


def document(resource: RegisteredResource, key: str = "policy") -> dict[str, Any]:
    value = resource.inputs[key]
    return json.loads(value) if isinstance(value, str) else value


def statements(resource: RegisteredResource, key: str = "policy") -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in document(resource, key)["Statement"]}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def provider_name(ref: str | None) -> str:
    # "<urn>::<id>" with the urn ending "pulumi:providers:aws::<name>"
    parts = (ref or "").split("::")
    return parts[-2] if len(parts) >= 3 else "<default provider>"


def load_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


def test_security_stack_registers_one_responder_per_member_account_and_region(resources):
    responders = sorted(r.name for r in resources if r.type == "irforensics:member:MemberResponder")
    assert responders == sorted(component_name(account, region) for account, region in MEMBERS)


def test_every_child_of_a_responder_goes_through_its_own_members_provider(resources):
    providers = {r.name: r for r in resources if r.type == "pulumi:providers:aws"}
    used: set[str] = set()
    for account, region in MEMBERS:
        kids = children(resources, account, region)
        assert len(kids) >= 15
        names = {provider_name(kid.provider) for kid in kids}
        assert names == {f"aws-{account}"}, f"{account}/{region} children use {names}"
        provider = providers[names.pop()]
        assert json.loads(provider.inputs["allowedAccountIds"]) == [account]  # provider inputs travel as JSON
        assume = provider.inputs["assumeRoles"]
        assume = json.loads(assume) if isinstance(assume, str) else assume  # provider inputs travel as JSON
        assert assume[0]["role_arn"].startswith(f"arn:aws:iam::{account}:role/")
        # The mock creates through an explicit provider in the provider's account and region.
        assert all(f":{region}:{account}:" in kid.outputs["arn"] for kid in kids if kid.type == "aws:kms/key:Key")
        used.add(provider.name)
    assert len(used) == len(MEMBERS)


def test_responder_role_is_assumable_only_by_the_security_accounts_lambda_roles(resources):
    for account, region in MEMBERS:
        role = child(resources, account, region, "responder")
        assert role.inputs["name"] == naming.member_responder_role(PREFIX, region)
        trust = document(role, "assumeRolePolicy")["Statement"]
        assert trust == [
            {
                "Sid": "SecurityAutomationAssumes",
                "Effect": "Allow",
                "Action": "sts:AssumeRole",
                "Principal": {"AWS": f"arn:aws:iam::{SECURITY}:root"},
                "Condition": {"ArnLike": {"aws:PrincipalArn": f"arn:aws:iam::{SECURITY}:role/{PREFIX}-ir-lambda-*"}},
            }
        ]


def test_responder_policy_allows_exactly_the_listed_actions(resources):
    for account, region in MEMBERS:
        policy = statements(child(resources, account, region, "responder-policy"))
        allowed = {a for s in policy.values() if s["Effect"] == "Allow" for a in as_list(s["Action"])}
        assert allowed == set(RESPONDER_ACTIONS)


def test_responder_policy_grants_resource_star_only_where_aws_has_no_resource_level_permissions(resources):
    for account, region in MEMBERS:
        policy = statements(child(resources, account, region, "responder-policy"))
        for sid, statement in policy.items():
            resources_ = as_list(statement["Resource"])
            if "*" in resources_:
                assert resources_ == ["*"]
                assert set(as_list(statement["Action"])) <= UNSCOPED_ACTIONS, sid
            else:
                assert all(
                    f":{account}:" in arn
                    or arn.startswith(f"arn:aws:ec2:{region}::snapshot/")
                    or arn.startswith(f"arn:aws:ssm:{region}::document/")
                    or arn == f"arn:aws:ec2:{region}:aws:prefix-list/*"
                    for arn in resources_
                ), sid


def test_responder_may_delete_only_snapshots_irforensics_made(resources):
    account, region = MEMBERS[0]
    policy = statements(child(resources, account, region, "responder-policy"))
    deleting = [s for s in policy.values() if "ec2:DeleteSnapshot" in as_list(s["Action"])]
    assert deleting == [
        {
            "Sid": "DeleteOwnSnapshots",
            "Effect": "Allow",
            "Action": ["ec2:DeleteSnapshot"],
            "Resource": f"arn:aws:ec2:{region}::snapshot/*",
            "Condition": {"StringEquals": {"aws:ResourceTag/irforensics:managed-by": "irforensics"}},
        }
    ]


def test_responder_passes_roles_only_to_ec2_and_cannot_rewrite_its_own_roles(resources):
    account, region = MEMBERS[1]
    policy = statements(child(resources, account, region, "responder-policy"))
    passing = [s for s in policy.values() if "iam:PassRole" in as_list(s["Action"])]
    assert passing
    assert all(s["Condition"] == {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}} for s in passing)
    guard = policy["KeepResponderRolesIntact"]
    assert guard["Effect"] == "Deny"
    assert set(guard["Action"]) == {"iam:AttachRolePolicy", "iam:TagRole"}
    assert naming.release_role_arn(PREFIX, account, region) in guard["Resource"]
    assert naming.member_responder_role_arn(PREFIX, account, region) in guard["Resource"]
    assert f"arn:aws:iam::{account}:role/{naming.isolation_profile(PREFIX, region)}" in guard["Resource"]


def test_member_key_rotates_and_lets_the_forensic_account_copy_shared_snapshots(resources):
    for account, region in MEMBERS:
        key = child(resources, account, region, "ebs-key")
        assert key.inputs["enableKeyRotation"] is True
        alias = child(resources, account, region, "ebs-key-alias")
        assert alias.inputs["name"] == naming.member_ebs_key_alias(PREFIX)
        assert alias.inputs["targetKeyId"] == key.outputs["arn"]
        policy = statements(key)
        assert policy["AccountAdministers"]["Principal"] == {"AWS": f"arn:aws:iam::{account}:root"}
        forensic_root = {"AWS": f"arn:aws:iam::{FORENSIC}:root"}
        assert policy["ForensicCopiesSharedSnapshots"]["Principal"] == forensic_root
        assert set(policy["ForensicCopiesSharedSnapshots"]["Action"]) == {
            "kms:Decrypt",
            "kms:DescribeKey",
            "kms:ReEncryptFrom",
        }
        assert policy["ForensicGrantsToEbs"]["Principal"] == forensic_root
        assert policy["ForensicGrantsToEbs"]["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}
        responder_arn = child(resources, account, region, "responder").outputs["arn"]
        assert policy["ResponderUsesKey"]["Principal"] == {"AWS": responder_arn}


def test_isolation_profile_role_denies_every_action(resources):
    for account, region in MEMBERS:
        role = child(resources, account, region, "isolation")
        profile = child(resources, account, region, "isolation-profile")
        assert profile.inputs["name"] == naming.isolation_profile(PREFIX, region)
        assert profile.inputs["role"] == role.inputs["name"]
        assert document(child(resources, account, region, "isolation-deny"))["Statement"] == [
            {"Sid": "DenyEverything", "Effect": "Deny", "Action": "*", "Resource": "*"}
        ]
        attached = [
            r
            for r in children(resources, account, region)
            if r.type.startswith("aws:iam/rolePolicy") and r.inputs.get("role") == role.inputs["name"]
        ]
        assert [r.name for r in attached] == [f"{component_name(account, region)}-isolation-deny"]


def test_acquisition_profile_has_the_ssm_agent_and_no_dead_evidence_grant(resources):
    # The evidence bucket and key admit no member principal: an S3/KMS grant here could never be used.
    for account, region in MEMBERS:
        profile = child(resources, account, region, "acquisition-profile")
        assert profile.inputs["name"] == naming.acquisition_profile(PREFIX, region)
        ssm = child(resources, account, region, "acquisition-ssm")
        assert ssm.inputs["policyArn"] == "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
        role = child(resources, account, region, "acquisition").inputs["name"]
        inline = [
            r
            for r in children(resources, account, region)
            if r.type == "aws:iam/rolePolicy:RolePolicy" and r.inputs["role"] == role
        ]
        assert inline == []


def test_tag_rule_forwards_incident_tag_changes_to_the_security_accounts_bus(resources):
    for account, region in MEMBERS:
        rule = child(resources, account, region, "tag-rule")
        pattern = json.loads(rule.inputs["eventPattern"])
        assert matches(pattern, load_event("tag_change_contain.json"))
        assert matches(pattern, load_event("tag_change_analyze.json"))
        assert not matches(pattern, load_event("tag_change_other_tag.json"))
        target = child(resources, account, region, "tag-forward")
        assert target.inputs["rule"] == rule.inputs["name"]
        # Both members forward to the security stack's region, wherever they are.
        assert target.inputs["arn"] == SECURITY_BUS
        forwarder = child(resources, account, region, "forwarder")
        assert target.inputs["roleArn"] == forwarder.outputs["arn"]
        assert document(forwarder, "assumeRolePolicy")["Statement"][0]["Principal"] == {
            "Service": ["events.amazonaws.com"]
        }
        assert document(child(resources, account, region, "forwarder-policy"))["Statement"] == [
            {"Sid": "ForwardToSecurityBus", "Effect": "Allow", "Action": ["events:PutEvents"], "Resource": SECURITY_BUS}
        ]
