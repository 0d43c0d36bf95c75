"""Trigger Lambdas: turn a matched EventBridge event into response executions.

Duplicate suppression, first line: each execution's name is derived from the instance and a
time bucket of the event, so a burst of events for one instance (EventBridge redelivery,
several findings, a double click in Security Hub) starts one execution: Step Functions itself
refuses the repeated name (or, while the first execution still runs and the input is the same,
answers with that execution: StartExecution is idempotent, so a duplicate may report "started").
Events straddling a bucket boundary can still start two; the response state machine's open-case
check (one open case per instance) stops the second.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from handlers.common.errors import InvalidInput
from handlers.common.sessions import lambda_session
from handlers.common.settings import Settings
from handlers.triggers.inputs import input_from_guardduty, input_from_securityhub, input_from_tag_event

logger = Logger(service="irforensics")

DEDUP_WINDOW_SECONDS = 300
# Step Functions allows 80 characters; only these keep the name usable in CloudWatch Logs too.
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
MAX_EXECUTION_NAME = 80


def event_epoch(event: Mapping[str, Any], now: Callable[[], float] = time.time) -> int:
    """The event's own time: a redelivered event keeps it, so it lands in the same bucket."""
    stamp = event.get("time")
    if isinstance(stamp, str):
        try:
            return int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp())
        except ValueError:
            logger.warning("event time is not ISO 8601; using the current time", event_time=stamp)
    return int(now())


def execution_name(request: Mapping[str, Any], epoch_seconds: int, window_seconds: int = DEDUP_WINDOW_SECONDS) -> str:
    bucket = epoch_seconds // window_seconds
    raw = f"{request['InstanceId']}-{request['Account']}-{request['Region']}-{bucket}"
    return _NAME_UNSAFE.sub("-", raw)[:MAX_EXECUTION_NAME]


def start_response(
    sfn: Any, state_machine_arn: str, request: Mapping[str, Any], *, epoch_seconds: int
) -> dict[str, str]:
    """Start one response execution; a refused duplicate name counts as already started."""
    name = execution_name(request, epoch_seconds)
    outcome = {
        "InstanceId": str(request["InstanceId"]),
        "Account": str(request["Account"]),
        "Region": str(request["Region"]),
        "Action": str(request["Action"]),
        "ExecutionName": name,
    }
    try:
        started = sfn.start_execution(
            stateMachineArn=state_machine_arn, name=name, input=json.dumps(request, sort_keys=True)
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ExecutionAlreadyExists":
            raise
        # Execution ARNs are the state machine's ARN with the execution name appended.
        arn = state_machine_arn.replace(":stateMachine:", ":execution:", 1) + ":" + name
        logger.info(
            "response already started for this instance in this window; not starting another",
            execution_name=name,
            execution_arn=arn,
            instance_id=request["InstanceId"],
        )
        return {**outcome, "ExecutionArn": arn, "Status": "already-started"}
    logger.info(
        "response started",
        execution_name=name,
        execution_arn=started["executionArn"],
        instance_id=request["InstanceId"],
        action=request["Action"],
        trigger=request.get("Trigger"),
    )
    return {**outcome, "ExecutionArn": started["executionArn"], "Status": "started"}


def _start_all(
    event: Mapping[str, Any], requests: list[dict[str, Any]], settings: Settings, sfn: Any | None
) -> dict[str, Any]:
    state_machine_arn = settings.require_response_state_machine()
    client = sfn or lambda_session().client("stepfunctions")
    epoch = event_epoch(event)
    return {
        "Responses": [start_response(client, state_machine_arn, request, epoch_seconds=epoch) for request in requests]
    }


def _ignored(event: Mapping[str, Any], exc: InvalidInput) -> dict[str, Any]:
    # Not an error: EventBridge would only retry an event that can never start a response.
    logger.warning(
        "event ignored: it does not name an instance to respond to",
        event_id=event.get("id"),
        detail_type=event.get("detail-type"),
        reason=str(exc),
    )
    return {"Responses": [], "Ignored": str(exc)}


def on_tag_change(
    event: dict[str, Any], context: Any = None, *, settings: Settings | None = None, sfn: Any | None = None
) -> dict[str, Any]:
    settings = settings or Settings.from_env()
    try:
        request = input_from_tag_event(event)
    except InvalidInput as exc:
        return _ignored(event, exc)
    return _start_all(event, [request], settings, sfn)


def on_guardduty_finding(
    event: dict[str, Any], context: Any = None, *, settings: Settings | None = None, sfn: Any | None = None
) -> dict[str, Any]:
    settings = settings or Settings.from_env()
    try:
        request = input_from_guardduty(event, contain_severity=settings.guardduty_contain_severity)
    except InvalidInput as exc:
        return _ignored(event, exc)
    return _start_all(event, [request], settings, sfn)


def on_securityhub_action(
    event: dict[str, Any], context: Any = None, *, settings: Settings | None = None, sfn: Any | None = None
) -> dict[str, Any]:
    settings = settings or Settings.from_env()
    try:
        requests = input_from_securityhub(event, settings.securityhub_actions)
    except InvalidInput as exc:
        return _ignored(event, exc)
    if not requests:
        logger.warning("Security Hub action named no EC2 instance; nothing started", event_id=event.get("id"))
    return _start_all(event, requests, settings, sfn)
