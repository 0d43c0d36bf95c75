"""The response state machine's other paths, on the deployed cloud of the session (moto's interpreter).

Bad input is rejected at the first state with nothing touched; a target that is gone, or in an
account or region without a responder, is refused at the second, before any case opens; a second request for an instance
with an open case starts nothing; a failure injected mid-acquisition ends with the instance
contained, the case recording what failed and where, and the execution failing with that error.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from moto.ec2.models import ec2_backends

from handlers.case.store import CaseStore
from handlers.common import naming
from handlers.common.case import CaseRequest
from handlers.common.errors import AcquisitionFailed
from simulation import scenarios, simulate, synthetic_memory
from simulation.local_aws import FORENSIC_ACCOUNT, MEMBER_ACCOUNT, PREFIX, REGION, SECURITY_ACCOUNT
from simulation.sandbox import LocalCloud

pytestmark = pytest.mark.slow


def _member_snapshot(cloud: LocalCloud, instance_id: str) -> dict[str, Any]:
    """Everything about the instance a response could change."""
    ec2 = cloud.session(MEMBER_ACCOUNT).client("ec2")
    instance = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    enis = ec2.describe_network_interfaces(Filters=[{"Name": "attachment.instance-id", "Values": [instance_id]}])
    snapshots = ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]
    return {
        "groups": sorted(
            (e["NetworkInterfaceId"], tuple(g["GroupId"] for g in e["Groups"])) for e in enis["NetworkInterfaces"]
        ),
        "profile": instance.get("IamInstanceProfile", {}).get("Arn"),
        "tags": sorted((t["Key"], t["Value"]) for t in instance.get("Tags", [])),
        "protection": ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="disableApiTermination")[
            "DisableApiTermination"
        ]["Value"],
        "snapshots": sorted(s["SnapshotId"] for s in snapshots),
    }


def test_bad_input_fails_at_the_first_state_naming_every_field_and_touches_nothing(world: dict[str, Any]) -> None:
    cloud: LocalCloud = world["cloud"]
    instance_id = world["incidents"]["analyze"].instance_id
    before = _member_snapshot(cloud, instance_id)
    execution = cloud.run_response(
        {
            "InstanceId": instance_id,
            "Account": "33333333333",
            "Region": "eu-west-1",
            "Action": "contain",
            "RetainArtefacts": "maybe",
        }
    )
    assert execution["status"] == "FAILED" and execution["error"] == "InvalidInput"
    for field in ("Account", "Action", "RetainArtefacts"):
        assert field in execution["cause"]
    states = [
        e["stateEnteredEventDetails"]["name"]
        for e in cloud.history(execution["executionArn"])
        if "stateEnteredEventDetails" in e
    ]
    assert states == ["ValidateInput", "Rejected"]
    assert _member_snapshot(cloud, instance_id) == before


def test_a_second_request_for_an_instance_with_an_open_case_starts_nothing(world: dict[str, Any]) -> None:
    cloud: LocalCloud = world["cloud"]
    tier = world["incidents"]["contain"].tier
    store = CaseStore(cloud.session(SECURITY_ACCOUNT).client("dynamodb"), naming.case_table(PREFIX))
    held = store.open_case(
        CaseRequest(instance_id=tier.instance_id, account=MEMBER_ACCOUNT, region=REGION, case_id="INC-OPEN-0001"),
        now_epoch=1,
        now_iso="2026-11-23T00:00:00Z",
    )
    assert held.created
    before = _member_snapshot(cloud, tier.instance_id)
    execution = cloud.run_response(
        {"InstanceId": tier.instance_id, "Account": MEMBER_ACCOUNT, "Region": REGION, "Action": "Contain"}
    )
    assert execution["status"] == "SUCCEEDED"
    output = json.loads(execution["output"])
    assert (output["CaseId"], output["Created"]) == ("INC-OPEN-0001", False)
    assert _member_snapshot(cloud, tier.instance_id) == before
    store.close_case("INC-OPEN-0001", status="closed", now_iso="2026-11-23T00:00:01Z")


def test_a_failure_mid_acquisition_leaves_the_instance_contained_and_the_case_saying_what_failed(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    cloud: LocalCloud = world["cloud"]

    def broken_reader(session: Any, snapshot_id: str) -> Any:
        raise AcquisitionFailed(f"injected fault: EBS direct read of {snapshot_id} refused")

    with tempfile.TemporaryDirectory() as work:
        incident = simulate.build_incident(cloud, Path(work), name="fault")
    monkeypatch.setitem(cloud.ports, "block_source", broken_reader)
    execution = cloud.run_response(
        {
            "InstanceId": incident.instance_id,
            "Account": MEMBER_ACCOUNT,
            "Region": REGION,
            "Action": "Analyze",
            "WaitSeconds": 0,
        }
    )
    assert execution["status"] == "FAILED" and execution["error"] == "AcquisitionFailed"
    assert "injected fault" in execution["cause"]

    # Analyze asked only for protection; the failure path contained the instance all the same.
    _, deny_all = naming.isolation_group_names(PREFIX)
    ec2 = cloud.session(MEMBER_ACCOUNT).client("ec2")
    groups = {g["GroupId"]: g["GroupName"] for g in ec2.describe_security_groups()["SecurityGroups"]}
    for eni in ec2.describe_network_interfaces(
        Filters=[{"Name": "attachment.instance-id", "Values": [incident.instance_id]}]
    )["NetworkInterfaces"]:
        assert [groups[g["GroupId"]] for g in eni["Groups"]] == [deny_all]

    store = CaseStore(cloud.session(SECURITY_ACCOUNT).client("dynamodb"), naming.case_table(PREFIX))
    [case] = [c for c in store.recent_cases() if c["InstanceId"] == incident.instance_id]
    case_id = case["CaseId"]
    assert case["Status"] == "failed" and "acquire" in case["Detail"]
    s3 = cloud.session(FORENSIC_ACCOUNT).client("s3")
    bucket = naming.evidence_bucket(PREFIX, FORENSIC_ACCOUNT, REGION)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=f"{case_id}/custody/")["Contents"]]
    failure = json.loads(
        s3.get_object(Bucket=bucket, Key=next(k for k in keys if k.endswith("-failure.json")))["Body"].read()
    )
    assert failure["detail"]["error"] == "AcquisitionFailed" and failure["detail"]["stage"] == "acquire"
    assert store.open_case_for(MEMBER_ACCOUNT, REGION, incident.instance_id) is None


def _states_entered(cloud: LocalCloud, execution_arn: str) -> list[str]:
    return [
        e["stateEnteredEventDetails"]["name"] for e in cloud.history(execution_arn) if "stateEnteredEventDetails" in e
    ]


def _terminated_instance(cloud: LocalCloud) -> str:
    ec2 = cloud.session(MEMBER_ACCOUNT).client("ec2")
    instance_id = str(ec2.run_instances(ImageId=scenarios.AMI, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"])
    ec2.terminate_instances(InstanceIds=[instance_id])
    return instance_id


REFUSED_TARGETS = {
    "nonexistent instance": (
        lambda cloud: "i-0123456789abcdef0",
        MEMBER_ACCOUNT,
        REGION,
        "InstanceNotFound",
        "does not exist in this account and region",
    ),
    "terminated instance": (
        _terminated_instance,
        MEMBER_ACCOUNT,
        REGION,
        "InstanceNotFound",
        "is terminated: its memory is gone",
    ),
    "account without a responder": (
        lambda cloud: "i-0123456789abcdef0",
        "444444444444",
        REGION,
        "ResponderUnavailable",
        "cannot assume arn:aws:iam::444444444444:role/acme-ir-responder-eu-west-1",
    ),
    "region without a responder": (
        lambda cloud: "i-0123456789abcdef0",
        MEMBER_ACCOUNT,
        "us-east-1",
        "ResponderUnavailable",
        "role/acme-ir-responder-us-east-1",
    ),
}


@pytest.mark.parametrize("target", sorted(REFUSED_TARGETS))
def test_a_target_that_cannot_be_responded_to_is_refused_before_any_case_opens(
    world: dict[str, Any], target: str
) -> None:
    cloud: LocalCloud = world["cloud"]
    make_instance, account, region, error, cause = REFUSED_TARGETS[target]
    instance_id = make_instance(cloud)
    store = CaseStore(cloud.session(SECURITY_ACCOUNT).client("dynamodb"), naming.case_table(PREFIX))
    cases_before = store.recent_cases()
    execution = cloud.run_response(
        {"InstanceId": instance_id, "Account": account, "Region": region, "Action": "Contain", "WaitSeconds": 0}
    )
    assert (execution["status"], execution["error"]) == ("FAILED", error), execution
    assert cause in execution["cause"]
    assert _states_entered(cloud, execution["executionArn"]) == [
        "ValidateInput",
        "Init",
        "CheckTarget",
        "TargetRejected",
    ]
    # No case was opened, so no evidence prefix, no containment: nothing anywhere changed.
    assert store.recent_cases() == cases_before
    assert store.open_case_for(account, region, instance_id) is None


def _instance_store_instance(cloud: LocalCloud) -> str:
    ec2 = cloud.session(MEMBER_ACCOUNT).client("ec2")
    instance_id = str(ec2.run_instances(ImageId=scenarios.AMI, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"])
    for mapping in ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0][
        "BlockDeviceMappings"
    ]:
        ec2.detach_volume(VolumeId=mapping["Ebs"]["VolumeId"], InstanceId=instance_id)
    # moto launches no instance-store instances: say so on the model, as EC2 would describe it.
    ec2_backends[MEMBER_ACCOUNT][REGION].get_instance(instance_id).root_device_type = "instance-store"
    return instance_id


def test_an_instance_store_instance_is_contained_and_its_case_says_why_no_disk_was_acquired(
    world: dict[str, Any],
) -> None:
    cloud: LocalCloud = world["cloud"]
    instance_id = _instance_store_instance(cloud)
    execution = cloud.run_response(
        {"InstanceId": instance_id, "Account": MEMBER_ACCOUNT, "Region": REGION, "Action": "Contain", "WaitSeconds": 0}
    )
    assert execution["status"] == "SUCCEEDED", execution
    states = _states_entered(cloud, execution["executionArn"])
    assert "NoDisks" in states and "CreateSnapshots" not in states and "ImageVolumes" not in states
    # No SSM agent answers on this instance, so no memory either: nothing is examined, and the state says why.
    assert "NothingToExamine" in states and "ExamineLaunchAnalysisInstance" not in states
    examination = json.loads(execution["output"])["Examination"]
    assert examination["Examined"] is False and "no EBS volumes" in examination["Disks"]
    assert examination["Memory"]["Acquired"] is False and examination["Memory"]["Reason"]
    case_id = json.loads(execution["output"])["Case"]["CaseId"]
    s3 = cloud.session(FORENSIC_ACCOUNT).client("s3")
    bucket = naming.evidence_bucket(PREFIX, FORENSIC_ACCOUNT, REGION)
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=f"{case_id}/manifest.json")["Body"].read())
    assert "instance-store volumes cannot be acquired by snapshot" in manifest["disks_not_acquired"]
    assert not [a for a in manifest["artefacts"] if "/disk/" in a["key"]]
    assert f"{case_id}/containment/after.json" in {a["key"] for a in manifest["artefacts"]}


def test_an_instance_store_instance_with_memory_is_examined_from_its_memory_and_the_report_says_no_disk(
    world: dict[str, Any],
) -> None:
    cloud: LocalCloud = world["cloud"]
    instance_id = _instance_store_instance(cloud)
    with tempfile.TemporaryDirectory() as work:
        image = Path(work) / "memory.lime"
        synthetic_memory.synthetic_memory_image(image, seed=16, size=simulate.SYNTHETIC_MEMORY_BYTES)
        cloud.give_instance_an_agent(instance_id, simulate.DISCOVERY_SAMPLE.read_text(), image.read_bytes())
    # Analyze: this bare instance sits in a VPC without SSM endpoints, where a contained instance's
    # capture path is refused (its own test); protected, it keeps its network and SSM reaches it.
    execution = cloud.run_response(
        {"InstanceId": instance_id, "Account": MEMBER_ACCOUNT, "Region": REGION, "Action": "Analyze", "WaitSeconds": 0}
    )
    assert execution["status"] == "SUCCEEDED", execution
    assert json.loads(execution["output"])["Acquisition"]["Memory"]["Acquired"] is True, execution["output"]
    states = _states_entered(cloud, execution["executionArn"])
    assert "NoDisks" in states and "ImageVolumes" not in states and "NothingToExamine" not in states
    assert "ExamineRunExamination" in states and "ExamineTerminateAnalysisInstance" in states
    case_id = json.loads(execution["output"])["Case"]["CaseId"]
    s3 = cloud.session(FORENSIC_ACCOUNT).client("s3")
    bucket = naming.evidence_bucket(PREFIX, FORENSIC_ACCOUNT, REGION)
    report = json.loads(s3.get_object(Bucket=bucket, Key=f"{case_id}/report/report.json")["Body"].read())
    assert report["disk"]["examined"] is False
    assert "instance-store volumes cannot be acquired by snapshot" in report["disk"]["summary"]
    assert report["memory"]["image"] == f"{instance_id}.lime"
    assert report["narrative"][-1]["summary"].startswith("memory was not examined: ")
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=f"{case_id}/manifest.json")["Body"].read())
    keys = {a["key"] for a in manifest["artefacts"]}
    assert f"{case_id}/memory/{instance_id}.lime" in keys and f"{case_id}/report/report.html" in keys
    assert not [k for k in keys if "/disk/" in k]
