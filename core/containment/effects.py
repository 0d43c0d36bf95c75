"""The thin edge: member-account clients, and one effect per kind of change (`EFFECTS`).

A plan emits `Change`s; each is made by the effect registered for its `(what, api)`. Undoing
something already undone is not an error (retries, races). Every tag this package writes on the
instance goes through `TagWriter`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import boto3
from botocore.exceptions import ClientError

from core.containment import revocation
from core.containment.model import Change, ContainmentState, Sleep

T = TypeVar("T")
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


@dataclass
class MemberClients:
    """The member account's clients containment uses, and its bounded retry of propagating resources."""

    ec2: Any
    iam: Any
    autoscaling: Any
    elbv2: Any
    region: str
    sleep: Sleep

    @classmethod
    def of(cls, session: boto3.Session, sleep: Sleep) -> MemberClients:
        return cls(
            ec2=session.client("ec2"),
            iam=session.client("iam"),
            autoscaling=session.client("autoscaling"),
            elbv2=session.client("elbv2"),
            region=session.region_name or "us-east-1",
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

    def set_interface_groups(self, eni_id: str, groups: list[str]) -> None:
        self.call(self.ec2.modify_network_interface_attribute, NetworkInterfaceId=eni_id, Groups=groups)


@dataclass(frozen=True)
class TagWriter:
    """The one way containment writes or deletes tags on the instance."""

    aws: MemberClients
    instance_id: str

    def write(self, tags: Mapping[str, str]) -> None:
        if tags:
            self.aws.call(
                self.aws.ec2.create_tags,
                Resources=[self.instance_id],
                Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
            )

    def delete(self, keys: Sequence[str]) -> None:
        if keys:
            self.aws.call(self.aws.ec2.delete_tags, Resources=[self.instance_id], Tags=[{"Key": k} for k in keys])


@dataclass(frozen=True)
class Target:
    """What an effect acts on: the clients and the state the change was planned from."""

    aws: MemberClients
    state: ContainmentState

    @property
    def ec2(self) -> Any:
        return self.aws.ec2

    @property
    def tags(self) -> TagWriter:
        return TagWriter(self.aws, self.state.instance_id)


Effect = Callable[[Target, Change], None]
EFFECTS: dict[tuple[str, str], Effect] = {}


def effect(what: str, api: str) -> Callable[[Effect], Effect]:
    def register(function: Effect) -> Effect:
        if (what, api) in EFFECTS:
            raise ValueError(f"two effects for {what} / {api}")
        EFFECTS[(what, api)] = function
        return function

    return register


def apply_change(target: Target, change: Change) -> None:
    """One change, one call, by the effect registered for it."""
    made = EFFECTS.get(change.effect)
    if made is None:
        raise ValueError(f"no effect for change {change.what!r} with {change.api}")
    made(target, change)


def ignoring(codes: Sequence[str], operation: Callable[..., Any], **kwargs: Any) -> None:
    try:
        operation(**kwargs)
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in codes:
            raise


def profile_spec(profile: str) -> dict[str, str]:
    return {"Arn": profile} if profile.startswith("arn:") else {"Name": profile}


@effect("incident-tags", "ec2:CreateTags")
def _write_incident_tags(target: Target, change: Change) -> None:
    target.tags.write(change.new)


@effect("incident-tags", "ec2:DeleteTags")
def _delete_incident_tags(target: Target, change: Change) -> None:
    target.tags.delete(list(change.new))


@effect("interface-groups", "ec2:ModifyNetworkInterfaceAttribute")
def _set_interface_groups(target: Target, change: Change) -> None:
    target.aws.set_interface_groups(change.resource, list(change.new))


@effect("instance-profile", "ec2:ReplaceIamInstanceProfileAssociation")
def _replace_profile(target: Target, change: Change) -> None:
    target.aws.call(
        target.ec2.replace_iam_instance_profile_association,
        AssociationId=change.old["association_id"],
        IamInstanceProfile=profile_spec(change.new["profile"]),
    )


@effect("instance-profile", "ec2:AssociateIamInstanceProfile")
def _associate_profile(target: Target, change: Change) -> None:
    target.aws.call(
        target.ec2.associate_iam_instance_profile,
        InstanceId=target.state.instance_id,
        IamInstanceProfile=profile_spec(change.new["profile"]),
    )


@effect("instance-profile", "ec2:DisassociateIamInstanceProfile")
def _disassociate_profile(target: Target, change: Change) -> None:
    target.aws.call(target.ec2.disassociate_iam_instance_profile, AssociationId=change.old["association_id"])


@effect("credential-revocation", "iam:TagRole")
def _revoke_credentials(target: Target, change: Change) -> None:
    revocation.revoke(
        target.aws.iam, change.resource, target.state.arn, change.new["policy"], change.new["issued_before"]
    )


@effect("credential-revocation", "iam:UntagRole")
def _lift_revocation(target: Target, change: Change) -> None:
    revocation.restore(target.aws.iam, change.resource, target.state.arn, change.old["policy"])


@effect("auto-scaling", "autoscaling:DetachInstances")
def _detach(target: Target, change: Change) -> None:
    target.aws.call(
        target.aws.autoscaling.detach_instances,
        InstanceIds=[target.state.instance_id],
        AutoScalingGroupName=change.resource,
        ShouldDecrementDesiredCapacity=False,
    )


@effect("auto-scaling", "autoscaling:AttachInstances")
def _attach(target: Target, change: Change) -> None:
    target.aws.call(
        target.aws.autoscaling.attach_instances,
        InstanceIds=[target.state.instance_id],
        AutoScalingGroupName=change.resource,
    )


@effect("termination-protection", "ec2:ModifyInstanceAttribute")
def _termination_protection(target: Target, change: Change) -> None:
    target.aws.call(
        target.ec2.modify_instance_attribute,
        InstanceId=target.state.instance_id,
        DisableApiTermination={"Value": change.new},
    )


@effect("shutdown-behavior", "ec2:ModifyInstanceAttribute")
def _shutdown_behavior(target: Target, change: Change) -> None:
    # The Attribute/Value form: moto mishandles the structured form (DESIGN.md, known moto gaps).
    target.aws.call(
        target.ec2.modify_instance_attribute,
        InstanceId=target.state.instance_id,
        Attribute="instanceInitiatedShutdownBehavior",
        Value=change.new,
    )


@effect("delete-on-termination", "ec2:ModifyInstanceAttribute")
def _delete_on_termination(target: Target, change: Change) -> None:
    device = next(v.device_name for v in target.state.volumes if v.volume_id == change.resource)
    target.aws.call(
        target.ec2.modify_instance_attribute,
        InstanceId=target.state.instance_id,
        BlockDeviceMappings=[{"DeviceName": device, "Ebs": {"DeleteOnTermination": change.new}}],
    )


@effect("target-registration", "elasticloadbalancing:DeregisterTargets")
def _deregister(target: Target, change: Change) -> None:
    targets = [{"Id": change.old["id"], "Port": change.old["port"]}]
    ignoring(("InvalidTarget",), target.aws.elbv2.deregister_targets, TargetGroupArn=change.resource, Targets=targets)


@effect("target-registration", "elasticloadbalancing:RegisterTargets")
def _register(target: Target, change: Change) -> None:
    targets = [{"Id": change.new["id"], "Port": change.new["port"]}]
    target.aws.call(target.aws.elbv2.register_targets, TargetGroupArn=change.resource, Targets=targets)


@effect("elastic-ip", "ec2:DisassociateAddress")
def _disassociate_address(target: Target, change: Change) -> None:
    ignoring(
        ("InvalidAssociationID.NotFound",), target.ec2.disassociate_address, AssociationId=change.old["association_id"]
    )


@effect("elastic-ip", "ec2:AssociateAddress")
def _associate_address(target: Target, change: Change) -> None:
    target.aws.call(
        target.ec2.associate_address,
        AllocationId=change.resource,
        NetworkInterfaceId=change.new["eni_id"],
        PrivateIpAddress=change.new["private_ip"],
        AllowReassociation=False,
    )


# Changes made while the isolation groups are settled (before any interface moves), not by EFFECTS:
# they are recorded so a dry run shows them (core.containment.groups).
GROUP_SETUP = frozenset(
    {
        ("isolation-group", "ec2:CreateSecurityGroup"),
        ("isolation-group-ingress", "ec2:AuthorizeSecurityGroupIngress"),
        ("isolation-group-egress", "ec2:AuthorizeSecurityGroupEgress"),
        ("isolation-group-ingress", "ec2:RevokeSecurityGroupIngress"),
        ("isolation-group-egress", "ec2:RevokeSecurityGroupEgress"),
    }
)
