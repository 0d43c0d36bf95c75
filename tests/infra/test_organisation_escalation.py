"""No privilege-escalation path in organisation mode either: the security stack's organisation-wide grants
together with the member roles the StackSet template creates (tests/infra/test_escalation.py's probes).

The member roles are read from the template as two member accounts get it (one per region of the
explicit-mode check), so the Lambdas' `arn:aws:iam::*:role/<prefix>-ir-responder-*` grant reaches them
exactly as it would on AWS; `aws:ResourceOrgID` is a condition the evaluator assumes holds (the member
accounts are in the organisation), so the reach is the widest the policies allow.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from components import member_template, naming
from simulation.pulumi_mocks import RegisteredResource, run_program
from tests.infra import helpers
from tests.infra.test_escalation import (
    FORENSIC,
    MEMBERS,
    PREFIX,
    RELEASE_ROLES,
    SECURITY,
    Role,
    _aws_managed,
    escalations,
    reach,
    stack_roles,
)
from tests.infra.test_forensic_account import CONFIG as FORENSIC_CONFIG
from tests.infra.test_member_template import ORGANISATION


def template_roles(template: dict[str, Any], account: str, region: str) -> dict[str, Role]:
    """The roles one member stack of the StackSet creates, each with every identity policy it gets."""
    create, seen = member_template.realistic_creator(account, region, "aws")
    member_template.instantiate(template, account=account, region=region, partition="aws", create=create)
    types = {logical_id: resource["Type"] for logical_id, resource in template["Resources"].items()}
    by_name: dict[str, Role] = {}
    for logical_id, props in seen.items():
        if types[logical_id] == "AWS::IAM::Role":
            role = Role(account, props["RoleName"], dict(props["AssumeRolePolicyDocument"]))
            role.policies += [_aws_managed(arn) for arn in props.get("ManagedPolicyArns", [])]
            by_name[role.name] = role
    for logical_id, props in seen.items():
        if types[logical_id] == "AWS::IAM::RolePolicy":
            by_name[props["RoleName"]].policies.append(dict(props["PolicyDocument"]))
    return {role.arn: role for role in by_name.values()}


@pytest.fixture(scope="module")
def security() -> list[RegisteredResource]:
    return run_program("security", ORGANISATION, account=SECURITY, region="eu-west-1")


@pytest.fixture(scope="module")
def roles(security: list[RegisteredResource]) -> dict[str, Role]:
    template = json.loads(helpers.one(security, "aws:cloudformation/stackSet:StackSet").inputs["templateBody"])
    found = {
        **stack_roles(security, SECURITY),
        **stack_roles(run_program("forensic", FORENSIC_CONFIG, account=FORENSIC, region="eu-west-1"), FORENSIC),
    }
    for account, region in MEMBERS:
        found.update(template_roles(template, account, region))
    return found


def test_no_role_can_escalate_in_organisation_mode(roles: dict[str, Role]) -> None:
    found = escalations(roles)
    assert not found, f"{len(found)} escalation paths:\n" + "\n".join(sorted(set(found))[:80])


def test_the_organisation_grant_reaches_the_stack_sets_responders_and_not_the_release_roles(
    roles: dict[str, Role],
) -> None:
    contain = roles[f"arn:aws:iam::{SECURITY}:role/{naming.lambda_role_name(PREFIX, 'contain')}"]
    names = {(r.account, r.name) for r in reach(contain, roles)}
    assert {(a, naming.member_responder_role(PREFIX, r)) for a, r in MEMBERS} <= names
    assert not {name for _, name in names} & RELEASE_ROLES
    release = roles[f"arn:aws:iam::{SECURITY}:role/{naming.lambda_role_name(PREFIX, 'release')}"]
    released = {(r.account, r.name) for r in reach(release, roles)}
    assert {(a, naming.release_role(PREFIX, r)) for a, r in MEMBERS} <= released
    assert not {naming.member_responder_role(PREFIX, r) for _, r in MEMBERS} & {name for _, name in released}
