"""Faults that fail the response, each on an instance of its own, in a deployed cloud of this module.

AccessDenied mid-flow, a snapshot that never completes, an analysis instance that cannot start:
each ends with the instance contained (Analyze mode too), the case closed `failed` with the error,
the stage and whether containment held, a `failed` notification, and every evidence object written
so far still there in its one locked version. (The faults the response absorbs run in the shared
world: tests/e2e/test_faults.py.) Own cloud, so this module runs beside the world on the other worker.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from botocore.exceptions import ClientError
from moto.ec2.models.elastic_block_store import Snapshot
from moto.sns.models import sns_backends

from handlers.case.store import CaseStore
from handlers.common import naming
from simulation import disk_content, faults, scenarios, simulate
from simulation.local_aws import FORENSIC_ACCOUNT, MEMBER_ACCOUNT, PREFIX, REGION, SECURITY_ACCOUNT
from simulation.sandbox import LocalCloud, cloud_context

pytestmark = pytest.mark.slow
BUCKET = naming.evidence_bucket(PREFIX, FORENSIC_ACCOUNT, REGION)


@pytest.fixture(scope="module")
def cloud() -> Iterator[LocalCloud]:
    simulate.quiet_moto()
    with cloud_context(LocalCloud(examination_notes=simulate.SIMULATION_NOTES)) as deployed:
        yield deployed


def _small_instance(cloud: LocalCloud, name: str, work: Path) -> str:
    """An instance whose one 1 GiB volume holds a little data (written through EBS direct)."""
    member = cloud.session(MEMBER_ACCOUNT)
    image = work / f"{name}.raw"
    image.write_bytes(hashlib.sha512(name.encode()).digest() * 4096)
    snapshot = disk_content.write_snapshot(member.client("ebs"), image, description=f"{name} disk")
    ec2 = member.client("ec2")
    return str(
        ec2.run_instances(
            ImageId=scenarios.AMI,
            MinCount=1,
            MaxCount=1,
            InstanceType="t3.small",
            BlockDeviceMappings=[
                {
                    "DeviceName": "/dev/xvda",
                    "Ebs": {"SnapshotId": snapshot, "VolumeSize": 1, "DeleteOnTermination": True},
                }
            ],
            TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": name}]}],
        )["Instances"][0]["InstanceId"]
    )


def _contained(cloud: LocalCloud, instance_id: str) -> bool:
    _, deny_all = naming.isolation_group_names(PREFIX)
    ec2 = cloud.session(MEMBER_ACCOUNT).client("ec2")
    groups = {g["GroupId"]: g["GroupName"] for g in ec2.describe_security_groups()["SecurityGroups"]}
    interfaces = ec2.describe_network_interfaces(Filters=[{"Name": "attachment.instance-id", "Values": [instance_id]}])[
        "NetworkInterfaces"
    ]
    return bool(interfaces) and all([groups[g["GroupId"]] for g in eni["Groups"]] == [deny_all] for eni in interfaces)


def _notifications(cloud: LocalCloud, case_id: str) -> list[str]:
    [topic] = [r.id for r in cloud.deployer.find("aws:sns/topic:Topic") if r.account == SECURITY_ACCOUNT]
    sent = sns_backends[SECURITY_ACCOUNT][REGION].topics[topic].sent_notifications
    return [
        attributes["stage"]["Value"]
        for _, _, _, attributes, _ in sent
        if attributes and attributes.get("case_id", {}).get("Value") == case_id
    ]


def _evidence_intact(cloud: LocalCloud, case_id: str) -> list[str]:
    """Versioning and Object Lock on; every object of the case in exactly one locked version."""
    s3 = cloud.session(FORENSIC_ACCOUNT).client("s3")
    assert s3.get_bucket_versioning(Bucket=BUCKET)["Status"] == "Enabled"
    assert s3.get_object_lock_configuration(Bucket=BUCKET)["ObjectLockConfiguration"]["ObjectLockEnabled"] == "Enabled"
    listed = s3.list_object_versions(Bucket=BUCKET, Prefix=f"{case_id}/")
    assert not listed.get("DeleteMarkers")
    versions = listed.get("Versions", [])
    keys = [v["Key"] for v in versions]
    # The manifest is the case's index, rewritten as the case moves on (finalize, failure, close), and
    # its signature with it; every version is kept and locked. Evidence objects are written once.
    index = {f"{case_id}/manifest.json", f"{case_id}/manifest.json.sig"}
    twice = [k for k, n in Counter(keys).items() if n > 1 and k not in index]
    assert not twice, f"evidence objects written more than once: {twice}"
    now = datetime.now(UTC)
    lock = s3.get_object_lock_configuration(Bucket=BUCKET)["ObjectLockConfiguration"]["Rule"]["DefaultRetention"]
    assert lock["Mode"] in ("GOVERNANCE", "COMPLIANCE")
    for version in versions:
        head = s3.head_object(Bucket=BUCKET, Key=version["Key"], VersionId=version["VersionId"])
        assert head["ObjectLockMode"] == lock["Mode"] and head["ObjectLockRetainUntilDate"] > now, version["Key"]
    # The lock holds: the forensic account's administrator cannot remove a version (GOVERNANCE would
    # need s3:BypassGovernanceRetention, which the bucket policy denies to everyone).
    with pytest.raises(ClientError) as refused:
        s3.delete_object(Bucket=BUCKET, Key=versions[0]["Key"], VersionId=versions[0]["VersionId"])
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    s3.head_object(Bucket=BUCKET, Key=versions[0]["Key"], VersionId=versions[0]["VersionId"])
    return keys


def _failed_case(cloud: LocalCloud, instance_id: str) -> dict[str, Any]:
    store = CaseStore(cloud.session(SECURITY_ACCOUNT).client("dynamodb"), naming.case_table(PREFIX))
    [case] = [c for c in store.recent_cases() if c["InstanceId"] == instance_id]
    assert store.open_case_for(MEMBER_ACCOUNT, REGION, instance_id) is None
    return case


def _respond(cloud: LocalCloud, instance_id: str, action: str = "Analyze") -> dict[str, Any]:
    return cloud.run_response(
        {"InstanceId": instance_id, "Account": MEMBER_ACCOUNT, "Region": REGION, "Action": action, "WaitSeconds": 0}
    )


def _assert_failure_handled(
    cloud: LocalCloud, instance_id: str, execution: dict[str, Any], stage: str, error: str, cause: str
) -> list[str]:
    assert (execution["status"], execution["error"]) == ("FAILED", error), execution
    assert cause in execution["cause"]
    assert _contained(cloud, instance_id)
    case = _failed_case(cloud, instance_id)
    assert case["Status"] == "failed" and stage in case["Detail"] and cause in case["Detail"], case
    assert _notifications(cloud, case["CaseId"])[-1] == "failed"
    keys = _evidence_intact(cloud, case["CaseId"])
    # Protection's record and the containment after the failure: both kept, neither overwritten.
    assert any(k.endswith("-failure.json") for k in keys) and f"{case['CaseId']}/containment/after.json" in keys
    assert f"{case['CaseId']}/containment/protect-after.json" in keys
    assert case["Detail"].endswith("; the instance is contained"), case
    return keys


def test_access_denied_mid_flow_fails_the_response_with_the_instance_contained(
    cloud: LocalCloud, tmp_path: Path
) -> None:
    instance_id = _small_instance(cloud, "denied", tmp_path)
    denied = faults.access_denied("ec2", "CopySnapshot", account=FORENSIC_ACCOUNT)
    with faults.injected(denied) as injector:
        execution = _respond(cloud, instance_id)
    assert [i.operation for i in injector.injected] == ["CopySnapshot"]
    _assert_failure_handled(cloud, instance_id, execution, "acquire", "ClientError", "UnauthorizedOperation")


@contextmanager
def _snapshots_never_complete() -> Iterator[None]:
    """A snapshot stuck at pending (AWS: a throttled or impaired snapshot service) - moto completes at once."""
    create = Snapshot.__init__

    def stuck(self: Snapshot, *args: Any, **kwargs: Any) -> None:
        create(self, *args, **kwargs)
        self.status = "pending"

    with mock.patch.object(Snapshot, "__init__", stuck):
        yield


def test_a_snapshot_that_never_completes_ends_the_bounded_wait_and_fails_contained(
    cloud: LocalCloud, tmp_path: Path
) -> None:
    instance_id = _small_instance(cloud, "stuck", tmp_path)
    with _snapshots_never_complete():
        execution = _respond(cloud, instance_id)
    keys = _assert_failure_handled(cloud, instance_id, execution, "acquire", "NotReady", "pending")
    assert not [k for k in keys if "/disk/" in k]


def test_an_analysis_instance_that_cannot_start_fails_the_case_after_the_evidence_is_safe(
    cloud: LocalCloud, tmp_path: Path
) -> None:
    instance_id = _small_instance(cloud, "nocapacity", tmp_path)
    no_capacity = faults.Fault(
        "ec2",
        "RunInstances",
        "InsufficientInstanceCapacity",
        "We currently do not have sufficient capacity in the Availability Zone you requested (injected)",
        status=500,
        times=None,
        account=FORENSIC_ACCOUNT,
    )
    with faults.injected(no_capacity), faults.backoff_recorded():
        execution = _respond(cloud, instance_id)
    keys = _assert_failure_handled(
        cloud, instance_id, execution, "examine", "ExaminationFailed", "InsufficientInstanceCapacity"
    )
    # The disk was acquired and verified before the examination was attempted: it stays evidence.
    ec2 = cloud.session(MEMBER_ACCOUNT).client("ec2")
    [volume] = [
        m["Ebs"]["VolumeId"]
        for m in ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0][
            "BlockDeviceMappings"
        ]
    ]
    assert any(k.endswith(f"/disk/{volume}.img") for k in keys)
    assert any(k.endswith(f"/disk/{volume}.img.sha256") for k in keys)
    analysis = (
        cloud.session(FORENSIC_ACCOUNT)
        .client("ec2")
        .describe_instances(Filters=[{"Name": "instance-state-name", "Values": ["pending", "running"]}])["Reservations"]
    )
    assert not analysis, "no analysis instance may be left running"
