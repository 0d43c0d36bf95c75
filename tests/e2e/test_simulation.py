"""The whole flow on moto, twice in one deployed cloud: one instance tagged Contain, one Analyze.

Deployed by the real Pulumi program, triggered by the tag, run by moto's Step Functions
interpreter with our handlers, imaged through the EBS direct APIs, examined with the real
Sleuth Kit / libfsxfs / YARA. Assertions read moto's state through describe calls and the
evidence as it landed in the case folders.
"""

from __future__ import annotations

import csv
import hashlib
import json
from typing import Any

import pytest

from handlers.common import naming
from handlers.common.tags import CASE_TAG, INCIDENT_TAG
from simulation import local_aws, simulate
from simulation.local_aws import MEMBER_ACCOUNT, PREFIX, REGION
from simulation.sandbox import LocalCloud
from tests.e2e.helpers import auto_scaling_group

pytestmark = pytest.mark.slow


def _ec2(world: dict[str, Any]) -> Any:
    return world["cloud"].session(MEMBER_ACCOUNT).client("ec2")


def _instance(world: dict[str, Any], action: str) -> dict[str, Any]:
    instance_id = world["incidents"][action].instance_id
    return dict(_ec2(world).describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0])


def _attribute(world: dict[str, Any], action: str, name: str) -> Any:
    answer = _ec2(world).describe_instance_attribute(InstanceId=world["incidents"][action].instance_id, Attribute=name)
    return next(v for k, v in answer.items() if k not in ("InstanceId", "ResponseMetadata"))["Value"]


@pytest.mark.parametrize("action", ["contain", "analyze"])
def test_the_response_succeeds_and_writes_the_evidence_layout(world: dict[str, Any], action: str) -> None:
    result: simulate.SimulationResult = world["results"][action]
    assert result.status == "SUCCEEDED"
    case = result.case_dir
    assert case.name == result.case_id and result.case_id.startswith(f"{MEMBER_ACCOUNT}-{result.instance_id}-")
    containment = "containment/" if action == "contain" else "containment/protect-"
    for path in (
        f"{containment}before.json",
        f"{containment}after.json",
        "manifest.json",
        "analysis/bodyfile",
        "analysis/timeline.csv",
        "analysis/yara.json",
        "report/report.html",
        "report/report.md",
        "report/report.json",
    ):
        assert (case / path).is_file(), path
    assert len(list((case / "disk").glob("*.img"))) == 2
    first_steps = "contained" if action == "contain" else "protected"
    assert [p.name.split("-", 1)[1] for p in sorted((case / "custody").glob("*.json"))][:2] == [
        "case-opened.json",
        f"{first_steps}.json",
    ]


@pytest.mark.parametrize("action", ["contain", "analyze"])
def test_every_image_digest_equals_the_sha256_of_the_image_and_the_manifest(world: dict[str, Any], action: str) -> None:
    result: simulate.SimulationResult = world["results"][action]
    manifest = {a["key"]: a for a in result.artefacts}
    for image in sorted((result.case_dir / "disk").glob("*.img")):
        digest = hashlib.sha256(image.read_bytes()).hexdigest()
        recorded, name = (image.parent / (image.name + ".sha256")).read_text().split()
        key = f"{result.case_id}/disk/{image.name}"
        assert (recorded, name) == (digest, image.name)
        assert manifest[key]["sha256"] == digest and manifest[key]["size"] == image.stat().st_size


def test_memory_is_captured_after_isolation_and_its_digest_matches(world: dict[str, Any]) -> None:
    result: simulate.SimulationResult = world["results"]["contain"]
    image = result.case_dir / "memory" / f"{result.instance_id}.lime"
    recorded, name = (image.parent / (image.name + ".sha256")).read_text().split()
    assert (recorded, name) == (hashlib.sha256(image.read_bytes()).hexdigest(), image.name)
    assert image.read_bytes()[:4] == b"EMiL"  # LiME header magic, little-endian 0x4C694D45
    events = [p.name.split("-", 1)[1] for p in sorted((result.case_dir / "custody").glob("*.json"))]
    assert (
        events.index("contained.json")
        < events.index("memory-capture-path-opened.json")
        < events.index("memory-acquired.json")
        < events.index("memory-capture-path-closed.json")
    )


def test_the_planted_files_are_in_the_timeline_and_the_reports_findings(world: dict[str, Any]) -> None:
    result: simulate.SimulationResult = world["results"]["contain"]
    planted = {entry.path for entry in world["incidents"]["contain"].tree.planted}
    with (result.case_dir / "analysis" / "timeline.csv").open(newline="") as handle:
        timeline = " ".join(",".join(row) for row in csv.reader(handle))
    report = json.loads((result.case_dir / "report" / "report.json").read_text())
    reported = json.dumps(report)
    for path in planted:
        assert path in timeline, path
        assert path in reported, path
    finding_paths = {f["path"] for f in result.findings}
    assert {
        "/var/www/html/uploads/.cache.php",
        "/etc/cron.d/sysupdate",
        "/root/.ssh/authorized_keys",
        "/tmp/.X11-unix/kworkerd",
    } <= finding_paths


def test_the_report_says_what_was_simulated(world: dict[str, Any]) -> None:
    html = (world["results"]["contain"].case_dir / "report" / "report.html").read_text()
    assert "Local simulation" in html and "moto" in html
    assert "SYNTHETIC LiME-format data" in html
    assert "<script" not in html.replace("&lt;script", "")  # the hostile file name is escaped
    assert "http://" not in html and "https://" not in html  # self-contained: no external assets


def test_contain_leaves_every_interface_on_the_no_rule_group(world: dict[str, Any]) -> None:
    instance = _instance(world, "contain")
    _, deny_all = naming.isolation_group_names(PREFIX)
    groups = {g["GroupId"]: g for g in _ec2(world).describe_security_groups()["SecurityGroups"]}
    assert len(instance["NetworkInterfaces"]) == 2
    for eni in _ec2(world).describe_network_interfaces(
        Filters=[{"Name": "attachment.instance-id", "Values": [instance["InstanceId"]]}]
    )["NetworkInterfaces"]:
        assert [groups[g["GroupId"]]["GroupName"] for g in eni["Groups"]] == [deny_all]
        group = groups[eni["Groups"][0]["GroupId"]]
        assert group["IpPermissions"] == [] and group["IpPermissionsEgress"] == []


def test_contain_swaps_the_profile_protects_the_instance_and_frees_its_address(world: dict[str, Any]) -> None:
    instance = _instance(world, "contain")
    assert instance["IamInstanceProfile"]["Arn"].endswith(f"/{naming.isolation_profile(PREFIX, REGION)}")
    assert _attribute(world, "contain", "disableApiTermination") is True
    assert _attribute(world, "contain", "instanceInitiatedShutdownBehavior") == "stop"
    assert all(not m["Ebs"]["DeleteOnTermination"] for m in instance["BlockDeviceMappings"])
    tier = world["incidents"]["contain"].tier
    address = _ec2(world).describe_addresses(AllocationIds=[tier.allocation_id])["Addresses"][0]
    assert "AssociationId" not in address
    tags = {t["Key"]: t["Value"] for t in instance["Tags"]}
    assert tags[INCIDENT_TAG] == "Contain" and tags[CASE_TAG] == world["results"]["contain"].case_id


def test_contain_takes_the_instance_out_of_its_group_and_target_groups_and_the_service_keeps_capacity(
    world: dict[str, Any],
) -> None:
    cloud, incident = world["cloud"], world["incidents"]["contain"]
    group = auto_scaling_group(cloud, incident)
    assert incident.instance_id not in {i["InstanceId"] for i in group["Instances"]}
    assert group["DesiredCapacity"] == world["capacity"]["contain"]
    elbv2 = cloud.session(MEMBER_ACCOUNT).client("elbv2")
    for target_group in (incident.tier.target_group_arn, incident.tier.admin_target_group_arn):
        targets = elbv2.describe_target_health(TargetGroupArn=target_group)["TargetHealthDescriptions"]
        assert incident.instance_id not in {t["Target"]["Id"] for t in targets}


def test_analyze_protects_the_instance_but_keeps_it_serving(world: dict[str, Any]) -> None:
    incident = world["incidents"]["analyze"]
    instance = _instance(world, "analyze")
    assert _attribute(world, "analyze", "disableApiTermination") is True
    assert _attribute(world, "analyze", "instanceInitiatedShutdownBehavior") == "stop"
    assert all(not m["Ebs"]["DeleteOnTermination"] for m in instance["BlockDeviceMappings"])
    primary = next(e for e in instance["NetworkInterfaces"] if e["NetworkInterfaceId"] == incident.tier.primary_eni_id)
    assert [g["GroupId"] for g in primary["Groups"]] == [incident.tier.web_group_id]
    assert instance["IamInstanceProfile"]["Arn"].endswith(f"/{incident.tier.instance_profile}")


def test_the_cases_are_closed_and_the_forensic_copies_are_kept(world: dict[str, Any]) -> None:
    cloud: LocalCloud = world["cloud"]
    table = cloud.session(local_aws.SECURITY_ACCOUNT).client("dynamodb")
    forensic = cloud.session(local_aws.FORENSIC_ACCOUNT).client("ec2")
    for result in world["results"].values():
        item = table.get_item(TableName=naming.case_table(PREFIX), Key={"Pk": {"S": f"CASE#{result.case_id}"}})
        assert item["Item"]["Status"]["S"] == "closed"
        copies = forensic.describe_snapshots(
            OwnerIds=["self"], Filters=[{"Name": f"tag:{CASE_TAG}", "Values": [result.case_id]}]
        )["Snapshots"]
        assert len(copies) == 2 and all(c["Encrypted"] for c in copies)
