"""Containment of a suspect instance: isolate the network, contain the rest, protect, release.

model (state, changes, record) -> plans (pure) -> effects (one per kind of change, `EFFECTS`);
groups and bookkeeping are the isolation groups and the record kept in the instance's tags;
operations are the public steps; release says which record a release restores.
"""

from core.containment.model import (
    Change,
    ContainmentRecord,
    ContainmentState,
    CredentialRevocation,
    Isolation,
    IsolationGroups,
)
from core.containment.operations import (
    contain_instance,
    describe_instance_state,
    isolate_network,
    protect_instance,
    release_instance,
)
from core.containment.plans import plan_containment, plan_release
from core.containment.release import ContainmentRecordNotFound, check_release, record_from_evidence

__all__ = [
    "Change",
    "ContainmentRecord",
    "ContainmentRecordNotFound",
    "ContainmentState",
    "CredentialRevocation",
    "Isolation",
    "IsolationGroups",
    "check_release",
    "contain_instance",
    "describe_instance_state",
    "isolate_network",
    "plan_containment",
    "plan_release",
    "protect_instance",
    "record_from_evidence",
    "release_instance",
]
