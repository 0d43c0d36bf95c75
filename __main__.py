"""The irforensics Pulumi program: the stack's role (forensic or security) picks the components.

The stack's own resources go through the default AWS provider, which Pulumi configures from the
stack's `aws:*` config; config.py refuses a stack whose `aws:allowedAccountIds` is not exactly
its own account, so credentials of another account fail before anything is created.
"""

from __future__ import annotations

import pulumi

from config import ForensicConfig, SecurityConfig, read_pulumi_config


def build_forensic(cfg: ForensicConfig) -> None:
    from components.forensic_account import ForensicAccount, ForensicAccountArgs

    forensic = ForensicAccount("forensic", ForensicAccountArgs.from_config(cfg))
    pulumi.export("evidence_bucket", forensic.evidence_bucket.bucket)
    pulumi.export("forensic_key_arn", forensic.key.arn)
    pulumi.export("analysis_vpc_id", forensic.analysis_vpc.id)
    pulumi.export("analysis_subnet_ids", [subnet.id for subnet in forensic.analysis_subnets])
    pulumi.export("investigator_role_arn", forensic.investigator_role.arn)
    pulumi.export("toolset_ami_parameter", forensic.toolset_ami_parameter.name)


def build_security(cfg: SecurityConfig) -> None:
    from components.lime_factory import LimeFactory, LimeFactoryArgs
    from components.member_responder import MemberResponder, MemberResponderArgs
    from components.security_account import SecurityAccount, SecurityAccountArgs

    organization_id = organization_of_the_security_account() if cfg.organization_mode else ""
    security = SecurityAccount("security", SecurityAccountArgs.from_config(cfg, organization_id))
    pulumi.export("response_state_machine_arn", security.response_state_machine.arn)
    pulumi.export("notification_topic_arn", security.topic.arn)
    lime = LimeFactory("lime", LimeFactoryArgs.from_config(cfg))
    pulumi.export("modules_bucket", lime.modules_bucket.bucket)
    pulumi.export("lime_factory_state_machine_arn", lime.state_machine.arn)
    if cfg.organization_mode:
        build_member_stack_set(cfg)
        return
    # One provider per member account, whatever the number of its regions: under the Pulumi engine
    # each explicit provider is a plugin process of a few hundred MB, so one per account and region
    # would not fit an organisation (pulumi-aws 7 lets each regional resource name its region).
    providers: dict[str, pulumi.ProviderResource] = {}
    for member in cfg.members:
        # Pulumi assumes the role the organisation gives it in the member account; the security
        # account never holds member credentials.
        if member.account not in providers:
            providers[member.account] = aws_provider_for(member.account, member.region, member.deployment_role_arn)
        MemberResponder(
            f"member-{member.account}-{member.region}",
            MemberResponderArgs.from_config(cfg, member),
            opts=pulumi.ResourceOptions(provider=providers[member.account]),
        )


def organization_of_the_security_account() -> pulumi.Output[str]:
    """The organisation's id, asked at deploy time: a delegated administrator may DescribeOrganization,
    and nothing has to be copied into config (or kept in step with it)."""
    import pulumi_aws as aws

    return aws.organizations.get_organization_output().id


def build_member_stack_set(cfg: SecurityConfig) -> None:
    """Organisation mode: one StackSet, whatever the number of member accounts (they are in the OUs)."""
    from components.member_responder import MemberResponderStackSet, MemberStackSetArgs

    members = MemberResponderStackSet("member-responders", MemberStackSetArgs.from_config(cfg))
    pulumi.export("member_stack_set", members.stack_set.name)


def aws_provider_for(account: str, region: str, role_arn: str) -> pulumi.ProviderResource:
    """The member account's provider; `region` is only its default (global IAM calls)."""
    import pulumi_aws as aws

    return aws.Provider(
        f"aws-{account}",
        region=region,
        allowed_account_ids=[account],
        assume_roles=[{"role_arn": role_arn, "session_name": "irforensics-deploy"}],
    )


config = read_pulumi_config()
if isinstance(config, ForensicConfig):
    build_forensic(config)
else:
    build_security(config)
