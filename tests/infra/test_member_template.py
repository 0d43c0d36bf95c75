"""Organisation mode's StackSet template against explicit mode's MemberResponder (Pulumi mocks, cfn-lint).

Both come from components.member_responder.member_definition; these tests hold the two renderings to
granting the same statements and creating the same named resources, once the template's pseudo
parameters are filled in for one account and region and its references resolved to the component's
own resources.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from components import member_template
from components.member_responder import MemberResponderArgs, member_definition, stack_set_name
from config import parse_config
from core.containment import revocation
from simulation import stacks
from simulation.pulumi_mocks import RegisteredResource, run_program
from tests.infra import helpers

PREFIX = "acme"
SECURITY = "123456789012"
FORENSIC = "222222222222"
MEMBERS = (("333333333333", "eu-west-1"), ("444444444444", "eu-central-1"))
UNITS = ["ou-ab12-cdef3456", "r-ab12"]
REGIONS = ["eu-west-1", "eu-central-1"]
EXPLICIT: dict[str, Any] = {
    "prefix": PREFIX,
    "securityAccount": SECURITY,
    "forensicAccount": FORENSIC,
    "forensicRegion": "eu-west-1",
    "members": [
        {"account": a, "region": r, "deploymentRoleArn": f"arn:aws:iam::{a}:role/OrganizationAccountAccessRole"}
        for a, r in MEMBERS
    ],
}
ORGANISATION: dict[str, Any] = {
    **{k: v for k, v in EXPLICIT.items() if k != "members"},
    "memberOrganizationalUnits": UNITS,
    "memberRegions": REGIONS,
}


@pytest.fixture(scope="module")
def explicit() -> list[RegisteredResource]:
    return run_program("security", EXPLICIT, account=SECURITY, region="eu-west-1")


@pytest.fixture(scope="module")
def organisation() -> list[RegisteredResource]:
    return run_program("security", ORGANISATION, account=SECURITY, region="eu-west-1")


def template_of(resources: list[RegisteredResource]) -> dict[str, Any]:
    stack_set = helpers.one(resources, "aws:cloudformation/stackSet:StackSet")
    return dict(json.loads(stack_set.inputs["templateBody"]))


def component_inventory(resources: list[RegisteredResource], account: str, region: str) -> dict[str, Any]:
    """What one MemberResponder creates, by the names AWS knows (roles, policies, profiles, ...)."""
    prefix = f"member-{account}-{region}-"
    kids = [r for r in resources if r.name.startswith(prefix)]
    by_type: dict[str, list[RegisteredResource]] = {}
    for kid in kids:
        by_type.setdefault(kid.type, []).append(kid)
    attached = {
        (r.inputs["role"], r.inputs["policyArn"])
        for r in by_type.get("aws:iam/rolePolicyAttachment:RolePolicyAttachment", [])
    }
    return {
        "roles": {
            r.inputs["name"]: {
                "trust": helpers.policy_of(r, "assumeRolePolicy"),
                "description": r.inputs["description"],
                "max_session": r.inputs.get("maxSessionDuration"),
                "managed": sorted(arn for role, arn in attached if role == r.inputs["name"]),
            }
            for r in by_type["aws:iam/role:Role"]
        },
        "inline": sorted(
            (r.inputs["role"], json.dumps(helpers.policy_of(r), sort_keys=True))
            for r in by_type["aws:iam/rolePolicy:RolePolicy"]
        ),
        "managed_policies": {r.inputs["name"]: helpers.policy_of(r) for r in by_type["aws:iam/policy:Policy"]},
        "profiles": {r.inputs["name"]: r.inputs["role"] for r in by_type["aws:iam/instanceProfile:InstanceProfile"]},
        "key_policies": [helpers.policy_of(r) for r in by_type["aws:kms/key:Key"]],
        "aliases": sorted(r.inputs["name"] for r in by_type["aws:kms/alias:Alias"]),
        "documents": {
            r.inputs["name"]: (r.inputs["documentType"], json.loads(r.inputs["content"]))
            for r in by_type["aws:ssm/document:Document"]
        },
        "rules": {
            r.inputs["name"]: json.loads(r.inputs["eventPattern"])
            for r in by_type["aws:cloudwatch/eventRule:EventRule"]
        },
        "targets": sorted(
            (t.inputs["rule"], t.inputs["targetId"], t.inputs["arn"], t.inputs["roleArn"])
            for t in by_type["aws:cloudwatch/eventTarget:EventTarget"]
        ),
    }


def template_inventory(
    template: dict[str, Any], resources: list[RegisteredResource], account: str, region: str
) -> dict[str, Any]:
    """The template instantiated for one account and region, references resolved to the component's
    resources (so the key policy names the same role ARN the component's does)."""
    suffixes = {item.logical_id: item.suffix for item in member_definition(_args(account, region))}

    def create(logical_id: str, type_: str, properties: Any) -> tuple[str, dict[str, Any]]:
        seen[logical_id] = (type_, properties)
        twin = helpers.named(resources, f"member-{account}-{region}-{suffixes[logical_id]}")
        return str(twin.outputs.get("name") or twin.id), {"Arn": twin.outputs["arn"]}

    seen: dict[str, tuple[str, Any]] = {}
    member_template.instantiate(template, account=account, region=region, partition="aws", create=create)
    of = {
        kind: [(lid, props) for lid, (t, props) in seen.items() if t == kind] for kind in {t for t, _ in seen.values()}
    }
    role_names = {lid: props["RoleName"] for lid, props in of["AWS::IAM::Role"]}
    return {
        "roles": {
            props["RoleName"]: {
                "trust": props["AssumeRolePolicyDocument"],
                "description": props["Description"],
                "max_session": props.get("MaxSessionDuration"),
                "managed": sorted(props.get("ManagedPolicyArns", [])),
            }
            for _, props in of["AWS::IAM::Role"]
        },
        "inline": sorted(
            (props["RoleName"], json.dumps(props["PolicyDocument"], sort_keys=True))
            for _, props in of["AWS::IAM::RolePolicy"]
        ),
        "managed_policies": {p["ManagedPolicyName"]: p["PolicyDocument"] for _, p in of["AWS::IAM::ManagedPolicy"]},
        "profiles": {p["InstanceProfileName"]: p["Roles"][0] for _, p in of["AWS::IAM::InstanceProfile"]},
        "key_policies": [p["KeyPolicy"] for _, p in of["AWS::KMS::Key"]],
        "aliases": sorted(p["AliasName"] for _, p in of["AWS::KMS::Alias"]),
        "documents": {p["Name"]: (p["DocumentType"], p["Content"]) for _, p in of["AWS::SSM::Document"]},
        "rules": {p["Name"]: p["EventPattern"] for _, p in of["AWS::Events::Rule"]},
        "targets": sorted(
            (p["Name"], t["Id"], t["Arn"], t["RoleArn"]) for _, p in of["AWS::Events::Rule"] for t in p["Targets"]
        ),
        "_roles_known": sorted(role_names.values()),
    }


def _args(account: str, region: str) -> MemberResponderArgs:
    return MemberResponderArgs(PREFIX, account, region, SECURITY, "eu-west-1", FORENSIC, "eu-west-1")


@pytest.mark.parametrize(("account", "region"), MEMBERS)
def test_template_and_component_grant_the_same_statements_and_create_the_same_named_resources(
    explicit, organisation, account, region
):
    component = component_inventory(explicit, account, region)
    template = template_inventory(template_of(organisation), explicit, account, region)
    assert template.pop("_roles_known") == sorted(component["roles"])
    assert template == component
    # Not vacuous: the responder's policy is there, with the key of this account and region.
    assert len(component["roles"]) == 5 and len(component["inline"]) == 4
    assert f"acme-ir-responder-{region}" in component["roles"]
    assert any(f":kms:{region}:{account}:" in text for _, text in component["inline"])


def test_the_template_passes_cfn_lint(organisation, tmp_path):
    path = tmp_path / "member-responders.json"
    path.write_text(json.dumps(template_of(organisation), indent=1))
    cfn_lint = shutil.which("cfn-lint") or str(Path(sys.executable).with_name("cfn-lint"))
    done = subprocess.run([cfn_lint, str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    # ... and cfn-lint does report what is wrong (so a pass means something).
    broken = json.loads(path.read_text())
    broken["Resources"]["ResponderRole"]["Properties"]["MaxSessionDuration"] = 60
    path.write_text(json.dumps(broken))
    assert subprocess.run([cfn_lint, str(path)], capture_output=True, text=True).returncode != 0


def test_the_template_fills_in_account_region_and_partition_per_stack_instance(organisation):
    template = json.dumps(template_of(organisation))
    assert "333333333333" not in template and "eu-central-1" not in template
    assert "arn:aws:" not in template  # the partition comes from ${AWS::Partition}
    assert "${AWS::AccountId}" in template and "${AWS::Region}" in template
    # The revocation policy's IAM policy variables are not CloudFormation's: the document is literal.
    revocation_policy = json.loads(template)["Resources"]["RevocationPolicy"]["Properties"]["PolicyDocument"]
    assert revocation_policy == revocation.revocation_document()


def test_a_policy_variable_beside_a_pseudo_parameter_is_escaped_and_comes_back_literal():
    text = "arn:${AWS::Partition}:iam::${AWS::AccountId}:user/${aws:username}"
    rendered = member_template.render_template(
        [member_template.MemberResource("P", "p", member_template.ALIAS, {"name": text, "target": "k"})],
        description="d",
        tags={},
    )["Resources"]["P"]["Properties"]["AliasName"]
    assert rendered == {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:user/${!aws:username}"}
    filled = member_template.substitute(
        rendered, account="333333333333", region="eu-west-1", partition="aws-cn", attributes={}
    )
    assert filled == "arn:aws-cn:iam::333333333333:user/${aws:username}"


def test_organisation_mode_registers_a_service_managed_stack_set_and_one_instance_per_region(organisation):
    stack_set = helpers.one(organisation, "aws:cloudformation/stackSet:StackSet")
    assert stack_set.inputs["name"] == stack_set_name(PREFIX)
    assert stack_set.inputs["permissionModel"] == "SERVICE_MANAGED"
    assert stack_set.inputs["callAs"] == "DELEGATED_ADMIN"
    assert stack_set.inputs["capabilities"] == ["CAPABILITY_NAMED_IAM"]
    assert stack_set.inputs["autoDeployment"] == {"enabled": True, "retainStacksOnAccountRemoval": False}
    instances = helpers.resources_of(organisation, "aws:cloudformation/stackSetInstance:StackSetInstance")
    assert sorted(i.inputs["stackSetInstanceRegion"] for i in instances) == sorted(REGIONS)
    for instance in instances:
        assert instance.inputs["deploymentTargets"] == {"organizationalUnitIds": UNITS}
        assert instance.inputs["callAs"] == "DELEGATED_ADMIN"
    # No member provider and no MemberResponder: nothing in the stack grows with the accounts.
    assert not [r for r in organisation if r.type == "pulumi:providers:aws"]
    assert not [r for r in organisation if r.type == "irforensics:member:MemberResponder"]


def test_organisation_mode_grants_any_member_role_of_the_deployment_only_inside_the_organisation(organisation):
    org = helpers.plain(run_org_id())
    assumes = {
        res.name: s
        for res, s in helpers.statements(organisation)
        if res.type == "aws:iam/rolePolicy:RolePolicy" and s.get("Sid", "").startswith("AssumeMember")
    }
    expected = {"AssumeMemberReleaseRoles": "acme-ir-release-*", "AssumeMemberResponderRoles": "acme-ir-responder-*"}
    assert {s["Sid"] for s in assumes.values()} == set(expected)
    for name, statement in assumes.items():
        assert statement["Condition"] == {"StringEquals": {"aws:ResourceOrgID": org}}
        assert statement["Resource"] == f"arn:aws:iam::*:role/{expected[statement['Sid']]}", name
    # Only the release Lambda may assume the release roles.
    assert [n for n, s in assumes.items() if s["Sid"] == "AssumeMemberReleaseRoles"] == ["security-release-policy"]
    bus = helpers.one(organisation, "aws:cloudwatch/eventBusPolicy:EventBusPolicy")
    [statement] = helpers.statements_of(helpers.policy_of(bus))
    assert statement["Principal"] == "*"
    assert statement["Condition"] == {"StringEquals": {"aws:PrincipalOrgID": org}}
    rule = helpers.one(organisation, "aws:cloudwatch/eventRule:EventRule", "tag-change")
    assert json.loads(rule.inputs["eventPattern"])["account"] == [{"anything-but": SECURITY}]


def run_org_id() -> str:
    # The mocks' organisation of the security account (simulation.pulumi_mocks answers getOrganization).
    import hashlib

    return "o-" + hashlib.sha256(SECURITY.encode()).hexdigest()[:10]


def test_the_simulations_organisation_config_is_organisation_mode():
    cfg = parse_config("security", stacks.organisation_security_config(["ou-ab12-cdef3456"]), "eu-west-1")
    assert cfg.organization_mode and cfg.members == () and cfg.member_regions == ("eu-west-1",)


def test_the_definition_and_the_security_grants_follow_the_partition_of_the_region():
    from components.security_account import SecurityAccountArgs, function_statements
    from statemachines.functions import FUNCTIONS

    china = member_definition(
        MemberResponderArgs(PREFIX, "333333333333", "cn-north-1", SECURITY, "cn-north-1", FORENSIC, "cn-north-1")
    )
    text = json.dumps([item.props for item in china], default=str)
    assert "arn:aws:" not in text and "arn:aws-cn:iam::333333333333:role/acme-ir-responder-cn-north-1" in text
    args = SecurityAccountArgs(
        prefix=PREFIX,
        account=SECURITY,
        region="cn-north-1",
        forensic_account=FORENSIC,
        forensic_region="cn-north-1",
        retention_days=1,
        log_retention_days=1,
        members=(("333333333333", "cn-north-1"),),
    )
    assert args.event_bus_arn == f"arn:aws-cn:events:cn-north-1:{SECURITY}:event-bus/default"
    grants = json.dumps(
        [
            function_statements(spec, args, key_arn="k", table_arn="t", topic_arn="s", state_machine_arn="m")
            for spec in FUNCTIONS
        ]
    )
    assert "arn:aws:" not in grants and "arn:aws-cn:iam::333333333333:role/acme-ir-release-cn-north-1" in grants
