"""SecurityAccount, as the security stack registers it (Pulumi mocks)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from components import naming
from components.security_account import CASE_TABLE_ACTIONS, RELEASE_FUNCTION
from handlers.triggers.patterns import SECURITYHUB_ACTIONS, matches, securityhub_action_arn
from simulation.pulumi_mocks import RegisteredResource, run_program
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
    by_name,
)

PREFIX = "acme"
SECURITY = "123456789012"
REGION = "eu-west-1"
FORENSIC_ACCOUNT = "222222222222"
MEMBERS = (("333333333333", "eu-west-1"), ("444444444444", "eu-central-1"))
SLACK_SECRET = f"arn:aws:secretsmanager:{REGION}:{SECURITY}:secret:irf/slack-AbCdEf"
CONFIG: dict[str, Any] = {
    "prefix": PREFIX,
    "securityAccount": SECURITY,
    "forensicAccount": FORENSIC_ACCOUNT,
    "forensicRegion": REGION,
    "snapshotLockDays": 400,
    "logRetentionDays": 30,
    "members": [
        {
            "account": account,
            "region": region,
            "deploymentRoleArn": f"arn:aws:iam::{account}:role/OrganizationAccountAccessRole",
        }
        for account, region in MEMBERS
    ],
    "guardDutyMinSeverity": 7,
    "guardDutyContainSeverity": 8.5,
    "slackWebhookSecretArn": SLACK_SECRET,
    "notificationEmails": ["soc@example.com"],
}
EVENTS = Path(__file__).resolve().parent.parent / "events"
TRIGGERS = ("trigger-tag", "trigger-guardduty", "trigger-securityhub")
# Statement ids each access kind contributes to a Lambda's role policy.
SIDS_BY_ACCESS = {
    MEMBER: {"AssumeMemberResponderRoles"},
    FORENSIC: {"AssumeForensicAutomationRole"},
    CASE_TABLE: {"ReadWriteCases", "UseSecurityKey"},
    NOTIFY: {"PublishNotifications", "ReadSlackWebhook", "UseSecurityKey"},
    START_RESPONSE: {"StartResponse"},
    LIME_MODULES: {"ReadLimeModules", "ListLimeModules", "DecryptLimeModules"},
    FIND_LIME_MODULES: {"ReadLimeModules", "ListLimeModules"},
    START_LIME_FACTORY: {"StartLimeFactory"},
    FOLLOW_LIME_FACTORY: {"FollowLimeFactory"},
}


@pytest.fixture(scope="module")
def resources() -> list[RegisteredResource]:
    return run_program("security", CONFIG, account=SECURITY, region=REGION)


def of_type(resources: list[RegisteredResource], type_token: str) -> list[RegisteredResource]:
    return [r for r in resources if r.type == type_token]


def named(resources: list[RegisteredResource], name: str) -> RegisteredResource:
    found = [r for r in resources if r.name == name]
    assert len(found) == 1, f"expected one resource named {name}, found {len(found)}"
    return found[0]


def loads(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def statements(resource: RegisteredResource, key: str = "policy") -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in loads(resource.inputs[key])["Statement"]}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def function(resources: list[RegisteredResource], name: str) -> RegisteredResource:
    return named(resources, f"security-{name}-function")


def function_policy(resources: list[RegisteredResource], name: str) -> dict[str, dict[str, Any]]:
    return statements(named(resources, f"security-{name}-policy"))


def state_machine(resources: list[RegisteredResource]) -> RegisteredResource:
    return named(resources, "security-response")


def policy_documents(resources: list[RegisteredResource]) -> Iterator[tuple[RegisteredResource, dict[str, Any]]]:
    for resource in resources:
        for key in ("policy", "assumeRolePolicy"):
            value = resource.inputs.get(key)
            if isinstance(value, str) and value.lstrip().startswith("{"):
                yield resource, json.loads(value)


def task_resources(definition: Any) -> Iterator[str]:
    if isinstance(definition, dict):
        if definition.get("Type") == "Task":
            yield definition["Resource"]
        for value in definition.values():
            yield from task_resources(value)
    elif isinstance(definition, list):
        for value in definition:
            yield from task_resources(value)


def load_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


def test_no_statement_in_the_security_stack_allows_every_action(resources):
    checked = 0
    for resource, document in policy_documents(resources):
        for statement in as_list(document["Statement"]):
            checked += 1
            if "*" in as_list(statement["Action"]):
                # The only "*" is the isolation role's deny-all and the fixed session-revoking deny.
                assert statement["Effect"] == "Deny", resource.name
                assert resource.name.endswith(("-isolation-deny", "-revocation")), resource.name
    assert checked > 50


def test_every_kms_key_in_the_stack_rotates(resources):
    keys = of_type(resources, "aws:kms/key:Key")
    # The security CMK, the LimeFactory's modules CMK, and one EBS CMK per member.
    assert len(keys) == 2 + len(MEMBERS)
    assert all(key.inputs["enableKeyRotation"] is True for key in keys)


def test_case_table_is_keyed_by_pk_recoverable_encrypted_and_protected(resources):
    table = named(resources, "security-cases")
    key = named(resources, "security-key")
    assert table.inputs["name"] == naming.case_table(PREFIX)
    assert table.inputs["hashKey"] == "Pk"
    assert table.inputs["attributes"] == [{"name": "Pk", "type": "S"}]
    assert table.inputs["billingMode"] == "PAY_PER_REQUEST"
    assert table.inputs["pointInTimeRecovery"] == {"enabled": True}
    assert table.inputs["serverSideEncryption"] == {"enabled": True, "kmsKeyArn": key.outputs["arn"]}
    assert table.inputs["deletionProtectionEnabled"] is True


def test_notification_topic_is_encrypted_and_mails_the_configured_addresses(resources):
    topic = named(resources, "security-notifications")
    assert topic.inputs["name"] == naming.notification_topic(PREFIX)
    assert topic.inputs["kmsMasterKeyId"] == named(resources, "security-key").outputs["arn"]
    subscriptions = of_type(resources, "aws:sns/topicSubscription:TopicSubscription")
    assert [(s.inputs["protocol"], s.inputs["endpoint"], s.inputs["topic"]) for s in subscriptions] == [
        ("email", "soc@example.com", topic.outputs["arn"])
    ]


def test_response_state_machine_is_standard_traced_and_logs_all_with_execution_data(resources):
    machine = state_machine(resources)
    assert machine.inputs["name"] == naming.state_machine_name(PREFIX, "response")
    assert machine.inputs["type"] == "STANDARD"
    assert machine.inputs["tracingConfiguration"] == {"enabled": True}
    logging = machine.inputs["loggingConfiguration"]
    assert logging["level"] == "ALL"
    assert logging["includeExecutionData"] is True
    log_group = named(resources, "security-response-logs")
    assert logging["logDestination"] == log_group.outputs["arn"] + ":*"
    assert log_group.inputs["kmsKeyId"] == named(resources, "security-key").outputs["arn"]
    assert log_group.inputs["retentionInDays"] == 30


def test_state_machine_role_invokes_exactly_the_functions_the_definition_calls(resources):
    machine = state_machine(resources)
    called = set(task_resources(json.loads(machine.inputs["definition"])))
    role = next(r for r in of_type(resources, "aws:iam/role:Role") if r.outputs["arn"] == machine.inputs["roleArn"])
    assert loads(role.inputs["assumeRolePolicy"])["Statement"][0]["Principal"] == {"Service": ["states.amazonaws.com"]}
    policy = statements(named(resources, "security-response-policy"))
    assert policy["InvokeResponseFunctions"]["Action"] == ["lambda:InvokeFunction"]
    invocable = set(policy["InvokeResponseFunctions"]["Resource"])
    non_triggers = {
        function(resources, spec.function).outputs["arn"] for spec in FUNCTIONS if spec.function not in TRIGGERS
    }
    assert invocable == non_triggers
    assert called <= invocable
    assert {function(resources, name).outputs["arn"] for name in TRIGGERS}.isdisjoint(called | invocable)
    for sid in ("DeliverExecutionLogs", "Tracing"):
        assert policy[sid]["Resource"] == "*"
        assert all(a.startswith(("logs:", "xray:")) for a in policy[sid]["Action"])


def test_every_lambda_is_arm64_python312_or_newer_with_a_retained_encrypted_log_group(resources):
    functions = of_type(resources, "aws:lambda/function:Function")
    assert sorted(f.inputs["name"] for f in functions) == sorted(
        naming.lambda_function_name(PREFIX, spec.function) for spec in FUNCTIONS
    )
    groups = {g.inputs["name"]: g for g in of_type(resources, "aws:cloudwatch/logGroup:LogGroup")}
    for fn in functions:
        assert fn.inputs["architectures"] == ["arm64"]
        runtime = fn.inputs["runtime"]
        assert runtime.startswith("python3.")
        assert int(runtime.removeprefix("python3.")) >= 12
        group = groups[fn.inputs["loggingConfig"]["logGroup"]]
        assert group.inputs["retentionInDays"] == 30
        assert group.inputs["kmsKeyId"] == named(resources, "security-key").outputs["arn"]


def test_lambdas_get_the_timeouts_and_memory_of_the_function_table(resources):
    for spec in FUNCTIONS:
        fn = function(resources, spec.function)
        assert (fn.inputs["timeout"], fn.inputs["memorySize"]) == (spec.timeout, spec.memory_size)


def test_each_lambda_role_policy_has_only_the_statements_of_its_access_kinds(resources):
    for spec in FUNCTIONS:
        expected = set().union(*(SIDS_BY_ACCESS[kind] for kind in spec.access)) if spec.access else {"TouchNoAccount"}
        if not CASE_TABLE_ACTIONS.get(spec.function, True):
            expected.discard("ReadWriteCases")  # case-table access, but it only writes the manifest
        if spec.function == RELEASE_FUNCTION:
            # Release acts through the member release role, never the responder role.
            expected = (expected - {"AssumeMemberResponderRoles"}) | {"AssumeMemberReleaseRoles"}
        assert set(function_policy(resources, spec.function)) == expected, spec.function


def test_image_volume_cannot_assume_member_roles(resources):
    assert MEMBER not in by_name()["image-volume"].access
    policy = function_policy(resources, "image-volume")
    assumable = [r for s in policy.values() if "sts:AssumeRole" in as_list(s["Action"]) for r in as_list(s["Resource"])]
    assert assumable == [naming.forensic_automation_role_arn(PREFIX, FORENSIC_ACCOUNT)]


def test_member_functions_may_assume_the_responder_role_of_every_configured_member(resources):
    policy = function_policy(resources, "contain")
    assert set(policy["AssumeMemberResponderRoles"]["Resource"]) == {
        naming.member_responder_role_arn(PREFIX, account, region) for account, region in MEMBERS
    }


def test_case_and_notify_grants_point_at_this_stacks_table_topic_key_and_secret(resources):
    policy = function_policy(resources, "open-case")
    assert policy["ReadWriteCases"]["Resource"] == named(resources, "security-cases").outputs["arn"]
    assert set(policy["ReadWriteCases"]["Action"]) == {"dynamodb:GetItem", "dynamodb:PutItem"}
    assert set(function_policy(resources, "close-case")["ReadWriteCases"]["Action"]) == {
        "dynamodb:GetItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
    }
    assert policy["PublishNotifications"] == {
        "Sid": "PublishNotifications",
        "Effect": "Allow",
        "Action": ["sns:Publish"],
        "Resource": named(resources, "security-notifications").outputs["arn"],
    }
    assert policy["ReadSlackWebhook"]["Resource"] == SLACK_SECRET
    assert policy["UseSecurityKey"]["Resource"] == named(resources, "security-key").outputs["arn"]


def test_trigger_lambdas_may_only_start_the_response_state_machine(resources):
    machine_arn = state_machine(resources).outputs["arn"]
    for name in TRIGGERS:
        assert function_policy(resources, name) == {
            "StartResponse": {
                "Sid": "StartResponse",
                "Effect": "Allow",
                "Action": ["states:StartExecution"],
                "Resource": machine_arn,
            }
        }
        env = function(resources, name).inputs["environment"]["variables"]
        assert env["IRF_RESPONSE_STATE_MACHINE_ARN"] == machine_arn
        assert float(env["IRF_GUARDDUTY_CONTAIN_SEVERITY"]) == 8.5
        assert json.loads(env["IRF_SECURITYHUB_ACTIONS"]) == {
            securityhub_action_arn(SECURITY, REGION, identifier): action
            for identifier, (_label, _description, action) in SECURITYHUB_ACTIONS.items()
        }


def test_every_lambda_knows_the_accounts_the_topic_and_the_retention(resources):
    topic_arn = named(resources, "security-notifications").outputs["arn"]
    for spec in FUNCTIONS:
        env = function(resources, spec.function).inputs["environment"]["variables"]
        assert env["IRF_PREFIX"] == PREFIX
        assert env["IRF_SECURITY_ACCOUNT"] == SECURITY
        assert env["IRF_FORENSIC_ACCOUNT"] == FORENSIC_ACCOUNT
        assert env["IRF_FORENSIC_REGION"] == REGION
        assert env["IRF_RETENTION_DAYS"] == "400"
        assert env["IRF_TOPIC_ARN"] == topic_arn


def test_event_bus_policy_lets_exactly_each_member_account_forward(resources):
    (bus_policy,) = of_type(resources, "aws:cloudwatch/eventBusPolicy:EventBusPolicy")
    assert bus_policy.inputs["eventBusName"] == "default"
    document = loads(bus_policy.inputs["policy"])
    principals = {s["Principal"]["AWS"] for s in document["Statement"]}
    assert principals == {f"arn:aws:iam::{account}:root" for account, _region in MEMBERS}
    assert {s["Action"] for s in document["Statement"]} == {"events:PutEvents"}
    assert {s["Resource"] for s in document["Statement"]} == {f"arn:aws:events:{REGION}:{SECURITY}:event-bus/default"}


@pytest.mark.parametrize(
    ("rule", "trigger", "starts", "ignores"),
    [
        # A wrong-case value is delivered: the Lambda ignores and logs it (DESIGN.md's contract).
        (
            "security-tag-change",
            "trigger-tag",
            ["tag_change_contain.json", "tag_change_analyze.json", "tag_change_wrong_case.json"],
            ["tag_change_other_tag.json"],
        ),
        ("security-guardduty", "trigger-guardduty", ["guardduty_backdoor_high.json"], ["guardduty_low.json"]),
        ("security-securityhub-action", "trigger-securityhub", ["securityhub_custom_action.json"], []),
    ],
)
def test_each_trigger_rule_sends_matching_events_to_its_lambda_and_may_invoke_it(
    resources, rule, trigger, starts, ignores
):
    event_rule = named(resources, rule)
    pattern = json.loads(event_rule.inputs["eventPattern"])
    for sample in starts:
        assert matches(pattern, load_event(sample)), sample
    for sample in ignores:
        assert not matches(pattern, load_event(sample)), sample
    target_fn = function(resources, trigger)
    target = named(resources, f"{rule}-target")
    assert (target.inputs["rule"], target.inputs["arn"]) == (event_rule.inputs["name"], target_fn.outputs["arn"])
    permission = named(resources, f"{rule}-invoke")
    assert permission.inputs["principal"] == "events.amazonaws.com"
    assert permission.inputs["action"] == "lambda:InvokeFunction"
    assert permission.inputs["function"] == target_fn.inputs["name"]
    assert permission.inputs["sourceArn"] == event_rule.outputs["arn"]


def test_tag_rule_accepts_tag_changes_only_from_configured_member_accounts(resources):
    pattern = json.loads(named(resources, "security-tag-change").inputs["eventPattern"])
    event = load_event("tag_change_contain.json")
    assert matches(pattern, {**event, "account": "444444444444"})
    assert not matches(pattern, {**event, "account": SECURITY})
    assert not matches(pattern, {**event, "account": "555555555555"})


def test_securityhub_custom_actions_exist_and_the_rule_names_their_arns(resources):
    targets = of_type(resources, "aws:securityhub/actionTarget:ActionTarget")
    assert {(t.inputs["identifier"], t.inputs["name"]) for t in targets} == {
        (identifier, label) for identifier, (label, _d, _a) in SECURITYHUB_ACTIONS.items()
    }
    pattern = json.loads(named(resources, "security-securityhub-action").inputs["eventPattern"])
    assert sorted(pattern["resources"]) == sorted(
        securityhub_action_arn(SECURITY, REGION, identifier) for identifier in SECURITYHUB_ACTIONS
    )
