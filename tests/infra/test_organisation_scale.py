"""Organisation mode does not grow with the organisation: the same Pulumi resources for 1 or 1,000 accounts.

The accounts are in the OUs, not in the config, so a test that only compared two configs would prove
nothing. Here the stack set instances are expanded over OUs that really hold the accounts: under mocks,
the StackSet's template instantiated per account as CloudFormation would (bench.members); on moto, the
simulated deploy into an organisation whose OU holds one or three accounts (the deployer creates every
member stack). Either way what Pulumi registers is identical; what grows is only CloudFormation's work.
"""

from __future__ import annotations

from typing import Any

from moto import mock_aws

from bench.members import organisation_run
from simulation import local_aws, moto_fixes, organization, stacks
from simulation.deploy_local import MotoDeployer, deploy_program
from simulation.local_aws import MEMBER_ACCOUNT, PREFIX, REGION, SECOND_MEMBER_ACCOUNT, SECURITY_ACCOUNT
from simulation.sandbox import MOTO_CONFIG

THIRD_MEMBER = "777777777777"


def registered(resources: list[Any]) -> list[tuple[str, str]]:
    return sorted((res.type, res.name) for res in resources)


def test_one_and_a_thousand_accounts_register_the_same_pulumi_resources_under_mocks():
    one, one_expanded = organisation_run(1, 2)
    thousand, thousand_expanded = organisation_run(1000, 2)
    assert registered(one) == registered(thousand)
    assert not [res for res in thousand if res.type == "pulumi:providers:aws"]
    # The accounts are there: one member stack per account and region, each the whole responder.
    assert (one_expanded.stacks, thousand_expanded.stacks) == (2, 2000)
    assert thousand_expanded.resources == 2000 * (one_expanded.resources // 2) and one_expanded.resources == 34


def _deploy_security(members: list[str]) -> tuple[list[tuple[str, str]], MotoDeployer]:
    local_aws.use_fake_credentials()
    deployer = MotoDeployer()
    with mock_aws(config=MOTO_CONFIG), moto_fixes.aws_semantics():
        org = organization.create_organization(members)
        config = stacks.organisation_security_config([org.workloads_ou], [REGION])
        resources = deploy_program(deployer, "security", config, account=SECURITY_ACCOUNT, region=REGION)
        for member in members:
            iam = local_aws.account_session(member).client("iam")
            role = iam.get_role(RoleName=f"{PREFIX}-ir-responder-{REGION}")["Role"]
            assert role["Arn"] == f"arn:aws:iam::{member}:role/{PREFIX}-ir-responder-{REGION}"
    return registered(resources), deployer


def test_the_simulated_deploy_into_an_ou_of_one_or_three_accounts_registers_the_same_pulumi_resources():
    one, one_deployer = _deploy_security([MEMBER_ACCOUNT])
    three, three_deployer = _deploy_security([MEMBER_ACCOUNT, SECOND_MEMBER_ACCOUNT, THIRD_MEMBER])
    assert one == three
    [one_instance] = one_deployer.find("aws:cloudformation/stackSetInstance:StackSetInstance")
    [three_instance] = three_deployer.find("aws:cloudformation/stackSetInstance:StackSetInstance")
    assert [s["accountId"] for s in one_instance.outputs["stackInstanceSummaries"]] == [MEMBER_ACCOUNT]
    assert sorted(s["accountId"] for s in three_instance.outputs["stackInstanceSummaries"]) == sorted(
        [MEMBER_ACCOUNT, SECOND_MEMBER_ACCOUNT, THIRD_MEMBER]
    )
    assert len(three_instance.outputs["resources"]) == 3 * len(one_instance.outputs["resources"]) == 3 * 17
