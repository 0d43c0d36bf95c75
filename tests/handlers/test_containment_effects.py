"""Containment's typed effects and its critical path: every change a plan can emit has an effect,
the group swap plans as containment and the capture path need, and the bench's round targets hold."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bench import containment as bench
from core.containment.effects import EFFECTS
from core.containment.model import (
    AddressAssociation,
    AutoScalingMembership,
    ContainmentRecord,
    ContainmentState,
    CredentialRevocation,
    InstanceProfile,
    Isolation,
    IsolationGroups,
    TargetRegistration,
    VolumeState,
)
from core.containment.plans import plan_containment, plan_protection, plan_release
from core.groupswap import GroupMove, GroupSwap
from core.instances import InterfaceState
from core.rounds import count_rounds
from handlers.common.tags import ACTION_ANALYZE, CASE_TAG, INCIDENT_TAG

VPC = "vpc-0123456789abcdef0"
WEB, ADMIN, TRACKED, DENY = (
    "sg-0000000000000a001",
    "sg-0000000000000a002",
    "sg-0000000000000f001",
    "sg-0000000000000f002",
)
ENI_1, ENI_2 = "eni-00000000000000001", "eni-00000000000000002"
GROUPS = {VPC: IsolationGroups(VPC, TRACKED, DENY)}


def interface(eni: str, index: int, *groups: str) -> InterfaceState:
    return InterfaceState(eni, index, VPC, "subnet-1", tuple(groups), (f"10.0.0.{index + 4}",), ())


def serving(**changes: object) -> ContainmentState:
    """An instance with everything containment changes: profile, ASG, targets, an EIP, volumes to keep."""
    state = ContainmentState(
        instance_id="i-0123456789abcdef0",
        account="111122223333",
        region="eu-west-1",
        interfaces=(interface(ENI_1, 0, WEB), interface(ENI_2, 1, ADMIN)),
        profile=InstanceProfile("iip-assoc-1", "arn:aws:iam::111122223333:instance-profile/web", ("web-role",)),
        termination_protection=False,
        shutdown_behavior="terminate",
        volumes=(VolumeState("/dev/xvda", "vol-1", True),),
        addresses=(AddressAssociation("eipalloc-1", "198.51.100.7", "eipassoc-1", ENI_1, "10.0.0.4"),),
        auto_scaling=AutoScalingMembership("web-asg", "InService", False),
        target_groups=(TargetRegistration("arn:aws:elasticloadbalancing:tg/web", "i-0123456789abcdef0", 80),),
    )
    return replace(state, **changes)  # type: ignore[arg-type]


def contained_from(state: ContainmentState) -> ContainmentState:
    return replace(
        state,
        interfaces=tuple(replace(i, groups=(DENY,)) for i in state.interfaces),
        profile=InstanceProfile("iip-assoc-2", "arn:aws:iam::111122223333:instance-profile/isolation", ()),
        termination_protection=True,
        shutdown_behavior="stop",
        volumes=tuple(replace(v, delete_on_termination=False) for v in state.volumes),
        addresses=(),
        auto_scaling=None,
        target_groups=(),
        tags={INCIDENT_TAG: "Contain", CASE_TAG: "case-1"},
    )


def record(before: ContainmentState, after: ContainmentState) -> ContainmentRecord:
    return ContainmentRecord(
        "case-1", before.instance_id, before.account, before.region, False, before, after, [], "", ""
    )


def every_planned_effect() -> set[tuple[str, str]]:
    isolation = Isolation("case-1", GROUPS, "isolation", "revoke", original_roles=("web-role",), revoke_before="t")
    plans = [
        plan_containment(serving(), isolation),
        plan_containment(serving(profile=None), isolation),
        plan_protection(serving(), "case-1", ACTION_ANALYZE),
    ]
    contained = contained_from(serving())
    with_revocation = replace(
        record(serving(), contained), revocations=(CredentialRevocation("web-role", "revoke", "t"),)
    )
    plans.append(plan_release(contained, with_revocation, ["web-role"]))
    plans.append(plan_release(replace(contained, profile=None), record(serving(), contained), []))
    plans.append(plan_release(contained, record(serving(profile=None), contained), []))
    return {change.effect for plan in plans for change in plan}


def test_every_change_a_plan_can_emit_has_an_effect_and_no_effect_is_unused() -> None:
    planned = every_planned_effect()

    assert planned - EFFECTS.keys() == set()
    assert EFFECTS.keys() - planned == set()


def test_the_swap_moves_each_interface_through_every_step_and_remembers_its_groups() -> None:
    swap = GroupSwap.plan([interface(ENI_1, 0, WEB), interface(ENI_2, 1, ADMIN)], {VPC: (TRACKED, DENY)}, {})

    assert [[(m.eni_id, m.new) for m in step] for step in swap.steps] == [
        [(ENI_1, (TRACKED,)), (ENI_2, (TRACKED,))],
        [(ENI_1, (DENY,)), (ENI_2, (DENY,))],
    ]
    assert swap.originals == swap.unremembered == {ENI_1: (WEB,), ENI_2: (ADMIN,)}


def test_an_interface_halfway_is_finished_and_its_original_comes_from_the_record() -> None:
    swap = GroupSwap.plan(
        [interface(ENI_1, 0, TRACKED), interface(ENI_2, 1, DENY)], {VPC: (TRACKED, DENY)}, {ENI_1: (WEB,)}
    )

    assert swap.moves == (GroupMove(ENI_1, 1, (TRACKED,), (DENY,)),)
    assert swap.originals == {ENI_1: (WEB,)}
    assert swap.unknown == (ENI_2,) and swap.unremembered == {}


def test_a_broken_record_is_not_trusted() -> None:
    swap = GroupSwap.plan([interface(ENI_1, 0, DENY)], {VPC: (TRACKED, DENY)}, {ENI_1: ("sg-1", "not-a-group")})

    assert swap.unknown == (ENI_1,) and swap.originals == {}


def test_rounds_count_a_batch_as_its_busiest_slot() -> None:
    assert count_rounds([None, (1, 0), (1, 1), None, (2, 0), (2, 0), (2, 1)]) == 1 + 1 + 1 + 2


@pytest.fixture(scope="module")
def measured() -> dict[str, bench.Measurement]:
    return {m.scenario: m for m in bench.measure("irforensics", bench.ours)}


def test_containment_isolates_in_at_most_four_rounds_when_the_isolation_groups_exist(
    measured: dict[str, bench.Measurement],
) -> None:
    assert measured["isolation groups exist"].rounds_to_isolation <= 4


def test_containment_isolates_the_first_instance_of_a_vpc_in_at_most_six_rounds(
    measured: dict[str, bench.Measurement],
) -> None:
    assert measured["first instance in a VPC"].rounds_to_isolation <= 6
