"""The `ec2_like_aws` fixture makes moto answer as EC2 and Auto Scaling do where containment depends on it."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError

from simulation.scenarios import AMI

pytestmark = pytest.mark.usefixtures("ec2_like_aws")


def two_interface_instance(session: boto3.Session) -> tuple[str, str, str, str, str]:
    ec2 = session.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.1.0/24")["Subnet"]["SubnetId"]
    web = ec2.create_security_group(GroupName="web", Description="web", VpcId=vpc)["GroupId"]
    admin = ec2.create_security_group(GroupName="admin", Description="admin", VpcId=vpc)["GroupId"]
    instance = ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1, SubnetId=subnet, SecurityGroupIds=[web])[
        "Instances"
    ][0]
    primary = instance["NetworkInterfaces"][0]["NetworkInterfaceId"]
    secondary = ec2.create_network_interface(SubnetId=subnet, Groups=[admin])["NetworkInterface"]["NetworkInterfaceId"]
    ec2.attach_network_interface(NetworkInterfaceId=secondary, InstanceId=instance["InstanceId"], DeviceIndex=1)
    return instance["InstanceId"], primary, secondary, web, admin


def groups_of(session: boto3.Session, eni: str) -> list[str]:
    found = session.client("ec2").describe_network_interfaces(NetworkInterfaceIds=[eni])["NetworkInterfaces"][0]
    return [g["GroupId"] for g in found["Groups"]]


def instance_groups(session: boto3.Session, instance_id: str) -> list[str]:
    instance = session.client("ec2").describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    return [g["GroupId"] for g in instance["SecurityGroups"]]


def test_an_interface_reports_only_its_own_groups(member: boto3.Session) -> None:
    _, primary, secondary, web, admin = two_interface_instance(member)

    assert groups_of(member, primary) == [web]
    assert groups_of(member, secondary) == [admin]


def test_an_instance_reports_the_groups_of_its_primary_interface(member: boto3.Session) -> None:
    instance_id, primary, secondary, _, admin = two_interface_instance(member)

    member.client("ec2").modify_network_interface_attribute(NetworkInterfaceId=primary, Groups=[admin])

    assert instance_groups(member, instance_id) == [admin]
    assert groups_of(member, secondary) == [admin]


def test_instance_groups_cannot_be_changed_with_several_interfaces_attached(member: boto3.Session) -> None:
    instance_id, primary, secondary, web, admin = two_interface_instance(member)

    with pytest.raises(ClientError, match="multiple interfaces") as error:
        member.client("ec2").modify_instance_attribute(InstanceId=instance_id, Groups=[admin])

    assert error.value.response["Error"]["Code"] == "InvalidInstanceID"
    assert (groups_of(member, primary), groups_of(member, secondary)) == ([web], [admin])


def test_instance_groups_change_the_primary_interface_when_it_is_the_only_one(member: boto3.Session) -> None:
    ec2 = member.client("ec2")
    instance = ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1)["Instances"][0]
    vpc = instance["VpcId"]
    other = ec2.create_security_group(GroupName="other", Description="other", VpcId=vpc)["GroupId"]

    ec2.modify_instance_attribute(InstanceId=instance["InstanceId"], Groups=[other])

    assert groups_of(member, instance["NetworkInterfaces"][0]["NetworkInterfaceId"]) == [other]
    assert instance_groups(member, instance["InstanceId"]) == [other]


def test_the_structured_shutdown_behaviour_form_fails_loudly_and_changes_nothing(member: boto3.Session) -> None:
    instance_id, primary, _, web, _ = two_interface_instance(member)
    ec2 = member.client("ec2")

    with pytest.raises(ClientError, match="Attribute=<name>, Value=<value>"):
        ec2.modify_instance_attribute(InstanceId=instance_id, InstanceInitiatedShutdownBehavior={"Value": "stop"})

    assert groups_of(member, primary) == [web]
    ec2.modify_instance_attribute(
        InstanceId=instance_id, Attribute="instanceInitiatedShutdownBehavior", Value="terminate"
    )
    assert ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="instanceInitiatedShutdownBehavior")[
        "InstanceInitiatedShutdownBehavior"
    ] == {"Value": "terminate"}


def test_detaching_from_an_auto_scaling_group_deregisters_from_its_target_groups(member: boto3.Session) -> None:
    ec2, elbv2, autoscaling = member.client("ec2"), member.client("elbv2"), member.client("autoscaling")
    instance_id, *_ = two_interface_instance(member)
    instance = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    target_group = elbv2.create_target_group(
        Name="tg", Protocol="HTTP", Port=80, VpcId=instance["VpcId"], TargetType="instance"
    )["TargetGroups"][0]["TargetGroupArn"]
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="asg",
        MinSize=0,
        MaxSize=2,
        DesiredCapacity=0,
        TargetGroupARNs=[target_group],
        VPCZoneIdentifier=instance["SubnetId"],
        LaunchConfigurationName=autoscaling.create_launch_configuration(
            LaunchConfigurationName="lc", ImageId=AMI, InstanceType="t3.micro"
        )
        and "lc",
    )
    autoscaling.attach_instances(AutoScalingGroupName="asg", InstanceIds=[instance_id])

    def targets() -> list[str]:
        health = elbv2.describe_target_health(TargetGroupArn=target_group)["TargetHealthDescriptions"]
        return [t["Target"]["Id"] for t in health]

    assert targets() == [instance_id]
    autoscaling.detach_instances(
        AutoScalingGroupName="asg", InstanceIds=[instance_id], ShouldDecrementDesiredCapacity=True
    )
    assert targets() == []
