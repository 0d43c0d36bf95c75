"""Contain, protect and release a suspect EC2 instance in a member account.

Read the instance's state, decide what to change with pure functions (core.containment.plans),
apply the changes with the effects registered for them. Dry-run is "plan, do not apply"; release
is "plan back to the recorded state". Containment is two steps:

1. `isolate_network`, the critical path: the instance's describe and the isolation groups' lookup
   at once; groups created and their rules settled (only for the first instance of a VPC) at the
   same time as the one tag write that remembers the original groups; then every interface moves
   at once to the allow-all group and then to the no-rule group (core.groupswap).
2. `contain_rest`, once no traffic can flow: the whole state is read, remembered in tags, and
   the profile, credentials, protections, Auto Scaling, targets and EIPs are changed.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial

import boto3

from core.containment.bookkeeping import (
    BOOKKEEPING_TAG,
    InstanceTagRecord,
    TagBudget,
    check_case,
    fit_incident_tags,
    remember_before,
    remembered_before,
    remembered_groups,
)
from core.containment.effects import MemberClients, TagWriter, Target, apply_change
from core.containment.groups import find_isolation_groups, settle_isolation_groups
from core.containment.model import (
    Change,
    Clock,
    ContainmentRecord,
    ContainmentState,
    CredentialRevocation,
    Isolation,
    IsolationGroups,
    Sleep,
    isotime,
    utcnow,
)
from core.containment.plans import (
    network_swap,
    plan_containment,
    plan_protection,
    plan_release,
    plan_tags,
    revocation_policy_name,
    swap_changes,
)
from core.containment.reading import network_state, read_live_instance, read_state, revoked_roles
from core.groupswap import GroupSwap
from core.rounds import both
from handlers.common import naming
from handlers.common.case import require_valid_ids
from handlers.common.tags import ACTION_ANALYZE, ACTION_CONTAIN


@dataclass(frozen=True)
class NetworkIsolation:
    """What step 1 found and did: the state before it, the groups, its changes, the tag budget left."""

    quick: ContainmentState
    account: str
    groups: dict[str, IsolationGroups]
    original_groups: dict[str, tuple[str, ...]]
    changes: list[Change]
    budget: TagBudget
    changed: bool


def isolate_network(
    aws: MemberClients, instance_id: str, case_id: str, *, prefix: str, dry_run: bool
) -> NetworkIsolation:
    """Step 1: no traffic can flow once this returns (in a dry run: what that would change)."""
    instance, found = both(partial(read_live_instance, aws, instance_id), partial(find_isolation_groups, aws, prefix))
    check_case(instance.tags, instance_id, case_id)
    quick = network_state(instance, aws.region)
    settled = settle_isolation_groups(aws, found, quick_vpcs(quick), prefix, dry_run=dry_run)
    network = Isolation(case_id=case_id, groups=settled.groups, profile_name="", revocation_policy="")
    swap = GroupSwap.plan(
        quick.interfaces,
        {vpc: (g.tracked, g.deny_all) for vpc, g in settled.groups.items()},
        remembered_groups(instance.tags),
    )
    budget = TagBudget.of(instance.tags)
    record, tagging = InstanceTagRecord.fitted(
        TagWriter(aws, instance_id), budget, swap, plan_tags(quick, case_id, ACTION_CONTAIN), case_id
    )
    changes = list(settled.changes)
    first = tagging + swap_changes(network_swap(quick, network))
    if not dry_run:
        swap.apply(aws.set_interface_groups, record, alongside=settled.rule_fixes)
        changes += first
    original_groups = {e.eni_id: e.groups for e in quick.interfaces} | dict(swap.originals)
    return NetworkIsolation(quick, instance.owner, settled.groups, original_groups, changes, budget, bool(first))


def apply_all(
    aws: MemberClients,
    current: ContainmentState,
    changes: Sequence[Change],
    *,
    remember: Mapping[str, str] | None = None,
    forget: Sequence[str] = (),
) -> None:
    """Write the bookkeeping tags (`remember`) first, make each change, then delete the bookkeeping (`forget`)."""
    target = Target(aws, current)
    target.tags.write(remember or {})
    for change in changes:
        apply_change(target, change)
    target.tags.delete(forget)


def quick_vpcs(state: ContainmentState) -> list[str]:
    return sorted({i.vpc_id for i in state.interfaces})


def contain_rest(
    aws: MemberClients,
    instance_id: str,
    case_id: str,
    network: NetworkIsolation,
    *,
    prefix: str,
    dry_run: bool,
    clock: Clock,
) -> tuple[ContainmentState, ContainmentState, list[Change], tuple[CredentialRevocation, ...]]:
    """Step 2: (before, after, changes, revocations) for profile, credentials, protections, ASG, targets, EIPs."""
    current, raw = read_state(aws, instance_id)
    budget = network.budget
    budget.keys |= set(raw)
    remembered = remembered_before(raw)
    if remembered is not None:
        before = remembered[1]
    else:
        before = replace(
            current,
            tags=network.quick.tags,
            interfaces=tuple(
                replace(e, groups=network.original_groups.get(e.eni_id, e.groups)) for e in current.interfaces
            ),
        )
    profile_name = naming.isolation_profile(prefix, aws.region)
    policy = revocation_policy_name(prefix, aws.region)
    original_roles = before.profile.roles if before.profile and before.profile.name != profile_name else ()
    revoked = revoked_roles(aws, original_roles, current.arn)
    cutoff = isotime(clock())
    isolation = Isolation(
        case_id=case_id,
        groups=network.groups,
        profile_name=profile_name,
        revocation_policy=policy,
        original_roles=original_roles,
        revoked_roles=frozenset(revoked),
        revoke_before=cutoff,
    )
    rest = fit_incident_tags(plan_containment(current, isolation), budget, case_id)
    before_tags = {} if remembered is not None else remember_before(budget, case_id, before)
    after = current
    if not dry_run:
        apply_all(aws, current, rest, remember=before_tags)
        if rest or network.changed:
            after = read_state(aws, instance_id)[0]
    revocations = tuple(CredentialRevocation(role, policy, revoked.get(role, cutoff)) for role in original_roles)
    return before, after, rest, revocations


@dataclass(frozen=True)
class _Run:
    """What contain, protect and release record alike: the instance, the clients, dry or not, when it began."""

    instance_id: str
    aws: MemberClients
    dry_run: bool
    clock: Clock
    started: str

    @classmethod
    def start(cls, session: boto3.Session, instance_id: str, *, dry_run: bool, sleep: Sleep, clock: Clock) -> _Run:
        started = isotime(clock())
        return cls(instance_id, MemberClients.of(session, sleep), dry_run, clock, started)

    def record(
        self,
        case_id: str,
        account: str,
        before: ContainmentState,
        after: ContainmentState,
        changes: list[Change],
        action: str,
        *,
        revocations: tuple[CredentialRevocation, ...] = (),
        notes: Sequence[str] = (),
    ) -> ContainmentRecord:
        return ContainmentRecord(
            case_id=case_id,
            instance_id=self.instance_id,
            account=account,
            region=self.aws.region,
            dry_run=self.dry_run,
            before=before,
            after=after,
            changes=changes,
            started_at=self.started,
            finished_at=isotime(self.clock()),
            action=action,
            revocations=revocations,
            notes=tuple(notes),
        )


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
    run = _Run.start(session, instance_id, dry_run=dry_run, sleep=sleep, clock=clock)
    network = isolate_network(run.aws, instance_id, case_id, prefix=prefix, dry_run=dry_run)
    before, after, rest, revocations = contain_rest(
        run.aws, instance_id, case_id, network, prefix=prefix, dry_run=dry_run, clock=clock
    )
    return run.record(
        case_id,
        network.account,
        before,
        after,
        network.changes + rest,
        ACTION_CONTAIN,
        revocations=revocations,
        notes=network.budget.notes,
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
    run = _Run.start(session, instance_id, dry_run=dry_run, sleep=sleep, clock=clock)
    aws = run.aws
    current, raw = read_state(aws, instance_id)
    check_case(raw, instance_id, case_id)
    remembered = remembered_before(raw)
    before = remembered[1] if remembered else current
    budget = TagBudget.of(raw)
    changes = fit_incident_tags(plan_protection(current, case_id, action), budget, case_id)
    after = current
    if changes:
        before_tags = {} if remembered else remember_before(budget, case_id, before)
        if not dry_run:
            apply_all(aws, current, changes, remember=before_tags)
            after = read_state(aws, instance_id)[0]
    return run.record(case_id, current.account, before, after, changes, action, notes=budget.notes)


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
    run = _Run.start(session, instance_id, dry_run=dry_run, sleep=sleep, clock=clock)
    aws = run.aws
    current, raw = read_state(aws, instance_id)
    revoked = revoked_roles(aws, [r.role for r in record.revocations], current.arn)
    changes = plan_release(current, record, revoked)
    after = current
    if not dry_run:
        apply_all(aws, current, changes, forget=[k for k in raw if k.startswith(BOOKKEEPING_TAG)])
        after = read_state(aws, instance_id)[0]
    return run.record(record.case_id, current.account, current, after, changes, "Release")


def describe_instance_state(session: boto3.Session, instance_id: str) -> ContainmentState:
    """The responder's before/after snapshot of one instance (raises InstanceNotFound)."""
    return read_state(MemberClients.of(session, time.sleep), instance_id)[0]
