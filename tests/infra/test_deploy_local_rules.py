"""The simulation's deployer: standalone security-group rules (aws:vpc/...Rule) become the group's rules in moto."""

from __future__ import annotations

import boto3
from moto import mock_aws

from simulation import deploy_local, local_aws

INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"


def test_ingress_and_egress_rules_land_on_the_group_with_their_ports_and_sources():
    local_aws.use_fake_credentials()
    with mock_aws():
        session = boto3.Session(region_name=local_aws.REGION)
        ec2 = session.client("ec2")
        vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
        group = ec2.create_security_group(GroupName="g", Description="d", VpcId=vpc)["GroupId"]
        peer = ec2.create_security_group(GroupName="peer", Description="d", VpcId=vpc)["GroupId"]
        args = (session, local_aws.SECURITY_ACCOUNT, local_aws.REGION)
        deploy_local._CREATORS[INGRESS](
            args[0],
            {"securityGroupId": group, "ipProtocol": "tcp", "fromPort": 443, "toPort": 443, "cidrIpv4": "10.9.1.0/24"},
            "https-in",
            *args[1:],
        )
        deploy_local._CREATORS[EGRESS](
            args[0],
            {
                "securityGroupId": group,
                "ipProtocol": "tcp",
                "fromPort": 5432,
                "toPort": 5432,
                "referencedSecurityGroupId": peer,
            },
            "db-out",
            *args[1:],
        )
        [described] = ec2.describe_security_groups(GroupIds=[group])["SecurityGroups"]
    [ingress] = described["IpPermissions"]
    assert (ingress["IpProtocol"], ingress["FromPort"], ingress["ToPort"]) == ("tcp", 443, 443)
    assert ingress["IpRanges"] == [{"CidrIp": "10.9.1.0/24"}]
    egress = [p for p in described["IpPermissionsEgress"] if p.get("FromPort") == 5432]
    assert [pair["GroupId"] for pair in egress[0]["UserIdGroupPairs"]] == [peer]
