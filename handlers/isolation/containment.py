"""Contain, protect and release a suspect EC2 instance in a member account.

Read the instance's state, decide what to change with pure functions (`plan_*`), apply the
changes with thin effects. Dry-run is "plan, do not apply"; release is "plan back to the
recorded state". The critical path is network isolation: one describe, one lookup of the
isolation groups, one tag write that remembers the original groups, then two interface
changes per interface. Everything else happens after no traffic can flow.

Where the original state lives while an instance is contained: in its own tags. Before the
first change, the original groups of every interface are written to
`irforensics:containment:groups:<n>`; before anything else changes, the whole original
`InstanceState` is written, compressed, to `irforensics:containment:before:<n>`. A repeated
call (a retried Lambda, an escalation from Analyze to Contain) reads them back, so its record's
`before` is the original state, not the already-contained one. Release deletes them.

EC2 allows 50 tags per instance (values of at most 256 characters), and the instance's owner
(or an attacker on it, with ec2:CreateTags) may have used them all. Isolation never depends on a
tag write: what does not fit is not written, in this order of priority: the original groups,
`SecurityIncidentCaseId`, `SecurityIncidentStatus`, the original state (without the instance's
own tags if only that fits). The record's `notes` say what was left out and what that costs.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

import boto3
from botocore.exceptions import ClientError

from handlers.common import naming
from handlers.common.case import require_valid_ids
from handlers.common.errors import CaseAlreadyOpen, InstanceNotFound
from handlers.common.tags import (
    ACTION_ANALYZE,
    ACTION_CONTAIN,
    CASE_TAG,
    INCIDENT_TAG,
    MANAGED_BY_TAG,
    MANAGED_BY_VALUE,
    MAX_TAG_VALUE_CHARS,
    MAX_TAGS_PER_RESOURCE,
    chunked_tags,
    counted_tags,
    unchunked_tag,
)
from handlers.isolation import revocation

Sleep = Callable[[float], None]
Clock = Callable[[], datetime]
T = TypeVar("T")

BOOKKEEPING_TAG = "irforensics:containment:"
GROUPS_TAG = BOOKKEEPING_TAG + "groups"
BEFORE_TAG = BOOKKEEPING_TAG + "before"
TAG_VALUE_MAX = MAX_TAG_VALUE_CHARS
DETACHED = "Detached"
GONE = ("shutting-down", "terminated")
ALL_IPV4 = "0.0.0.0/0"
ALL_IPV6 = "::/0"
# Codes AWS returns while a just-created resource propagates; retried a bounded number of times.
EVENTUALLY_CONSISTENT = frozenset(
    {
        "InvalidGroup.NotFound",
        "InvalidSecurityGroupID.NotFound",
        "InvalidInstanceID.NotFound",
        "InvalidParameterValue",
        "IncorrectInstanceState",
        "InvalidNetworkInterfaceID.NotFound",
    }
)
RETRY_ATTEMPTS = 5


def utcnow() -> datetime:
    return datetime.now(UTC)


def isotime(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------------------------------
# The model: what an instance looks like to a responder, and what we change.


@dataclass(frozen=True)
class InterfaceState:
    eni_id: str
    device_index: int
    vpc_id: str
    subnet_id: str
    groups: tuple[str, ...]
    private_ips: tuple[str, ...]
    ipv6_addresses: tuple[str, ...]


@dataclass(frozen=True)
class ProfileAssociation:
    association_id: str
    profile_arn: str
    roles: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.profile_arn.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class VolumeState:
    device_name: str
    volume_id: str
    delete_on_termination: bool


@dataclass(frozen=True)
class AddressAssociation:
    allocation_id: str
    public_ip: str
    association_id: str
    eni_id: str
    private_ip: str


@dataclass(frozen=True)
class AutoScalingMembership:
    group_name: str
    lifecycle_state: str
    protected_from_scale_in: bool


@dataclass(frozen=True)
class TargetRegistration:
    target_group_arn: str
    target_id: str
    port: int


@dataclass(frozen=True)
class InstanceState:
    """The before/after snapshot: everything containment changes, nothing that drifts on its own."""

    instance_id: str
    account: str
    region: str
    interfaces: tuple[InterfaceState, ...]
    profile: ProfileAssociation | None
    termination_protection: bool
    shutdown_behavior: str
    volumes: tuple[VolumeState, ...]
    addresses: tuple[AddressAssociation, ...]
    auto_scaling: AutoScalingMembership | None
    target_groups: tuple[TargetRegistration, ...]
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def arn(self) -> str:
        return f"arn:{_partition(self.region)}:ec2:{self.region}:{self.account}:instance/{self.instance_id}"

    def interface(self, eni_id: str) -> InterfaceState | None:
        return next((i for i in self.interfaces if i.eni_id == eni_id), None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InstanceState:
        profile = data.get("profile")
        asg = data.get("auto_scaling")
        return cls(
            instance_id=data["instance_id"],
            account=data["account"],
            region=data["region"],
            interfaces=tuple(
                InterfaceState(
                    eni_id=i["eni_id"],
                    device_index=int(i["device_index"]),
                    vpc_id=i["vpc_id"],
                    subnet_id=i["subnet_id"],
                    groups=tuple(i["groups"]),
                    private_ips=tuple(i["private_ips"]),
                    ipv6_addresses=tuple(i["ipv6_addresses"]),
                )
                for i in data["interfaces"]
            ),
            profile=ProfileAssociation(profile["association_id"], profile["profile_arn"], tuple(profile["roles"]))
            if profile
            else None,
            termination_protection=bool(data["termination_protection"]),
            shutdown_behavior=data["shutdown_behavior"],
            volumes=tuple(VolumeState(**v) for v in data["volumes"]),
            addresses=tuple(AddressAssociation(**a) for a in data["addresses"]),
            auto_scaling=AutoScalingMembership(**asg) if asg else None,
            target_groups=tuple(TargetRegistration(**t) for t in data["target_groups"]),
            tags=dict(data.get("tags", {})),
        )


@dataclass(frozen=True)
class Change:
    """One change to one resource, made with one API call (or, in a dry run, that would be made)."""

    what: str
    resource: str
    old: Any
    new: Any
    api: str

    def to_dict(self) -> dict[str, Any]:
        return {"what": self.what, "resource": self.resource, "from": self.old, "to": self.new, "api": self.api}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Change:
        return cls(what=data["what"], resource=data["resource"], old=data["from"], new=data["to"], api=data["api"])


@dataclass(frozen=True)
class CredentialRevocation:
    """Deny on the original role for credentials it issued to this instance before `issued_before`."""

    role: str
    policy_name: str
    issued_before: str


@dataclass(frozen=True)
class ContainmentRecord:
    case_id: str
    instance_id: str
    account: str
    region: str
    dry_run: bool
    before: InstanceState
    after: InstanceState
    changes: list[Change]
    started_at: str
    finished_at: str
    action: str = ACTION_CONTAIN
    revocations: tuple[CredentialRevocation, ...] = ()
    # What could not be done as usual and what that means (e.g. bookkeeping tags that did not fit).
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "case_id": self.case_id,
            "instance_id": self.instance_id,
            "account": self.account,
            "region": self.region,
            "dry_run": self.dry_run,
            "action": self.action,
            "before": self.before.to_dict(),
            "after": self.after.to_dict(),
            "changes": [c.to_dict() for c in self.changes],
            "revocations": [asdict(r) for r in self.revocations],
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "notes": list(self.notes),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ContainmentRecord:
        return cls(
            case_id=data["case_id"],
            instance_id=data["instance_id"],
            account=data["account"],
            region=data["region"],
            dry_run=bool(data["dry_run"]),
            action=data.get("action", ACTION_CONTAIN),
            before=InstanceState.from_dict(data["before"]),
            after=InstanceState.from_dict(data["after"]),
            changes=[Change.from_dict(c) for c in data["changes"]],
            revocations=tuple(CredentialRevocation(**r) for r in data.get("revocations", [])),
            started_at=data["started_at"],
            finished_at=data["finished_at"],
            notes=tuple(str(n) for n in data.get("notes", [])),
        )

    @classmethod
    def from_json(cls, text: str) -> ContainmentRecord:
        return cls.from_dict(json.loads(text))


@dataclass(frozen=True)
class IsolationGroups:
    """The two groups of one VPC; ids are names in a dry run when the groups do not exist yet."""

    vpc_id: str
    tracked: str
    deny_all: str


@dataclass(frozen=True)
class Isolation:
    """Everything `plan_containment` needs besides the instance's state."""

    case_id: str
    groups: Mapping[str, IsolationGroups]
    profile_name: str
    revocation_policy: str
    original_roles: tuple[str, ...] = ()
    revoked_roles: frozenset[str] = frozenset()
    revoke_before: str = ""
    action: str = ACTION_CONTAIN


# ---------------------------------------------------------------------------------------------
# Decisions (pure).


def incident_tags(case_id: str, action: str) -> dict[str, str]:
    return {INCIDENT_TAG: action, CASE_TAG: case_id}


def revocation_policy_name(prefix: str, region: str) -> str:
    return naming.revocation_policy(prefix, region)


def plan_tags(state: InstanceState, case_id: str, action: str) -> list[Change]:
    wanted = incident_tags(case_id, action)
    current = {k: state.tags.get(k) for k in wanted}
    if current == wanted:
        return []
    return [Change("incident-tags", state.instance_id, current, wanted, "ec2:CreateTags")]


def plan_network_isolation(state: InstanceState, isolation: Isolation) -> list[Change]:
    """Every interface to the allow-all group (tracked flows become untracked), then to the no-rule group.

    A group swap does not cut connections the old groups tracked; a group that allows all traffic
    in and out makes flows untracked, and untracked flows stop the moment the no-rule group applies.
    """
    first: list[Change] = []
    second: list[Change] = []
    for eni in state.interfaces:
        groups = isolation.groups[eni.vpc_id]
        if eni.groups == (groups.deny_all,):
            continue
        if eni.groups != (groups.tracked,):
            first.append(
                Change(
                    "interface-groups",
                    eni.eni_id,
                    list(eni.groups),
                    [groups.tracked],
                    "ec2:ModifyNetworkInterfaceAttribute",
                )
            )
        second.append(
            Change(
                "interface-groups",
                eni.eni_id,
                [groups.tracked],
                [groups.deny_all],
                "ec2:ModifyNetworkInterfaceAttribute",
            )
        )
    return first + second


def plan_protection(state: InstanceState, case_id: str, action: str) -> list[Change]:
    """What Analyze mode changes: the instance and its volumes survive anything but a deliberate release."""
    changes = plan_tags(state, case_id, action)
    if not state.termination_protection:
        changes.append(Change("termination-protection", state.instance_id, False, True, "ec2:ModifyInstanceAttribute"))
    if state.shutdown_behavior != "stop":
        changes.append(
            Change(
                "shutdown-behavior", state.instance_id, state.shutdown_behavior, "stop", "ec2:ModifyInstanceAttribute"
            )
        )
    changes.extend(
        Change("delete-on-termination", v.volume_id, True, False, "ec2:ModifyInstanceAttribute")
        for v in state.volumes
        if v.delete_on_termination
    )
    return changes


def plan_containment(state: InstanceState, isolation: Isolation) -> list[Change]:
    """Everything containment changes, in the order it is applied: network first, it stops the attacker."""
    changes = plan_tags(state, isolation.case_id, isolation.action)
    changes += plan_network_isolation(state, isolation)
    profile = state.profile
    if profile is None:
        changes.append(
            Change(
                "instance-profile",
                state.instance_id,
                None,
                {"profile": isolation.profile_name},
                "ec2:AssociateIamInstanceProfile",
            )
        )
    elif profile.name != isolation.profile_name:
        changes.append(
            Change(
                "instance-profile",
                state.instance_id,
                {"association_id": profile.association_id, "profile_arn": profile.profile_arn},
                {"profile": isolation.profile_name},
                "ec2:ReplaceIamInstanceProfileAssociation",
            )
        )
    changes.extend(
        Change(
            "credential-revocation",
            role,
            None,
            {"policy": isolation.revocation_policy, "issued_before": isolation.revoke_before},
            "iam:TagRole",
        )
        for role in isolation.original_roles
        if role not in isolation.revoked_roles
    )
    # Detach rather than Standby: Auto Scaling ignores termination protection, and it still
    # terminates Standby instances when the group is deleted or replaced (blue/green deployments,
    # stack rollbacks, ForceDelete). A detached instance is out of the group's reach entirely;
    # not decrementing the desired capacity makes the group launch a replacement, so the service
    # keeps its capacity.
    if state.auto_scaling is not None:
        changes.append(
            Change(
                "auto-scaling",
                state.auto_scaling.group_name,
                state.auto_scaling.lifecycle_state,
                DETACHED,
                "autoscaling:DetachInstances",
            )
        )
    changes += [c for c in plan_protection(state, isolation.case_id, isolation.action) if c.what != "incident-tags"]
    changes.extend(
        Change(
            "target-registration",
            t.target_group_arn,
            {"id": t.target_id, "port": t.port},
            None,
            "elasticloadbalancing:DeregisterTargets",
        )
        for t in state.target_groups
    )
    changes.extend(
        Change(
            "elastic-ip",
            a.allocation_id,
            {
                "association_id": a.association_id,
                "eni_id": a.eni_id,
                "private_ip": a.private_ip,
                "public_ip": a.public_ip,
            },
            None,
            "ec2:DisassociateAddress",
        )
        for a in state.addresses
    )
    return changes


def plan_release(current: InstanceState, record: ContainmentRecord, revoked_roles: Iterable[str]) -> list[Change]:
    """Back to `record.before`, minus the incident tags (leaving them would trigger containment again)."""
    before = record.before
    changes: list[Change] = []
    revoked = set(revoked_roles)
    changes.extend(
        Change(
            "credential-revocation",
            r.role,
            {"policy": r.policy_name, "issued_before": r.issued_before},
            None,
            "iam:UntagRole",
        )
        for r in record.revocations
        if r.role in revoked
    )
    now, then = current.profile, before.profile
    if then is None and now is not None:
        changes.append(
            Change(
                "instance-profile",
                current.instance_id,
                {"association_id": now.association_id, "profile_arn": now.profile_arn},
                None,
                "ec2:DisassociateIamInstanceProfile",
            )
        )
    elif then is not None and now is None:
        changes.append(
            Change(
                "instance-profile",
                current.instance_id,
                None,
                {"profile": then.profile_arn},
                "ec2:AssociateIamInstanceProfile",
            )
        )
    elif then is not None and now is not None and now.name != then.name:
        changes.append(
            Change(
                "instance-profile",
                current.instance_id,
                {"association_id": now.association_id, "profile_arn": now.profile_arn},
                {"profile": then.profile_arn},
                "ec2:ReplaceIamInstanceProfileAssociation",
            )
        )
    if current.termination_protection != before.termination_protection:
        changes.append(
            Change(
                "termination-protection",
                current.instance_id,
                current.termination_protection,
                before.termination_protection,
                "ec2:ModifyInstanceAttribute",
            )
        )
    if current.shutdown_behavior != before.shutdown_behavior:
        changes.append(
            Change(
                "shutdown-behavior",
                current.instance_id,
                current.shutdown_behavior,
                before.shutdown_behavior,
                "ec2:ModifyInstanceAttribute",
            )
        )
    now_volumes = {v.volume_id: v for v in current.volumes}
    changes.extend(
        Change(
            "delete-on-termination",
            v.volume_id,
            now_volumes[v.volume_id].delete_on_termination,
            v.delete_on_termination,
            "ec2:ModifyInstanceAttribute",
        )
        for v in before.volumes
        if v.volume_id in now_volumes and now_volumes[v.volume_id].delete_on_termination != v.delete_on_termination
    )
    for eni in before.interfaces:
        now_eni = current.interface(eni.eni_id)
        if now_eni is not None and now_eni.groups != eni.groups:
            changes.append(
                Change(
                    "interface-groups",
                    eni.eni_id,
                    list(now_eni.groups),
                    list(eni.groups),
                    "ec2:ModifyNetworkInterfaceAttribute",
                )
            )
    associated = {a.allocation_id for a in current.addresses}
    changes.extend(
        Change(
            "elastic-ip",
            a.allocation_id,
            None,
            {"eni_id": a.eni_id, "private_ip": a.private_ip, "public_ip": a.public_ip},
            "ec2:AssociateAddress",
        )
        for a in before.addresses
        if a.allocation_id not in associated
    )
    if before.auto_scaling is not None and current.auto_scaling is None:
        changes.append(
            Change("auto-scaling", before.auto_scaling.group_name, DETACHED, "InService", "autoscaling:AttachInstances")
        )
    registered = {(t.target_group_arn, t.target_id, t.port) for t in current.target_groups}
    changes.extend(
        Change(
            "target-registration",
            t.target_group_arn,
            None,
            {"id": t.target_id, "port": t.port},
            "elasticloadbalancing:RegisterTargets",
        )
        for t in before.target_groups
        if (t.target_group_arn, t.target_id, t.port) not in registered
    )
    present = {k: current.tags[k] for k in (INCIDENT_TAG, CASE_TAG) if k in current.tags}
    if present:
        changes.append(
            Change("incident-tags", current.instance_id, present, {k: None for k in present}, "ec2:DeleteTags")
        )
    return changes


# ---------------------------------------------------------------------------------------------
# Reading state.


@dataclass
class _Clients:
    ec2: Any
    iam: Any
    autoscaling: Any
    elbv2: Any
    region: str
    sleep: Sleep

    @classmethod
    def of(cls, session: boto3.Session, sleep: Sleep) -> _Clients:
        region = session.region_name or "us-east-1"
        return cls(
            ec2=session.client("ec2"),
            iam=session.client("iam"),
            autoscaling=session.client("autoscaling"),
            elbv2=session.client("elbv2"),
            region=region,
            sleep=sleep,
        )

    def call(self, operation: Callable[..., T], **kwargs: Any) -> T:
        """One AWS call, retried (bounded, with backoff) while a just-created resource propagates."""
        for attempt in range(RETRY_ATTEMPTS):
            try:
                return operation(**kwargs)
            except ClientError as exc:
                if exc.response["Error"]["Code"] not in EVENTUALLY_CONSISTENT or attempt == RETRY_ATTEMPTS - 1:
                    raise
                self.sleep(0.5 * 2**attempt)
        raise AssertionError("unreachable")


def _partition(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def _describe(aws: _Clients, instance_id: str) -> tuple[dict[str, Any], str]:
    try:
        reservations = aws.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"):
            raise InstanceNotFound(instance_id, "does not exist in this account and region") from exc
        raise
    found = [
        (i, r["OwnerId"]) for r in reservations for i in r.get("Instances", []) if i.get("InstanceId") == instance_id
    ]
    if not found:
        raise InstanceNotFound(instance_id, "does not exist in this account and region")
    instance, owner = found[0]
    if instance["State"]["Name"] in GONE:
        raise InstanceNotFound(instance_id, f"is {instance['State']['Name']}: nothing left to contain")
    return instance, owner


def _raw_tags(instance: Mapping[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in instance.get("Tags", [])}


def _interfaces(instance: Mapping[str, Any]) -> tuple[InterfaceState, ...]:
    interfaces = [
        InterfaceState(
            eni_id=n["NetworkInterfaceId"],
            device_index=int(n["Attachment"]["DeviceIndex"]),
            vpc_id=n["VpcId"],
            subnet_id=n["SubnetId"],
            groups=tuple(g["GroupId"] for g in n.get("Groups", [])),
            private_ips=tuple(p["PrivateIpAddress"] for p in n.get("PrivateIpAddresses", [])),
            ipv6_addresses=tuple(a["Ipv6Address"] for a in n.get("Ipv6Addresses", [])),
        )
        for n in instance.get("NetworkInterfaces", [])
    ]
    return tuple(sorted(interfaces, key=lambda i: i.device_index))


def _network_state(instance: Mapping[str, Any], account: str, region: str) -> InstanceState:
    """What one DescribeInstances tells: enough to isolate the network before reading anything else."""
    return InstanceState(
        instance_id=instance["InstanceId"],
        account=account,
        region=region,
        interfaces=_interfaces(instance),
        profile=None,
        termination_protection=False,
        shutdown_behavior="",
        volumes=(),
        addresses=(),
        auto_scaling=None,
        target_groups=(),
        tags={k: v for k, v in _raw_tags(instance).items() if not k.startswith(BOOKKEEPING_TAG)},
    )


def _profile(aws: _Clients, instance_id: str) -> ProfileAssociation | None:
    associations = aws.ec2.describe_iam_instance_profile_associations(
        Filters=[{"Name": "instance-id", "Values": [instance_id]}]
    )["IamInstanceProfileAssociations"]
    current = [a for a in associations if a.get("State") in ("associated", "associating")]
    if not current:
        return None
    arn = current[0]["IamInstanceProfile"]["Arn"]
    try:
        profile = aws.iam.get_instance_profile(InstanceProfileName=arn.rsplit("/", 1)[-1])["InstanceProfile"]
        roles = tuple(r["RoleName"] for r in profile.get("Roles", []))
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "NoSuchEntity":
            raise
        roles = ()
    return ProfileAssociation(association_id=current[0]["AssociationId"], profile_arn=arn, roles=roles)


def _addresses(aws: _Clients, interfaces: Sequence[InterfaceState]) -> tuple[AddressAssociation, ...]:
    if not interfaces:
        return ()
    # Filter by interface, not instance: an EIP on a secondary interface is still this instance's.
    found = aws.ec2.describe_addresses(
        Filters=[{"Name": "network-interface-id", "Values": [i.eni_id for i in interfaces]}]
    )["Addresses"]
    return tuple(
        sorted(
            (
                AddressAssociation(
                    allocation_id=a["AllocationId"],
                    public_ip=a["PublicIp"],
                    association_id=a["AssociationId"],
                    eni_id=a["NetworkInterfaceId"],
                    private_ip=a["PrivateIpAddress"],
                )
                for a in found
                if a.get("AssociationId")
            ),
            key=lambda a: a.allocation_id,
        )
    )


def _auto_scaling(aws: _Clients, instance_id: str) -> AutoScalingMembership | None:
    found = aws.autoscaling.describe_auto_scaling_instances(InstanceIds=[instance_id])["AutoScalingInstances"]
    if not found:
        return None
    return AutoScalingMembership(
        group_name=found[0]["AutoScalingGroupName"],
        lifecycle_state=found[0]["LifecycleState"],
        protected_from_scale_in=bool(found[0].get("ProtectedFromScaleIn", False)),
    )


def _target_registrations(
    aws: _Clients, instance_id: str, interfaces: Sequence[InterfaceState]
) -> tuple[TargetRegistration, ...]:
    vpcs = {i.vpc_id for i in interfaces}
    # Instance targets by id, IP targets by any of the instance's addresses.
    ids = {instance_id} | {ip for i in interfaces for ip in (*i.private_ips, *i.ipv6_addresses)}
    registrations: list[TargetRegistration] = []
    for page in aws.elbv2.get_paginator("describe_target_groups").paginate():
        for group in page["TargetGroups"]:
            if group.get("TargetType", "instance") not in ("instance", "ip") or group.get("VpcId") not in vpcs:
                continue
            health = aws.elbv2.describe_target_health(TargetGroupArn=group["TargetGroupArn"])
            for target in health["TargetHealthDescriptions"]:
                # A draining target is already on its way out; the rest still receive traffic.
                if target["Target"]["Id"] in ids and target["TargetHealth"]["State"] != "draining":
                    registrations.append(
                        TargetRegistration(
                            group["TargetGroupArn"], target["Target"]["Id"], int(target["Target"]["Port"])
                        )
                    )
    return tuple(sorted(registrations, key=lambda r: (r.target_group_arn, r.target_id, r.port)))


def _read_state(aws: _Clients, instance_id: str) -> tuple[InstanceState, dict[str, str]]:
    instance, account = _describe(aws, instance_id)
    interfaces = _interfaces(instance)
    protection = aws.ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="disableApiTermination")
    shutdown = aws.ec2.describe_instance_attribute(
        InstanceId=instance_id, Attribute="instanceInitiatedShutdownBehavior"
    )
    raw = _raw_tags(instance)
    state = InstanceState(
        instance_id=instance_id,
        account=account,
        region=aws.region,
        interfaces=interfaces,
        profile=_profile(aws, instance_id),
        termination_protection=bool(protection["DisableApiTermination"]["Value"]),
        shutdown_behavior=shutdown["InstanceInitiatedShutdownBehavior"]["Value"],
        volumes=tuple(
            sorted(
                (
                    VolumeState(m["DeviceName"], m["Ebs"]["VolumeId"], bool(m["Ebs"]["DeleteOnTermination"]))
                    for m in instance.get("BlockDeviceMappings", [])
                    if "Ebs" in m
                ),
                key=lambda v: v.device_name,
            )
        ),
        addresses=_addresses(aws, interfaces),
        auto_scaling=_auto_scaling(aws, instance_id),
        target_groups=_target_registrations(aws, instance_id, interfaces),
        tags={k: v for k, v in raw.items() if not k.startswith(BOOKKEEPING_TAG)},
    )
    return state, raw


def describe_instance_state(session: boto3.Session, instance_id: str) -> InstanceState:
    """The responder's before/after snapshot of one instance (raises InstanceNotFound)."""
    return _read_state(_Clients.of(session, time.sleep), instance_id)[0]


# ---------------------------------------------------------------------------------------------
# Remembering the original state on the instance itself.


def _groups_tags(groups: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """One plain-text list for all interfaces ("eni-1=sg-1,sg-2;eni-2=sg-3"): a responder can read it."""
    return chunked_tags(GROUPS_TAG, ";".join(f"{eni}={','.join(g)}" for eni, g in sorted(groups.items())))


def _remembered_groups(tags: Mapping[str, str]) -> dict[str, tuple[str, ...]]:
    value = unchunked_tag(tags, GROUPS_TAG)
    found: dict[str, tuple[str, ...]] = {}
    for entry in (value or "").split(";"):
        eni, _, groups = entry.partition("=")
        if eni:
            found[eni] = tuple(g for g in groups.split(",") if g)
    return found


def _before_document(case_id: str, before: InstanceState, *, with_tags: bool) -> dict[str, Any]:
    if with_tags:
        return {"case_id": case_id, "state": before.to_dict()}
    # The instance's own tags stay where they are; only the values containment overwrites are kept.
    return {
        "case_id": case_id,
        "state": replace(before, tags={}).to_dict(),
        "overwritten_tags": {k: before.tags.get(k) for k in (INCIDENT_TAG, CASE_TAG)},
    }


def _before_tags(case_id: str, before: InstanceState, *, with_tags: bool = True) -> dict[str, str]:
    document = json.dumps(_before_document(case_id, before, with_tags=with_tags), separators=(",", ":"), sort_keys=True)
    return chunked_tags(BEFORE_TAG, base64.b64encode(zlib.compress(document.encode(), 9)).decode())


def _remembered_before(tags: Mapping[str, str]) -> tuple[str, InstanceState] | None:
    """The original state a previous run kept in the instance's tags; None when there is none, or
    when what is there cannot be read (anyone with ec2:CreateTags on the instance can write these
    tags: an unreadable record must not stop containment, so it is treated as absent)."""
    blob = unchunked_tag(tags, BEFORE_TAG)
    if blob is None:
        return None
    try:
        document = json.loads(zlib.decompress(base64.b64decode(blob, validate=True)))
        state = InstanceState.from_dict(document["state"])
        case_id = str(document["case_id"])
        overwritten = document.get("overwritten_tags")
        if overwritten is not None:
            own = {
                k: v for k, v in tags.items() if not k.startswith(BOOKKEEPING_TAG) and k not in (INCIDENT_TAG, CASE_TAG)
            }
            state = replace(state, tags=own | {str(k): str(v) for k, v in dict(overwritten).items() if v is not None})
    except (binascii.Error, zlib.error, ValueError, KeyError, TypeError, AttributeError):
        return None
    return case_id, state


def _check_case(tags: Mapping[str, str], instance_id: str, case_id: str) -> None:
    remembered = _remembered_before(tags)
    open_case = remembered[0] if remembered else tags.get(CASE_TAG)
    if open_case and open_case != case_id:
        raise CaseAlreadyOpen(instance_id, open_case)


@dataclass
class _TagBudget:
    """EC2's per-instance tag limit, counted over the tags there plus those this run writes."""

    keys: set[str]
    notes: list[str] = field(default_factory=list)
    _left_out: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, tags: Iterable[str]) -> _TagBudget:
        return cls(set(tags))

    def fits(self, tags: Mapping[str, str]) -> bool:
        return counted_tags(self.keys | set(tags)) <= MAX_TAGS_PER_RESOURCE

    def take(self, choices: Sequence[Mapping[str, str]], left_out: str) -> dict[str, str]:
        """The first of `choices` that fits (reserved from now on); {} and a note if none does."""
        for tags in choices:
            if self.fits(tags):
                self.keys |= set(tags)
                return dict(tags)
        if any(choices) and left_out not in self._left_out:
            self._left_out.add(left_out)
            self.notes.append(
                f"{left_out}: the instance has {counted_tags(self.keys)} tags and EC2 allows {MAX_TAGS_PER_RESOURCE}"
            )
        return {}


def _fit_incident_tags(changes: Sequence[Change], budget: _TagBudget, case_id: str) -> list[Change]:
    """The incident-tags change cut to the tags that fit; a tag already on the instance always does."""
    fitted: list[Change] = []
    for change in changes:
        if change.what != "incident-tags" or change.api != "ec2:CreateTags":
            fitted.append(change)
            continue
        kept: dict[str, str] = {}
        for key, why in (
            (CASE_TAG, f"the case id is not written back ({CASE_TAG}={case_id})"),
            (INCIDENT_TAG, f"{INCIDENT_TAG} is not written"),
        ):
            if key in change.new:
                kept |= budget.take([{key: change.new[key]}], why)
        if any(change.old.get(k) != v for k, v in kept.items()):
            fitted.append(replace(change, old={k: change.old.get(k) for k in kept}, new=kept))
    return fitted


def _remember_before(budget: _TagBudget, case_id: str, before: InstanceState) -> dict[str, str]:
    return budget.take(
        [_before_tags(case_id, before), _before_tags(case_id, before, with_tags=False)],
        "the original state is not remembered on the instance (a retried or escalated containment records the "
        "state it finds as `before`, and cannot match this run's containment/before.json)",
    )


def _isolated(eni: InterfaceState, groups: IsolationGroups) -> bool:
    return bool(eni.groups) and set(eni.groups) <= {groups.tracked, groups.deny_all}


# ---------------------------------------------------------------------------------------------
# Effects.


def _isolation_groups(
    aws: _Clients, vpcs: Sequence[str], prefix: str, *, dry_run: bool
) -> tuple[dict[str, IsolationGroups], list[Change]]:
    """Find the two isolation groups of each VPC by name; create (once) what is missing."""
    tracked_name, deny_name = naming.isolation_group_names(prefix)
    found = aws.ec2.describe_security_groups(
        Filters=[
            {"Name": "vpc-id", "Values": list(vpcs)},
            {"Name": "group-name", "Values": [tracked_name, deny_name]},
        ]
    )["SecurityGroups"]
    by_key = {(g["VpcId"], g["GroupName"]): g for g in found}
    groups: dict[str, IsolationGroups] = {}
    changes: list[Change] = []
    for vpc in vpcs:
        ids: dict[str, str] = {}
        for name, allow_all in ((tracked_name, True), (deny_name, False)):
            group = by_key.get((vpc, name))
            if group is None:
                group_id = name if dry_run else _create_isolation_group(aws, vpc, name)
                changes.append(
                    Change(
                        "isolation-group", vpc, None, {"name": name, "group_id": group_id}, "ec2:CreateSecurityGroup"
                    )
                )
                if not dry_run:
                    group = aws.call(aws.ec2.describe_security_groups, GroupIds=[group_id])["SecurityGroups"][0]
            if group is not None:
                changes += _enforce_rules(aws, group, allow_all, dry_run=dry_run)
                ids[name] = group["GroupId"]
            else:
                ids[name] = name
        groups[vpc] = IsolationGroups(vpc, ids[tracked_name], ids[deny_name])
    return groups, changes


def _create_isolation_group(aws: _Clients, vpc: str, name: str) -> str:
    description = (
        "irforensics containment step 1: allow all, so tracked connections become untracked"
        if name.endswith("tracked")
        else "irforensics containment: no rules, no traffic in or out"
    )
    return str(
        aws.ec2.create_security_group(
            GroupName=name,
            Description=description,
            VpcId=vpc,
            TagSpecifications=[
                {
                    "ResourceType": "security-group",
                    "Tags": [{"Key": MANAGED_BY_TAG, "Value": MANAGED_BY_VALUE}, {"Key": "Name", "Value": name}],
                }
            ],
        )["GroupId"]
    )


def _all_traffic() -> dict[str, Any]:
    return {"IpProtocol": "-1", "IpRanges": [{"CidrIp": ALL_IPV4}], "Ipv6Ranges": [{"CidrIpv6": ALL_IPV6}]}


def _allows_all(permissions: Sequence[Mapping[str, Any]]) -> bool:
    everything = [p for p in permissions if p.get("IpProtocol") == "-1"]
    v4 = any(r.get("CidrIp") == ALL_IPV4 for p in everything for r in p.get("IpRanges", []))
    v6 = any(r.get("CidrIpv6") == ALL_IPV6 for p in everything for r in p.get("Ipv6Ranges", []))
    return v4 and v6


def _enforce_rules(aws: _Clients, group: Mapping[str, Any], allow_all: bool, *, dry_run: bool) -> list[Change]:
    """The tracked group allows everything both ways (IPv4 and IPv6); the other has no rule at all.

    A new group comes with an allow-all egress rule (IPv4, and IPv6 in an IPv6 VPC) that must go;
    a rule someone added to an existing isolation group is removed too.
    """
    changes: list[Change] = []
    group_id = group["GroupId"]
    for direction, permissions in (
        ("ingress", group.get("IpPermissions", [])),
        ("egress", group.get("IpPermissionsEgress", [])),
    ):
        if allow_all and not _allows_all(permissions):
            changes.append(
                Change(
                    f"isolation-group-{direction}",
                    group_id,
                    None,
                    "all traffic, IPv4 and IPv6",
                    f"ec2:AuthorizeSecurityGroup{direction.title()}",
                )
            )
            if not dry_run:
                authorize = (
                    aws.ec2.authorize_security_group_ingress
                    if direction == "ingress"
                    else aws.ec2.authorize_security_group_egress
                )
                # Missing halves only: authorizing an existing rule is an error.
                wanted = _all_traffic()
                if _allows_v4(permissions):
                    wanted.pop("IpRanges")
                if _allows_v6(permissions):
                    wanted.pop("Ipv6Ranges")
                aws.call(authorize, GroupId=group_id, IpPermissions=[wanted])
        elif not allow_all and permissions:
            changes.append(
                Change(
                    f"isolation-group-{direction}",
                    group_id,
                    _plain(permissions),
                    None,
                    f"ec2:RevokeSecurityGroup{direction.title()}",
                )
            )
            if not dry_run:
                revoke = (
                    aws.ec2.revoke_security_group_ingress
                    if direction == "ingress"
                    else aws.ec2.revoke_security_group_egress
                )
                aws.call(revoke, GroupId=group_id, IpPermissions=list(permissions))
    return changes


def _allows_v4(permissions: Sequence[Mapping[str, Any]]) -> bool:
    return any(
        p.get("IpProtocol") == "-1" and any(r.get("CidrIp") == ALL_IPV4 for r in p.get("IpRanges", []))
        for p in permissions
    )


def _allows_v6(permissions: Sequence[Mapping[str, Any]]) -> bool:
    return any(
        p.get("IpProtocol") == "-1" and any(r.get("CidrIpv6") == ALL_IPV6 for r in p.get("Ipv6Ranges", []))
        for p in permissions
    )


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _revoked_roles(aws: _Clients, roles: Iterable[str], instance_arn: str) -> dict[str, str]:
    """Roles whose sessions from this instance are already revoked, with the cut-off time recorded."""
    return revocation.revoked_roles(aws.iam, roles, instance_arn)


def _profile_spec(profile: str) -> dict[str, str]:
    return {"Arn": profile} if profile.startswith("arn:") else {"Name": profile}


def _apply(aws: _Clients, state: InstanceState, change: Change) -> None:
    """One change, one call. Undoing something already undone is not an error (retries, races)."""
    ec2, instance_id = aws.ec2, state.instance_id
    if change.what == "incident-tags":
        if change.api == "ec2:DeleteTags":
            aws.call(ec2.delete_tags, Resources=[instance_id], Tags=[{"Key": k} for k in change.new])
        else:
            aws.call(
                ec2.create_tags, Resources=[instance_id], Tags=[{"Key": k, "Value": v} for k, v in change.new.items()]
            )
    elif change.what == "interface-groups":
        aws.call(ec2.modify_network_interface_attribute, NetworkInterfaceId=change.resource, Groups=change.new)
    elif change.what == "instance-profile":
        if change.api == "ec2:ReplaceIamInstanceProfileAssociation":
            aws.call(
                ec2.replace_iam_instance_profile_association,
                AssociationId=change.old["association_id"],
                IamInstanceProfile=_profile_spec(change.new["profile"]),
            )
        elif change.api == "ec2:AssociateIamInstanceProfile":
            aws.call(
                ec2.associate_iam_instance_profile,
                InstanceId=instance_id,
                IamInstanceProfile=_profile_spec(change.new["profile"]),
            )
        else:
            aws.call(ec2.disassociate_iam_instance_profile, AssociationId=change.old["association_id"])
    elif change.what == "credential-revocation":
        if change.new is not None:
            revocation.revoke(aws.iam, change.resource, state.arn, change.new["policy"], change.new["issued_before"])
        else:
            revocation.restore(aws.iam, change.resource, state.arn, change.old["policy"])
    elif change.what == "auto-scaling":
        if change.new == DETACHED:
            aws.call(
                aws.autoscaling.detach_instances,
                InstanceIds=[instance_id],
                AutoScalingGroupName=change.resource,
                ShouldDecrementDesiredCapacity=False,
            )
        else:
            aws.call(aws.autoscaling.attach_instances, InstanceIds=[instance_id], AutoScalingGroupName=change.resource)
    elif change.what == "termination-protection":
        aws.call(ec2.modify_instance_attribute, InstanceId=instance_id, DisableApiTermination={"Value": change.new})
    elif change.what == "shutdown-behavior":
        # The Attribute/Value form: moto mishandles the structured form (DESIGN.md, known moto gaps).
        aws.call(
            ec2.modify_instance_attribute,
            InstanceId=instance_id,
            Attribute="instanceInitiatedShutdownBehavior",
            Value=change.new,
        )
    elif change.what == "delete-on-termination":
        device = next(v.device_name for v in state.volumes if v.volume_id == change.resource)
        aws.call(
            ec2.modify_instance_attribute,
            InstanceId=instance_id,
            BlockDeviceMappings=[{"DeviceName": device, "Ebs": {"DeleteOnTermination": change.new}}],
        )
    elif change.what == "target-registration":
        target = change.old if change.new is None else change.new
        targets = [{"Id": target["id"], "Port": target["port"]}]
        if change.new is None:
            _ignoring(("InvalidTarget",), aws.elbv2.deregister_targets, TargetGroupArn=change.resource, Targets=targets)
        else:
            aws.call(aws.elbv2.register_targets, TargetGroupArn=change.resource, Targets=targets)
    elif change.what == "elastic-ip":
        if change.new is None:
            _ignoring(
                ("InvalidAssociationID.NotFound",), ec2.disassociate_address, AssociationId=change.old["association_id"]
            )
        else:
            aws.call(
                ec2.associate_address,
                AllocationId=change.resource,
                NetworkInterfaceId=change.new["eni_id"],
                PrivateIpAddress=change.new["private_ip"],
                AllowReassociation=False,
            )
    else:
        raise ValueError(f"no effect for change {change.what!r}")


def _ignoring(codes: Sequence[str], operation: Callable[..., Any], **kwargs: Any) -> None:
    try:
        operation(**kwargs)
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in codes:
            raise


# ---------------------------------------------------------------------------------------------
# The public operations.


def contain_instance(
    session: boto3.Session,
    instance_id: str,
    case_id: str,
    *,
    dry_run: bool = False,
    prefix: str = "irforensics",
    sleep: Sleep = time.sleep,
    clock: Clock = utcnow,
) -> ContainmentRecord:
    """Isolate the instance completely and reversibly; a repeated call changes nothing further."""
    require_valid_ids(InstanceId=instance_id, CaseId=case_id)
    started = isotime(clock())
    aws = _Clients.of(session, sleep)
    instance, account = _describe(aws, instance_id)
    raw = _raw_tags(instance)
    _check_case(raw, instance_id, case_id)
    quick = _network_state(instance, account, aws.region)
    remembered_groups = _remembered_groups(raw)
    original_groups = {e.eni_id: e.groups for e in quick.interfaces} | remembered_groups
    groups, changes = _isolation_groups(aws, sorted({i.vpc_id for i in quick.interfaces}), prefix, dry_run=dry_run)
    profile_name = naming.isolation_profile(prefix, aws.region)
    policy = revocation_policy_name(prefix, aws.region)
    network = Isolation(case_id=case_id, groups=groups, profile_name=profile_name, revocation_policy=policy)

    # One write before the first network change: the groups it destroys, then the incident tags.
    budget = _TagBudget.of(raw)
    # An interface already in an isolation group has lost its original groups: nothing true to remember.
    unremembered = {
        e.eni_id: e.groups
        for e in quick.interfaces
        if e.eni_id not in remembered_groups and not _isolated(e, groups[e.vpc_id])
    }
    remember = budget.take(
        [_groups_tags(remembered_groups | unremembered)] if unremembered else [],
        f"the original security groups of {', '.join(sorted(unremembered))} are not remembered on the instance "
        "(if this run is interrupted, a retry records the isolation group as their original)",
    )
    tagging = _fit_incident_tags(plan_tags(quick, case_id, ACTION_CONTAIN), budget, case_id)
    first = tagging + plan_network_isolation(quick, network)
    if not dry_run:
        written = {**remember, **(tagging[0].new if tagging else {})}
        if written:
            aws.call(
                aws.ec2.create_tags, Resources=[instance_id], Tags=[{"Key": k, "Value": v} for k, v in written.items()]
            )
        for change in first:
            if change.what == "interface-groups":
                _apply(aws, quick, change)
        changes += first

    current, raw = _read_state(aws, instance_id)
    budget.keys |= set(raw)
    remembered = _remembered_before(raw)
    if remembered is not None:
        before = remembered[1]
    else:
        before = replace(
            current,
            tags=quick.tags,
            interfaces=tuple(replace(e, groups=original_groups.get(e.eni_id, e.groups)) for e in current.interfaces),
        )
    original_roles = before.profile.roles if before.profile and before.profile.name != profile_name else ()
    revoked = _revoked_roles(aws, original_roles, quick.arn)
    cutoff = isotime(clock())
    isolation = replace(network, original_roles=original_roles, revoked_roles=frozenset(revoked), revoke_before=cutoff)
    rest = _fit_incident_tags(plan_containment(current, isolation), budget, case_id)
    before_tags = {} if remembered is not None else _remember_before(budget, case_id, before)
    if dry_run:
        changes += rest
        after = current
    else:
        if before_tags:
            aws.call(
                aws.ec2.create_tags,
                Resources=[instance_id],
                Tags=[{"Key": k, "Value": v} for k, v in before_tags.items()],
            )
        for change in rest:
            _apply(aws, current, change)
        changes += rest
        after = _read_state(aws, instance_id)[0] if rest or first else current
    revocations = tuple(CredentialRevocation(role, policy, revoked.get(role, cutoff)) for role in original_roles)
    return ContainmentRecord(
        case_id=case_id,
        instance_id=instance_id,
        account=account,
        region=aws.region,
        dry_run=dry_run,
        before=before,
        after=after,
        changes=changes,
        started_at=started,
        finished_at=isotime(clock()),
        action=ACTION_CONTAIN,
        revocations=revocations,
        notes=tuple(budget.notes),
    )


def protect_instance(
    session: boto3.Session,
    instance_id: str,
    case_id: str,
    *,
    action: str = ACTION_ANALYZE,
    dry_run: bool = False,
    sleep: Sleep = time.sleep,
    clock: Clock = utcnow,
) -> ContainmentRecord:
    """Analyze mode: keep the workload serving, make the instance and its volumes impossible to lose."""
    require_valid_ids(InstanceId=instance_id, CaseId=case_id)
    started = isotime(clock())
    aws = _Clients.of(session, sleep)
    current, raw = _read_state(aws, instance_id)
    _check_case(raw, instance_id, case_id)
    remembered = _remembered_before(raw)
    before = remembered[1] if remembered else current
    budget = _TagBudget.of(raw)
    changes = _fit_incident_tags(plan_protection(current, case_id, action), budget, case_id)
    after = current
    if changes:
        before_tags = {} if remembered else _remember_before(budget, case_id, before)
        if not dry_run:
            if before_tags:
                aws.call(
                    aws.ec2.create_tags,
                    Resources=[instance_id],
                    Tags=[{"Key": k, "Value": v} for k, v in before_tags.items()],
                )
            for change in changes:
                _apply(aws, current, change)
            after = _read_state(aws, instance_id)[0]
    return ContainmentRecord(
        case_id=case_id,
        instance_id=instance_id,
        account=current.account,
        region=aws.region,
        dry_run=dry_run,
        before=before,
        after=after,
        changes=changes,
        started_at=started,
        finished_at=isotime(clock()),
        action=action,
        notes=tuple(budget.notes),
    )


def release_instance(
    session: boto3.Session,
    instance_id: str,
    record: ContainmentRecord,
    *,
    dry_run: bool = False,
    sleep: Sleep = time.sleep,
    clock: Clock = utcnow,
) -> ContainmentRecord:
    """Restore `record.before` (groups per interface, profile, protections, EIPs, Auto Scaling, targets).

    Auto Scaling raises the group's desired capacity by one when the instance is attached again;
    that is left as is, since lowering it would let the group pick an instance to terminate.
    """
    if record.instance_id != instance_id:
        raise ValueError(f"record is for {record.instance_id}, not {instance_id}")
    require_valid_ids(InstanceId=instance_id)
    started = isotime(clock())
    aws = _Clients.of(session, sleep)
    current, raw = _read_state(aws, instance_id)
    revoked = _revoked_roles(aws, [r.role for r in record.revocations], current.arn)
    changes = plan_release(current, record, revoked)
    bookkeeping = [k for k in raw if k.startswith(BOOKKEEPING_TAG)]
    after = current
    if not dry_run:
        for change in changes:
            _apply(aws, current, change)
        if bookkeeping:
            aws.call(aws.ec2.delete_tags, Resources=[instance_id], Tags=[{"Key": k} for k in bookkeeping])
        after = _read_state(aws, instance_id)[0]
    return ContainmentRecord(
        case_id=record.case_id,
        instance_id=instance_id,
        account=current.account,
        region=aws.region,
        dry_run=dry_run,
        before=current,
        after=after,
        changes=changes,
        started_at=started,
        finished_at=isotime(clock()),
        action="Release",
    )
