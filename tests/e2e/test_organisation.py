"""Organisation mode, end to end: the member responder comes from the StackSet, and a case completes.

The member account is in the `workloads` OU of a simulated organisation (simulation.organization); the
security stack names that OU in `memberOrganizationalUnits` and registers one StackSet and its stack
set instance, no MemberResponder and no member provider; the deployer instantiates the template in
every account of the OU, as CloudFormation does. One instance is then tagged Contain, and the response
runs through the responder role the StackSet made. Assertions read moto through describe calls.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from components.member_responder import stack_set_name
from handlers.common import naming
from simulation import local_aws, simulate
from simulation.console_logs import lambda_output_to
from simulation.local_aws import FORENSIC_ACCOUNT, MEMBER_ACCOUNT, PREFIX, REGION, SECURITY_ACCOUNT
from simulation.sandbox import LocalCloud, cloud_context

pytestmark = pytest.mark.slow
ACTION = "contain"
RESPONDER = naming.member_responder_role(PREFIX, REGION)


def _tags(tags: list[dict[str, str]]) -> dict[str, str]:
    return {tag.get("Key", tag.get("TagKey", "")): tag.get("Value", tag.get("TagValue", "")) for tag in tags}


@pytest.fixture(scope="module")
def org_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    local_aws.use_fake_credentials()
    simulate.quiet_moto()
    out = tmp_path_factory.mktemp("organisation-cases")
    cloud = LocalCloud(examination_notes=[*simulate.SIMULATION_NOTES, simulate.ORGANISATION_NOTE], organisation=True)
    logs: list[str] = []
    with (
        tempfile.TemporaryDirectory(prefix="irf-organisation-") as tmp,
        lambda_output_to(logs.append),
        cloud_context(cloud),
    ):
        assert cloud.organization is not None
        member = cloud.session(MEMBER_ACCOUNT)
        iam, kms = member.client("iam"), member.client("kms")
        key_id = next(a["TargetKeyId"] for a in kms.list_aliases()["Aliases"] if a["AliasName"] == "alias/acme-ebs")
        rule = member.client("events").describe_rule(Name=f"{PREFIX}-ir-incident-tag")
        before = {
            "stack_set": cloud.session(SECURITY_ACCOUNT)
            .client("cloudformation")
            .describe_stack_set(StackSetName=stack_set_name(PREFIX))["StackSet"],
            "workloads": cloud.session(cloud.organization.management_account)
            .client("organizations")
            .list_accounts_for_parent(ParentId=cloud.organization.workloads_ou)["Accounts"],
            "responder": iam.get_role(RoleName=RESPONDER)["Role"],
            "responder_tags": _tags(iam.list_role_tags(RoleName=RESPONDER)["Tags"]),
            "key_tags": _tags(kms.list_resource_tags(KeyId=key_id)["Tags"]),
            "rule_targets": member.client("events").list_targets_by_rule(Rule=rule["Name"])["Targets"],
        }
        incident = simulate.build_incident(cloud, Path(tmp), name="web-organisation")
        execution = cloud.wait(simulate.trigger_by_tag(cloud, incident, ACTION))
        result = simulate.collect(cloud, execution, incident, ACTION, out, [], images=False)
        instance = member.client("ec2").describe_instances(InstanceIds=[incident.instance_id])
        yield {
            "cloud": cloud,
            "before": before,
            "execution": execution,
            "result": result,
            "instance": instance["Reservations"][0]["Instances"][0],
            "logs": logs,
        }


def test_the_member_responder_was_created_by_the_stack_set_in_the_ou(org_world: dict[str, Any]) -> None:
    cloud: LocalCloud = org_world["cloud"]
    before = org_world["before"]
    assert before["stack_set"]["PermissionModel"] == "SERVICE_MANAGED"
    template = json.loads(before["stack_set"]["TemplateBody"])
    assert template["Resources"]["ResponderRole"]["Type"] == "AWS::IAM::Role"
    assert MEMBER_ACCOUNT in [account["Id"] for account in before["workloads"]]
    [instance] = cloud.deployer.find("aws:cloudformation/stackSetInstance:StackSetInstance")
    [summary] = instance.outputs["stackInstanceSummaries"]
    assert summary["accountId"] == MEMBER_ACCOUNT and summary["organizationalUnitId"] == cloud.organization.workloads_ou
    # The role, the key: made by that stack (CloudFormation's own tags), with the template's logical ids.
    assert before["responder_tags"]["aws:cloudformation:stack-id"] == summary["stackId"]
    assert before["responder_tags"]["aws:cloudformation:logical-id"] == "ResponderRole"
    assert before["key_tags"]["aws:cloudformation:logical-id"] == "MemberKey"
    trust = before["responder"]["AssumeRolePolicyDocument"]
    trust = json.loads(trust) if isinstance(trust, str) else trust
    assert trust["Statement"][0]["Principal"] == {"AWS": f"arn:aws:iam::{SECURITY_ACCOUNT}:root"}
    [target] = before["rule_targets"]
    assert target["Arn"] == f"arn:aws:events:{REGION}:{SECURITY_ACCOUNT}:event-bus/default"
    # ... and not by Pulumi: the program registered nothing in the member account.
    assert {resource.account for resource in cloud.deployer.deployed} <= {SECURITY_ACCOUNT, FORENSIC_ACCOUNT}


def test_the_case_completes_through_the_stack_sets_responder(org_world: dict[str, Any]) -> None:
    execution = org_world["execution"]
    assert execution["status"] == "SUCCEEDED", (execution.get("error"), execution.get("cause"))
    result: simulate.SimulationResult = org_world["result"]
    assert result.case_id.startswith(f"{MEMBER_ACCOUNT}-{result.instance_id}-{REGION}-")
    for path in ("containment/before.json", "containment/after.json", "manifest.json", "report/report.json"):
        assert (result.case_dir / path).is_file(), path
    # Contained with the isolation profile the StackSet made.
    profile = org_world["instance"]["IamInstanceProfile"]["Arn"]
    assert profile == f"arn:aws:iam::{MEMBER_ACCOUNT}:instance-profile/{naming.isolation_profile(PREFIX, REGION)}"
    assert any(key.endswith(".img") for key in (a["key"] for a in result.artefacts))
