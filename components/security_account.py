"""SecurityAccount: the response automation (Lambdas, state machine, case table, notifications, triggers).

Every Lambda of statemachines.functions.FUNCTIONS is packaged from handlers/ with a role built
from its access kinds and nothing else. The response state machine calls the Lambdas; the
trigger Lambdas start the state machine, so they are created after it (no dependency cycle).
Member accounts forward their incident-tag changes to this account's default event bus.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from components import naming
from components.policies import (
    STATE_MACHINE_LOG_DELIVERY_ACTIONS,
    XRAY_ACTIONS,
    Statement,
    allow,
    deny,
    logs_key_statements,
    policy_document,
    service_trust,
)
from components.python_lambda import PythonLambda, PythonLambdaArgs
from config import SecurityConfig
from core import arns
from handlers.common.settings import Settings
from handlers.common.tags import MANAGED_BY_TAG, MANAGED_BY_VALUE
from handlers.triggers import patterns
from statemachines import response
from statemachines.asl import PollPolicy
from statemachines.functions import (
    CASE_TABLE,
    FIND_LIME_MODULES,
    FOLLOW_LIME_FACTORY,
    FORENSIC,
    FUNCTIONS,
    LIME_MODULES,
    MEMBER,
    NOTIFY,
    START_LIME_FACTORY,
    START_RESPONSE,
    FunctionSpec,
)

# What each function with case-table access does with it (handlers/case/store.py): a
# TransactWriteItems Put is authorised as dynamodb:PutItem; open-case reads the open case on a
# duplicate trigger.
CASE_TABLE_ACTIONS: dict[str, tuple[str, ...]] = {
    "open-case": ("dynamodb:GetItem", "dynamodb:PutItem"),
    "close-case": ("dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:UpdateItem"),
    "record-failure": ("dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:UpdateItem"),
}
KEY_USE_ACTIONS = ("kms:Decrypt", "kms:GenerateDataKey")
TRIGGER_RULES: dict[str, str] = {
    "trigger-tag": "tag-change",
    "trigger-guardduty": "guardduty",
    "trigger-securityhub": "securityhub-action",
}


@dataclass(frozen=True)
class SecurityAccountArgs:
    prefix: str
    account: str
    region: str
    forensic_account: str
    forensic_region: str
    retention_days: int
    log_retention_days: int
    members: tuple[tuple[str, str], ...]  # (account, region) of every MemberResponder
    # Organisation mode: the member responders come from the StackSet, in any account of the
    # organisation's configured OUs; grants name the organisation instead of accounts.
    organization_mode: bool = False
    organization_id: Any = ""  # pulumi.Input[str]: known at deploy time (DescribeOrganization)
    guardduty_min_severity: float = 7.0
    guardduty_contain_severity: float = 8.0
    guardduty_finding_prefixes: tuple[str, ...] = ()
    slack_webhook_secret_arn: str = ""
    notification_emails: tuple[str, ...] = ()
    poll: PollPolicy = field(default_factory=PollPolicy)

    @classmethod
    def from_config(cls, cfg: SecurityConfig, organization_id: Any = "") -> SecurityAccountArgs:
        if cfg.organization_mode and not organization_id:
            raise ValueError("organisation mode needs the organisation's id (aws.organizations.get_organization)")
        return cls(
            prefix=cfg.prefix,
            account=cfg.security_account,
            region=cfg.region,
            forensic_account=cfg.forensic_account,
            forensic_region=cfg.forensic_region,
            retention_days=cfg.retention_days,
            log_retention_days=cfg.log_retention_days,
            members=tuple((m.account, m.region) for m in cfg.members),
            organization_mode=cfg.organization_mode,
            organization_id=organization_id,
            guardduty_min_severity=cfg.guardduty_min_severity,
            guardduty_contain_severity=cfg.guardduty_contain_severity,
            guardduty_finding_prefixes=cfg.guardduty_finding_prefixes,
            slack_webhook_secret_arn=cfg.slack_webhook_secret_arn,
            notification_emails=cfg.notification_emails,
            poll=PollPolicy(
                interval_seconds=cfg.poll_interval_seconds,
                backoff_rate=cfg.poll_backoff_rate,
                max_attempts=cfg.poll_max_attempts,
            ),
        )

    @property
    def member_accounts(self) -> list[str]:
        return sorted({account for account, _region in self.members})

    @property
    def partition(self) -> str:
        return arns.partition(self.region)

    @property
    def event_bus_arn(self) -> str:
        return arns.arn("events", "event-bus/default", region=self.region, account=self.account)

    def settings(self, *, trigger: bool = False) -> Settings:
        # The topic ARN is known only once the topic exists; SecurityAccount passes it to to_env.
        return Settings(
            prefix=self.prefix,
            security_account=self.account,
            forensic_account=self.forensic_account,
            forensic_region=self.forensic_region,
            retention_days=self.retention_days,
            slack_secret_arn=self.slack_webhook_secret_arn,
            default_wait_seconds=self.poll.interval_seconds,
            guardduty_contain_severity=self.guardduty_contain_severity,
            # Only the trigger Lambdas map Security Hub actions to responses.
            securityhub_actions=patterns.securityhub_action_map(self.account, self.region) if trigger else {},
        )


def is_trigger(spec: FunctionSpec) -> bool:
    """Trigger functions start the response state machine and are never called by it."""
    return START_RESPONSE in spec.access


def lime_factory_arn(args: SecurityAccountArgs) -> str:
    # Deterministic, so the memory Lambdas need no dependency on the LimeFactory component.
    return arns.state_machine(args.account, args.region, naming.state_machine_name(args.prefix, "lime-factory"))


# The release Lambda (statemachines/functions.py): the only principal the member release roles trust.
RELEASE_FUNCTION = "release"


def function_statements(
    spec: FunctionSpec,
    args: SecurityAccountArgs,
    *,
    key_arn: pulumi.Input[str],
    table_arn: pulumi.Input[str],
    topic_arn: pulumi.Input[str],
    state_machine_arn: pulumi.Input[str] | None = None,
) -> list[Statement]:
    """The IAM statements one Lambda gets: exactly those of its access kinds."""
    statements = [
        *_assume_statements(spec, args),
        *_security_account_statements(spec, args, key_arn, table_arn, topic_arn, state_machine_arn),
        *_lime_statements(spec, args),
    ]
    if not statements:
        # IAM refuses a policy without statements; a function without access kinds (input
        # validation) gets the one statement that says what it must never do: act in an account.
        statements.append(deny("TouchNoAccount", ["sts:AssumeRole"], "*"))
    return statements


def _assume_statements(spec: FunctionSpec, args: SecurityAccountArgs) -> list[Statement]:
    """The roles it assumes in the member accounts and the forensic account."""
    statements: list[Statement] = []
    if MEMBER in spec.access and args.organization_mode:
        statements.append(_organisation_assume_statement(spec, args))
    elif MEMBER in spec.access and args.members and spec.function == RELEASE_FUNCTION:
        # Release acts through its own member role (it may pass the original role back), never the responder.
        releasers = sorted(
            arns.iam_role(account, naming.release_role(args.prefix, region), region=region)
            for account, region in args.members
        )
        statements.append(allow("AssumeMemberReleaseRoles", ["sts:AssumeRole"], releasers))
    elif MEMBER in spec.access and args.members:
        responders = sorted(
            naming.member_responder_role_arn(args.prefix, account, region) for account, region in args.members
        )
        statements.append(allow("AssumeMemberResponderRoles", ["sts:AssumeRole"], responders))
    if FORENSIC in spec.access:
        statements.append(
            allow(
                "AssumeForensicAutomationRole",
                ["sts:AssumeRole"],
                naming.forensic_automation_role_arn(args.prefix, args.forensic_account, args.forensic_region),
            )
        )
    return statements


def _organisation_assume_statement(spec: FunctionSpec, args: SecurityAccountArgs) -> Statement:
    """Any account's member role of this deployment, but only in accounts of our organisation.

    Which accounts have responders is the StackSet's business (OUs, accounts that join later), so the
    grant names the role by its deterministic name in every account and lets aws:ResourceOrgID (the
    organisation of the account owning the role) keep it inside the organisation.
    """
    release = spec.function == RELEASE_FUNCTION
    role = naming.release_role(args.prefix, "*") if release else naming.member_responder_role(args.prefix, "*")
    sid = "AssumeMemberReleaseRoles" if release else "AssumeMemberResponderRoles"
    return allow(
        sid,
        ["sts:AssumeRole"],
        f"arn:{args.partition}:iam::*:role/{role}",
        {"StringEquals": {"aws:ResourceOrgID": args.organization_id}},
    )


def _security_account_statements(
    spec: FunctionSpec,
    args: SecurityAccountArgs,
    key_arn: pulumi.Input[str],
    table_arn: pulumi.Input[str],
    topic_arn: pulumi.Input[str],
    state_machine_arn: pulumi.Input[str] | None,
) -> list[Statement]:
    """The case table, the notification topic, their key and the response state machine."""
    statements: list[Statement] = []
    if CASE_TABLE in spec.access:
        if spec.function not in CASE_TABLE_ACTIONS:
            raise ValueError(f"{spec.function} has case-table access: list its actions in CASE_TABLE_ACTIONS")
        statements.append(allow("ReadWriteCases", CASE_TABLE_ACTIONS[spec.function], table_arn))
    if NOTIFY in spec.access:
        statements.append(allow("PublishNotifications", ["sns:Publish"], topic_arn))
        if args.slack_webhook_secret_arn:
            statements.append(
                allow("ReadSlackWebhook", ["secretsmanager:GetSecretValue"], args.slack_webhook_secret_arn)
            )
    if spec.access & {CASE_TABLE, NOTIFY}:
        # The table and the topic are encrypted with the security CMK.
        statements.append(allow("UseSecurityKey", KEY_USE_ACTIONS, key_arn))
    if START_RESPONSE in spec.access:
        if state_machine_arn is None:
            raise ValueError(f"{spec.function} starts the response but no state machine ARN was given")
        statements.append(allow("StartResponse", ["states:StartExecution"], state_machine_arn))
    return statements


def _lime_statements(spec: FunctionSpec, args: SecurityAccountArgs) -> list[Statement]:
    """The LiME modules bucket, its key and the LimeFactory that builds missing modules."""
    statements: list[Statement] = []
    if spec.access & {LIME_MODULES, FIND_LIME_MODULES}:
        bucket = arns.s3_bucket(naming.modules_bucket(args.prefix, args.account, args.region), region=args.region)
        statements += [
            allow("ReadLimeModules", ["s3:GetObject"], f"{bucket}/*"),  # HeadObject too
            # With ListBucket a HEAD of a missing module answers 404 ("build it"), not 403.
            allow("ListLimeModules", ["s3:ListBucket"], bucket),
        ]
    if LIME_MODULES in spec.access:
        statements += [
            allow(
                "DecryptLimeModules",
                ["kms:Decrypt"],
                arns.arn("kms", "key/*", region=args.region, account=args.account),
                {"StringEquals": {"kms:ViaService": f"s3.{args.region}.amazonaws.com"}},
            ),
        ]
    if START_LIME_FACTORY in spec.access:
        machine = lime_factory_arn(args)
        statements += [
            allow("StartLimeFactory", ["states:StartExecution"], machine),
        ]
    if FOLLOW_LIME_FACTORY in spec.access:
        statements += [
            allow(
                "FollowLimeFactory",
                ["states:DescribeExecution"],
                lime_factory_arn(args).replace(":stateMachine:", ":execution:") + ":*",
            ),
        ]
    return statements


def security_key_policy(args: SecurityAccountArgs) -> pulumi.Output[str]:
    return policy_document(
        [
            {
                "Sid": "AccountAdministers",
                "Effect": "Allow",
                "Principal": {"AWS": arns.iam_pattern(args.account, "root", region=args.region)},
                "Action": "kms:*",
                "Resource": "*",
            },
            # Encrypted log groups: CloudWatch Logs uses the key itself, only for this account's groups.
            *logs_key_statements("LogsEncryptLogGroups", args.region, args.account),
        ]
    )


def event_bus_policy(args: SecurityAccountArgs) -> pulumi.Output[str]:
    """Who may put events on our bus: each configured member account, or any account of the organisation."""
    if args.organization_mode:
        statements: list[Statement] = [
            {
                "Sid": "OrganisationMembersForward",
                "Effect": "Allow",
                "Principal": "*",
                "Action": "events:PutEvents",
                "Resource": args.event_bus_arn,
                "Condition": {"StringEquals": {"aws:PrincipalOrgID": args.organization_id}},
            }
        ]
    else:
        statements = [
            {
                "Sid": f"MemberForwards{account}",
                "Effect": "Allow",
                "Principal": {"AWS": arns.iam_pattern(account, "root", region=args.region)},
                "Action": "events:PutEvents",
                "Resource": args.event_bus_arn,
            }
            for account in args.member_accounts
        ]
    return policy_document(statements)


def member_tag_change_pattern(member_accounts: Sequence[str]) -> dict[str, Any]:
    # This account's own EC2 tag changes reach the same bus; only configured members have a responder.
    return {**patterns.tag_change_pattern(), "account": list(member_accounts)}


def organisation_tag_change_pattern(security_account: str) -> dict[str, Any]:
    # Members are whatever accounts the StackSet reaches; only this account's own tag changes
    # (it has no responder) are left out. The bus policy admits only the organisation's accounts.
    return {**patterns.tag_change_pattern(), "account": [{"anything-but": security_account}]}


def tag_trigger_pattern(args: SecurityAccountArgs) -> dict[str, Any]:
    if args.organization_mode:
        return organisation_tag_change_pattern(args.account)
    if args.member_accounts:
        return member_tag_change_pattern(args.member_accounts)
    return patterns.tag_change_pattern()


class SecurityAccount(pulumi.ComponentResource):
    key: aws.kms.Key
    topic: aws.sns.Topic
    case_table: aws.dynamodb.Table
    functions: dict[str, PythonLambda]
    response_state_machine: aws.sfn.StateMachine

    def __init__(self, name: str, args: SecurityAccountArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("irforensics:security:SecurityAccount", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = {MANAGED_BY_TAG: MANAGED_BY_VALUE}

        self.key = aws.kms.Key(
            f"{name}-key",
            description="irforensics: notifications, case table and automation logs",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            policy=security_key_policy(args),
            tags=tags,
            opts=child,
        )
        aws.kms.Alias(
            f"{name}-key-alias", name=f"alias/{args.prefix}-ir-security", target_key_id=self.key.arn, opts=child
        )

        self.topic = aws.sns.Topic(
            f"{name}-notifications",
            name=naming.notification_topic(args.prefix),
            kms_master_key_id=self.key.arn,
            tags=tags,
            opts=child,
        )
        for index, email in enumerate(args.notification_emails):
            aws.sns.TopicSubscription(
                f"{name}-notify-email-{index}", topic=self.topic.arn, protocol="email", endpoint=email, opts=child
            )

        self.case_table = aws.dynamodb.Table(
            f"{name}-cases",
            name=naming.case_table(args.prefix),
            hash_key="Pk",
            attributes=[{"name": "Pk", "type": "S"}],
            billing_mode="PAY_PER_REQUEST",
            point_in_time_recovery={"enabled": True},
            server_side_encryption={"enabled": True, "kms_key_arn": self.key.arn},
            deletion_protection_enabled=True,
            tags=tags,
            opts=child,
        )

        self.functions = {}
        for spec in FUNCTIONS:
            if not is_trigger(spec):
                self.functions[spec.function] = self._function(name, spec, args)

        self.response_state_machine = self._response_state_machine(name, args, tags)

        for spec in FUNCTIONS:
            if is_trigger(spec):
                self.functions[spec.function] = self._function(name, spec, args)
        self._triggers(name, args)

        self.register_outputs(
            {
                "topic_arn": self.topic.arn,
                "case_table_name": self.case_table.name,
                "response_state_machine_arn": self.response_state_machine.arn,
                "function_arns": {function: fn.function.arn for function, fn in self.functions.items()},
            }
        )

    def _function(self, name: str, spec: FunctionSpec, args: SecurityAccountArgs) -> PythonLambda:
        # The topic's and the state machine's ARNs exist only once they do: deploy-time values.
        deploy_time: dict[str, pulumi.Input[str]] = {"topic_arn": self.topic.arn}
        if START_LIME_FACTORY in spec.access:
            deploy_time["lime_factory_arn"] = lime_factory_arn(args)
        state_machine_arn: pulumi.Input[str] | None = None
        if is_trigger(spec):
            state_machine_arn = self.response_state_machine.arn
            deploy_time["response_state_machine_arn"] = state_machine_arn
        environment: dict[str, pulumi.Input[str]] = args.settings(trigger=is_trigger(spec)).to_env(**deploy_time)
        policy = policy_document(
            function_statements(
                spec,
                args,
                key_arn=self.key.arn,
                table_arn=self.case_table.arn,
                topic_arn=self.topic.arn,
                state_machine_arn=state_machine_arn,
            )
        )
        return PythonLambda(
            f"{name}-{spec.function}",
            PythonLambdaArgs(
                prefix=args.prefix,
                region=args.region,
                function=spec.function,
                package=spec.package,
                handler=spec.handler,
                policy=policy,
                environment=environment,
                log_retention_days=args.log_retention_days,
                timeout=spec.timeout,
                memory_size=spec.memory_size,
                kms_key_arn=self.key.arn,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _response_state_machine(
        self, name: str, args: SecurityAccountArgs, tags: Mapping[str, str]
    ) -> aws.sfn.StateMachine:
        child = pulumi.ResourceOptions(parent=self)
        machine_name = naming.state_machine_name(args.prefix, "response")
        names = sorted(self.functions)
        arns = [self.functions[function].function.arn for function in names]
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-response-logs",
            name=f"/aws/vendedlogs/states/{machine_name}",
            retention_in_days=args.log_retention_days,
            kms_key_id=self.key.arn,
            tags=dict(tags),
            opts=child,
        )
        role = aws.iam.Role(
            f"{name}-response-role",
            name=f"{args.prefix}-ir-states-response",
            assume_role_policy=service_trust("states.amazonaws.com"),
            tags=dict(tags),
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-response-policy",
            role=role.id,
            opts=child,
            policy=policy_document(
                [
                    allow("InvokeResponseFunctions", ["lambda:InvokeFunction"], arns),
                    allow("DeliverExecutionLogs", STATE_MACHINE_LOG_DELIVERY_ACTIONS, "*"),
                    allow("Tracing", XRAY_ACTIONS, "*"),
                ]
            ),
        )
        definition = pulumi.Output.all(*arns).apply(
            lambda resolved: json.dumps(
                response.build_definition(dict(zip(names, resolved, strict=True)), poll=args.poll)
            )
        )
        return aws.sfn.StateMachine(
            f"{name}-response",
            name=machine_name,
            type="STANDARD",
            role_arn=role.arn,
            definition=definition,
            logging_configuration={
                "log_destination": pulumi.Output.concat(log_group.arn, ":*"),
                "include_execution_data": True,
                "level": "ALL",
            },
            tracing_configuration={"enabled": True},
            tags=dict(tags),
            opts=child,
        )

    def _triggers(self, name: str, args: SecurityAccountArgs) -> None:
        child = pulumi.ResourceOptions(parent=self)
        if args.member_accounts or args.organization_mode:
            aws.cloudwatch.EventBusPolicy(
                f"{name}-bus-policy", event_bus_name="default", policy=event_bus_policy(args), opts=child
            )
        # Security Hub names a custom action's ARN from its id, so the rule can use it directly.
        action_targets = [
            aws.securityhub.ActionTarget(
                f"{name}-action-{identifier}", identifier=identifier, name=label, description=description, opts=child
            )
            for identifier, (label, description, _action) in patterns.SECURITYHUB_ACTIONS.items()
        ]
        action_arns = [
            patterns.securityhub_action_arn(args.account, args.region, identifier)
            for identifier in patterns.SECURITYHUB_ACTIONS
        ]
        rule_patterns: dict[str, dict[str, Any]] = {
            "trigger-tag": tag_trigger_pattern(args),
            "trigger-guardduty": patterns.guardduty_pattern(
                args.guardduty_min_severity, list(args.guardduty_finding_prefixes)
            ),
            "trigger-securityhub": patterns.securityhub_action_pattern(action_arns),
        }
        for function, rule_suffix in TRIGGER_RULES.items():
            target = self.functions[function].function
            rule = aws.cloudwatch.EventRule(
                f"{name}-{rule_suffix}",
                name=f"{args.prefix}-ir-{rule_suffix}",
                description=f"irforensics: start a response ({rule_suffix})",
                event_pattern=json.dumps(rule_patterns[function]),
                opts=pulumi.ResourceOptions(
                    parent=self, depends_on=action_targets if function == "trigger-securityhub" else []
                ),
            )
            aws.cloudwatch.EventTarget(
                f"{name}-{rule_suffix}-target", rule=rule.name, target_id=function, arn=target.arn, opts=child
            )
            aws.lambda_.Permission(
                f"{name}-{rule_suffix}-invoke",
                action="lambda:InvokeFunction",
                function=target.name,
                principal="events.amazonaws.com",
                source_arn=rule.arn,
                opts=child,
            )
