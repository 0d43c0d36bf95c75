"""Every entry point starts a whole response, and the case says which one did.

One deployment, four suspects (each its own web tier, root volume only, so each image is small),
each started the way `irf simulate --trigger` starts it: the tag (the member account's EventBridge
rule forwarding the tag change), a GuardDuty `Backdoor:EC2/C&CActivity.B` finding over the
severity threshold and a Security Hub custom action on that finding (both on the security account's
bus, routed by the deployed rules to the trigger Lambdas), and a manual StartExecution with the
contract's input. The four responses (Analyze) run one after the other in the one deployment.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from handlers.case.store import CaseStore
from handlers.common import naming
from simulation import local_aws, simulate

ACTION = "analyze"


@dataclass
class Triggered:
    incident: simulate.Incident
    execution: dict[str, Any]
    result: simulate.SimulationResult
    case: dict[str, Any]


@pytest.fixture(scope="module")
def responses(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Triggered]]:
    out = tmp_path_factory.mktemp("cases")
    with simulate.shared_disk_cloud(simulate.SIMULATION_NOTES, data_volume=False, prefix="irf-triggers-") as shared:
        cloud = shared.cloud
        incidents = {trigger: shared.incident(f"web-{trigger}") for trigger in simulate.TRIGGERS}
        # One after the other: four at once on a busy two-core machine run past the tasks' timeouts.
        executions = {
            trigger: cloud.wait(simulate.TRIGGER_FUNCTIONS[trigger](cloud, incident, ACTION), timeout_seconds=2400)
            for trigger, incident in incidents.items()
        }
        store = CaseStore(
            cloud.session(local_aws.SECURITY_ACCOUNT).client("dynamodb"), naming.case_table(local_aws.PREFIX)
        )
        found: dict[str, Triggered] = {}
        for trigger, execution in executions.items():
            assert execution["status"] == "SUCCEEDED", (trigger, execution.get("error"), execution.get("cause"))
            result = simulate.collect(cloud, execution, incidents[trigger], ACTION, out, [], images=False)
            case = store.get_case(result.case_id)
            assert case is not None
            found[trigger] = Triggered(incidents[trigger], execution, result, case)
        yield found
    # The trigger Lambdas' logs were kept off the console and say what started each response.
    assert sum('"message":"response started"' in line for line in shared.logs) == 3


def _check(triggered: Triggered, trigger: str) -> None:
    assert triggered.execution["status"] == "SUCCEEDED", triggered.execution.get("cause")
    request = json.loads(triggered.execution["input"])
    assert request["InstanceId"] == triggered.incident.instance_id
    assert request["Account"] == local_aws.MEMBER_ACCOUNT
    # The case record, the manifest and the simulation's summary say which entry point started it.
    assert triggered.case["Trigger"] == trigger
    assert triggered.result.trigger == trigger
    manifest = json.loads((triggered.result.case_dir / "manifest.json").read_text())
    assert manifest["request"]["Trigger"] == trigger
    assert (triggered.result.case_dir / "report" / "report.html").is_file()
    assert any(key.endswith(".img") for key in (a["key"] for a in triggered.result.artefacts))


def test_the_tag_starts_a_response_recorded_as_tag(responses: dict[str, Triggered]) -> None:
    _check(responses["tag"], "tag")
    assert "Tag SecurityIncidentStatus=Analyze" in responses["tag"].result.finding


def test_a_guardduty_finding_over_the_threshold_starts_a_response_recorded_as_guardduty(
    responses: dict[str, Triggered],
) -> None:
    triggered = responses["guardduty"]
    _check(triggered, "guardduty")
    # Severity 7.5: over the rule's threshold (7), under the contain threshold (8): Analyze.
    assert json.loads(triggered.execution["input"])["Action"] == "Analyze"
    assert triggered.result.finding.startswith("GuardDuty Backdoor:EC2/C&CActivity.B severity 7.5 finding ")


def test_a_security_hub_custom_action_starts_a_response_recorded_as_securityhub(
    responses: dict[str, Triggered],
) -> None:
    triggered = responses["securityhub"]
    _check(triggered, "securityhub")
    assert triggered.result.finding.startswith("Security Hub Forensic analysis: EC2 instance ")
    assert triggered.incident.instance_id in triggered.result.finding


def test_a_manual_start_execution_is_recorded_as_manual(responses: dict[str, Triggered]) -> None:
    triggered = responses["manual"]
    _check(triggered, "manual")
    request = json.loads(triggered.execution["input"])
    # The contract's manual input: no Trigger field (it defaults to manual), RetainArtefacts as a string.
    assert "Trigger" not in request and request["RetainArtefacts"] == "true"
    assert triggered.result.finding == ""
