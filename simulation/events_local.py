"""EventBridge delivery for the simulation, and the events of each entry point (tag, GuardDuty, Security Hub).

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
from handlers.triggers.patterns import SECURITYHUB_ACTIONS, matches
from simulation import local_aws


@dataclass
class Delivery:
    account: str
    rule: str
    target: str
    result: Any = None


def tag_change_event(account: str, region: str, instance_id: str, tags: dict[str, str]) -> dict[str, Any]:
    """The event AWS emits when a tag of an EC2 instance changes (as documented for aws.tag)."""
    detail: dict[str, Any] = {
        "changed-tag-keys": [INCIDENT_TAG],
        "service": "ec2",
        "resource-type": "instance",
        "version": 1,
        "tags": dict(tags),
    }
    resources = [f"arn:aws:ec2:{region}:{account}:instance/{instance_id}"]
    return envelope("Tag Change on Resource", "aws.tag", account, region, resources, detail)


def envelope(
    detail_type: str,
    source: str,
    account: str,
    region: str,
    resources: list[str],
    detail: dict[str, Any],
    now: datetime | None = None,
) -> dict[str, Any]:
    """The EventBridge event around a service's `detail` (the envelope every AWS service event has)."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": source,
        "account": account,
        "time": (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": resources,
        "detail": detail,
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


GUARDDUTY_BACKDOOR = "Backdoor:EC2/C&CActivity.B"
C2_ADDRESS = "198.51.100.23"  # TEST-NET-2 (RFC 5737): the simulated command-and-control server


def _instance(account: str, region: str, instance_id: str) -> dict[str, Any]:
    ec2 = local_aws.account_session(account, region).client("ec2")
    found = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    return dict(found)


def guardduty_finding_event(
    admin_account: str, account: str, region: str, instance_id: str, *, severity: float = 8.0
) -> dict[str, Any]:
    """A GuardDuty `Backdoor:EC2/C&CActivity.B` finding on the instance, as EventBridge delivers it in the
    delegated administrator's (security) account: the finding's accountId and region say where the instance is.
    The instance's details are read from EC2, so the finding describes the simulated suspect."""
    instance = _instance(account, region, instance_id)
    now = datetime.now(UTC)
    finding_id = uuid.uuid4().hex
    detector = uuid.uuid5(uuid.NAMESPACE_DNS, f"{account}.{region}.guardduty").hex
    interfaces = [
        {
            "networkInterfaceId": eni["NetworkInterfaceId"],
            "privateIpAddress": eni.get("PrivateIpAddress", ""),
            "subnetId": eni.get("SubnetId", ""),
            "vpcId": eni.get("VpcId", ""),
            "securityGroups": [{"groupName": g["GroupName"], "groupId": g["GroupId"]} for g in eni.get("Groups", [])],
            "ipv6Addresses": [a["Ipv6Address"] for a in eni.get("Ipv6Addresses", [])],
        }
        for eni in instance.get("NetworkInterfaces", [])
    ]
    detail: dict[str, Any] = {
        "schemaVersion": "2.0",
        "accountId": account,
        "region": region,
        "partition": "aws",
        "id": finding_id,
        "arn": f"arn:aws:guardduty:{region}:{account}:detector/{detector}/finding/{finding_id}",
        "type": GUARDDUTY_BACKDOOR,
        "resource": {
            "resourceType": "Instance",
            "instanceDetails": {
                "instanceId": instance_id,
                "instanceType": instance.get("InstanceType", ""),
                "imageId": instance.get("ImageId", ""),
                "availabilityZone": instance.get("Placement", {}).get("AvailabilityZone", ""),
                "networkInterfaces": interfaces,
                "tags": [{"key": t["Key"], "value": t["Value"]} for t in instance.get("Tags", [])],
            },
        },
        "service": {
            "serviceName": "guardduty",
            "detectorId": detector,
            "action": {
                "actionType": "NETWORK_CONNECTION",
                "networkConnectionAction": {
                    "connectionDirection": "OUTBOUND",
                    "blocked": False,
                    "protocol": "TCP",
                    "remoteIpDetails": {"ipAddressV4": C2_ADDRESS},
                    "remotePortDetails": {"port": 443, "portName": "HTTPS"},
                },
            },
            "resourceRole": "ACTOR",
            "eventFirstSeen": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "eventLastSeen": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "archived": False,
            "count": 1,
        },
        "severity": float(severity),
        "createdAt": now.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "updatedAt": now.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "title": f"EC2 instance {instance_id} is communicating with a Command & Control server.",
        "description": f"EC2 instance {instance_id} is communicating with a Command & Control server {C2_ADDRESS}.",
    }
    return envelope("GuardDuty Finding", "aws.guardduty", admin_account, region, [], detail, now)


def securityhub_action_event(admin_account: str, action_arn: str, finding_event: dict[str, Any]) -> dict[str, Any]:
    """A responder choosing a Security Hub custom action on that GuardDuty finding (its ASFF form)."""
    detail = finding_event["detail"]
    action_id = action_arn.rsplit("/", 1)[-1]
    account, region = detail["accountId"], detail["region"]
    instance = detail["resource"]["instanceDetails"]
    severity = float(detail["severity"])
    label = "CRITICAL" if severity >= 9 else "HIGH" if severity >= 7 else "MEDIUM" if severity >= 4 else "LOW"
    asff = {
        "SchemaVersion": "2018-10-08",
        "Id": detail["arn"],
        "ProductArn": f"arn:aws:securityhub:{region}::product/aws/guardduty",
        "ProductName": "GuardDuty",
        "CompanyName": "Amazon",
        "Region": region,
        "GeneratorId": detail["arn"].split("/finding/")[0],
        "AwsAccountId": account,
        "Types": [f"TTPs/Command and Control/{detail['type'].replace('/', '-')}"],
        "CreatedAt": detail["createdAt"],
        "UpdatedAt": detail["updatedAt"],
        "Severity": {"Product": severity, "Label": label, "Normalized": int(severity * 10)},
        "Title": detail["title"],
        "Description": detail["description"],
        "Resources": [
            {
                "Type": "AwsEc2Instance",
                "Id": f"arn:aws:ec2:{region}:{account}:instance/{instance['instanceId']}",
                "Partition": "aws",
                "Region": region,
                "Details": {
                    "AwsEc2Instance": {"Type": instance.get("instanceType", ""), "ImageId": instance.get("imageId", "")}
                },
            }
        ],
        "WorkflowState": "NEW",
        "Workflow": {"Status": "NEW"},
        "RecordState": "ACTIVE",
    }
    action: dict[str, Any] = {
        "actionName": SECURITYHUB_ACTIONS.get(action_id, (action_id, "", ""))[0],
        "actionDescription": SECURITYHUB_ACTIONS.get(action_id, ("", "", ""))[1],
        "findings": [asff],
    }
    kind = "Security Hub Findings - Custom Action"
    return envelope(kind, "aws.securityhub", admin_account, region, [action_arn], action)
