"""Set-up shared by the memory tests: a VPC a capture path can be opened in, and what profile an instance holds."""

from __future__ import annotations

from typing import Any

import boto3

from handlers.common import naming
from handlers.memory import capture_path
from simulation.local_aws import PREFIX, REGION


def capture_network(member: boto3.Session, cidr_prefix: str) -> tuple[Any, str, str, str]:
    """(ec2, vpc, subnet, endpoint group): a VPC with the SSM interface endpoints a capture path needs,
    and the isolation and acquisition instance profiles."""
    ec2: Any = member.client("ec2")
    iam: Any = member.client("iam")
    vpc = ec2.create_vpc(CidrBlock=f"{cidr_prefix}.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock=f"{cidr_prefix}.1.0/24")["Subnet"]["SubnetId"]
    endpoint_group = ec2.create_security_group(GroupName="endpoints", Description="e", VpcId=vpc)["GroupId"]
    for service in capture_path.SSM_ENDPOINT_SERVICES:
        ec2.create_vpc_endpoint(
            VpcId=vpc,
            ServiceName=f"com.amazonaws.{REGION}.{service}",
            VpcEndpointType="Interface",
            SubnetIds=[subnet],
            SecurityGroupIds=[endpoint_group],
        )
    for name in (naming.isolation_profile(PREFIX, REGION), naming.acquisition_profile(PREFIX, REGION)):
        iam.create_role(RoleName=name, AssumeRolePolicyDocument="{}")
        iam.create_instance_profile(InstanceProfileName=name)
        iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=name)
    return ec2, vpc, subnet, endpoint_group


def profile_name(ec2: Any, instance: str) -> str:
    found = ec2.describe_iam_instance_profile_associations(Filters=[{"Name": "instance-id", "Values": [instance]}])[
        "IamInstanceProfileAssociations"
    ]
    current = next(a for a in found if a["State"] == "associated")
    return str(current["IamInstanceProfile"]["Arn"].rsplit("/", 1)[-1])
