"""Incidents on different instances, tagged at once, in one deployed cloud: complete, separate cases.

In the suite: the shared world's two incidents (tests/e2e/conftest.py) are tagged together and
run at the same time; their cases must be complete and hold only their own instance's evidence.
The issue's ten: `IRF_CONCURRENT_INCIDENTS=10 pytest tests/e2e/test_concurrency.py` (its own
cloud; each incident images a 1 GiB volume through moto's S3, about 6 minutes on 2 cores, which
is why the suite does not run it), or by hand with `irf simulate --incidents 10`.
Separation is checked by what identifies each instance: its volume ids in the image keys, its
memory digest, its containment record (simulate.separation_problems).
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from simulation import simulate
from simulation.local_aws import SECURITY_ACCOUNT

pytestmark = pytest.mark.slow
MANY = int(os.environ.get("IRF_CONCURRENT_INCIDENTS", "0"))


def _described(world: dict[str, Any]) -> list[dict[str, Any]]:
    sfn = world["cloud"].session(SECURITY_ACCOUNT).client("stepfunctions")
    return [sfn.describe_execution(executionArn=arn) for arn in world["executions"].values()]


def test_the_worlds_incidents_ran_at_the_same_time_into_separate_complete_cases(world: dict[str, Any]) -> None:
    actions = sorted(world["incidents"])
    run = simulate.ConcurrentRun(
        incidents=[world["incidents"][a] for a in actions],
        results=[world["results"][a] for a in actions],
        seconds=0.0,
        problems=[],
        executions=_described(world),
    )
    assert run.overlapped, "the two responses did not run at the same time"
    assert simulate.separation_problems(run.incidents, run.results) == []
    assert len({i.memory_sha256 for i in run.incidents}) == len(actions)


def test_a_separation_check_that_finds_another_instances_case_fails(world: dict[str, Any]) -> None:
    # The checker must be able to fail: hand it each incident's case swapped with the other's.
    incidents = [world["incidents"]["contain"], world["incidents"]["analyze"]]
    swapped = [world["results"]["analyze"], world["results"]["contain"]]
    problems = simulate.separation_problems(incidents, swapped)
    assert any(incidents[0].instance_id in p and "another instance's volumes" in p for p in problems), problems
    assert any("memory image is missing or is not this instance's" in p for p in problems), problems


@pytest.fixture(scope="module")
def many(tmp_path_factory: pytest.TempPathFactory) -> simulate.ConcurrentRun:
    return simulate.run_concurrent(MANY, "contain", tmp_path_factory.mktemp("cases"), data_volume=False)


@pytest.mark.skipif(MANY < 2, reason="set IRF_CONCURRENT_INCIDENTS=10 to run ten incidents at once (~6 min)")
def test_many_incidents_at_once_each_get_their_own_complete_case(many: simulate.ConcurrentRun) -> None:
    assert many.problems == []
    assert [r.status for r in many.results] == ["SUCCEEDED"] * MANY
    assert len({r.case_id for r in many.results}) == MANY == len({i.instance_id for i in many.incidents})
    assert len({i.memory_sha256 for i in many.incidents}) == MANY
    assert many.overlapped
    for result in many.results:
        assert {"/var/www/html/uploads/.cache.php", "/etc/cron.d/sysupdate"} <= {f["path"] for f in result.findings}
