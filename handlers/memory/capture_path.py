"""The narrow path a contained instance gets for the duration of a memory capture, and its removal.

A contained instance has the no-rule isolation group on every interface and the deny-all
instance profile: its SSM agent can reach nothing and holds no usable credentials, and the
upload could not leave. For the capture only, every interface moves to a per-instance capture
group whose sole rules are HTTPS egress to the region's S3 prefix list and to the VPC's SSM
interface endpoints (no ingress), and the profile becomes the acquisition profile (SSM core).
Closing puts back exactly what was there and deletes the group.

What was there is kept in the capture group's own tags, so a retried open does not mistake
the capture group for the original, and closing needs nothing but the instance id. Each
interface's original groups are one comma-separated list, split into numbered tags of at most
256 characters (`irforensics:capture:groups:<eni>:00`, `:01`, ...: an interface may hold 16
groups, 335 characters). EC2 allows 50 tags per group; when the record would not fit, opening
refuses before it changes anything (see `plan_capture_tags`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from handlers.common import naming
from handlers.common.errors import IrfError
from handlers.common.tags import (
    MANAGED_BY_TAG,
    MANAGED_BY_VALUE,
    MAX_TAG_KEY_CHARS,
    MAX_TAG_VALUE_CHARS,
    MAX_TAGS_PER_RESOURCE,
    chunked_tags,
    counted_tags,
    unchunked_tag,
)

HTTPS = 443
# Followed by the interface id, then the chunk number (`chunked_tags`). Records written before
# chunking have no chunk number (one tag per interface) and are still read.
ORIGINAL_GROUPS_TAG = "irforensics:capture:groups:"
ORIGINAL_PROFILE_TAG = "irforensics:capture:profile"
CAPTURE_INSTANCE_TAG = "irforensics:capture:instance"
SSM_ENDPOINT_SERVICES = ("ssm", "ssmmessages", "ec2messages")
SECURITY_GROUP_ID = re.compile(r"sg-[0-9a-f]{8,17}")


class CapturePathUnavailable(IrfError):
    """The path cannot be opened or closed safely: the VPC offers no way to reach SSM and S3 without opening
    the instance to the internet, the record of an interface's groups is missing or unusable, or it
    would not fit in EC2's tag limits."""


@dataclass(frozen=True)
class CapturePath:
    opened: bool
    reason: str
    groups: Mapping[str, str] = field(default_factory=dict)  # vpc -> capture group
    interfaces: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # eni -> original groups
    original_profile: str = ""

    def to_event(self) -> dict[str, Any]:
        return {
            "Opened": self.opened,
            "Reason": self.reason,
            "Groups": dict(self.groups),
            "Interfaces": {eni: list(groups) for eni, groups in self.interfaces.items()},
            "OriginalProfile": self.original_profile,
        }


def capture_group_name(prefix: str, instance_id: str) -> str:
    return f"{prefix}-ir-capture-{instance_id}"


def capture_egress(s3_prefix_list_id: str, endpoint_group_ids: Iterable[str]) -> list[dict[str, Any]]:
    """The capture group's egress: HTTPS to S3 (prefix list) and to the SSM endpoints' groups. Nothing else."""
    groups = sorted(set(endpoint_group_ids))
    permission: dict[str, Any] = {
        "IpProtocol": "tcp",
        "FromPort": HTTPS,
        "ToPort": HTTPS,
        "PrefixListIds": [{"PrefixListId": s3_prefix_list_id, "Description": "memory image upload (pre-signed S3)"}],
    }
    if groups:
        permission["UserIdGroupPairs"] = [{"GroupId": g, "Description": "SSM interface endpoint"} for g in groups]
    return [permission]


def s3_prefix_list(ec2: Any, region: str) -> str:
    lists = ec2.describe_managed_prefix_lists(
        Filters=[{"Name": "prefix-list-name", "Values": [f"com.amazonaws.{region}.s3"]}]
    )["PrefixLists"]
    if not lists:
        raise CapturePathUnavailable(f"region {region} has no S3 managed prefix list")
    return str(lists[0]["PrefixListId"])


def ssm_endpoint_groups(ec2: Any, vpc_id: str, region: str) -> list[str]:
    """Security groups of the VPC's SSM interface endpoints; all three services must be there."""
    services = [f"com.amazonaws.{region}.{name}" for name in SSM_ENDPOINT_SERVICES]
    endpoints = ec2.describe_vpc_endpoints(
        Filters=[{"Name": "vpc-id", "Values": [vpc_id]}, {"Name": "service-name", "Values": services}]
    )["VpcEndpoints"]
    live = [e for e in endpoints if str(e.get("State", "available")).lower() in ("available", "pending")]
    missing = sorted(set(services) - {e["ServiceName"] for e in live})
    if missing:
        raise CapturePathUnavailable(
            f"VPC {vpc_id} has no interface endpoint for {', '.join(m.rsplit('.', 1)[-1] for m in missing)}: "
            "a contained instance can reach SSM only through them, and opening HTTPS to the internet "
            "would undo its containment"
        )
    return sorted({g["GroupId"] for e in live for g in e.get("Groups", [])})


def _instance(ec2: Any, instance_id: str) -> dict[str, Any]:
    reservations = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
    return dict(reservations[0]["Instances"][0])


def _interfaces(instance: Mapping[str, Any]) -> dict[str, tuple[str, tuple[str, ...]]]:
    """eni -> (vpc, groups) for every interface of the instance."""
    return {
        eni["NetworkInterfaceId"]: (eni["VpcId"], tuple(g["GroupId"] for g in eni.get("Groups", [])))
        for eni in instance.get("NetworkInterfaces", [])
    }


def _find_groups(ec2: Any, name: str, vpcs: Sequence[str]) -> dict[str, dict[str, Any]]:
    found = ec2.describe_security_groups(
        Filters=[{"Name": "group-name", "Values": [name]}, {"Name": "vpc-id", "Values": list(vpcs)}]
    )["SecurityGroups"]
    return {g["VpcId"]: g for g in found}


def _tags(group: Mapping[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in group.get("Tags", [])}


def _profile_association(ec2: Any, instance_id: str) -> tuple[str, str] | None:
    associations = ec2.describe_iam_instance_profile_associations(
        Filters=[{"Name": "instance-id", "Values": [instance_id]}]
    )["IamInstanceProfileAssociations"]
    current = [a for a in associations if a.get("State") in ("associated", "associating")]
    if not current:
        return None
    return str(current[0]["AssociationId"]), str(current[0]["IamInstanceProfile"]["Arn"]).rsplit("/", 1)[-1]


# ---------------------------------------------------------------------------------------------
# The record of the original groups, in the capture group's tags (pure).


def record_tags(eni: str, groups: Sequence[str]) -> dict[str, str]:
    """The tags that remember one interface's original groups, split at EC2's 256 characters per value."""
    return chunked_tags(ORIGINAL_GROUPS_TAG + eni, ",".join(groups))


def _record_keys(tags: Iterable[str], eni: str) -> set[str]:
    base = ORIGINAL_GROUPS_TAG + eni
    return {key for key in tags if key == base or key.startswith(base + ":")}


def remembered_groups(tags: Mapping[str, str]) -> dict[str, tuple[str, ...]]:
    """eni -> original groups, read back from a capture group's tags (chunked, or one tag as written before)."""
    found: dict[str, tuple[str, ...]] = {}
    for key in tags:
        if not key.startswith(ORIGINAL_GROUPS_TAG):
            continue
        eni = key[len(ORIGINAL_GROUPS_TAG) :].split(":", 1)[0]
        if eni in found:
            continue
        value = unchunked_tag(tags, ORIGINAL_GROUPS_TAG + eni)
        if value is None:
            value = tags.get(ORIGINAL_GROUPS_TAG + eni)
        if value is not None:
            found[eni] = tuple(g for g in value.split(",") if g)
    return found


def _usable(record: Sequence[str]) -> bool:
    # A record that lost a chunk reads as a shorter list or a broken id; putting that back would
    # give the interface groups it never had (or none), so it is not used.
    return bool(record) and len(set(record)) == len(record) and all(SECURITY_GROUP_ID.fullmatch(g) for g in record)


def original_groups(
    interfaces: Mapping[str, tuple[str, tuple[str, ...]]],
    capture_ids: Iterable[str],
    remembered: Mapping[str, tuple[str, ...]],
) -> dict[str, tuple[str, ...]]:
    """eni -> the groups closing puts back: the record while it is on the capture group, else its groups now."""
    capture = set(capture_ids)
    originals: dict[str, tuple[str, ...]] = {}
    for eni, (_vpc, current) in sorted(interfaces.items()):
        if not set(current) & capture:
            originals[eni] = current
            continue
        record = remembered.get(eni)
        if record is None or not _usable(record):
            what = "no record" if record is None else f"an unusable record ({','.join(record) or 'empty'})"
            raise CapturePathUnavailable(f"interface {eni} holds the capture group but {what} of its groups")
        originals[eni] = tuple(record)
    return originals


@dataclass(frozen=True)
class CaptureTags:
    """One capture group's bookkeeping: the tags to write, then the stale ones to delete."""

    write: dict[str, str]
    stale: tuple[str, ...]


def plan_capture_tags(
    group: str, existing: Mapping[str, str], originals: Mapping[str, Sequence[str]], original_profile: str
) -> CaptureTags:
    """What the group's tags must become to remember `originals` (its VPC's interfaces) and the profile.

    Raises CapturePathUnavailable when that exceeds EC2's limits, which the caller checks before its
    first change. Records are written before stale ones are deleted, so a run cut off between
    the two never leaves an interface on the capture group without its record; the limit is
    therefore checked on both sets together.

    Why refuse rather than keep the record elsewhere: the record must survive with nothing but the
    instance id (closing runs in another Lambda, maybe after a crash), and the capture group is the
    one place only this flow writes. The instance's and interfaces' own tags are the owner's (and
    an attacker's) to edit and may already be full, and an S3 record would tie closing to the
    forensic account. The limit is far off: the group keeps 46 tags for records, and an interface
    needs one tag for up to 12 groups, two for 13-16 (EC2's maximum), so it takes more than 23
    interfaces of 16 groups in one VPC. A refused capture leaves the instance contained and says why.
    """
    remembered = remembered_groups(existing)
    wanted: dict[str, str] = {}
    kept: set[str] = set()
    for eni, groups in sorted(originals.items()):
        if remembered.get(eni) == tuple(groups):
            kept |= _record_keys(existing, eni)
        else:
            wanted |= record_tags(eni, groups)
    if original_profile:
        wanted[ORIGINAL_PROFILE_TAG] = original_profile
    stale = sorted(k for k in existing if k.startswith(ORIGINAL_GROUPS_TAG) and k not in kept and k not in wanted)
    too_long = [f"{k}={v}" for k, v in wanted.items() if len(k) > MAX_TAG_KEY_CHARS or len(v) > MAX_TAG_VALUE_CHARS]
    if too_long:
        raise CapturePathUnavailable(
            f"capture group {group}: tag {too_long[0][:80]!r} exceeds EC2's {MAX_TAG_KEY_CHARS} characters per key "
            f"or {MAX_TAG_VALUE_CHARS} per value"
        )
    needed = counted_tags(set(existing) | set(wanted))
    if needed > MAX_TAGS_PER_RESOURCE:
        sizes = ", ".join(f"{eni}: {len(groups)}" for eni, groups in sorted(originals.items()))
        raise CapturePathUnavailable(
            f"capture group {group} would need {needed} tags to remember the original security groups of "
            f"{len(originals)} interfaces (groups per interface: {sizes}) and EC2 allows {MAX_TAGS_PER_RESOURCE} "
            "per security group; nothing was changed"
        )
    return CaptureTags(write={k: v for k, v in wanted.items() if existing.get(k) != v}, stale=tuple(stale))


# ---------------------------------------------------------------------------------------------
# The capture group's rules.

_RULE_TARGETS = {
    "IpRanges": "CidrIp",
    "Ipv6Ranges": "CidrIpv6",
    "PrefixListIds": "PrefixListId",
    "UserIdGroupPairs": "GroupId",
}
_Rule = tuple[str, Any, Any, str, str]  # protocol, from port, to port, kind of target, target


def _rules(permissions: Iterable[Mapping[str, Any]]) -> dict[_Rule, dict[str, Any]]:
    """Each (protocol, ports, one target) of `permissions`, with the target entry as given."""
    found: dict[_Rule, dict[str, Any]] = {}
    for permission in permissions:
        head = (str(permission["IpProtocol"]), permission.get("FromPort"), permission.get("ToPort"))
        for kind, field_name in _RULE_TARGETS.items():
            for target in permission.get(kind, []):
                found[(*head, kind, str(target[field_name]))] = dict(target)
    return found


def _permissions(rules: Mapping[_Rule, Mapping[str, Any]], *, identity_only: bool = False) -> list[dict[str, Any]]:
    """One permission per rule; `identity_only` drops what a revoke does not match on (descriptions, VPC ids)."""
    permissions: list[dict[str, Any]] = []
    for (protocol, from_port, to_port, kind, _target), entry in sorted(rules.items(), key=lambda r: str(r[0])):
        if identity_only:
            entry = {k: v for k, v in entry.items() if k in (_RULE_TARGETS[kind], "UserId")}
        permission: dict[str, Any] = {"IpProtocol": protocol, kind: [dict(entry)]}
        if from_port is not None:
            permission |= {"FromPort": from_port, "ToPort": to_port}
        permissions.append(permission)
    return permissions


def _enforce_rules(ec2: Any, group: Mapping[str, Any], egress: Sequence[Mapping[str, Any]]) -> None:
    """No ingress, exactly `egress`: also for a group an interrupted run created (a new group allows all egress)."""
    group_id = group["GroupId"]
    wanted, present = _rules(egress), _rules(group.get("IpPermissionsEgress", []))
    extra_egress = {rule: present[rule] for rule in present.keys() - wanted.keys()}
    ingress = _rules(group.get("IpPermissions", []))
    # Revoked before anything is authorised: an interface may already use the group on a retry.
    if extra_egress:
        ec2.revoke_security_group_egress(GroupId=group_id, IpPermissions=_permissions(extra_egress, identity_only=True))
    if ingress:
        ec2.revoke_security_group_ingress(GroupId=group_id, IpPermissions=_permissions(ingress, identity_only=True))
    missing = {rule: wanted[rule] for rule in wanted.keys() - present.keys()}
    if missing:
        ec2.authorize_security_group_egress(GroupId=group_id, IpPermissions=_permissions(missing))


# ---------------------------------------------------------------------------------------------
# Opening and closing.


def open_capture_path(ec2: Any, instance_id: str, *, prefix: str, region: str) -> CapturePath:
    """Give the contained instance HTTPS to S3 and SSM only, and the acquisition profile; idempotent.

    Everything that can refuse (no endpoints, no usable record, tags over EC2's limits) is decided
    before the first change, so a refusal leaves the instance exactly as contained as it was.
    """
    instance = _instance(ec2, instance_id)
    interfaces = _interfaces(instance)
    vpcs = sorted({vpc for vpc, _ in interfaces.values()})
    name = capture_group_name(prefix, instance_id)
    prefix_list = s3_prefix_list(ec2, region)
    egress = {vpc: capture_egress(prefix_list, ssm_endpoint_groups(ec2, vpc, region)) for vpc in vpcs}
    existing = _find_groups(ec2, name, vpcs)
    remembered = {eni: groups for group in existing.values() for eni, groups in remembered_groups(_tags(group)).items()}
    originals = original_groups(interfaces, (g["GroupId"] for g in existing.values()), remembered)

    profile = _profile_association(ec2, instance_id)
    isolation_profile = naming.isolation_profile(prefix, region)
    acquisition = naming.acquisition_profile(prefix, region)
    original_profile = ""
    if profile is not None and profile[1] == isolation_profile:
        original_profile = isolation_profile
    elif profile is not None and profile[1] == acquisition:
        original_profile = next((p for g in existing.values() if (p := _tags(g).get(ORIGINAL_PROFILE_TAG))), "")

    creation_tags = {MANAGED_BY_TAG: MANAGED_BY_VALUE, "Name": name, CAPTURE_INSTANCE_TAG: instance_id}
    plans = {
        vpc: plan_capture_tags(
            existing[vpc]["GroupId"] if vpc in existing else f"{name} in {vpc}",
            _tags(existing[vpc]) if vpc in existing else creation_tags,
            {eni: originals[eni] for eni, (eni_vpc, _) in interfaces.items() if eni_vpc == vpc},
            original_profile,
        )
        for vpc in vpcs
    }

    groups: dict[str, str] = {}
    for vpc in vpcs:
        if vpc in existing:
            group = existing[vpc]
        else:
            group_id = str(
                ec2.create_security_group(
                    GroupName=name,
                    VpcId=vpc,
                    Description="irforensics memory capture: HTTPS egress to S3 and SSM endpoints only, no ingress",
                    TagSpecifications=[
                        {
                            "ResourceType": "security-group",
                            "Tags": [{"Key": k, "Value": v} for k, v in creation_tags.items()],
                        }
                    ],
                )["GroupId"]
            )
            group = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]
        # Its rules are settled before any interface can use the group.
        _enforce_rules(ec2, group, egress[vpc])
        groups[vpc] = str(group["GroupId"])
        plan = plans[vpc]
        if plan.write:
            ec2.create_tags(Resources=[groups[vpc]], Tags=[{"Key": k, "Value": v} for k, v in plan.write.items()])
        if plan.stale:
            ec2.delete_tags(Resources=[groups[vpc]], Tags=[{"Key": k} for k in plan.stale])

    if profile is not None and profile[1] == isolation_profile:
        ec2.replace_iam_instance_profile_association(AssociationId=profile[0], IamInstanceProfile={"Name": acquisition})
    for eni, (vpc, current) in interfaces.items():
        if current != (groups[vpc],):
            ec2.modify_network_interface_attribute(NetworkInterfaceId=eni, Groups=[groups[vpc]])
    return CapturePath(
        opened=True,
        reason="HTTPS egress to S3 and the SSM endpoints only, for the capture",
        groups=groups,
        interfaces=originals,
        original_profile=original_profile,
    )


def close_capture_path(ec2: Any, instance_id: str, *, prefix: str, region: str) -> list[str]:
    """Put every interface back on its recorded groups, the recorded profile back, delete the group.

    Returns what it changed (empty when the path was already closed). Every record is read and
    checked before the first interface moves.
    """
    instance = _instance(ec2, instance_id)
    interfaces = _interfaces(instance)
    vpcs = sorted({vpc for vpc, _ in interfaces.values()})
    found = _find_groups(ec2, capture_group_name(prefix, instance_id), vpcs)
    if not found:
        return []
    remembered: dict[str, tuple[str, ...]] = {}
    original_profile = ""
    for group in found.values():
        tags = _tags(group)
        remembered |= remembered_groups(tags)
        original_profile = original_profile or tags.get(ORIGINAL_PROFILE_TAG, "")
    capture_ids = {g["GroupId"] for g in found.values()}
    originals = original_groups(interfaces, capture_ids, remembered)
    changes: list[str] = []
    for eni, (_vpc, current) in sorted(interfaces.items()):
        if set(current) & capture_ids:
            ec2.modify_network_interface_attribute(NetworkInterfaceId=eni, Groups=list(originals[eni]))
            changes.append(f"{eni}: groups back to {','.join(originals[eni])}")
    profile = _profile_association(ec2, instance_id)
    if original_profile and profile is not None and profile[1] == naming.acquisition_profile(prefix, region):
        ec2.replace_iam_instance_profile_association(
            AssociationId=profile[0], IamInstanceProfile={"Name": original_profile}
        )
        changes.append(f"instance profile back to {original_profile}")
    for group_id in sorted(capture_ids):
        try:
            ec2.delete_security_group(GroupId=group_id)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "InvalidGroup.NotFound":
                raise
        changes.append(f"capture group {group_id} deleted")
    return changes
