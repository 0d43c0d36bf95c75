"""What containment knows and records: the instance's state around it, the changes, the record."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from core.instances import InterfaceState, ProfileAssociation
from handlers.common.tags import ACTION_CONTAIN

Sleep = Callable[[float], None]
Clock = Callable[[], datetime]

BOOKKEEPING_TAG = "irforensics:containment:"
GROUPS_TAG = BOOKKEEPING_TAG + "groups"
BEFORE_TAG = BOOKKEEPING_TAG + "before"
DETACHED = "Detached"
ALL_IPV4 = "0.0.0.0/0"
ALL_IPV6 = "::/0"


def utcnow() -> datetime:
    return datetime.now(UTC)


def isotime(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def partition(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


@dataclass(frozen=True)
class InstanceProfile(ProfileAssociation):
    """The association and the roles of its profile (whose credentials containment revokes)."""

    roles: tuple[str, ...] = ()


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
class ContainmentState:
    """The before/after snapshot: everything containment changes, nothing that drifts on its own.

    Its `to_dict` is the `state` of containment/before.json and after.json (a contract).
    """

    instance_id: str
    account: str
    region: str
    interfaces: tuple[InterfaceState, ...]
    profile: InstanceProfile | None
    termination_protection: bool
    shutdown_behavior: str
    volumes: tuple[VolumeState, ...]
    addresses: tuple[AddressAssociation, ...]
    auto_scaling: AutoScalingMembership | None
    target_groups: tuple[TargetRegistration, ...]
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def arn(self) -> str:
        return f"arn:{partition(self.region)}:ec2:{self.region}:{self.account}:instance/{self.instance_id}"

    def interface(self, eni_id: str) -> InterfaceState | None:
        return next((i for i in self.interfaces if i.eni_id == eni_id), None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ContainmentState:
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
            profile=InstanceProfile(profile["association_id"], profile["profile_arn"], tuple(profile["roles"]))
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
    """One change to one resource, made with one API call (or, in a dry run, that would be made).

    `(what, api)` names the effect that makes it (core.containment.effects.EFFECTS).
    """

    what: str
    resource: str
    old: Any
    new: Any
    api: str

    @property
    def effect(self) -> tuple[str, str]:
        return (self.what, self.api)

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
    before: ContainmentState
    after: ContainmentState
    changes: list[Change]
    started_at: str
    finished_at: str
    action: str = ACTION_CONTAIN
    revocations: tuple[CredentialRevocation, ...] = ()
    # What could not be done as usual and what that means (e.g. bookkeeping tags that did not fit).
    notes: tuple[str, ...] = ()

    def state_document(self, which: str) -> dict[str, Any]:
        """containment/before.json or after.json: what does not depend on when or how often containment ran."""
        state = self.before if which == "before" else self.after
        document: dict[str, Any] = {
            "case_id": self.case_id,
            "instance_id": self.instance_id,
            "account": self.account,
            "region": self.region,
            "action": self.action,
            "state": state.to_dict(),
        }
        if which == "after":
            document["revocations"] = [asdict(r) for r in self.revocations]
        return document

    @classmethod
    def from_documents(cls, before: Mapping[str, Any], after: Mapping[str, Any]) -> ContainmentRecord:
        """The record as release needs it, from a case's before.json and after.json (the one way back)."""
        return cls(
            case_id=before["case_id"],
            instance_id=before["instance_id"],
            account=before["account"],
            region=before["region"],
            dry_run=False,
            action=before["action"],
            before=ContainmentState.from_dict(before["state"]),
            after=ContainmentState.from_dict(after["state"]),
            changes=[],
            started_at="",
            finished_at="",
            revocations=tuple(CredentialRevocation(**r) for r in after.get("revocations", [])),
        )


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
