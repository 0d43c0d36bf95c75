"""Move every interface of an instance onto groups of ours, remembering the groups it had.

Containment (an allow-all group, then the no-rule group) and the memory capture path (the
capture group) do the same thing: plan, per interface, the group lists to set in order; know
each interface's original groups (its groups now, or, once it already sits on a group of ours,
what the record says); write the record before the first interface moves; then move the
interfaces, all at once, step by step. Where the record lives is the caller's: containment keeps
it in the instance's tags, the capture path in the capture group's (`GroupRecord`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Protocol

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
