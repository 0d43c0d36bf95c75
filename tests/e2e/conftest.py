"""One deployed cloud for the end-to-end tests: both stacks deployed once, one incident per action.

Deploying into moto and running two whole responses is the expensive part of the suite, so it is
done once per session and shared by the modules that assert on it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from irf import local_aws, simulate
from irf.sandbox import LocalCloud, cloud_context
from tests.e2e.helpers import auto_scaling_group


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Both actions run to completion in one deployed cloud; moto stays up for the assertions."""
    local_aws.use_fake_credentials()
    simulate.quiet_moto()
    out = tmp_path_factory.mktemp("cases")
    cloud = LocalCloud(examination_notes=simulate.SIMULATION_NOTES)
    with tempfile.TemporaryDirectory() as work, cloud_context(cloud):
        incidents = {"contain": simulate.build_incident(cloud, Path(work), name="web"),
                     "analyze": simulate.build_incident(cloud, Path(work), name="shop")}
        capacity = {action: auto_scaling_group(cloud, incident)["DesiredCapacity"]
                    for action, incident in incidents.items()}
        executions = {action: simulate.trigger_by_tag(cloud, incident, action)
                      for action, incident in incidents.items()}
        results = {}
        for action, arn in executions.items():
            execution = cloud.wait(arn, timeout_seconds=600)
            results[action] = simulate.collect(cloud, execution, incidents[action], action, out, [])
        yield {"cloud": cloud, "incidents": incidents, "results": results, "capacity": capacity,
               "executions": executions}
