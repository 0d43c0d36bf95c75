"""simulation.faults: injected AWS errors travel botocore's whole stack, so retries and error handling are real."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError

from core.containment import contain_instance
from handlers.common import naming
from handlers.common.sessions import BOTO_CONFIG
from simulation import faults, local_aws
from simulation.local_aws import FORENSIC_ACCOUNT, MEMBER_ACCOUNT, REGION
from simulation.scenarios import AMI, build_web_tier


def test_a_throttled_call_is_retried_by_botocore_and_succeeds(aws: None) -> None:
    ec2 = boto3.client("ec2", region_name=REGION, config=BOTO_CONFIG)
    with (
        faults.injected(faults.throttling("ec2", "DescribeRegions", times=3)) as injector,
        faults.backoff_recorded() as delays,
    ):
        regions = ec2.describe_regions()["Regions"]
    assert regions
    assert [(i.operation, i.code) for i in injector.injected] == [("DescribeRegions", "RequestLimitExceeded")] * 3
    # Standard mode: one jittered, exponentially bounded delay before each of the three retries.
    assert len(delays) == 3 and all(0 <= d <= 20 for d in delays)


@pytest.mark.parametrize(
    ("service", "operation", "call"),
    [
        (
            "s3",
            "PutObject",
            lambda s: s.client("s3", config=BOTO_CONFIG).put_object(Bucket="irf-faults", Key="k", Body=b"x"),
        ),
        ("dynamodb", "DescribeTable", lambda s: s.client("dynamodb", config=BOTO_CONFIG).describe_table(TableName="t")),
        ("sts", "GetCallerIdentity", lambda s: s.client("sts", config=BOTO_CONFIG).get_caller_identity()),
    ],
)
def test_each_wire_protocol_carries_the_throttle_that_botocore_retries(
    aws: None, service: str, operation: str, call: object
) -> None:
    session = boto3.Session(region_name=REGION)
    session.client("s3").create_bucket(Bucket="irf-faults", CreateBucketConfiguration={"LocationConstraint": REGION})
    session.client("dynamodb").create_table(
        TableName="t",
        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    with faults.injected(faults.throttling(service, operation, times=1)) as injector, faults.backoff_recorded():
        call(session)  # type: ignore[operator]
    assert len(injector.injected) == 1


def test_access_denied_reaches_the_caller_as_the_service_error_and_only_in_the_named_account(aws: None) -> None:
    member = local_aws.account_session(MEMBER_ACCOUNT)
    forensic = local_aws.account_session(FORENSIC_ACCOUNT)
    with faults.injected(faults.access_denied("ec2", "DescribeVolumes", account=FORENSIC_ACCOUNT)) as injector:
        member.client("ec2").describe_volumes()
        with pytest.raises(ClientError) as denied:
            forensic.client("ec2").describe_volumes()
    assert denied.value.response["Error"]["Code"] == "UnauthorizedOperation"
    assert "injected" in denied.value.response["Error"]["Message"]
    assert [(i.account, i.code) for i in injector.injected] == [(FORENSIC_ACCOUNT, "UnauthorizedOperation")]


def test_a_fault_with_a_budget_stops_after_it_and_a_fault_for_every_call_does_not(aws: None) -> None:
    ec2 = boto3.client("ec2", region_name=REGION)
    with faults.injected(faults.access_denied("ec2", "DescribeImages", times=None)) as injector:
        for _ in range(3):
            with pytest.raises(ClientError):
                ec2.describe_images(ImageIds=[AMI])
    assert len(injector.injected) == 3


def test_containment_completes_under_throttling_of_its_network_and_profile_calls(
    ec2_like_aws: None, member: boto3.Session
) -> None:
    tier = build_web_tier(member, prefix="acme")
    throttles = [
        faults.throttling("ec2", operation, times=2)
        for operation in (
            "ModifyNetworkInterfaceAttribute",
            "DescribeInstances",
            "ReplaceIamInstanceProfileAssociation",
        )
    ]
    throttles.append(faults.throttling("autoscaling", "DetachInstances", times=1))
    with faults.injected(*throttles) as injector, faults.backoff_recorded() as delays:
        record = contain_instance(
            member, tier.instance_id, "333333333333-case-throttled", prefix="acme", sleep=lambda seconds: None
        )
    assert {(i.service, i.operation) for i in injector.injected} == {
        ("ec2", "ModifyNetworkInterfaceAttribute"),
        ("ec2", "DescribeInstances"),
        ("ec2", "ReplaceIamInstanceProfileAssociation"),
        ("autoscaling", "DetachInstances"),
    }
    assert len(injector.injected) == len(delays) == 7
    deny_all = {
        g["GroupId"]
        for g in member.client("ec2").describe_security_groups()["SecurityGroups"]
        if g["GroupName"] == naming.isolation_group_names("acme")[1]
    }
    for eni in member.client("ec2").describe_network_interfaces(
        Filters=[{"Name": "attachment.instance-id", "Values": [tier.instance_id]}]
    )["NetworkInterfaces"]:
        assert {g["GroupId"] for g in eni["Groups"]} == deny_all
    assert record.after.interfaces and not record.dry_run
