"""The narrow path a contained instance gets for the duration of a memory capture, and its removal.

A contained instance has the no-rule isolation group on every interface and the deny-all
instance profile: its SSM agent can reach nothing and holds no usable credentials, and the
upload could not leave. For the capture only, every interface moves to a per-instance capture
group whose sole rules are HTTPS egress to the region's S3 prefix list and to the VPC's SSM
interface endpoints (no ingress), and the profile becomes the acquisition profile (SSM core).
Closing puts back exactly what was there and deletes the group.

What was there is kept in the capture group's own tags, so a retried open does not mistake
the capture group for the original, and closing needs nothing but the instance id.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from handlers.common import naming
from handlers.common.errors import IrfError
from handlers.common.tags import MANAGED_BY_TAG, MANAGED_BY_VALUE

HTTPS = 443
ORIGINAL_GROUPS_TAG = "irforensics:capture:groups:"
ORIGINAL_PROFILE_TAG = "irforensics:capture:profile"
CAPTURE_INSTANCE_TAG = "irforensics:capture:instance"
SSM_ENDPOINT_SERVICES = ("ssm", "ssmmessages", "ec2messages")


class CapturePathUnavailable(IrfError):
    """The VPC offers no way to reach SSM and S3 without opening the instance to the internet."""


@dataclass(frozen=True)
class CapturePath:
    opened: bool
    reason: str
    groups: Mapping[str, str] = field(default_factory=dict)  # vpc -> capture group
    interfaces: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # eni -> original groups
    original_profile: str = ""

    def to_event(self) -> dict[str, Any]:
        return {"Opened": self.opened, "Reason": self.reason, "Groups": dict(self.groups),
                "Interfaces": {eni: list(groups) for eni, groups in self.interfaces.items()},
                "OriginalProfile": self.original_profile}


def capture_group_name(prefix: str, instance_id: str) -> str:
    return f"{prefix}-ir-capture-{instance_id}"


def capture_egress(s3_prefix_list_id: str, endpoint_group_ids: Iterable[str]) -> list[dict[str, Any]]:
    """The capture group's egress: HTTPS to S3 (prefix list) and to the SSM endpoints' groups. Nothing else."""
    groups = sorted(set(endpoint_group_ids))
    permission: dict[str, Any] = {"IpProtocol": "tcp", "FromPort": HTTPS, "ToPort": HTTPS,
                                  "PrefixListIds": [{"PrefixListId": s3_prefix_list_id,
                                                     "Description": "memory image upload (pre-signed S3)"}]}
    if groups:
        permission["UserIdGroupPairs"] = [{"GroupId": g, "Description": "SSM interface endpoint"} for g in groups]
    return [permission]


def s3_prefix_list(ec2: Any, region: str) -> str:
    lists = ec2.describe_managed_prefix_lists(
        Filters=[{"Name": "prefix-list-name", "Values": [f"com.amazonaws.{region}.s3"]}])["PrefixLists"]
    if not lists:
        raise CapturePathUnavailable(f"region {region} has no S3 managed prefix list")
    return str(lists[0]["PrefixListId"])


def ssm_endpoint_groups(ec2: Any, vpc_id: str, region: str) -> list[str]:
    """Security groups of the VPC's SSM interface endpoints; all three services must be there."""
    services = [f"com.amazonaws.{region}.{name}" for name in SSM_ENDPOINT_SERVICES]
    endpoints = ec2.describe_vpc_endpoints(Filters=[
        {"Name": "vpc-id", "Values": [vpc_id]}, {"Name": "service-name", "Values": services}])["VpcEndpoints"]
    live = [e for e in endpoints if str(e.get("State", "available")).lower() in ("available", "pending")]
    missing = sorted(set(services) - {e["ServiceName"] for e in live})
    if missing:
        raise CapturePathUnavailable(
            f"VPC {vpc_id} has no interface endpoint for {', '.join(m.rsplit('.', 1)[-1] for m in missing)}: "
            "a contained instance can reach SSM only through them, and opening HTTPS to the internet "
            "would undo its containment")
    return sorted({g["GroupId"] for e in live for g in e.get("Groups", [])})


def _instance(ec2: Any, instance_id: str) -> dict[str, Any]:
    reservations = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
    return dict(reservations[0]["Instances"][0])


def _interfaces(instance: Mapping[str, Any]) -> dict[str, tuple[str, tuple[str, ...]]]:
    """eni -> (vpc, groups) for every interface of the instance."""
    return {eni["NetworkInterfaceId"]: (eni["VpcId"], tuple(g["GroupId"] for g in eni.get("Groups", [])))
            for eni in instance.get("NetworkInterfaces", [])}


def _find_groups(ec2: Any, name: str, vpcs: Sequence[str]) -> dict[str, dict[str, Any]]:
    found = ec2.describe_security_groups(Filters=[
        {"Name": "group-name", "Values": [name]}, {"Name": "vpc-id", "Values": list(vpcs)}])["SecurityGroups"]
    return {g["VpcId"]: g for g in found}


def _tags(group: Mapping[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in group.get("Tags", [])}


def _profile_association(ec2: Any, instance_id: str) -> tuple[str, str] | None:
    associations = ec2.describe_iam_instance_profile_associations(
        Filters=[{"Name": "instance-id", "Values": [instance_id]}])["IamInstanceProfileAssociations"]
    current = [a for a in associations if a.get("State") in ("associated", "associating")]
    if not current:
        return None
    return str(current[0]["AssociationId"]), str(current[0]["IamInstanceProfile"]["Arn"]).rsplit("/", 1)[-1]


def open_capture_path(ec2: Any, instance_id: str, *, prefix: str, region: str) -> CapturePath:
    """Give the contained instance HTTPS to S3 and SSM only, and the acquisition profile; idempotent."""
    instance = _instance(ec2, instance_id)
    interfaces = _interfaces(instance)
    vpcs = sorted({vpc for vpc, _ in interfaces.values()})
    name = capture_group_name(prefix, instance_id)
    prefix_list = s3_prefix_list(ec2, region)
    existing = _find_groups(ec2, name, vpcs)
    groups: dict[str, str] = {}
    for vpc in vpcs:
        endpoint_groups = ssm_endpoint_groups(ec2, vpc, region)
        if vpc in existing:
            groups[vpc] = existing[vpc]["GroupId"]
            continue
        group_id = str(ec2.create_security_group(
            GroupName=name, VpcId=vpc,
            Description="irforensics memory capture: HTTPS egress to S3 and SSM endpoints only, no ingress",
            TagSpecifications=[{"ResourceType": "security-group", "Tags": [
                {"Key": MANAGED_BY_TAG, "Value": MANAGED_BY_VALUE}, {"Key": "Name", "Value": name},
                {"Key": CAPTURE_INSTANCE_TAG, "Value": instance_id}]}])["GroupId"])
        # A new group allows all egress; that rule goes before any interface can use the group.
        created = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]
        if created.get("IpPermissionsEgress"):
            ec2.revoke_security_group_egress(GroupId=group_id, IpPermissions=created["IpPermissionsEgress"])
        ec2.authorize_security_group_egress(GroupId=group_id,
                                            IpPermissions=capture_egress(prefix_list, endpoint_groups))
        groups[vpc] = group_id

    remembered: dict[str, tuple[str, ...]] = {}
    for group_id in groups.values():
        group = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]
        for key, value in _tags(group).items():
            if key.startswith(ORIGINAL_GROUPS_TAG):
                remembered[key[len(ORIGINAL_GROUPS_TAG):]] = tuple(value.split(","))
    capture_ids = set(groups.values())
    originals: dict[str, tuple[str, ...]] = {}
    for eni, (vpc, current) in interfaces.items():
        originals[eni] = remembered.get(eni) or current
        if set(originals[eni]) & capture_ids:
            raise CapturePathUnavailable(f"interface {eni} holds the capture group but no record of its groups")
        if eni not in remembered:
            ec2.create_tags(Resources=[groups[vpc]],
                            Tags=[{"Key": ORIGINAL_GROUPS_TAG + eni, "Value": ",".join(originals[eni])}])

    profile = _profile_association(ec2, instance_id)
    acquisition = naming.acquisition_profile(prefix, region)
    original_profile = ""
    if profile is not None and profile[1] == naming.isolation_profile(prefix, region):
        original_profile = profile[1]
        for group_id in groups.values():
            ec2.create_tags(Resources=[group_id], Tags=[{"Key": ORIGINAL_PROFILE_TAG, "Value": original_profile}])
        ec2.replace_iam_instance_profile_association(AssociationId=profile[0],
                                                     IamInstanceProfile={"Name": acquisition})
    elif profile is not None and profile[1] == acquisition:
        original_profile = next((_tags(g).get(ORIGINAL_PROFILE_TAG, "") for g in
                                 ec2.describe_security_groups(GroupIds=list(groups.values()))["SecurityGroups"]), "")

    for eni, (vpc, current) in interfaces.items():
        if current != (groups[vpc],):
            ec2.modify_network_interface_attribute(NetworkInterfaceId=eni, Groups=[groups[vpc]])
    return CapturePath(opened=True, reason="HTTPS egress to S3 and the SSM endpoints only, for the capture",
                       groups=groups, interfaces=originals, original_profile=original_profile)


def close_capture_path(ec2: Any, instance_id: str, *, prefix: str, region: str) -> list[str]:
    """Put every interface back on its recorded groups, the recorded profile back, delete the group.

    Returns what it changed (empty when the path was already closed).
    """
    instance = _instance(ec2, instance_id)
    interfaces = _interfaces(instance)
    vpcs = sorted({vpc for vpc, _ in interfaces.values()})
    found = _find_groups(ec2, capture_group_name(prefix, instance_id), vpcs)
    if not found:
        return []
    changes: list[str] = []
    originals: dict[str, tuple[str, ...]] = {}
    original_profile = ""
    for group in found.values():
        for key, value in _tags(group).items():
            if key.startswith(ORIGINAL_GROUPS_TAG):
                originals[key[len(ORIGINAL_GROUPS_TAG):]] = tuple(value.split(","))
            elif key == ORIGINAL_PROFILE_TAG:
                original_profile = value
    capture_ids = {g["GroupId"] for g in found.values()}
    for eni, (_vpc, current) in interfaces.items():
        if set(current) & capture_ids:
            if eni not in originals:
                raise CapturePathUnavailable(f"interface {eni} holds the capture group but no record of its groups")
            ec2.modify_network_interface_attribute(NetworkInterfaceId=eni, Groups=list(originals[eni]))
            changes.append(f"{eni}: groups back to {','.join(originals[eni])}")
    profile = _profile_association(ec2, instance_id)
    if original_profile and profile is not None and profile[1] == naming.acquisition_profile(prefix, region):
        ec2.replace_iam_instance_profile_association(AssociationId=profile[0],
                                                     IamInstanceProfile={"Name": original_profile})
        changes.append(f"instance profile back to {original_profile}")
    for group_id in sorted(capture_ids):
        try:
            ec2.delete_security_group(GroupId=group_id)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "InvalidGroup.NotFound":
                raise
        changes.append(f"capture group {group_id} deleted")
    return changes
