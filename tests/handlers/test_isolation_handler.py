"""The isolation Lambdas run in process on moto: member account acted on, evidence in the forensic account."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from core.containment import ContainmentRecordNotFound
from handlers.common import naming
from handlers.common.errors import InvalidInput
from handlers.common.evidence import containment_key
from handlers.isolation import handler
from simulation.local_aws import FORENSIC_ACCOUNT, MEMBER_ACCOUNT, PREFIX, REGION, SECURITY_ACCOUNT
from simulation.scenarios import WebTier, build_web_tier

CASE = f"{MEMBER_ACCOUNT}-handler-case-1"


@pytest.fixture
def bucket(forensic: boto3.Session, monkeypatch: pytest.MonkeyPatch) -> str:
    for key, value in {
        "IRF_PREFIX": PREFIX,
        "IRF_SECURITY_ACCOUNT": SECURITY_ACCOUNT,
        "IRF_FORENSIC_ACCOUNT": FORENSIC_ACCOUNT,
        "IRF_FORENSIC_REGION": REGION,
    }.items():
        monkeypatch.setenv(key, value)
    name = naming.evidence_bucket(PREFIX, FORENSIC_ACCOUNT, REGION)
    forensic.client("s3").create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
    return name


@pytest.fixture
def tier(ec2_like_aws: None, member: boto3.Session) -> WebTier:
    return build_web_tier(member, prefix=PREFIX)


def event(tier: WebTier, **extra: Any) -> dict[str, Any]:
    return {"CaseId": CASE, "InstanceId": tier.instance_id, "Account": MEMBER_ACCOUNT, "Region": REGION, **extra}


def evidence(forensic: boto3.Session, bucket: str, key: str) -> Any:
    return json.loads(forensic.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())


def evidence_keys(forensic: boto3.Session, bucket: str) -> list[str]:
    listing = forensic.client("s3").list_objects_v2(Bucket=bucket, Prefix=f"{CASE}/")
    return sorted(o["Key"] for o in listing.get("Contents", []))


def groups_per_interface(document: dict[str, Any]) -> dict[str, list[str]]:
    return {i["eni_id"]: i["groups"] for i in document["state"]["interfaces"]}


def test_contain_writes_the_before_and_after_state_to_the_evidence_bucket(
    forensic: boto3.Session, bucket: str, tier: WebTier
) -> None:
    answer = handler.contain(event(tier), None)

    assert answer == {
        "CaseId": CASE,
        "InstanceId": tier.instance_id,
        "Contained": True,
        "Changes": answer["Changes"],
        "Before": containment_key(CASE, "before"),
        "After": containment_key(CASE, "after"),
    }
    assert answer["Changes"] > 10
    before = evidence(forensic, bucket, answer["Before"])
    after = evidence(forensic, bucket, answer["After"])
    assert groups_per_interface(before) == {
        tier.primary_eni_id: [tier.web_group_id],
        tier.secondary_eni_id: [tier.admin_group_id],
    }
    isolated = {groups[0] for groups in groups_per_interface(after).values()}
    assert len(isolated) == 1 and all(len(g) == 1 for g in groups_per_interface(after).values())
    assert after["state"]["auto_scaling"] is None and after["state"]["addresses"] == []
    assert [r["role"] for r in after["revocations"]] == [tier.role_name]
    custody = [k for k in evidence_keys(forensic, bucket) if "/custody/" in k]
    assert len(custody) == 1 and custody[0].endswith("-contained.json")
    assert len(evidence(forensic, bucket, custody[0])["detail"]["changes"]) == answer["Changes"]


def test_a_retried_contain_writes_the_same_evidence_and_changes_nothing(
    forensic: boto3.Session, bucket: str, tier: WebTier
) -> None:
    first = handler.contain(event(tier), None)
    before = evidence(forensic, bucket, first["Before"])

    second = handler.contain(event(tier), None)

    assert second["Changes"] == 0 and second["Before"] == first["Before"]
    assert evidence(forensic, bucket, first["Before"]) == before
    assert len([k for k in evidence_keys(forensic, bucket) if "/custody/" in k]) == 2


def test_a_dry_run_writes_no_state_only_the_planned_changes(
    forensic: boto3.Session, bucket: str, tier: WebTier
) -> None:
    answer = handler.contain(event(tier, DryRun=True), None)

    assert answer["Contained"] is False and answer["Before"] is None and answer["After"] is None
    keys = evidence_keys(forensic, bucket)
    assert len(keys) == 1 and keys[0].endswith("-containment-dry-run.json")
    assert len(evidence(forensic, bucket, keys[0])["detail"]["changes"]) == answer["Changes"]


def test_protect_keeps_the_instance_serving_and_writes_its_state(
    forensic: boto3.Session, bucket: str, tier: WebTier
) -> None:
    answer = handler.protect(event(tier, Action="Analyze"), None)

    after = evidence(forensic, bucket, answer["After"])["state"]
    assert after["termination_protection"] is True and after["shutdown_behavior"] == "stop"
    assert after["auto_scaling"]["group_name"] == tier.auto_scaling_group
    assert groups_per_interface({"state": after})[tier.primary_eni_id] == [tier.web_group_id]


def test_release_restores_the_groups_recorded_in_the_evidence(
    member: boto3.Session, forensic: boto3.Session, bucket: str, tier: WebTier
) -> None:
    handler.contain(event(tier), None)

    answer = handler.release(event(tier), None)

    assert answer["Released"] is True and len(answer["Changes"]) > 0
    enis = member.client("ec2").describe_network_interfaces(
        NetworkInterfaceIds=[tier.primary_eni_id, tier.secondary_eni_id]
    )["NetworkInterfaces"]
    assert {e["NetworkInterfaceId"]: [g["GroupId"] for g in e["Groups"]] for e in enis} == {
        tier.primary_eni_id: [tier.web_group_id],
        tier.secondary_eni_id: [tier.admin_group_id],
    }
    assert any(k.endswith("-released.json") for k in evidence_keys(forensic, bucket))


def test_an_event_without_a_case_id_is_rejected_before_anything_is_touched(
    member: boto3.Session, forensic: boto3.Session, bucket: str, tier: WebTier
) -> None:
    tags = member.client("ec2").describe_tags(Filters=[{"Name": "resource-id", "Values": [tier.instance_id]}])

    with pytest.raises(InvalidInput, match="CaseId"):
        handler.contain({"InstanceId": tier.instance_id, "Account": MEMBER_ACCOUNT, "Region": REGION}, None)

    assert (
        member.client("ec2").describe_tags(Filters=[{"Name": "resource-id", "Values": [tier.instance_id]}])["Tags"]
        == tags["Tags"]
    )
    assert forensic.client("s3").list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0


def test_release_refuses_another_region_than_the_case_contained_and_changes_nothing(
    member: boto3.Session, forensic: boto3.Session, bucket: str, tier: WebTier
) -> None:
    handler.contain(event(tier), None)
    contained = interface_groups_now(member, tier)

    with pytest.raises(InvalidInput, match=rf"Region: case {CASE} contained {REGION}, not us-east-1"):
        handler.release(event(tier, Region="us-east-1"), None)

    assert interface_groups_now(member, tier) == contained


def test_release_of_a_case_without_containment_record_is_refused(bucket: str, tier: WebTier) -> None:
    with pytest.raises(ContainmentRecordNotFound, match=f"case {CASE} has no containment record"):
        handler.release(event(tier), None)


def test_release_names_who_asked_in_the_custody_log(
    member: boto3.Session, forensic: boto3.Session, bucket: str, tier: WebTier
) -> None:
    handler.contain(event(tier), None)

    answer = handler.release(event(tier, RequestedBy="irf-cli arn:aws:iam::111122223333:user/responder"), None)

    assert answer["CustodyKey"].endswith("-released.json") and answer["CustodyError"] == ""
    custody = evidence(forensic, bucket, answer["CustodyKey"])
    assert custody["actor"] == f"{handler.TOOL} for irf-cli arn:aws:iam::111122223333:user/responder"
    assert [c["what"] for c in custody["detail"]["changes"]] == [c["what"] for c in answer["Changes"]]


def interface_groups_now(member: boto3.Session, tier: WebTier) -> dict[str, list[str]]:
    enis = member.client("ec2").describe_network_interfaces(
        NetworkInterfaceIds=[tier.primary_eni_id, tier.secondary_eni_id]
    )["NetworkInterfaces"]
    return {e["NetworkInterfaceId"]: [g["GroupId"] for g in e["Groups"]] for e in enis}
