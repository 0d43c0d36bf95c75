"""The trigger patterns against real-shaped sample events, and the local matcher against AWS's examples."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from handlers.triggers.patterns import (
    guardduty_pattern,
    matches,
    securityhub_action_arn,
    securityhub_action_map,
    securityhub_action_pattern,
    tag_change_pattern,
)

EVENTS = Path(__file__).resolve().parent.parent / "events"
DEFAULT_PREFIXES = ["Backdoor:EC2", "CryptoCurrency:EC2", "Trojan:EC2", "UnauthorizedAccess:EC2"]
SECURITY_ACCOUNT = "123456789012"
REGION = "eu-west-1"


def load(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / f"{name}.json").read_text())


def all_events() -> dict[str, dict[str, Any]]:
    return {path.stem: json.loads(path.read_text()) for path in sorted(EVENTS.glob("*.json"))}


def security_hub_pattern() -> dict[str, Any]:
    return securityhub_action_pattern(sorted(securityhub_action_map(SECURITY_ACCOUNT, REGION)))


# --- our patterns against the sample events -----------------------------------------------------


def test_tag_pattern_delivers_every_change_of_the_incident_tag_and_nothing_else():
    matched = {name for name, event in all_events().items() if matches(tag_change_pattern(), event)}
    assert matched == {"tag_change_contain", "tag_change_analyze", "tag_change_wrong_case"}


def test_a_lowercase_contain_value_reaches_the_lambda_which_ignores_and_logs_it():
    # The contract: any other value is ignored *and logged* (tests/handlers/test_trigger_handler.py
    # shows the Lambda starting nothing and saying why); the rule must deliver it for that.
    assert matches(tag_change_pattern(), load("tag_change_wrong_case"))


def test_tag_pattern_ignores_the_case_id_tag_the_flow_writes_back():
    event = load("tag_change_other_tag")
    assert event["detail"]["tags"]["SecurityIncidentStatus"] == "Contain"
    assert not matches(tag_change_pattern(), event)


def test_tag_pattern_ignores_removal_of_the_incident_tag():
    event = load("tag_change_contain")
    del event["detail"]["tags"]["SecurityIncidentStatus"]
    assert event["detail"]["changed-tag-keys"] == ["SecurityIncidentStatus"]
    assert not matches(tag_change_pattern(), event)


def test_tag_pattern_ignores_the_same_tag_on_a_volume():
    event = load("tag_change_contain")
    event["detail"]["resource-type"] = "volume"
    event["resources"] = [f"arn:aws:ec2:{REGION}:333333333333:volume/vol-0abc1234def567890"]
    assert not matches(tag_change_pattern(), event)


def test_guardduty_pattern_matches_only_the_high_severity_ec2_finding():
    pattern = guardduty_pattern(7.0, DEFAULT_PREFIXES)
    matched = {name for name, event in all_events().items() if matches(pattern, event)}
    assert matched == {"guardduty_backdoor_high"}


def test_guardduty_low_finding_is_filtered_by_severity_not_by_type():
    event = load("guardduty_low")
    assert not matches(guardduty_pattern(7.0, DEFAULT_PREFIXES), event)
    assert matches(guardduty_pattern(2.0, DEFAULT_PREFIXES), event)
    assert not matches(guardduty_pattern(2.1, DEFAULT_PREFIXES), event)


def test_guardduty_iam_finding_never_matches_even_at_severity_zero():
    event = load("guardduty_iam")
    assert not matches(guardduty_pattern(0.0, DEFAULT_PREFIXES), event)
    # Even with a prefix that covers its type, the resource is an access key, not an instance.
    assert not matches(guardduty_pattern(0.0, ["UnauthorizedAccess:"]), event)


def test_guardduty_pattern_honours_configured_prefixes():
    event = load("guardduty_backdoor_high")
    assert not matches(guardduty_pattern(7.0, ["CryptoCurrency:EC2"]), event)
    assert matches(guardduty_pattern(7.0, ["CryptoCurrency:EC2", "Backdoor:"]), event)


def test_guardduty_pattern_threshold_is_inclusive():
    event = load("guardduty_backdoor_high")
    assert matches(guardduty_pattern(8.0, DEFAULT_PREFIXES), event)
    assert not matches(guardduty_pattern(8.1, DEFAULT_PREFIXES), event)


def test_guardduty_pattern_uses_numeric_and_prefix_filters():
    detail = guardduty_pattern(6.5, ["Trojan:EC2"])["detail"]
    assert detail["severity"] == [{"numeric": [">=", 6.5]}]
    assert detail["type"] == [{"prefix": "Trojan:EC2"}]
    assert detail["resource"] == {"resourceType": ["Instance"]}


def test_security_hub_pattern_matches_our_custom_action_on_ec2_findings():
    matched = {name for name, event in all_events().items() if matches(security_hub_pattern(), event)}
    assert matched == {"securityhub_custom_action"}


def test_security_hub_pattern_ignores_another_teams_custom_action():
    event = load("securityhub_custom_action")
    event["resources"] = [securityhub_action_arn(SECURITY_ACCOUNT, REGION, "SendToTicketing")]
    assert not matches(security_hub_pattern(), event)


def test_security_hub_pattern_ignores_an_action_on_findings_without_an_instance():
    event = load("securityhub_custom_action")
    event["detail"]["findings"] = [
        f for f in event["detail"]["findings"] if f["Resources"][0]["Type"] != "AwsEc2Instance"
    ]
    assert len(event["detail"]["findings"]) == 1
    assert not matches(security_hub_pattern(), event)


def test_security_hub_actions_are_named_within_security_hub_limits():
    arns = securityhub_action_map(SECURITY_ACCOUNT, REGION)
    assert sorted(arns.values()) == ["Analyze", "Contain"]
    for arn in arns:
        action_id = arn.rsplit("/", 1)[-1]
        assert action_id.isalnum() and len(action_id) <= 20


def test_patterns_are_plain_json_for_eventbridge():
    for pattern in (tag_change_pattern(), guardduty_pattern(7, DEFAULT_PREFIXES), security_hub_pattern()):
        assert json.loads(json.dumps(pattern)) == pattern


@pytest.mark.parametrize(("severity", "prefixes"), [(11, DEFAULT_PREFIXES), (-1, DEFAULT_PREFIXES), (7, []), (7, [""])])
def test_guardduty_pattern_refuses_bad_configuration(severity, prefixes):
    with pytest.raises(ValueError):
        guardduty_pattern(severity, prefixes)


def test_security_hub_pattern_refuses_a_non_action_arn():
    with pytest.raises(ValueError, match="action/custom"):
        securityhub_action_pattern(["arn:aws:sns:eu-west-1:123456789012:topic"])
    with pytest.raises(ValueError):
        securityhub_action_pattern([])


# --- the matcher against the cases AWS documents for each operator ------------------------------
# Sources: EventBridge user guide ("Content filtering in Amazon EventBridge event patterns",
# "Arrays in Amazon EventBridge event patterns") and the aws/event-ruler README, whose sample
# event is used by the numeric and complex examples.

RULER_EVENT: dict[str, Any] = {
    "version": "0",
    "id": "ddddd4-aaaa-7777-4444-345dd43cc333",
    "detail-type": "EC2 Instance State-change Notification",
    "source": "aws.ec2",
    "account": "012345679012",
    "time": "2017-10-02T16:24:49Z",
    "region": "us-east-1",
    "resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-000000aaaaaa00000"],
    "detail": {
        "c-count": 5,
        "d-count": 3,
        "x-limit": 301.8,
        "source-ip": "10.0.0.33",
        "instance-id": "i-000000aaaaaa00000",
        "state": "running",
    },
}


def ruler_event(**detail: Any) -> dict[str, Any]:
    event = copy.deepcopy(RULER_EVENT)
    event["detail"].update(detail)
    return event


def test_documented_simple_match_ignores_fields_the_pattern_does_not_name():
    pattern = {
        "detail-type": ["EC2 Instance State-change Notification"],
        "resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-000000aaaaaa00000"],
        "detail": {"state": ["initializing", "running"]},
    }
    assert matches(pattern, RULER_EVENT)
    assert matches(pattern, ruler_event(state="initializing"))
    assert not matches(pattern, ruler_event(state="stopped"))


def test_documented_array_match_needs_a_non_empty_intersection():
    pattern = {
        "resources": [
            "arn:aws:ec2:us-east-1:123456789012:instance/i-b188560f",
            "arn:aws:ec2:us-east-1:111122223333:instance/i-b188560f",
            "arn:aws:ec2:us-east-1:444455556666:instance/i-b188560f",
        ]
    }
    event = {
        "resources": [
            "arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:eb56d16b-bbf0-401d-b893-d5978ed4a025:"
            "autoScalingGroupName/ASGTerminate",
            "arn:aws:ec2:us-east-1:123456789012:instance/i-b188560f",
        ]
    }
    assert matches(pattern, event)
    assert not matches(pattern, {"resources": event["resources"][:1]})


def test_event_must_hold_every_field_the_pattern_names():
    pattern = {"source": ["aws.ec2"], "detail": {"state": ["running"]}}
    assert not matches(pattern, {"source": "aws.ec2"})
    assert not matches(pattern, {"detail": {"state": "running"}})


def test_documented_prefix_match():
    pattern = {"time": [{"prefix": "2017-10-02"}]}
    assert matches(pattern, {"time": "2017-10-02T18:43:48Z"})
    assert not matches(pattern, {"time": "2017-10-03T18:43:48Z"})
    assert not matches({"n": [{"prefix": "1"}]}, {"n": 12}), "prefix only applies to strings"


def test_documented_anything_but_string_and_number():
    assert matches({"detail": {"state": [{"anything-but": "initializing"}]}}, RULER_EVENT)
    assert not matches({"detail": {"state": [{"anything-but": "initializing"}]}}, ruler_event(state="initializing"))
    assert matches({"detail": {"x-limit": [{"anything-but": 123}]}}, RULER_EVENT)
    assert not matches({"detail": {"x-limit": [{"anything-but": 123}]}}, ruler_event(**{"x-limit": 123}))


def test_documented_anything_but_lists():
    strings = {"detail": {"state": [{"anything-but": ["stopped", "overloaded"]}]}}
    assert matches(strings, RULER_EVENT)
    assert not matches(strings, ruler_event(state="overloaded"))
    numbers = {"detail": {"x-limit": [{"anything-but": [100, 200, 300]}]}}
    assert matches(numbers, RULER_EVENT)
    assert not matches(numbers, ruler_event(**{"x-limit": 200}))


def test_documented_anything_but_prefix():
    pattern = {"detail": {"state": [{"anything-but": {"prefix": "init"}}]}}
    assert matches(pattern, RULER_EVENT)
    assert not matches(pattern, ruler_event(state="initializing"))


def test_documented_numeric_match_on_every_field():
    pattern = {
        "detail": {
            "c-count": [{"numeric": [">", 0, "<=", 5]}],
            "d-count": [{"numeric": ["<", 10]}],
            "x-limit": [{"numeric": ["=", 3.018e2]}],
        }
    }
    assert matches(pattern, RULER_EVENT)
    assert not matches(pattern, ruler_event(**{"c-count": 0}))
    assert not matches(pattern, ruler_event(**{"c-count": 6}))
    assert not matches(pattern, ruler_event(**{"d-count": 10}))
    assert not matches(pattern, ruler_event(**{"x-limit": 301.9}))


def test_numeric_match_only_applies_to_json_numbers():
    pattern = {"detail": {"severity": [{"numeric": [">=", 7]}]}}
    assert matches(pattern, {"detail": {"severity": 8}})
    assert not matches(pattern, {"detail": {"severity": "8"}})
    assert not matches(pattern, {"detail": {"severity": True}})


def test_documented_exists_true():
    pattern = {"detail": {"state": [{"exists": True}]}}
    event = {
        "version": "0",
        "id": "7bf73129-1428-4cd3-a780-95db273d1602",
        "detail-type": "EC2 Instance State-change Notification",
        "source": "aws.ec2",
        "account": "123456789012",
        "time": "2015-11-11T21:29:54Z",
        "region": "us-east-1",
        "resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-abcd1111"],
        "detail": {"instance-id": "i-abcd1111", "state": "pending"},
    }
    assert matches(pattern, event)
    no_state = {
        "detail-type": ["EC2 Instance State-change Notification"],
        "resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-02ebd4584a2ebd341"],
        "detail": {"c-count": {"c1": 100}},
    }
    assert not matches(pattern, no_state)


def test_documented_exists_false_only_sees_leaf_nodes():
    pattern = {"detail": {"c-count": [{"exists": False}]}}
    without: dict[str, Any] = {
        "detail-type": ["EC2 Instance State-change Notification"],
        "resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-000000aaaaaa00000"],
        "detail": {"state": ["initializing", "running"]},
    }
    assert matches(pattern, without)
    # c-count is an object, not a leaf: exists matching does not see it.
    with_object = copy.deepcopy(without)
    with_object["detail"]["c-count"] = {"c1": 100}
    assert matches(pattern, with_object)
    assert not matches(pattern, RULER_EVENT)


def test_documented_complex_example():
    pattern = {
        "time": [{"prefix": "2017-10-02"}],
        "detail": {
            "state": [{"anything-but": "initializing"}],
            "c-count": [{"numeric": [">", 0, "<=", 5]}],
            "d-count": [{"numeric": ["<", 10]}],
            "x-limit": [{"anything-but": [100, 200, 300]}],
        },
    }
    assert matches(pattern, RULER_EVENT)
    assert not matches(pattern, ruler_event(**{"x-limit": 300}))


def test_documented_arrays_of_objects_match_within_one_element():
    event = {
        "employees": [
            {"firstName": "John", "lastName": "Doe"},
            {"firstName": "Anna", "lastName": "Smith"},
            {"firstName": "Peter", "lastName": "Jones"},
        ]
    }
    assert matches({"employees": {"firstName": ["Anna"]}}, event)
    assert matches({"employees": {"firstName": ["Anna"], "lastName": ["Smith"]}}, event)
    assert not matches({"employees": {"firstName": ["Anna"], "lastName": ["Jones"]}}, event)
    nested = {
        "employees": [
            [{"firstName": "John", "lastName": "Doe"}, {"firstName": "Anna", "lastName": "Smith"}],
            [{"firstName": "Peter", "lastName": "Jones"}],
        ]
    }
    assert matches({"employees": {"firstName": ["Peter"]}}, nested)


def test_exact_match_is_type_sensitive():
    assert matches({"Price": [100]}, {"Price": 100})
    assert not matches({"Price": [100]}, {"Price": "100"})
    assert not matches({"flag": [1]}, {"flag": True})
    assert matches({"UserID": [None]}, {"UserID": None})
    assert matches({"LastName": [""]}, {"LastName": ""})


@pytest.mark.parametrize(
    "operator", [{"suffix": ".png"}, {"wildcard": "*/lib/*"}, {"cidr": "10.0.0.0/24"}, {"equals-ignore-case": "alice"}]
)
def test_matcher_refuses_operators_outside_its_subset(operator):
    with pytest.raises(ValueError, match="not in the subset"):
        matches({"field": [operator]}, {"field": "x"})


def test_matcher_refuses_or_rather_than_misreading_it():
    with pytest.raises(ValueError, match="not in the subset"):
        matches({"$or": [{"a": ["1"]}, {"b": ["2"]}]}, {"a": "1"})
