"""Where the original state lives while an instance is contained: in its own tags.

Before the first change, the original groups of every interface are written to
`irforensics:containment:groups:<n>`; before anything else changes, the whole original
`ContainmentState` is written, compressed, to `irforensics:containment:before:<n>`. A repeated
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
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from core.containment.effects import TagWriter
from core.containment.model import BEFORE_TAG, BOOKKEEPING_TAG, GROUPS_TAG, Change, ContainmentState
from core.groupswap import GroupSwap
from handlers.common.errors import CaseAlreadyOpen
from handlers.common.tags import (
    CASE_TAG,
    INCIDENT_TAG,
    MAX_TAGS_PER_RESOURCE,
    chunked_tags,
    counted_tags,
    unchunked_tag,
)


def groups_tags(groups: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """One plain-text list for all interfaces ("eni-1=sg-1,sg-2;eni-2=sg-3"): a responder can read it."""
    return chunked_tags(GROUPS_TAG, ";".join(f"{eni}={','.join(g)}" for eni, g in sorted(groups.items())))


def remembered_groups(tags: Mapping[str, str]) -> dict[str, tuple[str, ...]]:
    value = unchunked_tag(tags, GROUPS_TAG)
    found: dict[str, tuple[str, ...]] = {}
    for entry in (value or "").split(";"):
        eni, _, groups = entry.partition("=")
        if eni:
            found[eni] = tuple(g for g in groups.split(",") if g)
    return found


def _before_document(case_id: str, before: ContainmentState, *, with_tags: bool) -> dict[str, Any]:
    if with_tags:
        return {"case_id": case_id, "state": before.to_dict()}
    # The instance's own tags stay where they are; only the values containment overwrites are kept.
    return {
        "case_id": case_id,
        "state": replace(before, tags={}).to_dict(),
        "overwritten_tags": {k: before.tags.get(k) for k in (INCIDENT_TAG, CASE_TAG)},
    }


def before_tags(case_id: str, before: ContainmentState, *, with_tags: bool = True) -> dict[str, str]:
    document = json.dumps(_before_document(case_id, before, with_tags=with_tags), separators=(",", ":"), sort_keys=True)
    return chunked_tags(BEFORE_TAG, base64.b64encode(zlib.compress(document.encode(), 9)).decode())


def remembered_before(tags: Mapping[str, str]) -> tuple[str, ContainmentState] | None:
    """The original state a previous run kept in the instance's tags; None when there is none, or
    when what is there cannot be read (anyone with ec2:CreateTags on the instance can write these
    tags: an unreadable record must not stop containment, so it is treated as absent)."""
    blob = unchunked_tag(tags, BEFORE_TAG)
    if blob is None:
        return None
    try:
        document = json.loads(zlib.decompress(base64.b64decode(blob, validate=True)))
        state = ContainmentState.from_dict(document["state"])
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


def check_case(tags: Mapping[str, str], instance_id: str, case_id: str) -> None:
    remembered = remembered_before(tags)
    open_case = remembered[0] if remembered else tags.get(CASE_TAG)
    if open_case and open_case != case_id:
        raise CaseAlreadyOpen(instance_id, open_case)


@dataclass
class TagBudget:
    """EC2's per-instance tag limit, counted over the tags there plus those this run writes."""

    keys: set[str]
    notes: list[str] = field(default_factory=list)
    _left_out: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, tags: Iterable[str]) -> TagBudget:
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


def fit_incident_tags(changes: Sequence[Change], budget: TagBudget, case_id: str) -> list[Change]:
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


def remember_before(budget: TagBudget, case_id: str, before: ContainmentState) -> dict[str, str]:
    return budget.take(
        [before_tags(case_id, before), before_tags(case_id, before, with_tags=False)],
        "the original state is not remembered on the instance (a retried or escalated containment records the "
        "state it finds as `before`, and cannot match this run's containment/before.json)",
    )


@dataclass(frozen=True)
class InstanceTagRecord:
    """The swap's record of original groups (core.groupswap.GroupRecord), in the instance's tags.

    Written in one call with the incident tags the same step needs. `fitted` spends the tag budget
    in containment's order of priority: the groups first, then the incident tags that still fit.
    """

    writer: TagWriter
    groups: Mapping[str, str]
    incident: Mapping[str, str]

    @classmethod
    def fitted(
        cls, writer: TagWriter, budget: TagBudget, swap: GroupSwap, incident: Sequence[Change], case_id: str
    ) -> tuple[InstanceTagRecord, list[Change]]:
        """The record to write and the incident-tags change cut to what fits."""
        groups = budget.take(
            [groups_tags(swap.originals)] if swap.unremembered else [],
            f"the original security groups of {', '.join(sorted(swap.unremembered))} are not remembered on the "
            "instance (if this run is interrupted, a retry records the isolation group as their original)",
        )
        tagging = fit_incident_tags(incident, budget, case_id)
        return cls(writer, groups, dict(tagging[0].new) if tagging else {}), tagging

    def remember(self, originals: Mapping[str, tuple[str, ...]], missing: Mapping[str, tuple[str, ...]]) -> None:
        self.writer.write({**self.groups, **self.incident})
