"""EventBridge delivery for the simulation.

moto stores rules and targets but does not emit the `aws.tag` "Tag Change on Resource" event
when a tag changes, nor route events across accounts' buses to Lambda targets the way AWS does.
`deliver` does that routing over the rules and targets the program deployed into moto, matching
with the same pattern matcher the trigger tests use, so the deployed patterns are what decide.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from handlers.common.tags import INCIDENT_TAG
from handlers.triggers.patterns import matches
from simulation import local_aws


@dataclass
class Delivery:
    account: str
    rule: str
    target: str
    result: Any = None


def tag_change_event(account: str, region: str, instance_id: str, tags: dict[str, str]) -> dict[str, Any]:
    """The event AWS emits when a tag of an EC2 instance changes (as documented for aws.tag)."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Tag Change on Resource",
        "source": "aws.tag",
        "account": account,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [f"arn:aws:ec2:{region}:{account}:instance/{instance_id}"],
        "detail": {
            "changed-tag-keys": [INCIDENT_TAG],
            "service": "ec2",
            "resource-type": "instance",
            "version": 1,
            "tags": dict(tags),
        },
    }


def deliver(event: dict[str, Any], account: str, region: str, *, _depth: int = 0) -> list[Delivery]:
    """Route `event` on `account`'s default bus: matching rules, then their targets (buses or Lambdas)."""
    if _depth > 3:
        raise RuntimeError("event forwarded across more than three buses: a routing loop")
    session = local_aws.account_session(account, region)
    events = session.client("events")
    deliveries: list[Delivery] = []
    for rule in events.list_rules(EventBusName="default").get("Rules", []):
        pattern = rule.get("EventPattern")
        if not pattern or rule.get("State") != "ENABLED" or not matches(json.loads(pattern), event):
            continue
        for target in events.list_targets_by_rule(Rule=rule["Name"], EventBusName="default").get("Targets", []):
            arn = target["Arn"]
            delivery = Delivery(account=account, rule=rule["Name"], target=arn)
            if ":event-bus/" in arn:
                target_account, target_region = arn.split(":")[4], arn.split(":")[3]
                delivery.result = deliver(event, target_account, target_region, _depth=_depth + 1)
            elif ":lambda:" in arn:
                target_session = local_aws.account_session(arn.split(":")[4], arn.split(":")[3])
                response = target_session.client("lambda").invoke(FunctionName=arn, Payload=json.dumps(event))
                delivery.result = json.loads(response["Payload"].read() or b"null")
                if response.get("FunctionError"):
                    raise RuntimeError(f"rule {rule['Name']} target {arn} failed: {delivery.result}")
            else:
                raise RuntimeError(f"the simulation does not deliver to {arn} (rule {rule['Name']})")
            deliveries.append(delivery)
    return deliveries
