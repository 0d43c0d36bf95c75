"""What containment, protection and release change: pure functions of the state and the record."""

from __future__ import annotations

from collections.abc import Iterable

from core.containment.model import (
    DETACHED,
    Change,
    ContainmentRecord,
    ContainmentState,
    Isolation,
)
from core.groupswap import GroupSwap
from core.instances import ProfileAssociation
from handlers.common import naming
from handlers.common.tags import CASE_TAG, INCIDENT_TAG

MODIFY_INTERFACE = "ec2:ModifyNetworkInterfaceAttribute"


def incident_tags(case_id: str, action: str) -> dict[str, str]:
    return {INCIDENT_TAG: action, CASE_TAG: case_id}


def revocation_policy_name(prefix: str, region: str) -> str:
    return naming.revocation_policy(prefix, region)


def plan_tags(state: ContainmentState, case_id: str, action: str) -> list[Change]:
    wanted = incident_tags(case_id, action)
    current = {k: state.tags.get(k) for k in wanted}
    if current == wanted:
        return []
    return [Change("incident-tags", state.instance_id, current, wanted, "ec2:CreateTags")]


def network_swap(state: ContainmentState, isolation: Isolation) -> GroupSwap:
    """Every interface to the allow-all group (tracked flows become untracked), then to the no-rule group.

    A group swap does not cut connections the old groups tracked; a group that allows all traffic
    in and out makes flows untracked, and untracked flows stop the moment the no-rule group applies.
    """
    targets = {vpc: (g.tracked, g.deny_all) for vpc, g in isolation.groups.items()}
    return GroupSwap.plan(state.interfaces, targets, {})


def swap_changes(swap: GroupSwap) -> list[Change]:
    return [Change("interface-groups", m.eni_id, list(m.old), list(m.new), MODIFY_INTERFACE) for m in swap.moves]


def plan_network_isolation(state: ContainmentState, isolation: Isolation) -> list[Change]:
    return swap_changes(network_swap(state, isolation))


def profile_change(instance_id: str, now: ProfileAssociation | None, wanted: str | None) -> Change:
    """The one call from association `now` to profile `wanted` (a name or an ARN); None is "no profile"."""
    old = {"association_id": now.association_id, "profile_arn": now.profile_arn} if now is not None else None
    if now is None:
        api = "ec2:AssociateIamInstanceProfile"
    elif wanted is None:
        api = "ec2:DisassociateIamInstanceProfile"
    else:
        api = "ec2:ReplaceIamInstanceProfileAssociation"
    return Change("instance-profile", instance_id, old, {"profile": wanted} if wanted is not None else None, api)


def plan_protection(state: ContainmentState, case_id: str, action: str) -> list[Change]:
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


def plan_containment(state: ContainmentState, isolation: Isolation) -> list[Change]:
    """Everything containment changes, in the order it is applied: network first, it stops the attacker."""
    changes = plan_tags(state, isolation.case_id, isolation.action)
    changes += plan_network_isolation(state, isolation)
    profile = state.profile
    if profile is None or profile.name != isolation.profile_name:
        changes.append(profile_change(state.instance_id, profile, isolation.profile_name))
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


def plan_release(current: ContainmentState, record: ContainmentRecord, revoked_roles: Iterable[str]) -> list[Change]:
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
    if (now.name if now else None) != (then.name if then else None):
        changes.append(profile_change(current.instance_id, now, then.profile_arn if then else None))
    changes += _restore_protections(current, before)
    changes += _restore_attachments(current, before)
    present = {k: current.tags[k] for k in (INCIDENT_TAG, CASE_TAG) if k in current.tags}
    if present:
        changes.append(
            Change("incident-tags", current.instance_id, present, {k: None for k in present}, "ec2:DeleteTags")
        )
    return changes


def _restore_protections(current: ContainmentState, before: ContainmentState) -> list[Change]:
    """Termination protection, shutdown behaviour and each volume's delete-on-termination as they were."""
    changes: list[Change] = []
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
    return changes


def _restore_attachments(current: ContainmentState, before: ContainmentState) -> list[Change]:
    """The interfaces' groups, the Elastic IPs, the Auto Scaling group and the target groups as they were."""
    changes: list[Change] = []
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
    return changes
