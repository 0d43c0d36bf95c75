"""Reading what containment changes: the instance (core.instances) plus profile roles, EIPs, Auto Scaling
membership and load-balancer targets."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from botocore.exceptions import ClientError

from core.containment import revocation
from core.containment.effects import MemberClients
from core.containment.model import (
    BOOKKEEPING_TAG,
    AddressAssociation,
    AutoScalingMembership,
    ContainmentState,
    InstanceProfile,
    TargetRegistration,
    VolumeState,
)
from core.instances import InstanceState, InterfaceState, profile_association, read_instance
from handlers.common.errors import InstanceNotFound


def read_live_instance(aws: MemberClients, instance_id: str) -> InstanceState:
    """The instance (one DescribeInstances); InstanceNotFound when it is gone or going."""
    instance = read_instance(aws.ec2, instance_id)
    if instance.gone:
        raise InstanceNotFound(instance_id, f"is {instance.state}: nothing left to contain")
    return instance


def own_tags(instance: InstanceState) -> dict[str, str]:
    return {k: v for k, v in instance.tags.items() if not k.startswith(BOOKKEEPING_TAG)}


def network_state(instance: InstanceState, region: str) -> ContainmentState:
    """What one DescribeInstances tells: enough to isolate the network before reading anything else."""
    return ContainmentState(
        instance_id=instance.instance_id,
        account=instance.owner,
        region=region,
        interfaces=instance.interfaces,
        profile=None,
        termination_protection=False,
        shutdown_behavior="",
        volumes=(),
        addresses=(),
        auto_scaling=None,
        target_groups=(),
        tags=own_tags(instance),
    )


def _profile(aws: MemberClients, instance_id: str) -> InstanceProfile | None:
    association = profile_association(aws.ec2, instance_id)
    if association is None:
        return None
    try:
        profile = aws.iam.get_instance_profile(InstanceProfileName=association.name)["InstanceProfile"]
        roles = tuple(r["RoleName"] for r in profile.get("Roles", []))
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "NoSuchEntity":
            raise
        roles = ()
    return InstanceProfile(association.association_id, association.profile_arn, roles)


def _addresses(aws: MemberClients, interfaces: Sequence[InterfaceState]) -> tuple[AddressAssociation, ...]:
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


def _auto_scaling(aws: MemberClients, instance_id: str) -> AutoScalingMembership | None:
    found = aws.autoscaling.describe_auto_scaling_instances(InstanceIds=[instance_id])["AutoScalingInstances"]
    if not found:
        return None
    return AutoScalingMembership(
        group_name=found[0]["AutoScalingGroupName"],
        lifecycle_state=found[0]["LifecycleState"],
        protected_from_scale_in=bool(found[0].get("ProtectedFromScaleIn", False)),
    )


def _target_registrations(
    aws: MemberClients, instance_id: str, interfaces: Sequence[InterfaceState]
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


def read_state(aws: MemberClients, instance_id: str) -> tuple[ContainmentState, dict[str, str]]:
    """The whole before/after snapshot, and every tag of the instance (bookkeeping included)."""
    instance = read_live_instance(aws, instance_id)
    protection = aws.ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="disableApiTermination")
    shutdown = aws.ec2.describe_instance_attribute(
        InstanceId=instance_id, Attribute="instanceInitiatedShutdownBehavior"
    )
    state = ContainmentState(
        instance_id=instance_id,
        account=instance.owner,
        region=aws.region,
        interfaces=instance.interfaces,
        profile=_profile(aws, instance_id),
        termination_protection=bool(protection["DisableApiTermination"]["Value"]),
        shutdown_behavior=shutdown["InstanceInitiatedShutdownBehavior"]["Value"],
        volumes=tuple(VolumeState(v.device_name, v.volume_id, v.delete_on_termination) for v in instance.volumes),
        addresses=_addresses(aws, instance.interfaces),
        auto_scaling=_auto_scaling(aws, instance_id),
        target_groups=_target_registrations(aws, instance_id, instance.interfaces),
        tags=own_tags(instance),
    )
    return state, dict(instance.tags)


def revoked_roles(aws: MemberClients, roles: Iterable[str], instance_arn: str) -> dict[str, str]:
    """Roles whose sessions from this instance are already revoked, with the cut-off time recorded."""
    return revocation.revoked_roles(aws.iam, roles, instance_arn)
