"""Build the response state machine's input (the manual-execution contract) from trigger events.

Pure functions: an EventBridge event in, the input dict(s) out. Every input is checked with
`parse_request` before it is returned, so a trigger can never start an execution that the
state machine's first state would reject. Events that cannot name one instance raise
`InvalidInput` naming the event field at fault.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools import Logger

from handlers.common.case import MAX_FINDING_CHARS, parse_request, shown
from handlers.common.errors import InvalidInput
from handlers.common.tags import ACTION_ANALYZE, ACTION_CONTAIN, ACTIONS, INCIDENT_TAG, action_error
from handlers.triggers.patterns import SECURITYHUB_EC2_RESOURCE

logger = Logger(service="irforensics")

__all__ = [
    "MAX_FINDING_CHARS",
    "input_from_guardduty",
    "input_from_securityhub",
    "input_from_tag_event",
    "parse_instance_arn",
]
INSTANCE_ARN = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):ec2:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):instance/(?P<instance>i-[0-9a-f]+)$"
)


def _finding_text(text: str) -> str:
    return text if len(text) <= MAX_FINDING_CHARS else text[: MAX_FINDING_CHARS - 3] + "..."


def _checked(request: dict[str, Any]) -> dict[str, Any]:
    parse_request(request)
    return request


def _request(instance_id: str, account: str, region: str, action: str, trigger: str, finding: str) -> dict[str, Any]:
    return _checked(
        {
            "InstanceId": instance_id,
            "Account": account,
            "Region": region,
            "Action": action,
            "RetainArtefacts": True,
            "DryRun": False,
            "Trigger": trigger,
            "Finding": _finding_text(finding),
        }
    )


def _mapping(value: Any, field: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidInput({field: "is missing or not an object"})
    return value


def parse_instance_arn(arn: Any) -> tuple[str, str, str]:
    """(account, region, instance id) of an EC2 instance ARN; InvalidInput if it is not one."""
    found = INSTANCE_ARN.match(arn) if isinstance(arn, str) else None
    if not found:
        raise InvalidInput({"resource": f"is not an EC2 instance ARN: {shown(arn)}"})
    return found["account"], found["region"], found["instance"]


def input_from_tag_event(event: Mapping[str, Any]) -> dict[str, Any]:
    """SecurityIncidentStatus=Analyze|Contain on an instance -> the response input for it."""
    detail = _mapping(event.get("detail"), "detail")
    tags = _mapping(detail.get("tags"), "detail.tags")
    action = tags.get(INCIDENT_TAG)
    if action not in ACTIONS:
        # The contract's values are exact: "contain" starts nothing (the rule does not even deliver it).
        raise InvalidInput({f"detail.tags.{INCIDENT_TAG}": action_error(action)})
    arns = [arn for arn in event.get("resources") or [] if isinstance(arn, str) and INSTANCE_ARN.match(arn)]
    if len(arns) != 1:
        raise InvalidInput({"resources": f"must name exactly one EC2 instance, got {shown(event.get('resources'))}"})
    account, region, instance_id = parse_instance_arn(arns[0])
    return _request(
        instance_id,
        account,
        region,
        str(action),
        "tag",
        f"Tag {INCIDENT_TAG}={action} set on {instance_id} (event {event.get('id', '?')} at {event.get('time', '?')})",
    )


def input_from_guardduty(event: Mapping[str, Any], *, contain_severity: float) -> dict[str, Any]:
    """A GuardDuty finding on an instance -> Contain at or above `contain_severity`, else Analyze."""
    detail = _mapping(event.get("detail"), "detail")
    resource = _mapping(detail.get("resource"), "detail.resource")
    if resource.get("resourceType") != "Instance":
        raise InvalidInput(
            {
                "detail.resource.resourceType": (
                    f"must be Instance (an EC2 finding), got {shown(resource.get('resourceType'))}"
                )
            }
        )
    instance = _mapping(resource.get("instanceDetails"), "detail.resource.instanceDetails")
    severity = detail.get("severity")
    if isinstance(severity, bool) or not isinstance(severity, int | float):
        raise InvalidInput({"detail.severity": f"must be a number, got {shown(severity)}"})
    action = ACTION_CONTAIN if float(severity) >= contain_severity else ACTION_ANALYZE
    # In a delegated-administrator setup the event arrives in the security account; the
    # finding's own accountId and region say where the instance is.
    return _request(
        str(instance.get("instanceId", "")),
        str(detail.get("accountId", "")),
        str(detail.get("region", "")),
        action,
        "guardduty",
        f"GuardDuty {detail.get('type', '?')} severity {float(severity):g} finding {detail.get('id', '?')}",
    )


def input_from_securityhub(event: Mapping[str, Any], action_map: Mapping[str, str]) -> list[dict[str, Any]]:
    """A Security Hub custom action -> one input per distinct EC2 instance among the findings."""
    chosen = [action_map[arn] for arn in event.get("resources") or [] if arn in action_map]
    if len(chosen) != 1:
        raise InvalidInput(
            {
                "resources": f"must name exactly one configured custom action "
                f"({', '.join(sorted(action_map)) or 'none configured'}), "
                f"got {shown(event.get('resources'))}"
            }
        )
    action = chosen[0]
    detail = _mapping(event.get("detail"), "detail")
    findings = detail.get("findings")
    if not isinstance(findings, list):
        raise InvalidInput({"detail.findings": "is missing or not a list"})

    inputs: dict[tuple[str, str, str], dict[str, Any]] = {}
    for finding in findings:
        if not isinstance(finding, Mapping):
            continue
        for resource in finding.get("Resources") or []:
            if not isinstance(resource, Mapping):
                continue
            if resource.get("Type") != SECURITYHUB_EC2_RESOURCE:
                logger.info(
                    "Security Hub resource is not an EC2 instance; skipped",
                    resource_type=resource.get("Type"),
                    resource_id=resource.get("Id"),
                    finding_id=finding.get("Id"),
                )
                continue
            account, region, instance_id = parse_instance_arn(resource.get("Id"))
            key = (account, region, instance_id)
            if key not in inputs:
                inputs[key] = _request(
                    instance_id,
                    account,
                    region,
                    action,
                    "securityhub",
                    f"Security Hub {detail.get('actionName', 'custom action')}: "
                    f"{finding.get('Title', '?')} finding {finding.get('Id', '?')}",
                )
    return list(inputs.values())
