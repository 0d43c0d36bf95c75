"""Notifications: one concise message per case stage, to SNS and (optionally) a Slack webhook.

A notification must never fail a response: delivery errors are logged and swallowed. The
Slack webhook URL is a secret: it is read from Secrets Manager at call time and never logged,
never put in a message, never kept in configuration.

`case` is what the caller has at that stage (the shapes the response's handlers produce):
  always      CaseId; usually InstanceId, Account, Region, Action, Trigger, DryRun (missing
              instance, account and region are read from a generated CaseId)
  opened      Finding (optional)
  contained   the containment result: Contained, Changes (a count or a list), Before, After
  acquired    Images: [{Key, Sha256, Size}], Memory: {Acquired, Key, Sha256, Size | Reason},
              Manifest (s3:// URL)
  examined    ReportUrl: where the report is (s3://bucket/<case>/report/report.html)
  failed      the custody failure record: error, cause, stage, contained_after_failure
  duplicate   CaseId is the case already open for the instance
"""

from __future__ import annotations

import json
import logging
import re
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from core.clients import lambda_session
from core.ids import GENERATED_CASE_ID

logger = Logger(service="irforensics")

MAX_SUBJECT = 100  # SNS rejects longer subjects (email subscribers show it as the mail subject)
MAX_CAUSE = 600
SLACK_TIMEOUT_SECONDS = 10
_NOT_PRINTABLE_ASCII = re.compile(r"[^\x20-\x7e]+")

Poster = Callable[[str, bytes], int]


@dataclass(frozen=True)
class Message:
    stage: str
    case_id: str
    subject: str
    body: str


@dataclass(frozen=True)
class Delivery:
    sns_message_id: str | None
    slack_posted: bool | None  # None: Slack not configured


def _field(case: Mapping[str, Any], key: str, default: str = "?") -> str:
    value = case.get(key)
    return default if value in (None, "") else str(value)


def _subject(text: str) -> str:
    # SNS subjects: printable ASCII, no line breaks, at most 100 characters.
    clean = _NOT_PRINTABLE_ASCII.sub(" ", text).strip()
    return clean if len(clean) <= MAX_SUBJECT else clean[: MAX_SUBJECT - 3] + "..."


def _cause(raw: str) -> str:
    # A Lambda error's Cause is JSON ({"errorMessage", "errorType", "stackTrace"}): keep the message.
    try:
        parsed = json.loads(raw)
    except ValueError:
        parsed = None
    text = str(parsed.get("errorMessage", raw)) if isinstance(parsed, dict) else raw
    return text if len(text) <= MAX_CAUSE else text[: MAX_CAUSE - 3] + "..."


def _instance(case: Mapping[str, Any]) -> tuple[str, str, str]:
    """(instance, account, region): from the case, else from a generated case id."""
    instance, account, region = (_field(case, k, "") for k in ("InstanceId", "Account", "Region"))
    generated = GENERATED_CASE_ID.match(_field(case, "CaseId", ""))
    if generated:
        account = account or generated["account"]
        instance = instance or generated["instance"]
        region = region or generated["region"]
    return instance or "?", account or "?", region or "?"


def _digest_line(item: Mapping[str, Any]) -> str:
    return f"  {_field(item, 'Sha256')}  {_field(item, 'Key')} ({_field(item, 'Size')} bytes)"


def _containment_after_failure(state: Any) -> str:
    if not isinstance(state, Mapping):
        return "unknown (not recorded)"
    if state.get("Error"):
        return f"re-applying containment FAILED ({state['Error']}): check the instance now"
    if state.get("Contained"):
        return "re-applied"
    return f"not contained ({_field(state, 'Reason', 'no reason recorded')})"


def _opened(case: Mapping[str, Any], instance: str, dry_run: bool) -> tuple[str, list[str]]:
    lines = [f"Finding:  {_cause(str(case['Finding']))}"] if case.get("Finding") else []
    return f"Case opened for {instance}", lines


def _contained(case: Mapping[str, Any], instance: str, dry_run: bool) -> tuple[str, list[str]]:
    contained = case.get("Contained", True) and not dry_run
    headline = f"{instance} contained" if contained else f"{instance} containment dry run: nothing changed"
    lines: list[str] = []
    changes = case.get("Changes")
    if isinstance(changes, list):
        lines.append("Changes:")
        lines.extend(f"  - {change}" for change in changes)
    elif changes is not None:
        lines.append(f"Changes:  {changes}")
    for label, key in (("Before:", "Before"), ("After: ", "After")):
        if case.get(key):
            lines.append(f"{label}   {case[key]}")
    return headline, lines


def _acquired(case: Mapping[str, Any], instance: str, dry_run: bool) -> tuple[str, list[str]]:
    images = [image for image in case.get("Images") or [] if isinstance(image, Mapping)]
    raw_memory = case.get("Memory")
    memory: Mapping[str, Any] = raw_memory if isinstance(raw_memory, Mapping) else {}
    lines = ["Disk images (sha256 over the raw volume bytes):"]
    lines.extend(_digest_line(image) for image in images)
    if not images:
        lines.append("  (no disk images recorded)")
    if memory.get("Acquired"):
        lines += ["Memory (sha256 of the LiME dump):", _digest_line(memory)]
    else:
        lines.append(f"Memory:   {_field(memory, 'Reason', 'not acquired')}")
    if case.get("Manifest"):
        lines.append(f"Manifest: {case['Manifest']}")
    return f"Evidence acquired from {instance} ({len(images)} disk images)", lines


def _examined(case: Mapping[str, Any], instance: str, dry_run: bool) -> tuple[str, list[str]]:
    return f"Examination done for {instance}", [f"Report:   {_field(case, 'ReportUrl', '(location not recorded)')}"]


def _failed(case: Mapping[str, Any], instance: str, dry_run: bool) -> tuple[str, list[str]]:
    step = _field(case, "stage", "an unknown step")
    return f"Response FAILED for {instance} at {step}", [
        f"Failed:   {step}: {_field(case, 'error', 'Error')}",
        f"Cause:    {_cause(_field(case, 'cause', '(no cause recorded)'))}",
        f"Containment after the failure: {_containment_after_failure(case.get('contained_after_failure'))}",
    ]


def _duplicate(case: Mapping[str, Any], instance: str, dry_run: bool) -> tuple[str, list[str]]:
    # CaseId is the case already open for the instance.
    return f"{instance} already has an open case; nothing new started", [
        "A second trigger for this instance was refused; the open case continues."
    ]


# Stage -> (case, instance, dry run) -> (headline, the stage's own lines).
StageFormatter = Callable[[Mapping[str, Any], str, bool], tuple[str, list[str]]]
FORMATTERS: dict[str, StageFormatter] = {
    "opened": _opened,
    "contained": _contained,
    "acquired": _acquired,
    "examined": _examined,
    "failed": _failed,
    "duplicate": _duplicate,
}
STAGES = tuple(FORMATTERS)


def format_message(stage: str, case: Mapping[str, Any]) -> Message:
    """The message for one stage of one case (pure)."""
    formatter = FORMATTERS.get(stage)
    if formatter is None:
        raise ValueError(f"notification stage must be one of {', '.join(STAGES)}, got {stage!r}")
    case_id = _field(case, "CaseId", "")
    if not case_id:
        raise ValueError("a notification needs the case's CaseId")
    instance, account, region = _instance(case)
    dry_run = case.get("DryRun") in (True, "true")
    lines = [f"Case:     {case_id}", f"Instance: {instance} ({account}/{region})"]
    if case.get("Action"):
        lines.append(f"Action:   {case['Action']}" + (" (dry run: nothing is changed)" if dry_run else ""))
    if case.get("Trigger"):
        lines.append(f"Trigger:  {case['Trigger']}")
    headline, own = formatter(case, instance, dry_run)
    return Message(
        stage=stage,
        case_id=case_id,
        subject=_subject(f"[irforensics] {headline}"),
        body="\n".join([*lines, *own]) + "\n",
    )


def publish(sns_client: Any, topic_arn: str, message: Message) -> str:
    """Publish to the notification topic; attributes let subscribers filter by stage or case."""
    response = sns_client.publish(
        TopicArn=topic_arn,
        Subject=message.subject,
        Message=message.body,
        MessageAttributes={
            "stage": {"DataType": "String", "StringValue": message.stage},
            "case_id": {"DataType": "String", "StringValue": message.case_id},
        },
    )
    return str(response["MessageId"])


def post_with_urllib(url: str, payload: bytes) -> int:
    request = urllib.request.Request(url, data=payload, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=SLACK_TIMEOUT_SECONDS) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def _slack_escape(text: str) -> str:
    # Slack's mrkdwn treats &, < and > as control characters.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _webhook_url(secret: str) -> str:
    try:
        parsed = json.loads(secret)
    except ValueError:
        return secret.strip()
    if isinstance(parsed, dict):
        return str(parsed.get("webhook_url") or parsed.get("url") or "").strip()
    return str(parsed).strip() if isinstance(parsed, str) else ""


@contextmanager
def _response_bodies_unlogged() -> Iterator[None]:
    # botocore logs every response body at DEBUG, GetSecretValue's SecretString included: with
    # the function's log level at DEBUG the webhook URL would land in CloudWatch Logs.
    parsers = logging.getLogger("botocore.parsers")
    previous = parsers.level
    parsers.setLevel(max(previous, logging.INFO))
    try:
        yield
    finally:
        parsers.setLevel(previous)


def read_webhook_url(secrets_client: Any, secret_arn: str) -> str:
    with _response_bodies_unlogged():
        secret = secrets_client.get_secret_value(SecretId=secret_arn)["SecretString"]
    return _webhook_url(secret)


def post_slack(secrets_client: Any, secret_arn: str, message: Message, *, post: Poster = post_with_urllib) -> bool:
    """Post to the Slack webhook kept in `secret_arn`; False (logged, URL withheld) on any failure."""
    url = ""
    try:
        url = read_webhook_url(secrets_client, secret_arn)
        if not url.startswith("https://"):
            logger.warning(
                "Slack webhook secret does not hold an https URL; not posting",
                secret_arn=secret_arn,
                case_id=message.case_id,
            )
            return False
        text = f"*{_slack_escape(message.subject)}*\n```{_slack_escape(message.body)}```"
        payload = json.dumps({"text": text})
        status = post(url, payload.encode())
    except Exception as exc:  # a notification must never fail a response, whatever the poster raised
        reason = str(exc).replace(url, "<webhook>") if url else str(exc)
        logger.warning(
            "Slack notification failed",
            secret_arn=secret_arn,
            case_id=message.case_id,
            stage=message.stage,
            error=type(exc).__name__,
            reason=reason,
        )
        return False
    if not 200 <= status < 300:
        logger.warning(
            "Slack notification refused",
            secret_arn=secret_arn,
            case_id=message.case_id,
            stage=message.stage,
            http_status=status,
        )
        return False
    return True


def notify(
    stage: str,
    case: Mapping[str, Any],
    *,
    sns_client: Any,
    topic_arn: str,
    secrets_client: Any | None = None,
    slack_secret_arn: str = "",
    slack_post: Poster | None = None,
) -> Delivery:
    """Send one stage's message to SNS and, when configured, Slack; never raises."""
    try:
        message = format_message(stage, case)
    except ValueError:
        # A caller's bug must not abort containment or acquisition: log it loudly, send nothing.
        logger.exception(
            "notification not sent: the case data cannot be formatted", stage=stage, case_keys=sorted(case)
        )
        return Delivery(sns_message_id=None, slack_posted=None)
    message_id: str | None = None
    if topic_arn:
        try:
            message_id = publish(sns_client, topic_arn, message)
        except (ClientError, BotoCoreError) as exc:
            logger.warning(
                "SNS notification failed",
                topic_arn=topic_arn,
                case_id=message.case_id,
                stage=stage,
                error=type(exc).__name__,
                reason=str(exc),
            )
    else:
        logger.warning("no notification topic configured; SNS message not sent", case_id=message.case_id, stage=stage)
    slack: bool | None = None
    if slack_secret_arn and secrets_client is not None:
        slack = post_slack(secrets_client, slack_secret_arn, message, post=slack_post or post_with_urllib)
    return Delivery(sns_message_id=message_id, slack_posted=slack)


def notify_stage(settings: Any, stage: str, case: Mapping[str, Any]) -> Delivery | None:
    """`notify` with the Lambda's own clients and the deployment's topic (handlers.common.settings)."""
    if not settings.topic_arn:
        return None
    # The Lambda's own credentials: the topic is in the security account.
    session = lambda_session()
    secrets = session.client("secretsmanager") if settings.slack_secret_arn else None
    return notify(
        stage,
        case,
        sns_client=session.client("sns"),
        topic_arn=settings.topic_arn,
        secrets_client=secrets,
        slack_secret_arn=settings.slack_secret_arn,
    )
