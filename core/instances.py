"""The one reader of an EC2 instance: a typed snapshot of what one DescribeInstances says about it.

Every area that looks at an instance (containment, the memory capture path, acquisition, the
examination's analysis instance, the target check) reads it here, so "which interfaces, with
which groups, which volumes" has one answer. EC2's semantics: an instance's groups are its
primary interface's (moto reports more, see DESIGN.md's known moto gaps), so groups are read per
interface and never from the instance's `SecurityGroups`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from handlers.common.errors import InstanceNotFound

# An instance in these states has no memory left and its volumes are gone or going.
GONE_STATES = ("shutting-down", "terminated")
INSTANCE_STORE = "instance-store"
_NOT_FOUND = ("InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed")
_ABSENT = "does not exist in this account and region"


@dataclass(frozen=True)
class InterfaceState:
    """One network interface as attached to the instance, with its own security groups."""

    eni_id: str
    device_index: int
    vpc_id: str
    subnet_id: str
    groups: tuple[str, ...]
    private_ips: tuple[str, ...]
    ipv6_addresses: tuple[str, ...]


@dataclass(frozen=True)
class BlockDevice:
    """One EBS mapping; `status` is the attachment's ("attached", "attaching", "detaching", ...)."""

    device_name: str
    volume_id: str
    delete_on_termination: bool
    status: str = "attached"


@dataclass(frozen=True)
class ProfileAssociation:
    """The instance's current instance-profile association (DescribeInstances lacks the association id)."""

    association_id: str
    profile_arn: str

    @property
    def name(self) -> str:
        return self.profile_arn.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class InstanceState:
    """An instance as one DescribeInstances answer shows it."""

    instance_id: str
    owner: str
    state: str
    interfaces: tuple[InterfaceState, ...]
    volumes: tuple[BlockDevice, ...]
    tags: Mapping[str, str] = field(default_factory=dict)
    vpc_id: str = ""
    platform: str = "Linux/UNIX"
    root_device_type: str = "ebs"
    profile_arn: str = ""
    state_reason: str = ""

    @property
    def gone(self) -> bool:
        return self.state in GONE_STATES

    @property
    def vpcs(self) -> tuple[str, ...]:
        return tuple(sorted({i.vpc_id for i in self.interfaces}))

    @property
    def attached_volumes(self) -> dict[str, str]:
        """Volume id -> device of the EBS volumes attached now (not attaching or detaching)."""
        return {v.volume_id: v.device_name for v in self.volumes if v.status == "attached"}

    def interface(self, eni_id: str) -> InterfaceState | None:
        return next((i for i in self.interfaces if i.eni_id == eni_id), None)

    @classmethod
    def from_description(cls, instance: Mapping[str, Any], owner: str = "") -> InstanceState:
        interfaces = sorted(
            (
                InterfaceState(
                    eni_id=n["NetworkInterfaceId"],
                    device_index=int(n.get("Attachment", {}).get("DeviceIndex", 0)),
                    vpc_id=n.get("VpcId", ""),
                    subnet_id=n.get("SubnetId", ""),
                    groups=tuple(g["GroupId"] for g in n.get("Groups", [])),
                    private_ips=tuple(p["PrivateIpAddress"] for p in n.get("PrivateIpAddresses", [])),
                    ipv6_addresses=tuple(a["Ipv6Address"] for a in n.get("Ipv6Addresses", [])),
                )
                for n in instance.get("NetworkInterfaces", [])
            ),
            key=lambda i: i.device_index,
        )
        volumes = sorted(
            (
                BlockDevice(
                    device_name=m["DeviceName"],
                    volume_id=m["Ebs"]["VolumeId"],
                    delete_on_termination=bool(m["Ebs"].get("DeleteOnTermination", False)),
                    status=str(m["Ebs"].get("Status", "attached")),
                )
                for m in instance.get("BlockDeviceMappings", [])
                if "Ebs" in m
            ),
            key=lambda v: v.device_name,
        )
        return cls(
            instance_id=str(instance["InstanceId"]),
            owner=owner,
            state=str(instance.get("State", {}).get("Name", "")),
            interfaces=tuple(interfaces),
            volumes=tuple(volumes),
            tags={t["Key"]: t["Value"] for t in instance.get("Tags", [])},
            vpc_id=str(instance.get("VpcId", "")),
            platform=str(instance.get("PlatformDetails", "Linux/UNIX")),
            root_device_type=str(instance.get("RootDeviceType", "ebs")),
            profile_arn=str(instance.get("IamInstanceProfile", {}).get("Arn", "")),
            state_reason=str(instance.get("StateReason", {}).get("Message", "")),
        )


def find_instance(ec2: Any, instance_id: str) -> InstanceState | None:
    """The instance, or None when EC2 does not know it in this account and region."""
    try:
        reservations = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] in _NOT_FOUND:
            return None
        raise
    for reservation in reservations:
        for instance in reservation.get("Instances", []):
            if instance.get("InstanceId") == instance_id:
                return InstanceState.from_description(instance, str(reservation.get("OwnerId", "")))
    return None


def read_instance(ec2: Any, instance_id: str) -> InstanceState:
    """The instance, or InstanceNotFound; whether a gone instance is acceptable is the caller's to say."""
    found = find_instance(ec2, instance_id)
    if found is None:
        raise InstanceNotFound(instance_id, _ABSENT)
    return found


def profile_association(ec2: Any, instance_id: str) -> ProfileAssociation | None:
    """The current association ("associated" or "associating"); None when the instance has no profile."""
    associations = ec2.describe_iam_instance_profile_associations(
        Filters=[{"Name": "instance-id", "Values": [instance_id]}]
    )["IamInstanceProfileAssociations"]
    current = [a for a in associations if a.get("State") in ("associated", "associating")]
    if not current:
        return None
    return ProfileAssociation(str(current[0]["AssociationId"]), str(current[0]["IamInstanceProfile"]["Arn"]))
