"""Notifications: one concise message per stage, read back from SNS; Slack never leaks its webhook."""

from __future__ import annotations

import http.server
import json
import logging
import threading
from typing import Any

import boto3
import pytest

from handlers.common.notify import (
    MAX_SUBJECT,
    STAGES,
    Delivery,
    format_message,
    notify,
    post_slack,
    post_with_urllib,
)
from simulation.local_aws import REGION

WEBHOOK = "https://hooks.slack.com/services/T0IRF0000/B0IRF0000/s3cr3tT0k3nV4lu3xyz"
CASE: dict[str, Any] = {
    "CaseId": "333333333333-i-0abc1234def567890-eu-west-1-1715679067",
    "InstanceId": "i-0abc1234def567890",
    "Account": "333333333333",
    "Region": "eu-west-1",
    "Action": "Contain",
    "Trigger": "guardduty",
    "DryRun": False,
    "Finding": "GuardDuty Backdoor:EC2/C&CActivity.B severity 8 finding a4c7b2e9d1f04e3a8b6c5d7e9f0a1b2c",
}
DISK_SHA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
MEMORY_SHA = "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752"


def stage_case(stage: str) -> dict[str, Any]:
    """What the response's handlers pass at each stage (handlers/case, handlers/isolation)."""
    case_id = CASE["CaseId"]
    by_stage: dict[str, dict[str, Any]] = {
        "opened": {**CASE, "CaseIdGiven": None},
        "contained": {
            **CASE,
            "Contained": True,
            "Changes": 7,
            "Before": f"{case_id}/containment/before.json",
            "After": f"{case_id}/containment/after.json",
        },
        # finalize_case sends no InstanceId: it comes from the generated case id.
        "acquired": {
            "CaseId": case_id,
            "Images": [
                {
                    "Done": True,
                    "Key": f"{case_id}/disk/vol-0a1b2c3d4e5f60718.img",
                    "Sha256": DISK_SHA,
                    "Size": 8589934592,
                }
            ],
            "Memory": {
                "Acquired": True,
                "Key": f"{case_id}/memory/i-0abc1234def567890.lime",
                "Sha256": MEMORY_SHA,
                "Size": 4294967296,
            },
            "Manifest": f"s3://acme-ir-artifacts-222222222222-eu-west-1/{case_id}/manifest.json",
        },
        "examined": {
            **CASE,
            "ReportUrl": f"s3://acme-ir-artifacts-222222222222-eu-west-1/{case_id}/report/report.html",
        },
        # record_failure sends the custody failure record.
        "failed": {
            "CaseId": case_id,
            "error": "AcquisitionFailed",
            "stage": "ImageVolumes",
            "cause": json.dumps(
                {
                    "errorType": "AcquisitionFailed",
                    "errorMessage": "snapshot snap-0123456789abcdef0 failed: error state",
                    "stackTrace": ['  File "handler.py", line 1'],
                }
            ),
            "contained_after_failure": {"CaseId": case_id, "Contained": True, "Changes": 0},
        },
        # open_case sends the case that is already open.
        "duplicate": {
            "CaseId": "333333333333-i-0abc1234def567890-eu-west-1-1715670000",
            "InstanceId": "i-0abc1234def567890",
            "Account": "333333333333",
            "Region": "eu-west-1",
        },
    }
    return by_stage[stage]


@pytest.fixture
def topic_with_queue(aws: None) -> tuple[Any, str, Any, str]:
    sns = boto3.client("sns", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    topic_arn = sns.create_topic(Name="acme-ir-notifications")["TopicArn"]
    queue_url = sqs.create_queue(QueueName="responders")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
    return sns, topic_arn, sqs, queue_url


@pytest.fixture
def slack_secret(aws: None) -> tuple[Any, str]:
    secrets = boto3.client("secretsmanager", region_name=REGION)
    arn = secrets.create_secret(Name="acme/irforensics/slack", SecretString=WEBHOOK)["ARN"]
    return secrets, arn


def received(sqs: Any, queue_url: str) -> list[dict[str, Any]]:
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in messages]


class FakeSlack:
    """Stands in for the webhook endpoint: records what was posted, answers with `status`."""

    def __init__(self, status: int = 200, error: Exception | None = None) -> None:
        self.status = status
        self.error = error
        self.posts: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, url: str, payload: bytes) -> int:
        self.posts.append((url, json.loads(payload)))
        if self.error:
            raise self.error
        return self.status


def everything_logged(caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> str:
    records = "\n".join(json.dumps(vars(r), default=str) for r in caplog.records)
    captured = capsys.readouterr()
    return records + captured.out + captured.err


# --- format_message ----------------------------------------------------------------------------


@pytest.mark.parametrize("stage", STAGES)
def test_every_stage_has_a_short_subject_naming_the_instance(stage):
    case = stage_case(stage)
    message = format_message(stage, case)
    assert len(message.subject) <= MAX_SUBJECT
    assert "i-0abc1234def567890" in message.subject
    assert message.subject.isascii() and "\n" not in message.subject
    assert case["CaseId"] in message.body
    assert "(333333333333/eu-west-1)" in message.body
    assert len(message.body) < 2000


def test_acquired_message_lists_each_image_and_the_memory_dump_with_hashes():
    case = stage_case("acquired")
    message = format_message("acquired", case)
    assert "(1 disk images)" in message.subject
    assert f"{DISK_SHA}  {CASE['CaseId']}/disk/vol-0a1b2c3d4e5f60718.img (8589934592 bytes)" in message.body
    assert f"{MEMORY_SHA}  {CASE['CaseId']}/memory/i-0abc1234def567890.lime" in message.body
    assert case["Manifest"] in message.body


def test_acquired_message_says_why_memory_was_not_acquired():
    case = {**stage_case("acquired"), "Memory": {"Acquired": False, "Reason": "no LiME module for 6.1.90"}}
    assert "Memory:   no LiME module for 6.1.90" in format_message("acquired", case).body


def test_examined_message_gives_the_report_location():
    case = stage_case("examined")
    assert case["ReportUrl"] in format_message("examined", case).body


def test_failed_message_says_what_failed_where_and_why_without_the_stack_trace():
    message = format_message("failed", stage_case("failed"))
    assert "ImageVolumes" in message.subject
    assert "ImageVolumes: AcquisitionFailed" in message.body
    assert "snapshot snap-0123456789abcdef0 failed: error state" in message.body
    assert "stackTrace" not in message.body
    assert "Containment after the failure: re-applied" in message.body


def test_failed_message_warns_when_containment_could_not_be_re_applied():
    case = {**stage_case("failed"), "contained_after_failure": {"Error": "ResponderUnavailable", "Cause": "..."}}
    assert "re-applying containment FAILED (ResponderUnavailable)" in format_message("failed", case).body


def test_duplicate_message_names_the_case_already_open():
    message = format_message("duplicate", stage_case("duplicate"))
    assert message.case_id == "333333333333-i-0abc1234def567890-eu-west-1-1715670000"
    assert "already has an open case" in message.subject


def test_contained_message_points_at_the_containment_record():
    body = format_message("contained", stage_case("contained")).body
    assert "Changes:  7" in body
    assert f"{CASE['CaseId']}/containment/before.json" in body


def test_dry_run_is_visible_in_the_contained_message():
    message = format_message("contained", {**stage_case("contained"), "DryRun": True, "Contained": False})
    assert "dry run" in message.subject
    assert "nothing is changed" in message.body


def test_subject_is_cut_to_the_sns_limit_and_kept_ascii():
    case = {**stage_case("failed"), "stage": "Step\u2013with\u2013dashes " + "x" * 200}
    subject = format_message("failed", case).subject
    assert len(subject) == MAX_SUBJECT
    assert subject.isascii() and subject.endswith("...")


def test_unknown_stage_and_missing_case_id_are_refused():
    with pytest.raises(ValueError, match="stage"):
        format_message("released", CASE)
    with pytest.raises(ValueError, match="CaseId"):
        format_message("opened", {"InstanceId": "i-0abc1234def567890"})


# --- SNS --------------------------------------------------------------------------------------


def test_notify_publishes_the_stage_message_to_the_topic(topic_with_queue):
    sns, topic_arn, sqs, queue_url = topic_with_queue
    delivery = notify("examined", stage_case("examined"), sns_client=sns, topic_arn=topic_arn)
    [envelope] = received(sqs, queue_url)
    expected = format_message("examined", stage_case("examined"))
    assert envelope["MessageId"] == delivery.sns_message_id
    assert envelope["Subject"] == expected.subject
    assert envelope["Message"] == expected.body
    assert envelope["MessageAttributes"]["stage"] == {"Type": "String", "Value": "examined"}
    assert envelope["MessageAttributes"]["case_id"] == {"Type": "String", "Value": CASE["CaseId"]}
    assert delivery.slack_posted is None


def test_notify_swallows_an_sns_failure(aws, caplog):
    sns = boto3.client("sns", region_name=REGION)
    missing = f"arn:aws:sns:{REGION}:123456789012:no-such-topic"
    with caplog.at_level(logging.WARNING):
        delivery = notify("opened", CASE, sns_client=sns, topic_arn=missing)
    assert delivery == Delivery(sns_message_id=None, slack_posted=None)
    assert any(getattr(r, "topic_arn", None) == missing for r in caplog.records)


def test_notify_logs_unformattable_case_data_instead_of_failing_the_response(topic_with_queue, caplog):
    sns, topic_arn, sqs, queue_url = topic_with_queue
    # What open_case builds today when no CaseId was given: the request's None overwrites it.
    case = {"CaseId": CASE["CaseId"], **{**CASE, "CaseId": None}}
    with caplog.at_level(logging.ERROR):
        delivery = notify("opened", case, sns_client=sns, topic_arn=topic_arn)
    assert delivery == Delivery(sns_message_id=None, slack_posted=None)
    assert received(sqs, queue_url) == []
    assert [r.levelname for r in caplog.records] == ["ERROR"]


def test_notify_sends_to_sns_and_slack_when_both_are_configured(topic_with_queue, slack_secret):
    sns, topic_arn, sqs, queue_url = topic_with_queue
    secrets, secret_arn = slack_secret
    slack = FakeSlack()
    delivery = notify(
        "opened",
        CASE,
        sns_client=sns,
        topic_arn=topic_arn,
        secrets_client=secrets,
        slack_secret_arn=secret_arn,
        slack_post=slack,
    )
    assert delivery.slack_posted is True
    assert len(received(sqs, queue_url)) == 1
    assert [url for url, _ in slack.posts] == [WEBHOOK]


# --- Slack ------------------------------------------------------------------------------------


def test_slack_gets_the_message_from_the_url_in_secrets_manager(slack_secret, caplog, capsys):
    secrets, secret_arn = slack_secret
    slack = FakeSlack()
    message = format_message("acquired", stage_case("acquired"))
    with caplog.at_level(logging.DEBUG):
        assert post_slack(secrets, secret_arn, message, post=slack) is True
    [(url, payload)] = slack.posts
    assert url == WEBHOOK
    assert message.subject.replace("&", "&amp;") in payload["text"]
    assert DISK_SHA in payload["text"]
    assert WEBHOOK not in payload["text"]
    assert "s3cr3tT0k3n" not in everything_logged(caplog, capsys)


def test_slack_secret_may_be_json_with_the_webhook_url(aws):
    secrets = boto3.client("secretsmanager", region_name=REGION)
    arn = secrets.create_secret(Name="slack-json", SecretString=json.dumps({"webhook_url": WEBHOOK}))["ARN"]
    slack = FakeSlack()
    assert post_slack(secrets, arn, format_message("opened", CASE), post=slack) is True
    assert slack.posts[0][0] == WEBHOOK


def test_slack_failure_is_logged_without_the_webhook_and_not_raised(slack_secret, caplog, capsys):
    secrets, secret_arn = slack_secret
    slack = FakeSlack(error=OSError(f"connection reset while posting to {WEBHOOK}"))
    with caplog.at_level(logging.DEBUG):
        assert post_slack(secrets, secret_arn, format_message("failed", stage_case("failed")), post=slack) is False
    failures = [r for r in caplog.records if r.getMessage() == "Slack notification failed"]
    assert [r.error for r in failures] == ["OSError"]
    assert "<webhook>" in failures[0].reason
    assert "s3cr3tT0k3n" not in everything_logged(caplog, capsys)


def test_slack_refusal_is_reported_as_not_posted(slack_secret, caplog, capsys):
    secrets, secret_arn = slack_secret
    with caplog.at_level(logging.DEBUG):
        assert post_slack(secrets, secret_arn, format_message("opened", CASE), post=FakeSlack(status=404)) is False
    assert [r.http_status for r in caplog.records if hasattr(r, "http_status")] == [404]
    assert "s3cr3tT0k3n" not in everything_logged(caplog, capsys)


def test_missing_slack_secret_does_not_fail_the_response(aws, caplog):
    secrets = boto3.client("secretsmanager", region_name=REGION)
    slack = FakeSlack()
    missing = f"arn:aws:secretsmanager:{REGION}:123456789012:secret:gone-AbCdEf"
    with caplog.at_level(logging.WARNING):
        assert post_slack(secrets, missing, format_message("opened", CASE), post=slack) is False
    assert slack.posts == []
    assert [r.error for r in caplog.records if hasattr(r, "error")] == ["ResourceNotFoundException"]


def test_a_secret_that_is_not_an_https_url_is_never_posted_or_logged(aws, caplog, capsys):
    secrets = boto3.client("secretsmanager", region_name=REGION)
    arn = secrets.create_secret(Name="slack-http", SecretString="http://hooks.example/plain-s3cr3tT0k3n")["ARN"]
    slack = FakeSlack()
    with caplog.at_level(logging.DEBUG):
        assert post_slack(secrets, arn, format_message("opened", CASE), post=slack) is False
    assert slack.posts == []
    assert "s3cr3tT0k3n" not in everything_logged(caplog, capsys)


class _Webhook(http.server.BaseHTTPRequestHandler):
    bodies: list[bytes] = []

    def do_POST(self) -> None:
        self.bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(200 if self.path == "/ok" else 500)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_urllib_poster_posts_json_and_returns_the_http_status():
    server = http.server.HTTPServer(("127.0.0.1", 0), _Webhook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        assert post_with_urllib(f"{base}/ok", b'{"text": "hi"}') == 200
        assert post_with_urllib(f"{base}/broken", b'{"text": "again"}') == 500
    finally:
        server.shutdown()
        server.server_close()
    assert _Webhook.bodies == [b'{"text": "hi"}', b'{"text": "again"}']
