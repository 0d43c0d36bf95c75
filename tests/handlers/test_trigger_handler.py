"""Trigger Lambdas on moto: the right executions start, duplicates within the window do not."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from handlers.common.case import parse_request
from handlers.common.settings import Settings
from handlers.triggers.handler import (
    MAX_EXECUTION_NAME,
    event_epoch,
    execution_name,
    on_guardduty_finding,
    on_securityhub_action,
    on_tag_change,
)
from handlers.triggers.patterns import securityhub_action_map
from simulation.local_aws import FORENSIC_ACCOUNT, PREFIX, REGION, SECURITY_ACCOUNT

EVENTS = Path(__file__).resolve().parent.parent / "events"
PASS_ONLY = {"StartAt": "Respond", "States": {"Respond": {"Type": "Pass", "End": True}}}


def load(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / f"{name}.json").read_text())


@pytest.fixture
def sfn(aws: None) -> Any:
    return boto3.client("stepfunctions", region_name=REGION)


@pytest.fixture
def settings(sfn: Any) -> Settings:
    arn = sfn.create_state_machine(
        name="acme-ir-response",
        definition=json.dumps(PASS_ONLY),
        roleArn=f"arn:aws:iam::{SECURITY_ACCOUNT}:role/acme-ir-response",
    )["stateMachineArn"]
    return Settings(
        prefix=PREFIX,
        security_account=SECURITY_ACCOUNT,
        forensic_account=FORENSIC_ACCOUNT,
        forensic_region=REGION,
        response_state_machine_arn=arn,
        guardduty_contain_severity=8.0,
        securityhub_actions=securityhub_action_map(SECURITY_ACCOUNT, REGION),
    )


def executions(sfn: Any, settings: Settings) -> list[dict[str, Any]]:
    found = sfn.list_executions(stateMachineArn=settings.response_state_machine_arn)["executions"]
    return [{**e, "input": json.loads(sfn.describe_execution(executionArn=e["executionArn"])["input"])} for e in found]


def test_contain_tag_starts_one_execution_with_the_contract_input(sfn, settings):
    result = on_tag_change(load("tag_change_contain"), None, settings=settings, sfn=sfn)
    [started] = executions(sfn, settings)
    assert result["Responses"][0]["ExecutionArn"] == started["executionArn"]
    assert result["Responses"][0]["Status"] == "started"
    request = parse_request(started["input"])
    assert (request.instance_id, request.account, request.region, request.action, request.trigger) == (
        "i-0abc1234def567890",
        "333333333333",
        "eu-west-1",
        "Contain",
        "tag",
    )


def test_two_identical_tag_events_start_exactly_one_execution(sfn, settings):
    first = on_tag_change(load("tag_change_contain"), None, settings=settings, sfn=sfn)
    second = on_tag_change(load("tag_change_contain"), None, settings=settings, sfn=sfn)
    assert len(executions(sfn, settings)) == 1
    assert first["Responses"][0]["ExecutionArn"] == second["Responses"][0]["ExecutionArn"]


def test_tag_events_for_different_instances_start_two_executions(sfn, settings):
    on_tag_change(load("tag_change_contain"), None, settings=settings, sfn=sfn)
    on_tag_change(load("tag_change_analyze"), None, settings=settings, sfn=sfn)
    started = executions(sfn, settings)
    assert sorted(e["input"]["InstanceId"] for e in started) == ["i-0abc1234def567890", "i-0def5678abc123456"]


def test_a_guardduty_finding_right_after_the_tag_starts_nothing_new(sfn, settings):
    on_tag_change(load("tag_change_contain"), None, settings=settings, sfn=sfn)
    finding = load("guardduty_backdoor_high")
    finding["time"] = "2024-05-14T09:32:40Z"  # 93 s after the tag change, same instance
    result = on_guardduty_finding(finding, None, settings=settings, sfn=sfn)
    assert result["Responses"][0]["Status"] == "already-started"
    [started] = executions(sfn, settings)
    assert started["input"]["Trigger"] == "tag"
    assert result["Responses"][0]["ExecutionArn"] == started["executionArn"]


def test_the_same_instance_in_a_later_window_starts_again_for_the_open_case_check_to_stop(sfn, settings):
    on_tag_change(load("tag_change_contain"), None, settings=settings, sfn=sfn)
    later = load("tag_change_contain")
    later["time"] = "2024-05-14T09:41:07Z"
    on_tag_change(later, None, settings=settings, sfn=sfn)
    assert len(executions(sfn, settings)) == 2


def test_wrong_case_tag_starts_nothing_and_says_why(sfn, settings):
    result = on_tag_change(load("tag_change_wrong_case"), None, settings=settings, sfn=sfn)
    assert result["Responses"] == []
    assert "'contain'" in result["Ignored"]
    assert executions(sfn, settings) == []


def test_high_guardduty_finding_starts_a_contain_execution_from_the_lambda_environment(sfn, settings, monkeypatch):
    for key, value in settings.to_env().items():
        monkeypatch.setenv(key, value)
    on_guardduty_finding(load("guardduty_backdoor_high"), None)
    [started] = executions(sfn, settings)
    request = parse_request(started["input"])
    assert (request.action, request.trigger) == ("Contain", "guardduty")
    assert "Backdoor:EC2/C&CActivity.B" in request.finding


def test_guardduty_iam_finding_starts_nothing(sfn, settings):
    result = on_guardduty_finding(load("guardduty_iam"), None, settings=settings, sfn=sfn)
    assert result["Responses"] == []
    assert executions(sfn, settings) == []


def test_security_hub_action_starts_one_execution_for_the_ec2_instance_only(sfn, settings):
    result = on_securityhub_action(load("securityhub_custom_action"), None, settings=settings, sfn=sfn)
    [started] = executions(sfn, settings)
    assert [r["InstanceId"] for r in result["Responses"]] == ["i-0abc1234def567890"]
    assert started["input"]["Action"] == "Contain"
    assert started["input"]["Trigger"] == "securityhub"


def test_security_hub_double_click_starts_one_execution(sfn, settings):
    event = load("securityhub_custom_action")
    on_securityhub_action(event, None, settings=settings, sfn=sfn)
    on_securityhub_action(event, None, settings=settings, sfn=sfn)
    assert len(executions(sfn, settings)) == 1


def test_other_start_failures_are_raised_so_eventbridge_retries(sfn, settings):
    gone = replace(settings, response_state_machine_arn=settings.response_state_machine_arn + "-deleted")
    with pytest.raises(ClientError):
        on_tag_change(load("tag_change_contain"), None, settings=gone, sfn=sfn)


def test_execution_name_is_deterministic_short_and_safe():
    request = {"InstanceId": "i-0abc1234def567890", "Account": "333333333333", "Region": "us-gov-west-1"}
    name = execution_name(request, 1715679067)
    assert name == execution_name(request, 1715679067 + 100) == "i-0abc1234def567890-333333333333-us-gov-west-1-5718930"
    assert execution_name(request, 1715679067 + 300) != name
    assert len(execution_name({**request, "InstanceId": "i-" + "f" * 200}, 0)) == MAX_EXECUTION_NAME
    assert re.fullmatch(r"[A-Za-z0-9_-]+", execution_name({**request, "Region": "eu west/1:x"}, 0))


def test_event_time_is_used_so_a_redelivery_lands_in_the_same_window():
    assert event_epoch({"time": "2024-05-14T09:31:07Z"}, now=lambda: 0) == 1715679067
    assert event_epoch({}, now=lambda: 1234.9) == 1234
    assert event_epoch({"time": "yesterday"}, now=lambda: 42) == 42


def test_settings_refuse_an_action_map_with_a_bad_action():
    deployment = Settings(
        prefix=PREFIX, security_account=SECURITY_ACCOUNT, forensic_account=FORENSIC_ACCOUNT, forensic_region=REGION
    ).to_env()
    with pytest.raises(RuntimeError, match="IRF_SECURITYHUB_ACTIONS"):
        Settings.from_env(
            {
                **deployment,
                "IRF_RESPONSE_STATE_MACHINE_ARN": "arn:x",
                "IRF_SECURITYHUB_ACTIONS": json.dumps({"arn:y": "contain"}),
            }
        )
    # The trigger Lambdas cannot start anything without the response state machine's ARN.
    with pytest.raises(RuntimeError, match="IRF_RESPONSE_STATE_MACHINE_ARN"):
        on_tag_change(load("tag_change_contain"), None, settings=Settings.from_env(deployment), sfn=None)
