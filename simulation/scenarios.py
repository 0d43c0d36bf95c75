"""Realistic member-account scenarios on moto, for containment, state-machine and simulation tests.

Plain typed functions over a boto3 session (no pytest), so the module can move to irf/ later.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import boto3

from handlers.common import naming

AMI = "ami-12c6146b"  # an image moto knows in every region
# How a volume is encrypted. The suspect's default is the mix most accounts have: the root volume under
# the AWS managed EBS key (its snapshots cannot be shared as they are), the data volume under a customer
# managed key of the member account (EBS needs the responder's permissions on it to re-encrypt a copy).
UNENCRYPTED, DEFAULT_EBS_KEY, CUSTOMER_KEY = "unencrypted", "aws/ebs", "customer-cmk"
MIXED_ENCRYPTION = (DEFAULT_EBS_KEY, CUSTOMER_KEY)
CUSTOMER_KEY_ALIAS = "alias/web-app-data"
APP_ROLE = "web-app"
APP_PROFILE = "web-app"


@dataclass(frozen=True)
class WebTier:
    vpc_id: str
    subnet_ids: tuple[str, str]
    web_group_id: str
    admin_group_id: str
    launch_template_id: str
    auto_scaling_group: str
    load_balancer_arn: str
    target_group_arn: str
    admin_target_group_arn: str
    admin_port: int
    instance_id: str
    primary_eni_id: str
    secondary_eni_id: str
    allocation_id: str
    public_ip: str
    instance_profile: str
    role_name: str
    root_volume_id: str
    data_volume_id: str


def _first_ipv6_subnet(vpc_cidr: str, index: int) -> str:
    # An Amazon-provided /56 holds 256 /64 subnets; take the index-th one.
    network, _ = vpc_cidr.split("/")
    groups = network.split(":")
    head = ":".join(groups[:3])
    fourth = int(groups[3] or "0", 16) + index
    return f"{head}:{fourth:x}::/64"


EC2_TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}


def _ec2_profile(session: boto3.Session, name: str, role: str, policy_name: str, statement: dict[str, str]) -> str:
    """An instance profile whose role EC2 may assume, with one inline policy of one statement."""
    iam = session.client("iam")
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(EC2_TRUST))
    policy = {"Version": "2012-10-17", "Statement": [statement]}
    iam.put_role_policy(RoleName=role, PolicyName=policy_name, PolicyDocument=json.dumps(policy))
    iam.create_instance_profile(InstanceProfileName=name)
    iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=role)
    return name


def create_app_profile(session: boto3.Session, name: str = APP_PROFILE, role: str = APP_ROLE) -> str:
    read_assets = {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::app-assets/*"}
    return _ec2_profile(session, name, role, "read-app-bucket", read_assets)


def create_customer_key(session: boto3.Session, alias: str = CUSTOMER_KEY_ALIAS) -> str:
    """A workload's own CMK, with the default key policy (the account's IAM policies decide)."""
    kms = session.client("kms")
    try:
        return str(kms.describe_key(KeyId=alias)["KeyMetadata"]["Arn"])
    except kms.exceptions.NotFoundException:
        pass
    arn = str(kms.create_key(Description="web-app data volumes")["KeyMetadata"]["Arn"])
    kms.create_alias(AliasName=alias, TargetKeyId=arn)
    return arn


def volume_encryption(session: boto3.Session, encryption: str) -> dict[str, Any]:
    """The Ebs settings of a volume encrypted as `encryption` says."""
    if encryption == UNENCRYPTED:
        return {}
    if encryption == DEFAULT_EBS_KEY:
        # What EC2 uses when Encrypted is set without a key: the account's aws/ebs key (named here, since
        # moto has no GetEbsDefaultKmsKeyId).
        key = session.client("kms").describe_key(KeyId="alias/aws/ebs")["KeyMetadata"]["Arn"]
        return {"Encrypted": True, "KmsKeyId": key}
    if encryption == CUSTOMER_KEY:
        return {"Encrypted": True, "KmsKeyId": create_customer_key(session)}
    raise ValueError(f"unknown volume encryption {encryption!r}")


def create_isolation_profile(session: boto3.Session, prefix: str) -> str:
    """What MemberResponder deploys: an instance profile whose role may do nothing at all."""
    region = session.region_name or "eu-west-1"
    name = naming.isolation_profile(prefix, region)
    _ec2_profile(session, name, name, "deny-all", {"Effect": "Deny", "Action": "*", "Resource": "*"})
    create_revocation_policy(session, prefix)
    return name


def create_revocation_policy(session: boto3.Session, prefix: str) -> str:
    """What MemberResponder deploys beside the isolation profile: the fixed session-revoking deny."""
    from core.containment.revocation import revocation_document

    region = session.region_name or "eu-west-1"
    answer = session.client("iam").create_policy(
        PolicyName=naming.revocation_policy(prefix, region), PolicyDocument=json.dumps(revocation_document())
    )
    return str(answer["Policy"]["Arn"])


def build_web_tier(
    session: boto3.Session,
    *,
    prefix: str = "irforensics",
    name: str = "web",
    isolation_profile: bool = True,
    peers: int = 1,
    root_snapshot_id: str = "",
    data_snapshot_id: str = "",
    data_volume: bool = True,
    encryption: tuple[str, str] = MIXED_ENCRYPTION,
) -> WebTier:
    """A web tier as teams run it: ALB -> target group -> Auto Scaling group from a launch template.

    The suspect is one of the group's instances, with a second interface (a management
    network), an Elastic IP, an instance profile, a root and a data volume, IPv6 addresses, and
    an extra registration on an admin target group on another port (outside the group's control).
    The suspect's root and data volumes are created from `root_snapshot_id` / `data_snapshot_id`
    when given (the simulation's disks with real file systems), else empty; without `data_volume`
    the suspect has its root volume only (data_volume_id is then "").
    `encryption` says how the root and the data volume are encrypted (UNENCRYPTED, DEFAULT_EBS_KEY,
    CUSTOMER_KEY); by default a mix of the AWS managed key and a customer managed key.
    """
    ec2 = session.client("ec2")
    elbv2 = session.client("elbv2")
    autoscaling = session.client("autoscaling")
    region = session.region_name or "eu-west-1"

    vpc_id = ec2.create_vpc(CidrBlock="10.20.0.0/16", AmazonProvidedIpv6CidrBlock=True)["Vpc"]["VpcId"]
    vpc = ec2.describe_vpcs(VpcIds=[vpc_id])["Vpcs"][0]
    vpc_v6 = vpc["Ipv6CidrBlockAssociationSet"][0]["Ipv6CidrBlock"]
    subnets: list[str] = []
    for index, zone in enumerate((f"{region}a", f"{region}b")):
        subnet = ec2.create_subnet(
            VpcId=vpc_id,
            CidrBlock=f"10.20.{index + 1}.0/24",
            AvailabilityZone=zone,
            Ipv6CidrBlock=_first_ipv6_subnet(vpc_v6, index),
        )["Subnet"]["SubnetId"]
        ec2.modify_subnet_attribute(SubnetId=subnet, AssignIpv6AddressOnCreation={"Value": True})
        subnets.append(subnet)

    web_group = ec2.create_security_group(GroupName=f"{name}-web", Description="web servers", VpcId=vpc_id)["GroupId"]
    ec2.authorize_security_group_ingress(
        GroupId=web_group,
        IpPermissions=[
            {
                "IpProtocol": "tcp",
                "FromPort": 443,
                "ToPort": 443,
                "IpRanges": [{"CidrIp": "0.0.0.0/0"}],
                "Ipv6Ranges": [{"CidrIpv6": "::/0"}],
            }
        ],
    )
    admin_group = ec2.create_security_group(GroupName=f"{name}-admin", Description="management network", VpcId=vpc_id)[
        "GroupId"
    ]
    ec2.authorize_security_group_ingress(
        GroupId=admin_group,
        IpPermissions=[{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "10.20.0.0/16"}]}],
    )

    # One application role per tier, so several tiers can share an account.
    # Private SSM endpoints, as a managed fleet has: a contained instance reaches SSM only through them.
    endpoint_group = ec2.create_security_group(
        GroupName=f"{name}-endpoints", Description="VPC endpoints", VpcId=vpc_id
    )["GroupId"]
    ec2.authorize_security_group_ingress(
        GroupId=endpoint_group,
        IpPermissions=[{"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "10.20.0.0/16"}]}],
    )
    for service in ("ssm", "ssmmessages", "ec2messages"):
        ec2.create_vpc_endpoint(
            VpcId=vpc_id,
            ServiceName=f"com.amazonaws.{region}.{service}",
            VpcEndpointType="Interface",
            SubnetIds=subnets,
            SecurityGroupIds=[endpoint_group],
            PrivateDnsEnabled=True,
        )

    # One application role per tier, so several tiers can share an account.
    profile = create_app_profile(session, name=f"{name}-app", role=f"{name}-app")
    if isolation_profile:
        create_isolation_profile(session, prefix)

    block_devices: Any = [
        {"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 8, "DeleteOnTermination": True}},
        {"DeviceName": "/dev/sdf", "Ebs": {"VolumeSize": 20, "DeleteOnTermination": True}},
    ]
    template_id = ec2.create_launch_template(
        LaunchTemplateName=f"{name}-template",
        LaunchTemplateData={
            "ImageId": AMI,
            "InstanceType": "t3.micro",
            "SecurityGroupIds": [web_group],
            "IamInstanceProfile": {"Name": profile},
            "BlockDeviceMappings": block_devices,
        },
    )["LaunchTemplate"]["LaunchTemplateId"]

    load_balancer = elbv2.create_load_balancer(
        Name=f"{name}-alb", Subnets=subnets, SecurityGroups=[web_group], Scheme="internet-facing", Type="application"
    )
    load_balancer_arn = load_balancer["LoadBalancers"][0]["LoadBalancerArn"]
    target_group = elbv2.create_target_group(
        Name=f"{name}-tg", Protocol="HTTP", Port=80, VpcId=vpc_id, TargetType="instance"
    )["TargetGroups"][0]["TargetGroupArn"]
    admin_port = 8443
    admin_target_group = elbv2.create_target_group(
        Name=f"{name}-admin-tg", Protocol="HTTPS", Port=443, VpcId=vpc_id, TargetType="instance"
    )
    admin_target_group_arn = admin_target_group["TargetGroups"][0]["TargetGroupArn"]
    elbv2.create_listener(
        LoadBalancerArn=load_balancer_arn,
        Protocol="HTTP",
        Port=80,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": target_group}],
    )

    group_name = f"{name}-asg"
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=group_name,
        MinSize=1,
        MaxSize=4,
        DesiredCapacity=peers,
        LaunchTemplate={"LaunchTemplateId": template_id, "Version": "$Latest"},
        VPCZoneIdentifier=",".join(subnets),
        TargetGroupARNs=[target_group],
    )

    suspect_devices: Any = [dict(device, Ebs=dict(device["Ebs"])) for device in block_devices]
    for device, snapshot_id, how in zip(suspect_devices, (root_snapshot_id, data_snapshot_id), encryption, strict=True):
        if snapshot_id:
            device["Ebs"]["SnapshotId"] = snapshot_id
        device["Ebs"].update(volume_encryption(session, how))
    if not data_volume:
        suspect_devices = suspect_devices[:1]
    suspect = ec2.run_instances(
        LaunchTemplate={"LaunchTemplateId": template_id, "Version": "$Latest"},
        ImageId=AMI,
        MinCount=1,
        MaxCount=1,
        SubnetId=subnets[0],
        SecurityGroupIds=[web_group],
        IamInstanceProfile={"Name": profile},
        BlockDeviceMappings=suspect_devices,
        Ipv6AddressCount=1,
        TagSpecifications=[
            {
                "ResourceType": "instance",
                "Tags": [{"Key": "Name", "Value": f"{name}-suspect"}, {"Key": "team", "Value": "payments"}],
            }
        ],
    )["Instances"][0]
    instance_id = suspect["InstanceId"]
    primary_eni = suspect["NetworkInterfaces"][0]["NetworkInterfaceId"]
    # Ephemeral web servers are often set to terminate on shutdown: the evidence would go with it.
    ec2.modify_instance_attribute(
        InstanceId=instance_id, Attribute="instanceInitiatedShutdownBehavior", Value="terminate"
    )
    secondary_eni = ec2.create_network_interface(
        SubnetId=subnets[0], Groups=[admin_group], Description="management interface", Ipv6AddressCount=1
    )["NetworkInterface"]["NetworkInterfaceId"]
    ec2.attach_network_interface(NetworkInterfaceId=secondary_eni, InstanceId=instance_id, DeviceIndex=1)
    autoscaling.attach_instances(AutoScalingGroupName=group_name, InstanceIds=[instance_id])
    elbv2.register_targets(TargetGroupArn=admin_target_group_arn, Targets=[{"Id": instance_id, "Port": admin_port}])

    address = ec2.allocate_address(Domain="vpc")
    ec2.associate_address(AllocationId=address["AllocationId"], NetworkInterfaceId=primary_eni)

    volumes = {
        m["DeviceName"]: m["Ebs"]["VolumeId"]
        for m in ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0][
            "BlockDeviceMappings"
        ]
    }
    return WebTier(
        vpc_id=vpc_id,
        subnet_ids=(subnets[0], subnets[1]),
        web_group_id=web_group,
        admin_group_id=admin_group,
        launch_template_id=template_id,
        auto_scaling_group=group_name,
        load_balancer_arn=load_balancer_arn,
        target_group_arn=target_group,
        admin_target_group_arn=admin_target_group_arn,
        admin_port=admin_port,
        instance_id=instance_id,
        primary_eni_id=primary_eni,
        secondary_eni_id=secondary_eni,
        allocation_id=address["AllocationId"],
        public_ip=address["PublicIp"],
        instance_profile=profile,
        role_name=f"{name}-app",
        root_volume_id=volumes["/dev/xvda"],
        data_volume_id=volumes.get("/dev/sdf", ""),
    )
