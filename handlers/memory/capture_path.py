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

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from botocore.exceptions import ClientError

from core.groupswap import GroupSwap, plan_rules
from core.instances import InterfaceState, ProfileAssociation, profile_association, read_instance
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


def _find_groups(ec2: Any, name: str, vpcs: Sequence[str]) -> dict[str, dict[str, Any]]:
    found = ec2.describe_security_groups(
        Filters=[{"Name": "group-name", "Values": [name]}, {"Name": "vpc-id", "Values": list(vpcs)}]
    )["SecurityGroups"]
    return {g["VpcId"]: g for g in found}


def _tags(group: Mapping[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in group.get("Tags", [])}


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


def original_groups(
    interfaces: Sequence[InterfaceState], capture_ids: Mapping[str, str], remembered: Mapping[str, tuple[str, ...]]
) -> GroupSwap:
    """The swap onto the capture groups (vpc -> group id); refuses when an interface holds the capture group
    but no usable record of its groups: closing would have nothing true to put back."""
    swap = GroupSwap.plan(interfaces, {vpc: (group,) for vpc, group in capture_ids.items()}, remembered)
    for eni in swap.unknown:
        record = remembered.get(eni)
        what = "no record" if record is None else f"an unusable record ({','.join(record) or 'empty'})"
        raise CapturePathUnavailable(f"interface {eni} holds the capture group but {what} of its groups")
    return swap


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
# Opening and closing.


@dataclass(frozen=True)
class CapturePathPlan:
    """Everything opening decides before its first change (so a refusal changes nothing)."""

    instance_id: str
    name: str
    interfaces: tuple[InterfaceState, ...]
    egress: Mapping[str, list[dict[str, Any]]]  # vpc -> the capture group's egress
    existing: Mapping[str, Mapping[str, Any]]  # vpc -> the capture group already there
    creation_tags: Mapping[str, str]
    originals: Mapping[str, tuple[str, ...]]
    tags: Mapping[str, CaptureTags]  # vpc -> the record to write on that VPC's group
    profile: ProfileAssociation | None
    acquisition_profile: str
    original_profile: str
    # The instance holds the isolation profile: the capture swaps it for the acquisition profile.
    replaces_profile: bool

    @property
    def vpcs(self) -> list[str]:
        return sorted({i.vpc_id for i in self.interfaces})


def plan_capture_path(ec2: Any, instance_id: str, *, prefix: str, region: str) -> CapturePathPlan:
    """Read and decide: endpoints, record, tag limits. Raises CapturePathUnavailable; changes nothing."""
    instance = read_instance(ec2, instance_id)
    vpcs = list(instance.vpcs)
    name = capture_group_name(prefix, instance_id)
    prefix_list = s3_prefix_list(ec2, region)
    egress = {vpc: capture_egress(prefix_list, ssm_endpoint_groups(ec2, vpc, region)) for vpc in vpcs}
    existing = _find_groups(ec2, name, vpcs)
    remembered = {eni: groups for group in existing.values() for eni, groups in remembered_groups(_tags(group)).items()}
    ids = {vpc: str(existing[vpc]["GroupId"]) if vpc in existing else f"{name} in {vpc}" for vpc in vpcs}
    originals = original_groups(instance.interfaces, ids, remembered).originals

    profile = profile_association(ec2, instance_id)
    isolation_profile = naming.isolation_profile(prefix, region)
    acquisition = naming.acquisition_profile(prefix, region)
    original_profile = ""
    if profile is not None and profile.name == isolation_profile:
        original_profile = isolation_profile
    elif profile is not None and profile.name == acquisition:
        original_profile = next((p for g in existing.values() if (p := _tags(g).get(ORIGINAL_PROFILE_TAG))), "")

    creation_tags = {MANAGED_BY_TAG: MANAGED_BY_VALUE, "Name": name, CAPTURE_INSTANCE_TAG: instance_id}
    tags = {
        vpc: plan_capture_tags(
            ids[vpc],
            _tags(existing[vpc]) if vpc in existing else creation_tags,
            {i.eni_id: originals[i.eni_id] for i in instance.interfaces if i.vpc_id == vpc},
            original_profile,
        )
        for vpc in vpcs
    }
    return CapturePathPlan(
        instance_id=instance_id,
        name=name,
        interfaces=instance.interfaces,
        egress=egress,
        existing=existing,
        creation_tags=creation_tags,
        originals=originals,
        tags=tags,
        profile=profile,
        acquisition_profile=acquisition,
        original_profile=original_profile,
        replaces_profile=profile is not None and profile.name == isolation_profile,
    )


@dataclass(frozen=True)
class CaptureGroupRecord:
    """The swap's record of original groups (core.groupswap.GroupRecord), in each capture group's tags."""

    ec2: Any
    groups: Mapping[str, str]  # vpc -> capture group id
    tags: Mapping[str, CaptureTags]

    def remember(self, originals: Mapping[str, tuple[str, ...]], missing: Mapping[str, tuple[str, ...]]) -> None:
        # Records are written before stale ones are deleted (see plan_capture_tags).
        for vpc, plan in sorted(self.tags.items()):
            if plan.write:
                self.ec2.create_tags(
                    Resources=[self.groups[vpc]], Tags=[{"Key": k, "Value": v} for k, v in plan.write.items()]
                )
            if plan.stale:
                self.ec2.delete_tags(Resources=[self.groups[vpc]], Tags=[{"Key": k} for k in plan.stale])


def _capture_group(ec2: Any, plan: CapturePathPlan, vpc: str) -> Mapping[str, Any]:
    if vpc in plan.existing:
        return plan.existing[vpc]
    group_id = str(
        ec2.create_security_group(
            GroupName=plan.name,
            VpcId=vpc,
            Description="irforensics memory capture: HTTPS egress to S3 and SSM endpoints only, no ingress",
            TagSpecifications=[
                {
                    "ResourceType": "security-group",
                    "Tags": [{"Key": k, "Value": v} for k, v in plan.creation_tags.items()],
                }
            ],
        )["GroupId"]
    )
    return dict(ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0])


def apply_capture_path(ec2: Any, plan: CapturePathPlan) -> CapturePath:
    """Make the planned path: groups with exactly their rules, the record, the profile, then the interfaces."""
    groups: dict[str, str] = {}
    for vpc in plan.vpcs:
        group = _capture_group(ec2, plan, vpc)
        # No ingress, exactly the egress: also for a group an interrupted run created (a new group allows
        # all egress). Its rules are settled before any interface can use the group.
        for fix in plan_rules(group, {"egress": plan.egress[vpc]}):
            fix.call(ec2)(GroupId=fix.group_id, IpPermissions=list(fix.permissions))
        groups[vpc] = str(group["GroupId"])
    swap = GroupSwap.plan(plan.interfaces, {vpc: (group,) for vpc, group in groups.items()}, plan.originals)
    profile: list[Callable[[], object]] = []
    if plan.replaces_profile and plan.profile is not None:
        profile.append(
            partial(
                ec2.replace_iam_instance_profile_association,
                AssociationId=plan.profile.association_id,
                IamInstanceProfile={"Name": plan.acquisition_profile},
            )
        )
    swap.apply(_set_groups(ec2), CaptureGroupRecord(ec2, groups, plan.tags), alongside=profile)
    return CapturePath(
        opened=True,
        reason="HTTPS egress to S3 and the SSM endpoints only, for the capture",
        groups=groups,
        interfaces=dict(plan.originals),
        original_profile=plan.original_profile,
    )


def _set_groups(ec2: Any) -> Callable[[str, list[str]], object]:
    return lambda eni, groups: ec2.modify_network_interface_attribute(NetworkInterfaceId=eni, Groups=groups)


def open_capture_path(ec2: Any, instance_id: str, *, prefix: str, region: str) -> CapturePath:
    """Give the contained instance HTTPS to S3 and SSM only, and the acquisition profile; idempotent.

    Everything that can refuse (no endpoints, no usable record, tags over EC2's limits) is decided
    by `plan_capture_path` before the first change, so a refusal leaves the instance exactly as
    contained as it was.
    """
    return apply_capture_path(ec2, plan_capture_path(ec2, instance_id, prefix=prefix, region=region))


def close_capture_path(ec2: Any, instance_id: str, *, prefix: str, region: str) -> list[str]:
    """Put every interface back on its recorded groups, the recorded profile back, delete the group.

    Returns what it changed (empty when the path was already closed). Every record is read and
    checked before the first interface moves.
    """
    instance = read_instance(ec2, instance_id)
    found = _find_groups(ec2, capture_group_name(prefix, instance_id), list(instance.vpcs))
    if not found:
        return []
    remembered: dict[str, tuple[str, ...]] = {}
    original_profile = ""
    for group in found.values():
        tags = _tags(group)
        remembered |= remembered_groups(tags)
        original_profile = original_profile or tags.get(ORIGINAL_PROFILE_TAG, "")
    capture_ids = {vpc: str(g["GroupId"]) for vpc, g in found.items()}
    originals = original_groups(instance.interfaces, capture_ids, remembered).originals
    changes: list[str] = []
    for eni in instance.interfaces:
        if set(eni.groups) & set(capture_ids.values()):
            ec2.modify_network_interface_attribute(NetworkInterfaceId=eni.eni_id, Groups=list(originals[eni.eni_id]))
            changes.append(f"{eni.eni_id}: groups back to {','.join(originals[eni.eni_id])}")
    profile = profile_association(ec2, instance_id)
    if original_profile and profile is not None and profile.name == naming.acquisition_profile(prefix, region):
        ec2.replace_iam_instance_profile_association(
            AssociationId=profile.association_id, IamInstanceProfile={"Name": original_profile}
        )
        changes.append(f"instance profile back to {original_profile}")
    for group_id in sorted(set(capture_ids.values())):
        try:
            ec2.delete_security_group(GroupId=group_id)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "InvalidGroup.NotFound":
                raise
        changes.append(f"capture group {group_id} deleted")
    return changes
