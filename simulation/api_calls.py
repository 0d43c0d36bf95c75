"""Every AWS API call our handlers make in the simulation, attributed to the IAM role that made it,
and a small IAM policy evaluator to check those calls against the policies the program generates.

`record_api_calls()` patches botocore's one door to AWS (`BaseClient._make_api_call`, plus
`generate_presigned_url`, whose URL is authorised as its signer when used). A call is recorded
only when our code makes it for a Lambda function: either inside a handler (simulation.lambda_local marks
the thread), or with credentials an `sts:AssumeRole` inside a handler returned (imaging uploads
from worker threads). Whose call it is comes from the credentials: keys from AssumeRole are looked
up in moto's STS backend; the process's own credentials, inside a handler, are the function's
execution role, as the Lambda runtime gives them. The test's own setup and asserts, and the
deployer, run outside any handler and are not recorded.

Each call carries the IAM authorisations it needs (`Authorization`: action, resource ARNs derived
from its parameters, and the condition keys its request determines), including the implicit ones
(iam:PassRole when a profile is attached, KMS use by EBS for an encrypted copy). `evaluate` decides
one authorisation against identity policies: Allow/Deny, Action/NotAction and Resource/NotResource
wildcards, and the condition operators our policies use; a condition on a key the call does not
determine is assumed to hold and reported, never silently dropped.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import botocore.client
import botocore.signers

from simulation import lambda_local

# botocore's signing name is the IAM prefix for every service we call, except these.
_PREFIX_OF_SIGNING_NAME = {"elasticloadbalancingv2": "elasticloadbalancing"}
# API operations whose IAM action has another name (S3 names its actions after the permission).
_ACTION_OF_OPERATION = {
    ("s3", "HeadObject"): "GetObject",
    ("s3", "HeadBucket"): "ListBucket",
    ("s3", "ListObjects"): "ListBucket",
    ("s3", "ListObjectsV2"): "ListBucket",
    ("s3", "ListObjectVersions"): "ListBucketVersions",
    ("s3", "CreateMultipartUpload"): "PutObject",
    ("s3", "UploadPart"): "PutObject",
    ("s3", "CompleteMultipartUpload"): "PutObject",
    ("s3", "ListParts"): "ListMultipartUploadParts",
    ("s3", "CopyObject"): "PutObject",
    ("s3", "UploadPartCopy"): "PutObject",
    ("s3", "GetBucketLocation"): "GetBucketLocation",
}
_TRANSACTION_ITEM_ACTIONS = {
    "TransactWriteItems": {
        "Put": "PutItem",
        "Update": "UpdateItem",
        "Delete": "DeleteItem",
        "ConditionCheck": "ConditionCheckItem",
    },
    "TransactGetItems": {"Get": "GetItem"},
}
# These need no IAM permission at all (AWS documentation).
NO_PERMISSION_NEEDED = frozenset({"sts:GetCallerIdentity"})
_EC2_KINDS = {
    "i": "instance",
    "eni": "network-interface",
    "snap": "snapshot",
    "vol": "volume",
    "sg": "security-group",
    "vpc": "vpc",
    "subnet": "subnet",
    "ami": "image",
    "eipalloc": "elastic-ip",
    "sgr": "security-group-rule",
    "pl": "prefix-list",
}
_PARAM_TEXT_LIMIT = 512


@dataclass(frozen=True)
class Authorization:
    """One IAM authorisation a call needs: an action on resources, with the condition keys it determines.

    `resources` empty means the resource could not be derived: only the action is checked.
    `context` maps condition keys to values; a value of None means "known to be absent", and a key
    ending in "/*" (e.g. "aws:ResourceTag/*") says every key with that prefix is known.
    """

    action: str
    resources: tuple[str, ...] = ()
    context: Mapping[str, Any] = field(default_factory=dict)
    implicit: str = ""  # why the call needs this beyond its own action


@dataclass(frozen=True)
class ApiCall:
    role_arn: str
    account: str  # the account the role (and so the call) is in
    region: str
    service: str  # IAM prefix
    operation: str  # the IAM action, e.g. "ec2:ModifyNetworkInterfaceAttribute"
    api: str  # botocore's operation name, e.g. "UploadPart"
    params: Mapping[str, Any]
    function: str  # the Lambda function that made the call
    authorizations: tuple[Authorization, ...] = ()
    presigned: bool = False
    stand_in: str = ""  # non-empty: made by a simulation stand-in, and why
    simulation_only: bool = False  # a stand-in doing what nothing does on AWS: not checked


@dataclass(frozen=True)
class _Acting:
    role_arn: str | None  # None: not checked (the stand-in does what AWS does not)
    reason: str


_THREAD = threading.local()


@contextmanager
def acting_as(role_arn: str | None, reason: str) -> Iterator[None]:
    """Attribute this thread's calls to `role_arn` (what runs it on AWS) and mark them as a stand-in.

    `role_arn=None` marks calls that exist only in the simulation (moto gaps): recorded, never checked.
    Credentials minted inside inherit the mark, whichever thread uses them later.
    """
    outer = getattr(_THREAD, "acting", None)
    _THREAD.acting = _Acting(role_arn, reason)
    try:
        yield
    finally:
        _THREAD.acting = outer


def iam_action(signing_name: str, operation: str) -> str:
    prefix = _PREFIX_OF_SIGNING_NAME.get(signing_name, signing_name)
    return f"{prefix}:{_ACTION_OF_OPERATION.get((prefix, operation), operation)}"


def _trim(value: Any, depth: int = 0) -> Any:
    """The request parameters, without bodies: enough to name the resource."""
    if isinstance(value, Mapping):
        return {k: _trim(v, depth + 1) for k, v in value.items() if k not in ("Body", "BlockData")}
    if isinstance(value, (list, tuple)):
        return [_trim(v, depth + 1) for v in value[:64]]
    if isinstance(value, str):
        return value[:_PARAM_TEXT_LIMIT]
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return f"<{type(value).__name__}>"


# --- what moto knows about the resources (only moto holds the incident's state) -----------------


def _assumed_role(access_key: str) -> str | None:
    from moto.sts.models import sts_backends

    for _account, partitions in list(sts_backends.items()):
        for _partition, backend in list(partitions.items()):
            for role in backend.assumed_roles:
                if role.access_key_id == access_key:
                    return str(role.role_arn)
    return None


def _ec2_backend(account: str, region: str) -> Any:
    from moto.ec2.models import ec2_backends

    return ec2_backends[account][region]


def _ec2_tags(account: str, region: str, resource_id: str) -> dict[str, Any]:
    try:
        tags = dict(_ec2_backend(account, region).tags.get(resource_id, {}))
    except Exception:
        return {}
    return {**{f"aws:ResourceTag/{k}": v for k, v in tags.items()}, "aws:ResourceTag/*": True}


def _snapshot(region: str, snapshot_id: str) -> Any:
    from moto.ec2.models import ec2_backends

    for _account, regions in list(ec2_backends.items()):
        backend = regions.get(region) if hasattr(regions, "get") else None
        if backend is not None and snapshot_id in backend.snapshots:
            return backend.snapshots[snapshot_id]
    return None


def _key(account: str, region: str, key_id: str) -> tuple[str, tuple[str, ...]] | None:
    """(key ARN, its aliases) for any way of naming a key, in the key's own account."""
    from moto.kms.models import kms_backends

    if key_id.startswith("arn:"):
        parts = key_id.split(":")
        region, account = parts[3], parts[4]
    try:
        backend = kms_backends[account][region]
        raw = backend.any_id_to_key_id(key_id)
        key = backend.keys[raw]
    except Exception:
        return None
    return str(key.arn), tuple(sorted(key.aliases))


def _profile_role_arns(account: str, profile: Mapping[str, Any]) -> list[str]:
    from moto.iam.models import iam_backends

    backend = iam_backends[account]["aws"]
    try:
        found = (
            backend.get_instance_profile_by_arn(profile["Arn"])
            if profile.get("Arn")
            else backend.get_instance_profile(profile["Name"])
        )
    except Exception:
        return []
    return [str(role.arn) for role in found.roles]


def _association_instance(account: str, region: str, association_id: str) -> str | None:
    try:
        association = _ec2_backend(account, region).iam_instance_profile_associations[association_id]
    except Exception:
        return None
    return str(association.instance_id)


def _address_allocation(account: str, region: str, association_id: str) -> str | None:
    try:
        for address in _ec2_backend(account, region).addresses:
            if address.association_id == association_id:
                return str(address.allocation_id)
    except Exception:
        return None
    return None


def _auto_scaling_group_arn(account: str, region: str, name: str) -> str | None:
    from moto.autoscaling.models import autoscaling_backends

    try:
        return str(autoscaling_backends[account][region].autoscaling_groups[name].arn)
    except Exception:
        return None


# --- the authorisations a call needs ------------------------------------------------------------


def ec2_arn(region: str, account: str, resource_id: str) -> str:
    kind = _EC2_KINDS.get(resource_id.split("-", 1)[0], "")
    if kind in ("snapshot", "image"):
        return f"arn:aws:ec2:{region}::{kind}/{resource_id}"  # their ARNs carry no account
    return f"arn:aws:ec2:{region}:{account}:{kind or 'unknown'}/{resource_id}"


def _tag_authorization(
    region: str, account: str, params: Mapping[str, Any], resources: Sequence[str], create_action: str
) -> list[Authorization]:
    # Tags given at creation are authorised as ec2:CreateTags with ec2:CreateAction set.
    if not params.get("TagSpecifications"):
        return []
    return [
        Authorization(
            "ec2:CreateTags",
            tuple(resources),
            {"ec2:CreateAction": create_action},
            implicit=f"tags on create ({create_action})",
        )
    ]


def _pass_role(account: str, profile: Mapping[str, Any]) -> list[Authorization]:
    roles = _profile_role_arns(account, profile)
    return [
        Authorization(
            "iam:PassRole",
            (role,),
            {"iam:PassedToService": "ec2.amazonaws.com"},
            implicit="attaching an instance profile passes its role to EC2",
        )
        for role in roles
    ]


def _ebs_key_use(account: str, region: str, key_id: str, role: str, caller_account: str) -> list[Authorization]:
    """What EBS does with the caller's permissions for an encrypted snapshot (AWS EBS encryption docs)."""
    found = _key(account, region, key_id)
    if found is None:
        return []
    arn, aliases = found
    if any(alias.startswith("alias/aws/") for alias in aliases):
        return []  # AWS managed keys are authorised by their own key policy, not by IAM
    context = {
        "kms:ViaService": f"ec2.{region}.amazonaws.com",
        "kms:ResourceAliases": aliases,
        "kms:RequestAlias": None,
        "kms:CallerAccount": caller_account,
    }
    why = f"EBS uses the {role} key of an encrypted snapshot copy"
    actions = (
        ("kms:DescribeKey", "kms:GenerateDataKeyWithoutPlaintext", "kms:ReEncryptTo")
        if role == "destination"
        else ("kms:DescribeKey", "kms:Decrypt", "kms:ReEncryptFrom")
    )
    needed = [Authorization(a, (arn,), context, implicit=why) for a in actions]
    needed.append(
        Authorization("kms:CreateGrant", (arn,), {**context, "kms:GrantIsForAWSResource": "true"}, implicit=why)
    )
    return needed


# One entry per API (or per service, below): what the call needs, from its parameters and moto's state.
_Needs = Callable[["_Call"], list[Authorization]]
_EC2: dict[str, _Needs] = {}
_SERVICES: dict[str, _Needs] = {}


@dataclass(frozen=True)
class _Call:
    action: str
    api: str
    p: Mapping[str, Any]
    account: str
    region: str

    def arn(self, resource_id: str) -> str:
        return ec2_arn(self.region, self.account, resource_id)

    def one(self, *resources: str, context: Mapping[str, Any] | None = None) -> list[Authorization]:
        return [Authorization(self.action, tuple(resources), dict(context or {}))]

    @property
    def snapshots(self) -> str:
        return f"arn:aws:ec2:{self.region}::snapshot/*"


def _registry(table: dict[str, _Needs]) -> Callable[..., Callable[[_Needs], _Needs]]:
    """The decorator that files a `_Needs` in `table` under each name it is given."""

    def under(*names: str) -> Callable[[_Needs], _Needs]:
        def register(needs: _Needs) -> _Needs:
            for name in names:
                table[name] = needs
            return needs

        return register

    return under


_ec2 = _registry(_EC2)  # by EC2 API
_service = _registry(_SERVICES)  # by service


def _instance_profile(account: str, region: str, instance_id: str) -> str | None:
    try:
        profile = _ec2_backend(account, region).get_instance(instance_id).iam_instance_profile
    except Exception:
        return None
    return profile.get("Arn") if isinstance(profile, Mapping) else None


def _with_tags(c: _Call, resource_id: str, extra: Mapping[str, Any] | None = None) -> list[Authorization]:
    return c.one(c.arn(resource_id), context={**_ec2_tags(c.account, c.region, resource_id), **(extra or {})})


@_ec2("DescribeInstanceAttribute")
def _describe_instance_attribute(c: _Call) -> list[Authorization]:
    return c.one(c.arn(c.p["InstanceId"]))  # resource-scoped, unlike the other Describe actions


@_ec2("DescribeSnapshotAttribute")
def _describe_snapshot_attribute(c: _Call) -> list[Authorization]:
    return c.one(c.arn(c.p["SnapshotId"]))


@_ec2("ModifyNetworkInterfaceAttribute")
def _modify_interface(c: _Call) -> list[Authorization]:
    return c.one(c.arn(c.p["NetworkInterfaceId"]), *(c.arn(g) for g in c.p.get("Groups", [])))


@_ec2("ModifyInstanceAttribute")
def _modify_instance(c: _Call) -> list[Authorization]:
    attribute = c.p.get("Attribute") or next(
        (k[0].lower() + k[1:] for k in c.p if k not in ("InstanceId", "DryRun", "Value")), None
    )
    return c.one(
        c.arn(c.p["InstanceId"]), *(c.arn(g) for g in c.p.get("Groups", [])), context={"ec2:Attribute": attribute}
    )


@_ec2("AssociateIamInstanceProfile")
def _associate_profile(c: _Call) -> list[Authorization]:
    instance = c.p["InstanceId"]
    context = {**_ec2_tags(c.account, c.region, instance), "ec2:InstanceProfile": None}
    return [*c.one(c.arn(instance), context=context), *_pass_role(c.account, c.p["IamInstanceProfile"])]


@_ec2("ReplaceIamInstanceProfileAssociation", "DisassociateIamInstanceProfile")
def _replace_profile(c: _Call) -> list[Authorization]:
    instance = _association_instance(c.account, c.region, c.p["AssociationId"])
    context = {"ec2:InstanceProfile": _instance_profile(c.account, c.region, instance)} if instance else {}
    needed = c.one(*([c.arn(instance)] if instance else []), context=context)
    if c.p.get("IamInstanceProfile"):
        needed += _pass_role(c.account, c.p["IamInstanceProfile"])
    return needed


@_ec2("DisassociateAddress", "AssociateAddress")
def _address(c: _Call) -> list[Authorization]:
    allocation = c.p.get("AllocationId") or _address_allocation(c.account, c.region, c.p.get("AssociationId", ""))
    resources = [c.arn(allocation)] if allocation else []
    resources += [c.arn(c.p[k]) for k in ("InstanceId", "NetworkInterfaceId") if c.p.get(k)]
    return c.one(*resources)


@_ec2("CreateTags", "DeleteTags")
def _tags(c: _Call) -> list[Authorization]:
    return c.one(*(c.arn(r) for r in c.p.get("Resources", [])), context={"ec2:CreateAction": None})


@_ec2("CreateSnapshots")
def _create_snapshots(c: _Call) -> list[Authorization]:
    instance = c.p["InstanceSpecification"]["InstanceId"]
    try:
        volumes = [
            m.ebs.volume_id if hasattr(m, "ebs") else m.volume_id
            for m in _ec2_backend(c.account, c.region).get_instance(instance).block_device_mapping.values()
        ]
    except Exception:
        volumes = []
    return [
        *c.one(c.arn(instance), *(c.arn(v) for v in volumes), c.snapshots),
        *_tag_authorization(c.region, c.account, c.p, [c.snapshots], "CreateSnapshots"),
    ]


@_ec2("CreateSnapshot")
def _create_snapshot(c: _Call) -> list[Authorization]:
    return [
        *c.one(c.arn(c.p["VolumeId"]), c.snapshots),
        *_tag_authorization(c.region, c.account, c.p, [c.snapshots], "CreateSnapshot"),
    ]


@_ec2("CopySnapshot")
def _copy_snapshot(c: _Call) -> list[Authorization]:
    source_region = c.p.get("SourceRegion") or c.region
    needed = [
        *c.one(f"arn:aws:ec2:{source_region}::snapshot/{c.p['SourceSnapshotId']}", c.snapshots),
        *_tag_authorization(c.region, c.account, c.p, [c.snapshots], "CopySnapshot"),
    ]
    original = _snapshot(source_region, c.p["SourceSnapshotId"])
    if original is not None and original.kms_key_id:
        needed += _ebs_key_use(str(original.owner_id), source_region, str(original.kms_key_id), "source", c.account)
    if c.p.get("KmsKeyId"):
        needed += _ebs_key_use(c.account, c.region, c.p["KmsKeyId"], "destination", c.account)
    return needed


@_ec2("ModifySnapshotAttribute")
def _modify_snapshot_attribute(c: _Call) -> list[Authorization]:
    permissions = c.p.get("CreateVolumePermission") or {}
    adds = {k: [p[k] for p in permissions.get("Add", []) if k in p] for k in ("UserId", "Group")}
    removes = {k: [p[k] for p in permissions.get("Remove", []) if k in p] for k in ("UserId", "Group")}
    operation = c.p.get("OperationType", "")
    users, groups = list(c.p.get("UserIds", [])), list(c.p.get("GroupNames", []))
    add_users = adds["UserId"] + (users if operation == "add" else [])
    add_groups = adds["Group"] + (groups if operation == "add" else [])
    remove_users = removes["UserId"] + (users if operation == "remove" else [])
    remove_groups = removes["Group"] + (groups if operation == "remove" else [])
    context = {
        "ec2:Add/userId": add_users or None,
        "ec2:Add/group": add_groups or None,
        "ec2:Remove/userId": remove_users or None,
        "ec2:Remove/group": remove_groups or None,
    }
    return _with_tags(c, c.p["SnapshotId"], context)


@_ec2("DeleteSnapshot", "LockSnapshot", "UnlockSnapshot", "DeleteSecurityGroup")
def _tagged_target(c: _Call) -> list[Authorization]:
    return _with_tags(c, c.p.get("SnapshotId") or c.p["GroupId"])


@_ec2("CreateSecurityGroup")
def _create_group(c: _Call) -> list[Authorization]:
    groups = f"arn:aws:ec2:{c.region}:{c.account}:security-group/*"
    return [
        *c.one(c.arn(c.p["VpcId"]), groups),
        *_tag_authorization(c.region, c.account, c.p, [groups], "CreateSecurityGroup"),
    ]


@_ec2(
    "AuthorizeSecurityGroupIngress",
    "AuthorizeSecurityGroupEgress",
    "RevokeSecurityGroupIngress",
    "RevokeSecurityGroupEgress",
)
def _group_rules(c: _Call) -> list[Authorization]:
    lists = {
        pl["PrefixListId"] for permission in c.p.get("IpPermissions", []) for pl in permission.get("PrefixListIds", [])
    }
    # AWS-managed prefix lists (the S3 gateway's) are owned by "aws".
    return c.one(c.arn(c.p["GroupId"]), *(f"arn:aws:ec2:{c.region}:aws:prefix-list/{pl}" for pl in sorted(lists)))


@_ec2("RunInstances")
def _run_instances(c: _Call) -> list[Authorization]:
    resources = [
        f"arn:aws:ec2:{c.region}:{c.account}:instance/*",
        f"arn:aws:ec2:{c.region}:{c.account}:volume/*",
        f"arn:aws:ec2:{c.region}:{c.account}:network-interface/*",
    ]
    resources += [c.arn(g) for g in c.p.get("SecurityGroupIds", [])]
    resources += [c.arn(c.p["SubnetId"])] if c.p.get("SubnetId") else []
    for interface in c.p.get("NetworkInterfaces", []):
        resources += [c.arn(g) for g in interface.get("Groups", [])]
        resources += [c.arn(interface["SubnetId"])] if interface.get("SubnetId") else []
    needed = [
        *c.one(*resources),
        # The image is authorised on its own, with its owner (ec2:Owner).
        *c.one(c.arn(c.p["ImageId"]), context={"ec2:Owner": _image_owner(c.region, c.p["ImageId"])}),
        *_tag_authorization(c.region, c.account, c.p, resources[:2], "RunInstances"),
    ]
    if c.p.get("IamInstanceProfile"):
        needed += _pass_role(c.account, c.p["IamInstanceProfile"])
    return needed


@_ec2("TerminateInstances", "StopInstances", "StartInstances")
def _instance_lifecycle(c: _Call) -> list[Authorization]:
    needed = []
    for instance in c.p.get("InstanceIds", []):
        needed += c.one(
            c.arn(instance), context={"ec2:InstanceProfile": _instance_profile(c.account, c.region, instance)}
        )
    return needed


def _image_owner(region: str, image_id: str) -> str | None:
    from moto.ec2.models import ec2_backends

    for _account, regions in list(ec2_backends.items()):
        backend = regions.get(region) if hasattr(regions, "get") else None
        image = getattr(backend, "amis", {}).get(image_id) if backend is not None else None
        if image is not None:
            return str(image.owner_id)
    return None


@_service("ec2")
def _ec2_service(c: _Call) -> list[Authorization]:
    needs = _EC2.get(c.api)
    if needs is not None:
        return needs(c)
    if c.api.startswith("Describe"):
        return c.one("*")
    return c.one()


@_service("ebs")
def _ebs(c: _Call) -> list[Authorization]:
    return c.one(f"arn:aws:ec2:{c.region}::snapshot/{c.p['SnapshotId']}")


@_service("kms")
def _kms(c: _Call) -> list[Authorization]:
    key_id = str(c.p.get("KeyId", ""))
    if not key_id:
        return c.one("*")
    found = _key(c.account, c.region, key_id)
    alias = (
        key_id
        if key_id.startswith("alias/")
        else ("alias/" + key_id.split(":alias/", 1)[1] if ":alias/" in key_id else None)
    )
    context: dict[str, Any] = {"kms:RequestAlias": alias, "kms:ViaService": None, "kms:CallerAccount": c.account}
    if found is None:
        return c.one(context=context)
    arn, aliases = found
    context["kms:ResourceAliases"] = aliases
    if c.action == "kms:CreateGrant":
        context["kms:GrantIsForAWSResource"] = None  # a grant our code makes itself is for no AWS resource
    return c.one(arn, context=context)


@_service("s3")
def _s3(c: _Call) -> list[Authorization]:
    p, bucket = c.p, c.p.get("Bucket", "")
    bucket_arn = f"arn:aws:s3:::{bucket}"
    if "Key" in p:
        object_arn = f"{bucket_arn}/{p['Key']}"
        encryption = {
            "s3:x-amz-server-side-encryption": p.get("ServerSideEncryption"),
            "s3:x-amz-server-side-encryption-aws-kms-key-id": p.get("SSEKMSKeyId"),
        }
        versioned = c.action == "s3:GetObject" and p.get("VersionId")
        action = "s3:GetObjectVersion" if versioned else c.action
        # Every write (PutObject, each multipart call, CopyObject) is an s3:PutObject with these keys,
        # absent unless the request names an encryption.
        needed = [Authorization(action, (object_arn,), encryption if c.action == "s3:PutObject" else {})]
        if c.api == "PutObject" and p.get("ObjectLockRetainUntilDate"):
            needed.append(
                Authorization("s3:PutObjectRetention", (object_arn,), implicit="retention set with the object")
            )
        if c.api == "PutObject" and p.get("ObjectLockLegalHoldStatus"):
            needed.append(
                Authorization("s3:PutObjectLegalHold", (object_arn,), implicit="legal hold set with the object")
            )
        if c.api == "CopyObject":
            source = p["CopySource"]
            if isinstance(source, Mapping):
                source = f"{source['Bucket']}/{source['Key']}"
            needed.append(
                Authorization(
                    "s3:GetObject", (f"arn:aws:s3:::{str(source).lstrip('/')}",), implicit="reading the copy's source"
                )
            )
        return needed
    return c.one(bucket_arn if bucket else "*")


@_service("sts")
def _sts(c: _Call) -> list[Authorization]:
    return c.one(c.p["RoleArn"]) if c.p.get("RoleArn") else c.one()


@_service("iam")
def _iam(c: _Call) -> list[Authorization]:
    if c.p.get("RoleName"):
        context: dict[str, Any] = {}
        if c.api in ("TagRole", "UntagRole"):
            keys = c.p.get("TagKeys") or [t["Key"] for t in c.p.get("Tags", [])]
            context["aws:TagKeys"] = list(keys)
        if c.api in ("AttachRolePolicy", "DetachRolePolicy"):
            context["iam:PolicyARN"] = c.p.get("PolicyArn")
        return c.one(f"arn:aws:iam::{c.account}:role/{c.p['RoleName']}", context=context)
    if c.p.get("InstanceProfileName"):
        return c.one(f"arn:aws:iam::{c.account}:instance-profile/{c.p['InstanceProfileName']}")
    return c.one()


@_service("dynamodb")
def _dynamodb(c: _Call) -> list[Authorization]:
    if c.api in _TRANSACTION_ITEM_ACTIONS:
        # A transaction is authorised item by item, as the item actions it holds.
        return [
            Authorization(
                f"dynamodb:{_TRANSACTION_ITEM_ACTIONS[c.api][kind]}",
                (f"arn:aws:dynamodb:{c.region}:{c.account}:table/{item[kind]['TableName']}",),
            )
            for item in c.p.get("TransactItems", [])
            for kind in item
            if kind in _TRANSACTION_ITEM_ACTIONS[c.api]
        ]
    if c.p.get("TableName"):
        return c.one(f"arn:aws:dynamodb:{c.region}:{c.account}:table/{c.p['TableName']}")
    return c.one()


@_service("sns")
def _sns(c: _Call) -> list[Authorization]:
    return c.one(c.p["TopicArn"]) if c.p.get("TopicArn") else c.one()


@_service("states")
def _states(c: _Call) -> list[Authorization]:
    target = c.p.get("stateMachineArn") or c.p.get("executionArn")
    return c.one(target) if target else c.one()


@_service("ssm")
def _ssm(c: _Call) -> list[Authorization]:
    if c.api == "SendCommand":
        document = c.p["DocumentName"]
        document_arn = (
            document
            if document.startswith("arn:")
            else f"arn:aws:ssm:{c.region}::document/{document}"
            if document.startswith("AWS-")
            else f"arn:aws:ssm:{c.region}:{c.account}:document/{document}"
        )
        # SendCommand is authorised on the document and on each instance, the instance with its tags.
        needed = c.one(document_arn)
        for instance in c.p.get("InstanceIds", []):
            needed += c.one(ec2_arn(c.region, c.account, instance), context=_ec2_tags(c.account, c.region, instance))
        return needed
    if c.api in ("GetParameter", "PutParameter"):
        name = c.p["Name"] if c.p["Name"].startswith("/") else "/" + c.p["Name"]
        return c.one(f"arn:aws:ssm:{c.region}:{c.account}:parameter{name}")
    if c.api.startswith("Describe") or c.api in ("GetCommandInvocation", "ListCommands"):
        return c.one("*")
    return c.one()


@_service("autoscaling")
def _autoscaling(c: _Call) -> list[Authorization]:
    if c.api.startswith("Describe"):
        return c.one("*")
    group = _auto_scaling_group_arn(c.account, c.region, c.p.get("AutoScalingGroupName", ""))
    return c.one(group) if group else c.one()


@_service("elasticloadbalancing")
def _elb(c: _Call) -> list[Authorization]:
    if c.api.startswith("Describe"):
        return c.one("*")
    return c.one(c.p["TargetGroupArn"]) if c.p.get("TargetGroupArn") else c.one()


@_service("secretsmanager")
def _secrets(c: _Call) -> list[Authorization]:
    return c.one(c.p["SecretId"]) if c.p.get("SecretId") else c.one()


def authorizations(
    action: str, api: str, params: Mapping[str, Any], account: str, region: str
) -> tuple[Authorization, ...]:
    """The IAM authorisations one API call needs, as far as its parameters and moto's state tell."""
    if action in NO_PERMISSION_NEEDED:
        return ()
    needs = _SERVICES.get(action.split(":", 1)[0])
    if needs is None:
        return (Authorization(action),)
    try:
        return tuple(needs(_Call(action, api, params, account, region)))
    except (KeyError, TypeError):
        return (Authorization(action),)


# --- the recorder -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Issued:
    role_arn: str
    function: str
    acting: _Acting | None


def _access_key(client: Any) -> str | None:
    credentials = getattr(client._request_signer, "_credentials", None)
    if credentials is None:
        return None
    return str(credentials.get_frozen_credentials().access_key)


@contextmanager
def record_api_calls() -> Iterator[list[ApiCall]]:
    """Record every call our handlers make while inside; yields the (growing) list of calls."""
    calls: list[ApiCall] = []
    issued: dict[str, _Issued] = {}  # access key -> who it was minted for
    not_assumed: set[str] = set()  # the process's own keys: never minted by AssumeRole
    lock = threading.Lock()
    original_call = getattr(botocore.client.BaseClient, "_make_api_call")  # noqa: B009 (private, untyped)
    original_presign = botocore.signers.generate_presigned_url

    def caller(client: Any) -> tuple[str, str, _Acting | None] | None:
        running = lambda_local.running_function()
        acting: _Acting | None = getattr(_THREAD, "acting", None)
        key = _access_key(client)
        minted = issued.get(key or "")
        if minted is not None:
            role, function = minted.role_arn, minted.function
            acting = acting or minted.acting
        else:
            if running is None:
                return None
            assumed = _assumed_role(key) if key and key not in not_assumed else None
            if assumed is None and key:
                not_assumed.add(key)
            role, function = assumed or running.role_arn, running.function_name
        if acting is not None and acting.role_arn is not None:
            role = acting.role_arn
        return role, function, acting

    def record(
        client: Any, operation: str, params: Mapping[str, Any], presigned: bool
    ) -> tuple[ApiCall, _Acting | None] | None:
        who = caller(client)
        if who is None:
            return None
        role, function, acting = who
        model = client._service_model
        action = iam_action(str(model.signing_name or model.endpoint_prefix), operation)
        account = role.split(":")[4]
        region = str(client.meta.region_name)
        trimmed = _trim(params)
        call = ApiCall(
            role_arn=role,
            account=account,
            region=region,
            service=action.split(":")[0],
            operation=action,
            api=operation,
            params=trimmed,
            function=function,
            authorizations=authorizations(action, operation, trimmed, account, region),
            presigned=presigned,
            stand_in=acting.reason if acting else "",
            simulation_only=acting is not None and acting.role_arn is None,
        )
        with lock:
            calls.append(call)
        return call, acting

    def make_api_call(self: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
        recorded = record(self, operation_name, api_params, presigned=False)
        result = original_call(self, operation_name, api_params)
        if recorded is not None and recorded[0].operation == "sts:AssumeRole":
            call, acting = recorded
            # The minted keys act as the assumed role; a stand-in's mark stays with them.
            inherited = acting if acting is not None and acting.role_arn is None else None
            with lock:
                issued[result["Credentials"]["AccessKeyId"]] = _Issued(
                    role_arn=str(api_params["RoleArn"]), function=call.function, acting=inherited
                )
        return result

    def generate_presigned_url(
        self: Any, ClientMethod: str, Params: Any = None, ExpiresIn: int = 3600, HttpMethod: str | None = None
    ) -> Any:
        operation = self._PY_TO_OP_NAME.get(ClientMethod, ClientMethod)
        record(self, operation, Params or {}, presigned=True)
        return original_presign(self, ClientMethod, Params=Params, ExpiresIn=ExpiresIn, HttpMethod=HttpMethod)

    # Clients built from now on take generate_presigned_url from botocore.signers (no class cache).
    with (
        mock.patch.object(botocore.client.BaseClient, "_make_api_call", make_api_call),
        mock.patch.object(botocore.signers, "generate_presigned_url", generate_presigned_url),
    ):
        yield calls


# --- a small IAM evaluator ----------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    allowed: bool
    allowed_by: tuple[str, ...] = ()  # Sids of the Allow statements that match
    denied_by: tuple[str, ...] = ()
    assumed_conditions: tuple[str, ...] = ()  # "Sid: operator key" held without evidence either way


def _pattern(glob: str, *, ignore_case: bool) -> re.Pattern[str]:
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in glob)
    return re.compile(f"^{body}$", re.IGNORECASE if ignore_case else 0)


def matches(glob: str, value: str, *, ignore_case: bool = False) -> bool:
    return bool(_pattern(glob, ignore_case=ignore_case).match(value))


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _known(context: Mapping[str, Any], key: str) -> tuple[bool, Any]:
    if key in context:
        return True, context[key]
    for known in context:
        if known.endswith("/*") and key.startswith(known[:-1]):
            return True, None
    return False, None


def _compare(operator: str, actual: Any, expected: list[Any]) -> bool | None:
    """One value against the condition's values; None for an operator this evaluator does not know."""
    text = str(actual).lower() if isinstance(actual, bool) else str(actual)
    if operator in ("StringEquals", "ArnEquals", "Bool"):
        wanted = [str(e).lower() if operator == "Bool" else str(e) for e in expected]
        return (text.lower() if operator == "Bool" else text) in wanted
    if operator == "StringEqualsIgnoreCase":
        return text.lower() in [str(e).lower() for e in expected]
    if operator in ("StringLike", "ArnLike"):
        return any(matches(str(e), text) for e in expected)
    if operator in ("StringNotEquals", "ArnNotEquals"):
        return text not in [str(e) for e in expected]
    if operator in ("StringNotLike", "ArnNotLike"):
        return not any(matches(str(e), text) for e in expected)
    return None


def _condition(
    sid: str, operator: str, key: str, expected: Any, context: Mapping[str, Any], assumed: list[str]
) -> bool:
    qualifier, _, base = operator.rpartition(":")
    if_exists = base.endswith("IfExists")
    base = base.removesuffix("IfExists")
    known, actual = _known(context, key)
    if not known:
        assumed.append(f"{sid}: {operator} {key}")
        return True
    if base == "Null":
        # Null: "true" holds when the key is absent from the request, "false" when it is present.
        return (actual is None) == (str(_as_list(expected)[0]).lower() == "true")
    if actual is None:
        # A key known to be absent: only negated operators and ...IfExists hold.
        return if_exists or base.startswith(("StringNot", "ArnNot")) or qualifier == "ForAllValues"
    values = _as_list(actual)
    results = [_compare(base, value, _as_list(expected)) for value in values]
    if any(r is None for r in results):
        assumed.append(f"{sid}: {operator} {key} (operator not evaluated)")
        return True
    if qualifier == "ForAllValues":
        return all(results)
    return any(results)


def _statement_applies(
    statement: Mapping[str, Any], action: str, resource: str | None, context: Mapping[str, Any], assumed: list[str]
) -> bool:
    if "Action" in statement:
        if not any(matches(a, action, ignore_case=True) for a in _as_list(statement["Action"])):
            return False
    elif any(matches(a, action, ignore_case=True) for a in _as_list(statement.get("NotAction", []))):
        return False
    if resource is not None:
        if "Resource" in statement:
            if not any(matches(r, resource) for r in _as_list(statement["Resource"])):
                return False
        elif any(matches(r, resource) for r in _as_list(statement.get("NotResource", []))):
            return False
    sid = str(statement.get("Sid", "?"))
    local: list[str] = []
    for operator, tests in (statement.get("Condition") or {}).items():
        for key, expected in tests.items():
            if not _condition(sid, operator, key, expected, context, local):
                return False
    assumed.extend(local)
    return True


def evaluate(
    policies: Sequence[Mapping[str, Any]],
    action: str,
    resources: Sequence[str] = (),
    context: Mapping[str, Any] | None = None,
) -> Decision:
    """Whether identity policies allow `action` on every resource (no resources: the action alone).

    An explicit Deny wins; otherwise some Allow must match each resource; otherwise the implicit deny.
    """
    context = context or {}
    statements = [s for policy in policies for s in _as_list(policy.get("Statement", []))]
    allowed_by: set[str] = set()
    denied_by: set[str] = set()
    assumed: list[str] = []
    every_resource_allowed = True
    targets: list[str | None] = [*resources] or [None]
    for resource in targets:
        allowed_here = False
        for statement in statements:
            if not _statement_applies(statement, action, resource, context, assumed):
                continue
            if statement.get("Effect") == "Deny":
                denied_by.add(str(statement.get("Sid", "?")))
            elif statement.get("Effect") == "Allow":
                allowed_by.add(str(statement.get("Sid", "?")))
                allowed_here = True
        every_resource_allowed = every_resource_allowed and allowed_here
    return Decision(
        allowed=every_resource_allowed and not denied_by,
        allowed_by=tuple(sorted(allowed_by)),
        denied_by=tuple(sorted(denied_by)),
        assumed_conditions=tuple(dict.fromkeys(assumed)),
    )


def _principal_matches(principal: Any, role_arn: str) -> bool:
    """A resource policy's Principal names this role: "*", the role's ARN, its account root or id."""
    if principal == "*":
        return True
    account = role_arn.split(":")[4]
    named = _as_list(principal.get("AWS", [])) if isinstance(principal, Mapping) else []
    return any(p in ("*", role_arn, account, f"arn:aws:iam::{account}:root") for p in named)


def evaluate_resource_policy(
    policy: Mapping[str, Any],
    role_arn: str,
    action: str,
    resources: Sequence[str] = (),
    context: Mapping[str, Any] | None = None,
) -> Decision:
    """Whether a resource policy (bucket, key, trust, bus) allows `action` to `role_arn`, by its statements
    that name the role (or its account, or everyone) as Principal; a Deny of such a statement wins."""
    statements = [
        s for s in _as_list(policy.get("Statement", [])) if _principal_matches(s.get("Principal", {}), role_arn)
    ]
    return evaluate([{"Statement": statements}], action, resources, context)
