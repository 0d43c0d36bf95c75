"""Containment of a suspect instance: isolate, protect, release (domain logic in containment.py)."""

from handlers.isolation.containment import (
    Change,
    ContainmentRecord,
    InstanceState,
    contain_instance,
    describe_instance_state,
    plan_containment,
    protect_instance,
    release_instance,
)

__all__ = [
    "Change",
    "ContainmentRecord",
    "InstanceState",
    "contain_instance",
    "describe_instance_state",
    "plan_containment",
    "protect_instance",
    "release_instance",
]
