from __future__ import annotations

from typing import Any

from simulation import simulate
from simulation.local_aws import MEMBER_ACCOUNT
from simulation.sandbox import LocalCloud


def auto_scaling_group(cloud: LocalCloud, incident: simulate.Incident) -> dict[str, Any]:
    autoscaling = cloud.session(MEMBER_ACCOUNT).client("autoscaling")
    return dict(
        autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[incident.tier.auto_scaling_group])[
            "AutoScalingGroups"
        ][0]
    )
