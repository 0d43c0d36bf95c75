"""Move every interface of an instance onto groups of ours, remembering the groups it had.

Containment (an allow-all group, then the no-rule group) and the memory capture path (the
capture group) do the same thing: plan, per interface, the group lists to set in order; know
each interface's original groups (its groups now, or, once it already sits on a group of ours,
what the record says); write the record before the first interface moves; then move the
interfaces, all at once, step by step. Where the record lives is the caller's: containment keeps
it in the instance's tags, the capture path in the capture group's (`GroupRecord`). The rules of
the groups of ours are settled the same way for both (`plan_rules`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

from core.instances import InterfaceState
from core.rounds import in_parallel

SECURITY_GROUP_ID = re.compile(r"sg-[0-9a-f]{8,17}")
Groups = tuple[str, ...]


class GroupRecord(Protocol):
    """The place a swap keeps the original groups until they are put back."""

    def remember(self, originals: Mapping[str, Groups], missing: Mapping[str, Groups]) -> None:
        """Keep `originals` (eni -> groups); `missing` is what the record lacks. Called before anything moves."""


def usable_record(record: Sequence[str]) -> bool:
    """A record that lost a chunk (or that someone else wrote) reads as a shorter list or a broken id;
    putting that back would give the interface groups it never had (or none), so it is not used."""
    return bool(record) and len(set(record)) == len(record) and all(SECURITY_GROUP_ID.fullmatch(g) for g in record)


@dataclass(frozen=True)
class GroupMove:
    """One interface set to `groups` at step `step` of the swap (0: the first target list)."""

    eni_id: str
    step: int
    old: Groups
    new: Groups


@dataclass(frozen=True)
class GroupSwap:
    """The pure plan: which interface is set to which groups at each step, and the originals."""

    moves: tuple[GroupMove, ...]
    originals: Mapping[str, Groups]
    # Interfaces already on a group of ours with no usable record: their original groups are lost.
    unknown: tuple[str, ...] = ()
    # Originals the record does not hold yet (so it must be written before anything moves).
    unremembered: Mapping[str, Groups] = field(default_factory=dict)

    @classmethod
    def plan(
        cls,
        interfaces: Sequence[InterfaceState],
        targets: Mapping[str, Sequence[str]],
        remembered: Mapping[str, Sequence[str]],
    ) -> GroupSwap:
        """`targets`: vpc -> the group each step puts the VPC's interfaces on, in order (the last stays)."""
        moves: list[GroupMove] = []
        originals: dict[str, Groups] = {}
        unknown: list[str] = []
        for eni in interfaces:
            steps = [(group,) for group in targets[eni.vpc_id]]
            if set(eni.groups) & {group for (group,) in steps}:
                record = tuple(remembered.get(eni.eni_id, ()))
                if usable_record(record):
                    originals[eni.eni_id] = record
                else:
                    unknown.append(eni.eni_id)
            else:
                originals[eni.eni_id] = eni.groups
            start = next((i + 1 for i, groups in enumerate(steps) if eni.groups == groups), 0)
            old = eni.groups
            for step in range(start, len(steps)):
                moves.append(GroupMove(eni.eni_id, step, old, steps[step]))
                old = steps[step]
        unremembered = {e: g for e, g in originals.items() if tuple(remembered.get(e, ())) != g}
        return cls(
            moves=tuple(sorted(moves, key=lambda m: m.step)),
            originals=originals,
            unknown=tuple(unknown),
            unremembered=unremembered,
        )

    @property
    def steps(self) -> list[list[GroupMove]]:
        """The moves, one list per step; the interfaces of one step move at once."""
        by_step: dict[int, list[GroupMove]] = {}
        for move in self.moves:
            by_step.setdefault(move.step, []).append(move)
        return [by_step[step] for step in sorted(by_step)]

    def apply(
        self,
        set_groups: Callable[[str, list[str]], object],
        record: GroupRecord | None,
        *,
        alongside: Sequence[Callable[[], object]] = (),
    ) -> None:
        """Write the record, then each step on every interface at once.

        The record goes first: a run cut off after a move must still know what the groups were.
        `alongside`: calls that must end before the first move too (e.g. settling the groups' rules),
        made at the same time as the record's.
        """
        first: list[Callable[[], object]] = list(alongside)
        if record is not None:
            first.append(lambda: record.remember(self.originals, self.unremembered))
        in_parallel(first)
        for step in self.steps:
            in_parallel([partial(set_groups, move.eni_id, list(move.new)) for move in step])


# ---------------------------------------------------------------------------------------------
# The rules of a group of ours: exactly the wanted ones (each kind of group says which).

_RULE_TARGETS = {
    "IpRanges": "CidrIp",
    "Ipv6Ranges": "CidrIpv6",
    "PrefixListIds": "PrefixListId",
    "UserIdGroupPairs": "GroupId",
}
Rule = tuple[str, Any, Any, str, str]  # protocol, from port, to port, kind of target, target
DIRECTIONS = ("ingress", "egress")
PERMISSIONS = {"ingress": "IpPermissions", "egress": "IpPermissionsEgress"}


def rules(permissions: Iterable[Mapping[str, Any]]) -> dict[Rule, dict[str, Any]]:
    """Each (protocol, ports, one target) of `permissions`, with the target entry as given."""
    found: dict[Rule, dict[str, Any]] = {}
    for permission in permissions:
        head = (str(permission["IpProtocol"]), permission.get("FromPort"), permission.get("ToPort"))
        for kind, field_name in _RULE_TARGETS.items():
            for target in permission.get(kind, []):
                found[(*head, kind, str(target[field_name]))] = dict(target)
    return found


def permissions(found: Mapping[Rule, Mapping[str, Any]], *, identity_only: bool = False) -> list[dict[str, Any]]:
    """One permission per rule; `identity_only` drops what a revoke does not match on (descriptions, VPC ids)."""
    listed: list[dict[str, Any]] = []
    for (protocol, from_port, to_port, kind, _target), entry in sorted(found.items(), key=lambda r: str(r[0])):
        if identity_only:
            entry = {k: v for k, v in entry.items() if k in (_RULE_TARGETS[kind], "UserId")}
        permission: dict[str, Any] = {"IpProtocol": protocol, kind: [dict(entry)]}
        if from_port is not None:
            permission |= {"FromPort": from_port, "ToPort": to_port}
        listed.append(permission)
    return listed


@dataclass(frozen=True)
class RuleFix:
    """One call that brings a group's rules to what is wanted: revoke or authorize, one direction."""

    group_id: str
    verb: str  # "revoke" or "authorize"
    direction: str  # "ingress" or "egress"
    permissions: tuple[Mapping[str, Any], ...]

    @property
    def api(self) -> str:
        return f"ec2:{self.verb.title()}SecurityGroup{self.direction.title()}"

    def call(self, ec2: Any) -> Callable[..., Any]:
        return getattr(ec2, f"{self.verb}_security_group_{self.direction}")


def plan_rules(group: Mapping[str, Any], wanted: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[RuleFix]:
    """The calls that leave `group` with exactly `wanted` ("ingress"/"egress" -> permissions), revokes first.

    A new group comes with an allow-all egress rule that must go unless wanted; a rule someone added
    to a group of ours goes too. Revokes come first: an interface may already use the group on a retry.
    """
    revokes: list[RuleFix] = []
    authorizes: list[RuleFix] = []
    for direction in DIRECTIONS:
        present, target = rules(group.get(PERMISSIONS[direction], [])), rules(wanted.get(direction, []))
        extra = {rule: present[rule] for rule in present.keys() - target.keys()}
        missing = {rule: target[rule] for rule in target.keys() - present.keys()}
        if extra:
            revokes.append(
                RuleFix(group["GroupId"], "revoke", direction, tuple(permissions(extra, identity_only=True)))
            )
        if missing:
            authorizes.append(RuleFix(group["GroupId"], "authorize", direction, tuple(permissions(missing))))
    return revokes + authorizes
