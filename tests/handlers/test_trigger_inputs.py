"""Trigger events -> the response input: every input is a valid manual-execution input."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from handlers.common.case import parse_request
from handlers.common.errors import InvalidInput
from handlers.triggers.inputs import (
    MAX_FINDING_CHARS,
    input_from_guardduty,
    input_from_securityhub,
    input_from_tag_event,
)
from handlers.triggers.patterns import securityhub_action_arn, securityhub_action_map

EVENTS = Path(__file__).resolve().parent.parent / "events"
MEMBER = "333333333333"
REGION = "eu-west-1"
INSTANCE = "i-0abc1234def567890"
ACTIONS = securityhub_action_map("123456789012", REGION)


def load(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / f"{name}.json").read_text())


def test_contain_tag_becomes_a_contain_request_for_the_tagged_instance():
    request = input_from_tag_event(load("tag_change_contain"))
    parsed = parse_request(request)
    assert (parsed.instance_id, parsed.account, parsed.region) == (INSTANCE, MEMBER, REGION)
    assert parsed.action == "Contain"
    assert parsed.trigger == "tag"
    assert parsed.case_id is None, "the response's open_case step names the case"


def test_analyze_tag_becomes_an_analyze_request():
    parsed = parse_request(input_from_tag_event(load("tag_change_analyze")))
    assert parsed.action == "Analyze"
    assert parsed.instance_id == "i-0def5678abc123456"


def test_tag_request_records_which_event_started_it():
    event = load("tag_change_contain")
    request = input_from_tag_event(event)
    assert event["id"] in request["Finding"]
    assert "SecurityIncidentStatus=Contain" in request["Finding"]


def test_lowercase_tag_value_is_refused_naming_the_tag():
    with pytest.raises(InvalidInput) as raised:
        input_from_tag_event(load("tag_change_wrong_case"))
    assert list(raised.value.fields) == ["detail.tags.SecurityIncidentStatus"]
    assert "'contain'" in str(raised.value)


def test_tag_event_without_an_instance_arn_is_refused():
    event = load("tag_change_contain")
    event["resources"] = []
    with pytest.raises(InvalidInput) as raised:
        input_from_tag_event(event)
    assert "resources" in raised.value.fields


def test_high_guardduty_finding_contains_at_the_contain_threshold():
    request = input_from_guardduty(load("guardduty_backdoor_high"), contain_severity=8.0)
    parsed = parse_request(request)
    assert (parsed.instance_id, parsed.account, parsed.region) == (INSTANCE, MEMBER, REGION)
    assert parsed.action == "Contain"
    assert parsed.trigger == "guardduty"


def test_guardduty_finding_below_the_contain_threshold_is_analyzed():
    assert input_from_guardduty(load("guardduty_backdoor_high"), contain_severity=8.5)["Action"] == "Analyze"
    assert input_from_guardduty(load("guardduty_low"), contain_severity=8.0)["Action"] == "Analyze"


def test_guardduty_request_carries_finding_type_and_id():
    event = load("guardduty_backdoor_high")
    finding = input_from_guardduty(event, contain_severity=8.0)["Finding"]
    assert "Backdoor:EC2/C&CActivity.B" in finding
    assert event["detail"]["id"] in finding


def test_guardduty_account_comes_from_the_finding_not_the_delivering_account():
    # Delegated-administrator setup: the event is delivered in the security account.
    event = load("guardduty_backdoor_high")
    event["account"] = "123456789012"
    assert input_from_guardduty(event, contain_severity=8.0)["Account"] == MEMBER


def test_guardduty_finding_text_is_cut_to_the_contract_limit():
    event = load("guardduty_backdoor_high")
    event["detail"]["type"] = "Backdoor:EC2/" + "X" * 5000
    request = input_from_guardduty(event, contain_severity=8.0)
    assert len(request["Finding"]) == MAX_FINDING_CHARS
    parse_request(request)


def test_guardduty_iam_finding_is_refused_naming_the_resource_type():
    with pytest.raises(InvalidInput) as raised:
        input_from_guardduty(load("guardduty_iam"), contain_severity=8.0)
    assert list(raised.value.fields) == ["detail.resource.resourceType"]


def test_guardduty_finding_with_a_malformed_instance_id_fails_validation():
    event = load("guardduty_backdoor_high")
    event["detail"]["resource"]["instanceDetails"]["instanceId"] = "i-NOTANID"
    with pytest.raises(InvalidInput) as raised:
        input_from_guardduty(event, contain_severity=8.0)
    assert "InstanceId" in raised.value.fields


def test_security_hub_action_starts_one_request_for_the_ec2_finding_only(caplog):
    caplog.set_level(logging.INFO)
    requests = input_from_securityhub(load("securityhub_custom_action"), ACTIONS)
    assert len(requests) == 1
    parsed = parse_request(requests[0])
    assert (parsed.instance_id, parsed.account, parsed.region) == (INSTANCE, MEMBER, REGION)
    assert parsed.action == "Contain"
    assert parsed.trigger == "securityhub"
    assert "Command & Control" in parsed.finding
    skipped = [r for r in caplog.records if getattr(r, "resource_type", None) == "AwsS3Bucket"]
    assert [r.resource_id for r in skipped] == ["arn:aws:s3:::web-frontend-assets-333333333333"]


def test_security_hub_forensic_analysis_action_analyzes():
    event = load("securityhub_custom_action")
    event["resources"] = [securityhub_action_arn("123456789012", REGION, "IrfForensicAnalysis")]
    [request] = input_from_securityhub(event, ACTIONS)
    assert request["Action"] == "Analyze"


def test_security_hub_action_gives_one_request_per_distinct_instance():
    event = load("securityhub_custom_action")
    ec2_finding = event["detail"]["findings"][0]
    same_instance = json.loads(json.dumps(ec2_finding))
    same_instance["Id"] += "-second"
    other = json.loads(json.dumps(ec2_finding))
    other["Resources"][0]["Id"] = "arn:aws:ec2:eu-central-1:444444444444:instance/i-0fedcba9876543210"
    event["detail"]["findings"] += [same_instance, other]
    requests = input_from_securityhub(event, ACTIONS)
    assert [(r["Account"], r["Region"], r["InstanceId"]) for r in requests] == [
        (MEMBER, REGION, INSTANCE),
        ("444444444444", "eu-central-1", "i-0fedcba9876543210"),
    ]
    for request in requests:
        parse_request(request)


def test_security_hub_action_without_ec2_findings_gives_no_request():
    event = load("securityhub_custom_action")
    event["detail"]["findings"] = event["detail"]["findings"][1:]
    assert input_from_securityhub(event, ACTIONS) == []


def test_security_hub_action_that_is_not_ours_is_refused():
    event = load("securityhub_custom_action")
    event["resources"] = [securityhub_action_arn("123456789012", REGION, "SendToTicketing")]
    with pytest.raises(InvalidInput) as raised:
        input_from_securityhub(event, ACTIONS)
    assert "resources" in raised.value.fields


def test_every_sample_that_a_pattern_matches_gives_valid_inputs():
    produced = [
        input_from_tag_event(load("tag_change_contain")),
        input_from_tag_event(load("tag_change_analyze")),
        input_from_guardduty(load("guardduty_backdoor_high"), contain_severity=8.0),
        input_from_guardduty(load("guardduty_low"), contain_severity=8.0),
        *input_from_securityhub(load("securityhub_custom_action"), ACTIONS),
    ]
    for request in produced:
        assert parse_request(request).trigger in ("tag", "guardduty", "securityhub")
        assert json.loads(json.dumps(request)) == request
