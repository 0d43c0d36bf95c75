"""Deploy the Pulumi program into moto: the simulation's "pulumi up".

Rather than a second, hand-written copy of the stacks, the real program (__main__.py and the
components) runs under Pulumi mocks whose `new_resource` creates each registered resource in
moto, in the account the resource's provider targets, and returns the real ids and ARNs. The
simulation, the end-to-end tests and `pulumi up` therefore exercise the same definitions. A
resource type this deployer does not know is an explicit error; a type moto cannot model is
listed in NOT_SIMULATED with the reason, and reported.
"""

from __future__ import annotations

import io
import json
import threading
import uuid
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import boto3
from pulumi.runtime.mocks import MockResourceArgs

from components import member_template
from core import arns
from policy import documents
from simulation import local_aws, organization, pulumi_mocks

# Types moto does not implement; the deployer records them and returns plausible ids.
NOT_SIMULATED = {
    "aws:imagebuilder/component:Component": "moto has no EC2 Image Builder",
    "aws:imagebuilder/imageRecipe:ImageRecipe": "moto has no EC2 Image Builder",
    "aws:imagebuilder/infrastructureConfiguration:InfrastructureConfiguration": "moto has no EC2 Image Builder",
    "aws:imagebuilder/distributionConfiguration:DistributionConfiguration": "moto has no EC2 Image Builder",
    "aws:imagebuilder/imagePipeline:ImagePipeline": "moto has no EC2 Image Builder",
    "aws:securityhub/actionTarget:ActionTarget": "moto has no Security Hub custom actions",
    "aws:ec2/flowLog:FlowLog": "flow logs carry no behaviour in the simulation",
    "aws:s3/bucketLogging:BucketLogging": "moto requires log-delivery ACLs that Object Ownership forbids",
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": "lifecycle transitions never run in moto",
    "aws:lambda/permission:Permission": "the simulation dispatches events to Lambdas itself",
    "aws:cloudwatch/eventBusPolicy:EventBusPolicy": "the simulation forwards member events itself",
    "aws:codebuild/project:Project": "moto runs no CodeBuild builds",
}
COMPONENT_PREFIX = "irforensics:"


class UnknownResourceType(RuntimeError):
    pass


def _minimal_zip() -> bytes:
    # moto stores the package; the dispatcher runs our source tree, which is what the package holds.
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("handlers/__init__.py", "")
    return buffer.getvalue()


# Pulumi marks secret (and some computed) inputs with a signature wrapper; moto wants the value.
_plain = documents.unwrap_all


def _client(session: boto3.Session, service: str) -> Any:
    # Untyped on purpose: inputs arrive as plain dicts from the Pulumi engine.
    return session.client(service)  # type: ignore[call-overload]


_policy = documents.policy_text


@dataclass
class DeployedResource:
    type: str
    name: str
    account: str
    region: str
    id: str
    outputs: dict[str, Any]


@dataclass
class MotoDeployer:
    """`on_resource` hook for simulation.pulumi_mocks.run_program that creates resources in moto."""

    deployed: list[DeployedResource] = field(default_factory=list)
    skipped: list[tuple[str, str, str]] = field(default_factory=list)  # (type, name, reason)
    _sessions: dict[tuple[str, str], boto3.Session] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def session(self, account: str, region: str) -> boto3.Session:
        key = (account, region)
        if key not in self._sessions:
            self._sessions[key] = local_aws.account_session(account, region)
        return self._sessions[key]

    def __call__(self, args: MockResourceArgs, account: str, region: str) -> tuple[str, dict[str, Any]] | None:
        # Pulumi registers resources from several threads; moto's backends are not thread-safe.
        with self._lock:
            return self._create(args, account, region)

    def _create(self, args: MockResourceArgs, account: str, region: str) -> tuple[str, dict[str, Any]] | None:
        if args.typ.startswith(COMPONENT_PREFIX) or args.typ.startswith("pulumi:"):
            return None
        if args.typ in NOT_SIMULATED:
            self.skipped.append((args.typ, args.name, NOT_SIMULATED[args.typ]))
            return None
        create = _CREATORS.get(args.typ)
        if create is None:
            raise UnknownResourceType(
                f"the local deployer does not know {args.typ} (resource {args.name}); add it to "
                "simulation/deploy_local.py or to NOT_SIMULATED with the reason"
            )
        inputs = _plain(dict(args.inputs))
        resource_id, outputs = create(self.session(account, region), inputs, args.name, account, region)
        merged = {**inputs, **outputs}
        self.deployed.append(DeployedResource(args.typ, args.name, account, region, resource_id, merged))
        return resource_id, merged

    def call(self, token: str, args: dict[str, Any], account: str, region: str) -> dict[str, Any] | None:
        """Provider functions the program calls, answered from moto (None: the mocks' own answer)."""
        if token == pulumi_mocks.ORGANIZATION_CALL:
            with self._lock:
                found = self.session(account, region).client("organizations").describe_organization()
            org = found["Organization"]
            return {"id": org["Id"], "arn": org["Arn"], "masterAccountId": org["MasterAccountId"], "featureSet": "ALL"}
        return None

    def find(self, type_token: str, name_contains: str = "") -> list[DeployedResource]:
        return [r for r in self.deployed if r.type == type_token and name_contains in r.name]


Session = boto3.Session
Inputs = dict[str, Any]
Created = tuple[str, dict[str, Any]]
Creator = Callable[[Session, Inputs, str, str, str], Created]
_CREATORS: dict[str, Creator] = {}


def creates(type_token: str) -> Callable[[Creator], Creator]:
    def register(fn: Creator) -> Creator:
        _CREATORS[type_token] = fn
        return fn

    return register


# --- KMS -----------------------------------------------------------------------------------
@creates("aws:kms/key:Key")
def _kms_key(s: Session, i: Inputs, name: str, account: str, region: str) -> Created:
    kms = _client(s, "kms")
    params: dict[str, Any] = {"Description": i.get("description", name)}
    # Asymmetric keys (the manifest signing key): their spec and usage, else moto makes a symmetric key.
    if i.get("customerMasterKeySpec"):
        params["KeySpec"] = i["customerMasterKeySpec"]
    if i.get("keyUsage"):
        params["KeyUsage"] = i["keyUsage"]
    if i.get("policy"):
        params["Policy"] = _policy(i["policy"])
        params["BypassPolicyLockoutSafetyCheck"] = True
    meta = kms.create_key(**params)["KeyMetadata"]
    if i.get("enableKeyRotation"):
        kms.enable_key_rotation(KeyId=meta["KeyId"])
    return meta["KeyId"], {"arn": meta["Arn"], "keyId": meta["KeyId"]}


@creates("aws:kms/alias:Alias")
def _kms_alias(s: Session, i: Inputs, name: str, account: str, region: str) -> Created:
    _client(s, "kms").create_alias(AliasName=i["name"], TargetKeyId=i["targetKeyId"])
    return i["name"], {"arn": f"arn:aws:kms:{region}:{account}:{i['name']}"}


# --- S3 ------------------------------------------------------------------------------------
@creates("aws:s3/bucket:Bucket")
def _bucket(s: Session, i: Inputs, name: str, account: str, region: str) -> Created:
    bucket = i.get("bucket") or name
    params: dict[str, Any] = {"Bucket": bucket, "ObjectLockEnabledForBucket": bool(i.get("objectLockEnabled"))}
    if region != "us-east-1":
        params["CreateBucketConfiguration"] = {"LocationConstraint": region}
    _client(s, "s3").create_bucket(**params)
    return bucket, {
        "bucket": bucket,
        "arn": f"arn:aws:s3:::{bucket}",
        "region": region,
        "bucketDomainName": f"{bucket}.s3.amazonaws.com",
    }


@creates("aws:s3/bucketVersioning:BucketVersioning")
def _versioning(s: Session, i: Inputs, name: str, account: str, region: str) -> Created:
    status = i["versioningConfiguration"]["status"]
    _client(s, "s3").put_bucket_versioning(Bucket=i["bucket"], VersioningConfiguration={"Status": status})
    return i["bucket"], {}


@creates("aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration")
def _object_lock(s: Session, i: Inputs, name: str, account: str, region: str) -> Created:
    retention = i["rule"]["defaultRetention"]
    rule: dict[str, Any] = {"Mode": retention["mode"]}
    if retention.get("days"):
        rule["Days"] = int(retention["days"])
    else:
        rule["Years"] = int(retention["years"])
    _client(s, "s3").put_object_lock_configuration(
        Bucket=i["bucket"], ObjectLockConfiguration={"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": rule}}
    )
    return i["bucket"], {}


@creates("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")
def _encryption(s: Session, i: Inputs, name: str, account: str, region: str) -> Created:
    rules = []
    for rule in i["rules"]:
        default = rule["applyServerSideEncryptionByDefault"]
        entry: dict[str, Any] = {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": default["sseAlgorithm"]}}
        if default.get("kmsMasterKeyId"):
            entry["ApplyServerSideEncryptionByDefault"]["KMSMasterKeyID"] = default["kmsMasterKeyId"]
        if rule.get("bucketKeyEnabled") is not None:
            entry["BucketKeyEnabled"] = bool(rule["bucketKeyEnabled"])
        rules.append(entry)
    _client(s, "s3").put_bucket_encryption(Bucket=i["bucket"], ServerSideEncryptionConfiguration={"Rules": rules})
    return i["bucket"], {}


@creates("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
def _public_access_block(s: Session, i: Inputs, name: str, account: str, region: str) -> Created:
    _client(s, "s3").put_public_access_block(
        Bucket=i["bucket"],
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": bool(i.get("blockPublicAcls")),
            "IgnorePublicAcls": bool(i.get("ignorePublicAcls")),
            "BlockPublicPolicy": bool(i.get("blockPublicPolicy")),
            "RestrictPublicBuckets": bool(i.get("restrictPublicBuckets")),
        },
    )
    return i["bucket"], {}


@creates("aws:s3/bucketPolicy:BucketPolicy")
def _bucket_policy(s: Session, i: Inputs, name: str, account: str, region: str) -> Created:
    _client(s, "s3").put_bucket_policy(Bucket=i["bucket"], Policy=_policy(i["policy"]))
    return i["bucket"], {}


@creates("aws:s3/bucketOwnershipControls:BucketOwnershipControls")
def _ownership(s: Session, i: Inputs, name: str, account: str, region: str) -> Created:
    _client(s, "s3").put_bucket_ownership_controls(
        Bucket=i["bucket"], OwnershipControls={"Rules": [{"ObjectOwnership": i["rule"]["objectOwnership"]}]}
    )
    return i["bucket"], {}


@creates("aws:s3/bucketObjectv2:BucketObjectv2")
def _bucket_object(s: Session, i: Inputs, name: str, account: str, region: str) -> Created:
    # Archives (the toolset source bundle) are not built in the simulation: the object records what it is.
    body = i.get("content")
    if body is None:
        body = f"irforensics simulation: {name} (asset not materialised)"
    _client(s, "s3").put_object(Bucket=i["bucket"], Key=i["key"], Body=str(body).encode())
    return f"{i['bucket']}/{i['key']}", {"etag": "", "versionId": ""}


# --- IAM -----------------------------------------------------------------------------------
@creates("aws:iam/role:Role")
def _role(s: Session, i: Inputs, name: str, account: str, region: str) -> Created:
    role_name = i.get("name") or name
    role = _client(s, "iam").create_role(
        RoleName=role_name, Path=i.get("path", "/"), AssumeRolePolicyDocument=_policy(i["assumeRolePolicy"])
    )["Role"]
    return role_name, {"arn": role["Arn"], "name": role_name, "uniqueId": role["RoleId"]}


@creates("aws:iam/rolePolicy:RolePolicy")
def _role_policy(s: Session, i: Inputs, name: str, account: str, region: str) -> Created:
    policy_name = i.get("name") or name
    _client(s, "iam").put_role_policy(RoleName=i["role"], PolicyName=policy_name, PolicyDocument=_policy(i["policy"]))
    return f"{i['role']}:{policy_name}", {"name": policy_name}


@creates("aws:iam/policy:Policy")
def _managed_policy(s: Session, i: Inputs, name: str, account: str, region: str) -> Created:
    policy = _client(s, "iam").create_policy(PolicyName=i.get("name") or name, PolicyDocument=_policy(i["policy"]))
    arn = policy["Policy"]["Arn"]
    return arn, {"arn": arn}


def _ensure_aws_managed_policy(account: str, arn: str) -> None:
    """moto loads the ~1,300 AWS managed policies into every account only when asked, which costs
    seconds per account; load just the policies the program attaches, from moto's own copy."""
    from moto.iam.aws_managed_policies import aws_managed_policies_data
    from moto.iam.models import AWSManagedPolicy, iam_backends

    name = arn.rsplit("/", 1)[-1]
    documents = json.loads(aws_managed_policies_data)
    if name not in documents:
        raise UnknownResourceType(f"{arn} is not an AWS managed policy moto knows")
    for backend in iam_backends[account].values():
        if arn not in backend.managed_policies:
            backend.managed_policies[arn] = AWSManagedPolicy.from_data(
                name, account, backend.region_name, documents[name]
            )


@creates("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
def _attachment(s: Session, i: Inputs, name: str, account: str, region: str) -> Created:
    if i["policyArn"].startswith("arn:aws:iam::aws:policy/"):
        _ensure_aws_managed_policy(account, i["policyArn"])
    _client(s, "iam").attach_role_policy(RoleName=i["role"], PolicyArn=i["policyArn"])
    return f"{i['role']}-{name}", {}


@creates("aws:iam/instanceProfile:InstanceProfile")
def _profile(s: Session, i: Inputs, name: str, account: str, region: str) -> Created:
    iam = _client(s, "iam")
    profile_name = i.get("name") or name
    profile = iam.create_instance_profile(InstanceProfileName=profile_name, Path=i.get("path", "/"))
    if i.get("role"):
        iam.add_role_to_instance_profile(InstanceProfileName=profile_name, RoleName=i["role"])
    return profile_name, {"arn": profile["InstanceProfile"]["Arn"], "name": profile_name}


# --- data, messaging, logs -------------------------------------------------------------------
@creates("aws:dynamodb/table:Table")
def _table(s: Session, i: Inputs, name: str, account: str, region: str) -> Created:
    table_name = i.get("name") or name
    attributes = [{"AttributeName": a["name"], "AttributeType": a["type"]} for a in i["attributes"]]
    keys = [{"AttributeName": i["hashKey"], "KeyType": "HASH"}]
    if i.get("rangeKey"):
        keys.append({"AttributeName": i["rangeKey"], "KeyType": "RANGE"})
    table = _client(s, "dynamodb").create_table(
        TableName=table_name,
        AttributeDefinitions=attributes,
        KeySchema=keys,
        BillingMode=i.get("billingMode", "PAY_PER_REQUEST"),
    )
    return table_name, {"arn": table["TableDescription"]["TableArn"], "name": table_name}


@creates("aws:sns/topic:Topic")
def _topic(s: Session, i: Inputs, name: str, account: str, region: str) -> Created:
    attributes = {"KmsMasterKeyId": i["kmsMasterKeyId"]} if i.get("kmsMasterKeyId") else {}
    arn = _client(s, "sns").create_topic(Name=i.get("name") or name, Attributes=attributes)["TopicArn"]
    return arn, {"arn": arn}


@creates("aws:sns/topicSubscription:TopicSubscription")
def _subscription(s: Session, i: Inputs, name: str, account: str, region: str) -> Created:
    arn = _client(s, "sns").subscribe(TopicArn=i["topic"], Protocol=i["protocol"], Endpoint=i["endpoint"])[
        "SubscriptionArn"
    ]
    return arn, {"arn": arn}


@creates("aws:cloudwatch/logGroup:LogGroup")
def _log_group(s: Session, i: Inputs, name: str, account: str, region: str) -> Created:
    logs = _client(s, "logs")
    group = i.get("name") or name
    logs.create_log_group(logGroupName=group)
    if i.get("retentionInDays"):
        logs.put_retention_policy(logGroupName=group, retentionInDays=int(i["retentionInDays"]))
    return group, {"arn": f"arn:aws:logs:{region}:{account}:log-group:{group}", "name": group}


@creates("aws:ssm/parameter:Parameter")
def _parameter(s: Session, i: Inputs, name: str, account: str, region: str) -> Created:
    _client(s, "ssm").put_parameter(Name=i["name"], Type=i.get("type", "String"), Value=str(i["value"]), Overwrite=True)
    return i["name"], {"arn": f"arn:aws:ssm:{region}:{account}:parameter{i['name']}"}


@creates("aws:ssm/document:Document")
def _ssm_document(s: Session, i: Inputs, name: str, account: str, region: str) -> Created:
    document = i.get("name") or name
    _client(s, "ssm").create_document(
        Name=document,
        Content=i["content"],
        DocumentType=i.get("documentType", "Command"),
        DocumentFormat=i.get("documentFormat", "JSON"),
        Tags=[{"Key": k, "Value": v} for k, v in (i.get("tags") or {}).items()],
    )
    return document, {"arn": f"arn:aws:ssm:{region}:{account}:document/{document}", "name": document}


@creates("aws:cloudtrail/trail:Trail")
def _trail(s: Session, i: Inputs, name: str, account: str, region: str) -> Created:
    trail = _client(s, "cloudtrail").create_trail(
        Name=i.get("name") or name,
        S3BucketName=i["s3BucketName"],
        IsMultiRegionTrail=bool(i.get("isMultiRegionTrail")),
        EnableLogFileValidation=bool(i.get("enableLogFileValidation")),
    )
    return trail["TrailARN"], {"arn": trail["TrailARN"]}


# --- compute and orchestration ---------------------------------------------------------------
@creates("aws:lambda/function:Function")
def _function(s: Session, i: Inputs, name: str, account: str, region: str) -> Created:
    function_name = i.get("name") or name
    config = _client(s, "lambda").create_function(
        FunctionName=function_name,
        Runtime=i["runtime"],
        Role=i["role"],
        Handler=i["handler"],
        Code={"ZipFile": _minimal_zip()},
        Timeout=int(i.get("timeout", 3)),
        MemorySize=int(i.get("memorySize", 128)),
        Architectures=i.get("architectures", ["arm64"]),
        Environment={"Variables": dict((i.get("environment") or {}).get("variables", {}))},
    )
    return function_name, {"arn": config["FunctionArn"], "invokeArn": config["FunctionArn"], "name": function_name}


@creates("aws:sfn/stateMachine:StateMachine")
def _state_machine(s: Session, i: Inputs, name: str, account: str, region: str) -> Created:
    arn = _client(s, "stepfunctions").create_state_machine(
        name=i.get("name") or name, definition=i["definition"], roleArn=i["roleArn"], type=i.get("type", "STANDARD")
    )["stateMachineArn"]
    return arn, {"arn": arn}


@creates("aws:cloudwatch/eventRule:EventRule")
def _event_rule(s: Session, i: Inputs, name: str, account: str, region: str) -> Created:
    params: dict[str, Any] = {"Name": i.get("name") or name, "State": "ENABLED"}
    if i.get("eventPattern"):
        params["EventPattern"] = _policy(i["eventPattern"])
    if i.get("eventBusName"):
        params["EventBusName"] = i["eventBusName"]
    arn = _client(s, "events").put_rule(**params)["RuleArn"]
    return params["Name"], {"arn": arn, "name": params["Name"]}


@creates("aws:cloudwatch/eventTarget:EventTarget")
def _event_target(s: Session, i: Inputs, name: str, account: str, region: str) -> Created:
    target: dict[str, Any] = {"Id": i.get("targetId") or name[:64], "Arn": i["arn"]}
    if i.get("roleArn"):
        target["RoleArn"] = i["roleArn"]
    params: dict[str, Any] = {"Rule": i["rule"], "Targets": [target]}
    if i.get("eventBusName"):
        params["EventBusName"] = i["eventBusName"]
    _client(s, "events").put_targets(**params)
    return f"{i['rule']}-{target['Id']}", {"targetId": target["Id"]}


# --- networking ------------------------------------------------------------------------------
def _tags(i: Mapping[str, Any], kind: str) -> list[dict[str, Any]]:
    tags = i.get("tags") or {}
    return [{"ResourceType": kind, "Tags": [{"Key": k, "Value": str(v)} for k, v in tags.items()]}] if tags else []


@creates("aws:ec2/vpc:Vpc")
def _vpc(s: Session, i: Inputs, name: str, account: str, region: str) -> Created:
    ec2 = _client(s, "ec2")
    vpc = ec2.create_vpc(CidrBlock=i["cidrBlock"], TagSpecifications=_tags(i, "vpc"))["Vpc"]
    for attribute in ("enableDnsHostnames", "enableDnsSupport"):
        if i.get(attribute) is not None:
            ec2.modify_vpc_attribute(
                VpcId=vpc["VpcId"], **{attribute[0].upper() + attribute[1:]: {"Value": bool(i[attribute])}}
            )
    return vpc["VpcId"], {"arn": f"arn:aws:ec2:{region}:{account}:vpc/{vpc['VpcId']}", "cidrBlock": i["cidrBlock"]}


@creates("aws:ec2/subnet:Subnet")
def _subnet(s: Session, i: Inputs, name: str, account: str, region: str) -> Created:
    params: dict[str, Any] = {"VpcId": i["vpcId"], "CidrBlock": i["cidrBlock"], "TagSpecifications": _tags(i, "subnet")}
    if i.get("availabilityZone"):
        params["AvailabilityZone"] = i["availabilityZone"]
    subnet = _client(s, "ec2").create_subnet(**params)["Subnet"]
    return subnet["SubnetId"], {"arn": subnet.get("SubnetArn", ""), "availabilityZone": subnet["AvailabilityZone"]}


@creates("aws:ec2/routeTable:RouteTable")
def _route_table(s: Session, i: Inputs, name: str, account: str, region: str) -> Created:
    ec2 = _client(s, "ec2")
    table = ec2.create_route_table(VpcId=i["vpcId"], TagSpecifications=_tags(i, "route-table"))["RouteTable"]
    for route in i.get("routes") or []:
        _add_route(ec2, table["RouteTableId"], route)
    return table["RouteTableId"], {}


def _add_route(ec2: Any, table_id: str, route: Mapping[str, Any]) -> None:
    params: dict[str, Any] = {"RouteTableId": table_id}
    for source, target in (
        ("cidrBlock", "DestinationCidrBlock"),
        ("destinationCidrBlock", "DestinationCidrBlock"),
        ("ipv6CidrBlock", "DestinationIpv6CidrBlock"),
        ("destinationIpv6CidrBlock", "DestinationIpv6CidrBlock"),
        ("gatewayId", "GatewayId"),
        ("natGatewayId", "NatGatewayId"),
    ):
        if route.get(source):
            params[target] = route[source]
    ec2.create_route(**params)


@creates("aws:ec2/route:Route")
def _route(s: Session, i: Inputs, name: str, account: str, region: str) -> Created:
    _add_route(_client(s, "ec2"), i["routeTableId"], i)
    return f"{i['routeTableId']}-{name}", {}


@creates("aws:ec2/routeTableAssociation:RouteTableAssociation")
def _route_assoc(s: Session, i: Inputs, name: str, account: str, region: str) -> Created:
    assoc = _client(s, "ec2").associate_route_table(RouteTableId=i["routeTableId"], SubnetId=i["subnetId"])
    return assoc["AssociationId"], {}


@creates("aws:ec2/internetGateway:InternetGateway")
def _igw(s: Session, i: Inputs, name: str, account: str, region: str) -> Created:
    ec2 = _client(s, "ec2")
    igw = ec2.create_internet_gateway(TagSpecifications=_tags(i, "internet-gateway"))["InternetGateway"]
    if i.get("vpcId"):
        ec2.attach_internet_gateway(InternetGatewayId=igw["InternetGatewayId"], VpcId=i["vpcId"])
    return igw["InternetGatewayId"], {}


def _permission(rule: Mapping[str, Any]) -> dict[str, Any]:
    permission: dict[str, Any] = {"IpProtocol": str(rule.get("protocol", "-1"))}
    if permission["IpProtocol"] not in ("-1", "all"):
        permission["FromPort"] = int(rule.get("fromPort", 0))
        permission["ToPort"] = int(rule.get("toPort", 0))
    else:
        permission["IpProtocol"] = "-1"
    if rule.get("cidrBlocks"):
        permission["IpRanges"] = [{"CidrIp": c} for c in rule["cidrBlocks"]]
    if rule.get("ipv6CidrBlocks"):
        permission["Ipv6Ranges"] = [{"CidrIpv6": c} for c in rule["ipv6CidrBlocks"]]
    if rule.get("prefixListIds"):
        permission["PrefixListIds"] = [{"PrefixListId": p} for p in rule["prefixListIds"]]
    if rule.get("securityGroups"):
        permission["UserIdGroupPairs"] = [{"GroupId": g} for g in rule["securityGroups"]]
    return permission


@creates("aws:ec2/securityGroup:SecurityGroup")
def _security_group(s: Session, i: Inputs, name: str, account: str, region: str) -> Created:
    ec2 = _client(s, "ec2")
    group_id = ec2.create_security_group(
        GroupName=i.get("name") or name,
        Description=i.get("description", "Managed by Pulumi"),
        VpcId=i["vpcId"],
        TagSpecifications=_tags(i, "security-group"),
    )["GroupId"]
    # Like the Pulumi/Terraform provider: the default allow-all egress rule is removed on create.
    ec2.revoke_security_group_egress(
        GroupId=group_id, IpPermissions=[{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]
    )
    if i.get("ingress"):
        ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=[_permission(r) for r in i["ingress"]])
    if i.get("egress"):
        ec2.authorize_security_group_egress(GroupId=group_id, IpPermissions=[_permission(r) for r in i["egress"]])
    return group_id, {"arn": f"arn:aws:ec2:{region}:{account}:security-group/{group_id}"}


@creates("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup")
def _default_security_group(s: Session, i: Inputs, name: str, account: str, region: str) -> Created:
    # Adopting the VPC's default group means owning its rules: exactly the listed ones, else none.
    ec2 = _client(s, "ec2")
    group = ec2.describe_security_groups(
        Filters=[{"Name": "vpc-id", "Values": [i["vpcId"]]}, {"Name": "group-name", "Values": ["default"]}]
    )["SecurityGroups"][0]
    if group.get("IpPermissions"):
        ec2.revoke_security_group_ingress(GroupId=group["GroupId"], IpPermissions=group["IpPermissions"])
    if group.get("IpPermissionsEgress"):
        ec2.revoke_security_group_egress(GroupId=group["GroupId"], IpPermissions=group["IpPermissionsEgress"])
    if i.get("ingress"):
        ec2.authorize_security_group_ingress(
            GroupId=group["GroupId"], IpPermissions=[_permission(r) for r in i["ingress"]]
        )
    if i.get("egress"):
        ec2.authorize_security_group_egress(
            GroupId=group["GroupId"], IpPermissions=[_permission(r) for r in i["egress"]]
        )
    return group["GroupId"], {"arn": f"arn:aws:ec2:{region}:{account}:security-group/{group['GroupId']}"}


def _vpc_rule(i: Inputs) -> dict[str, Any]:
    """A SecurityGroupIngressRule/EgressRule's inputs as an inline rule (_permission reads those)."""
    return {
        "protocol": i.get("ipProtocol", "-1"),
        "fromPort": i.get("fromPort"),
        "toPort": i.get("toPort"),
        "cidrBlocks": [i["cidrIpv4"]] if i.get("cidrIpv4") else [],
        "ipv6CidrBlocks": [i["cidrIpv6"]] if i.get("cidrIpv6") else [],
        "prefixListIds": [i["prefixListId"]] if i.get("prefixListId") else [],
        "securityGroups": [i["referencedSecurityGroupId"]] if i.get("referencedSecurityGroupId") else [],
    }


@creates("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
def _ingress_rule(s: Session, i: Inputs, name: str, account: str, region: str) -> Created:
    permission = _permission(_vpc_rule(i))
    _client(s, "ec2").authorize_security_group_ingress(GroupId=i["securityGroupId"], IpPermissions=[permission])
    return f"sgr-{name}", {}


@creates("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule")
def _egress_rule(s: Session, i: Inputs, name: str, account: str, region: str) -> Created:
    permission = _permission(_vpc_rule(i))
    _client(s, "ec2").authorize_security_group_egress(GroupId=i["securityGroupId"], IpPermissions=[permission])
    return f"sgr-{name}", {}


@creates("aws:ec2/vpcEndpoint:VpcEndpoint")
def _endpoint(s: Session, i: Inputs, name: str, account: str, region: str) -> Created:
    params: dict[str, Any] = {
        "VpcId": i["vpcId"],
        "ServiceName": i["serviceName"],
        "VpcEndpointType": i.get("vpcEndpointType", "Gateway"),
    }
    for source, target in (
        ("subnetIds", "SubnetIds"),
        ("securityGroupIds", "SecurityGroupIds"),
        ("routeTableIds", "RouteTableIds"),
    ):
        if i.get(source):
            params[target] = list(i[source])
    if i.get("privateDnsEnabled") is not None:
        params["PrivateDnsEnabled"] = bool(i["privateDnsEnabled"])
    ec2 = _client(s, "ec2")
    endpoint = ec2.create_vpc_endpoint(**params)["VpcEndpoint"]
    outputs: dict[str, Any] = {"arn": f"arn:aws:ec2:{region}:{account}:vpc-endpoint/{endpoint['VpcEndpointId']}"}
    lists = ec2.describe_prefix_lists(Filters=[{"Name": "prefix-list-name", "Values": [i["serviceName"]]}])
    if lists.get("PrefixLists"):
        outputs["prefixListId"] = lists["PrefixLists"][0]["PrefixListId"]
    return endpoint["VpcEndpointId"], outputs


# --- CloudFormation StackSets (organisation mode) ---------------------------------------------
@creates("aws:cloudformation/stackSet:StackSet")
def _stack_set(s: Session, i: Inputs, name: str, account: str, region: str) -> Created:
    # moto stores the template and the permission model; it ignores AutoDeployment, CallAs and
    # ManagedExecution (its own docstring says so), which the infrastructure tests check on the inputs.
    stack_set_id = _client(s, "cloudformation").create_stack_set(
        StackSetName=i["name"],
        TemplateBody=i["templateBody"],
        Description=i.get("description", ""),
        PermissionModel=i["permissionModel"],
        Capabilities=list(i.get("capabilities") or []),
        Tags=[{"Key": k, "Value": v} for k, v in (i.get("tags") or {}).items()],
    )["StackSetId"]
    arn = f"arn:{arns.partition(region)}:cloudformation:{region}:{account}:stackset/{stack_set_id}"
    return i["name"], {"arn": arn, "stackSetId": stack_set_id, "name": i["name"]}


@creates("aws:cloudformation/stackSetInstance:StackSetInstance")
def _stack_set_instance(s: Session, i: Inputs, name: str, account: str, region: str) -> Created:
    """What CloudFormation does for a service-managed stack set instance: one stack of the template in
    every account of the target OUs, in the instance's region.

    The template is interpreted here, each resource created by this deployer's own creator for its
    type, rather than by moto's CloudFormation: moto's stacks skip resource types they do not know
    (AWS::IAM::RolePolicy) and properties they do not read (a role's ManagedPolicyArns) without a word,
    so the member accounts would get less than the template says. A type not listed in
    _TEMPLATE_CREATORS is an error, as an unknown Pulumi type is.
    """
    stack_set = _client(s, "cloudformation").describe_stack_set(StackSetName=i["stackSetName"])["StackSet"]
    template = json.loads(stack_set["TemplateBody"])
    target_region = i.get("stackSetInstanceRegion") or region
    units = list((i.get("deploymentTargets") or {}).get("organizationalUnitIds") or [])
    summaries: list[dict[str, Any]] = []
    created: list[dict[str, Any]] = []
    for member, unit in organization.accounts_in(units, target_region):
        stack_name = f"StackSet-{i['stackSetName']}-{uuid.uuid4()}"
        stack_id = arns.arn(
            "cloudformation", f"stack/{stack_name}/{uuid.uuid4()}", region=target_region, account=member
        )
        stack = _StackInstance(member, target_region, stack_name, stack_id)
        member_template.instantiate(
            template, account=member, region=target_region, partition=arns.partition(target_region), create=stack.create
        )
        summaries.append({"accountId": member, "organizationalUnitId": unit, "stackId": stack_id})
        created += stack.created
    resource_id = f"{stack_set['StackSetId']},{','.join(units)},{target_region}"
    return resource_id, {
        "stackInstanceSummaries": summaries,
        "stackSetId": stack_set["StackSetId"],
        "resources": created,
    }


@dataclass
class _StackInstance:
    """One stack of a StackSet in a member account: its resources, created by this deployer's creators."""

    account: str
    region: str
    stack_name: str
    stack_id: str
    created: list[dict[str, Any]] = field(default_factory=list)

    def create(self, logical_id: str, type_: str, properties: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        if type_ not in _TEMPLATE_CREATORS:
            raise UnknownResourceType(
                f"the local deployer does not know {type_} (template resource {logical_id}); add it to "
                "simulation/deploy_local.py _TEMPLATE_CREATORS"
            )
        creator, inputs = _TEMPLATE_CREATORS[type_]
        # CloudFormation tags what it creates with the stack and the logical id (where the type has tags).
        tags = [
            {"Key": "aws:cloudformation:stack-name", "Value": self.stack_name},
            {"Key": "aws:cloudformation:stack-id", "Value": self.stack_id},
            {"Key": "aws:cloudformation:logical-id", "Value": logical_id},
            *properties.get("Tags", []),
        ]
        session = local_aws.account_session(self.account, self.region)
        name = f"{self.stack_name}-{logical_id}"
        ref, outputs = creator(session, inputs({**properties, "Tags": tags}), name, self.account, self.region)
        self.created.append(
            {"account": self.account, "region": self.region, "logicalId": logical_id, "type": type_, "physicalId": ref}
        )
        return ref, {"Arn": outputs["arn"]} if "arn" in outputs else {}


def _role_from_template(s: Session, p: Inputs, name: str, account: str, region: str) -> Created:
    role, outputs = _role(
        s, {"name": p["RoleName"], "assumeRolePolicy": p["AssumeRolePolicyDocument"]}, name, account, region
    )
    for arn in p.get("ManagedPolicyArns", []):
        _attachment(s, {"role": role, "policyArn": arn}, f"{name}-{arn.rsplit('/', 1)[-1]}", account, region)
    _client(s, "iam").tag_role(RoleName=role, Tags=p["Tags"])
    return role, outputs


def _key_from_template(s: Session, p: Inputs, name: str, account: str, region: str) -> Created:
    inputs = {
        "description": p.get("Description", ""),
        "policy": p["KeyPolicy"],
        "enableKeyRotation": p.get("EnableKeyRotation"),
    }
    key, outputs = _kms_key(s, inputs, name, account, region)
    _client(s, "kms").tag_resource(KeyId=key, Tags=[{"TagKey": t["Key"], "TagValue": t["Value"]} for t in p["Tags"]])
    return key, outputs


def _rule_from_template(s: Session, p: Inputs, name: str, account: str, region: str) -> Created:
    rule, outputs = _event_rule(
        s, {"name": p["Name"], "eventPattern": json.dumps(p["EventPattern"])}, name, account, region
    )
    for target in p.get("Targets", []):
        inputs = {"rule": rule, "targetId": target["Id"], "arn": target["Arn"], "roleArn": target.get("RoleArn")}
        _event_target(s, inputs, f"{name}-{target['Id']}", account, region)
    return rule, outputs


# CloudFormation type -> (the creator that makes it, its properties as that creator's inputs). The
# properties arrive with every intrinsic function evaluated and CloudFormation's tags in "Tags".
_TEMPLATE_CREATORS: dict[str, tuple[Creator, Callable[[Inputs], Inputs]]] = {
    "AWS::IAM::Role": (_role_from_template, dict),
    "AWS::IAM::RolePolicy": (
        _role_policy,
        lambda p: {"role": p["RoleName"], "name": p["PolicyName"], "policy": p["PolicyDocument"]},
    ),
    "AWS::IAM::ManagedPolicy": (
        _managed_policy,
        lambda p: {"name": p["ManagedPolicyName"], "policy": p["PolicyDocument"]},
    ),
    "AWS::IAM::InstanceProfile": (_profile, lambda p: {"name": p["InstanceProfileName"], "role": p["Roles"][0]}),
    "AWS::KMS::Key": (_key_from_template, dict),
    "AWS::KMS::Alias": (_kms_alias, lambda p: {"name": p["AliasName"], "targetKeyId": p["TargetKeyId"]}),
    "AWS::SSM::Document": (
        _ssm_document,
        lambda p: {
            "name": p["Name"],
            "content": json.dumps(p["Content"]),
            "documentType": p["DocumentType"],
            "documentFormat": p.get("DocumentFormat", "JSON"),
            "tags": {t["Key"]: t["Value"] for t in p["Tags"]},
        },
    ),
    "AWS::Events::Rule": (_rule_from_template, dict),
}


def deploy_program(
    deployer: MotoDeployer, stack: str, config: Mapping[str, Any], *, account: str, region: str
) -> list[pulumi_mocks.RegisteredResource]:
    """Run one stack of the Pulumi program with every resource created in moto."""
    return pulumi_mocks.run_program(
        stack, config, account=account, region=region, on_resource=deployer, on_call=deployer.call
    )
