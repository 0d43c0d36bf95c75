"""The security invariants of an irforensics deployment, as plain functions over registered resources.

Each invariant takes what a stack registers - `ResourceRecord`s: Pulumi type token, logical
name, properties with camelCase keys (as the engine and the Pulumi mocks both hand them over) -
and returns the `Violation`s it finds, an empty list when the stack keeps the promise. Nothing
here imports Pulumi or pulumi-policy (policy documents and Pulumi's value wrappers are read by
policy/documents.py, shared with the tests and the simulation's deployer): the policy pack
(policy/__main__.py) adapts CrossGuard's arguments to records, and the tests run the same
functions on the resources the real program registers under mocks.

Resource invariants judge one resource; stack invariants follow references between resources
(a bucket and its versioning, lock, encryption and public-access-block resources; a VPC and its
subnets, gateways and route tables), because pulumi-aws 7 configures an S3 bucket and a VPC's
routing through separate resources.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

try:  # the project (tests, tools) imports the pack's modules as policy.*
    from policy import documents
except ImportError:  # the pack itself runs with policy/ as its root (PulumiPolicy.yaml)
    import documents  # type: ignore[no-redef]

BUCKET = "aws:s3/bucket:Bucket"
BUCKET_VERSIONING = "aws:s3/bucketVersioning:BucketVersioning"
BUCKET_OBJECT_LOCK = "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration"
BUCKET_ENCRYPTION = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
BUCKET_PUBLIC_ACCESS_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
VPC = "aws:ec2/vpc:Vpc"
SUBNET = "aws:ec2/subnet:Subnet"
ROUTE_TABLE = "aws:ec2/routeTable:RouteTable"
DEFAULT_ROUTE_TABLE = "aws:ec2/defaultRouteTable:DefaultRouteTable"
ROUTE = "aws:ec2/route:Route"
INTERNET_GATEWAY = "aws:ec2/internetGateway:InternetGateway"
INTERNET_GATEWAY_ATTACHMENT = "aws:ec2/internetGatewayAttachment:InternetGatewayAttachment"
EGRESS_ONLY_INTERNET_GATEWAY = "aws:ec2/egressOnlyInternetGateway:EgressOnlyInternetGateway"
NAT_GATEWAY = "aws:ec2/natGateway:NatGateway"
KMS_KEY = "aws:kms/key:Key"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"

# Marks that name resources by role (components/naming.py): the evidence bucket is
# "<prefix>-ir-artifacts-<account>-<region>", a security-account Lambda's role
# "<prefix>-ir-lambda-<function>", the analysis VPC is tagged "<prefix>-ir-analysis".
EVIDENCE_BUCKET_MARK = "-ir-artifacts-"
LAMBDA_ROLE_MARK = "-ir-lambda-"
ANALYSIS_VPC_MARK = "analysis"
INTERNET_DESTINATIONS = ("0.0.0.0/0", "::/0")
PUBLIC_ACCESS_FLAGS = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
OBJECT_LOCK_MODES = ("GOVERNANCE", "COMPLIANCE")
KMS_ALGORITHMS = ("aws:kms", "aws:kms:dsse")
_SERVICE_WILDCARD = re.compile(r"^[A-Za-z0-9-]+:\*$")


class _Unknown:
    def __repr__(self) -> str:
        return "UNKNOWN"


# A value that exists only once resources are created (an id or ARN during a preview). The
# policy pack puts it where CrossGuard has an unknown; a check that needs the value decides
# nothing on it, and `pulumi up`, which validates again with known values, decides.
UNKNOWN: Final = _Unknown()


@dataclass(frozen=True)
class ResourceRecord:
    """One resource of a stack, as an invariant sees it.

    `references` maps a property to the logical names of the resources its value came from
    (CrossGuard's property dependencies). It lets a check link a BucketVersioning to its bucket
    during a preview, when the bucket's id is not known yet; without it, links are made by value
    (the referring property equals the target's id, name or ARN), which is what the mocks give.
    """

    type: str
    name: str
    props: Mapping[str, Any]
    id: str = ""
    urn: str = ""
    references: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Violation:
    resource: str  # logical name of the resource that breaks the invariant
    message: str
    urn: str = ""


ResourceInvariant = Callable[[ResourceRecord], list[Violation]]
StackInvariant = Callable[[Sequence[ResourceRecord]], list[Violation]]


# -- reading properties ------------------------------------------------------------------------


_plain = documents.unwrap


def _get(value: Any, *path: str) -> Any:
    """A nested property (None when any step is missing); secrets unwrapped."""
    for key in path:
        value = _plain(value)
        if value is UNKNOWN:
            return UNKNOWN
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return _plain(value)


def _items(value: Any) -> list[Any]:
    """A list property as a list (CrossGuard hands over list proxies, not lists); a scalar as one item."""
    value = _plain(value)
    if value is None or value is UNKNOWN:
        return []
    if isinstance(value, str | bytes | Mapping):
        return [value]
    if isinstance(value, Sequence):
        return [_plain(item) for item in value]
    return [value]


def _is_true(value: Any) -> bool:
    value = _plain(value)
    return value is True or (isinstance(value, str) and value.lower() == "true")


def _of_type(records: Iterable[ResourceRecord], *types: str) -> list[ResourceRecord]:
    return [record for record in records if record.type in types]


def _identifiers(record: ResourceRecord) -> set[str]:
    """Values another resource's property may hold to point at this one."""
    values = {record.id}
    for key in ("id", "arn", "name", "bucket"):
        value = _get(record.props, key)
        if isinstance(value, str):
            values.add(value)
    return {value for value in values if value}


def _refers_to(record: ResourceRecord, prop: str, target: ResourceRecord) -> bool:
    named = record.references.get(prop)
    if named:
        return target.name in named
    value = _get(record.props, prop)
    return isinstance(value, str) and bool(value) and value in _identifiers(target)


def _referring(
    records: Sequence[ResourceRecord], type_token: str, prop: str, targets: Iterable[ResourceRecord]
) -> list[ResourceRecord]:
    targets = list(targets)
    return [
        record
        for record in _of_type(records, type_token)
        if any(_refers_to(record, prop, target) for target in targets)
    ]


def _violation(record: ResourceRecord, message: str) -> Violation:
    return Violation(resource=record.name, message=message, urn=record.urn)


# -- IAM statements ----------------------------------------------------------------------------


_policy_document = documents.policy_document
_policy_documents = documents.policy_documents
_statements = documents.statements


def _allowed_actions(statement: Mapping[str, Any]) -> list[str]:
    if _plain(statement.get("Effect")) != "Allow":
        return []
    return [str(action) for action in _items(statement.get("Action"))]


def _statement_label(statement: Mapping[str, Any], index: int) -> str:
    sid = _plain(statement.get("Sid"))
    return f"statement {sid}" if sid else f"statement #{index}"


# -- resource invariants -----------------------------------------------------------------------


def kms_keys_rotate(record: ResourceRecord) -> list[Violation]:
    """Every KMS key rotates its key material yearly."""
    if record.type != KMS_KEY:
        return []
    spec = _get(record.props, "customerMasterKeySpec") or _get(record.props, "keySpec")
    # AWS rotates symmetric encryption keys only; an asymmetric or HMAC key cannot comply.
    if spec and spec != "SYMMETRIC_DEFAULT":
        return []
    rotation = _get(record.props, "enableKeyRotation")
    if rotation is UNKNOWN or _is_true(rotation):
        return []
    return [_violation(record, f"KMS key {record.name} does not rotate: set enableKeyRotation true")]


def no_statement_allows_every_action(record: ResourceRecord) -> list[Violation]:
    """No IAM statement anywhere (role, role policy, key, bucket, endpoint policy) allows Action "*"."""
    found = []
    for path, document in _policy_documents(record.props):
        for index, statement in enumerate(_statements(document)):
            if "*" in _allowed_actions(statement):
                found.append(
                    _violation(
                        record,
                        f"{_statement_label(statement, index)} in {record.name}.{path} "
                        "allows Action '*': name the actions",
                    )
                )
    return found


# -- stack invariants: evidence storage --------------------------------------------------------


def _bucket_name(bucket: ResourceRecord) -> str:
    name = _get(bucket.props, "bucket")
    return name if isinstance(name, str) and name else bucket.name


def evidence_buckets(records: Sequence[ResourceRecord]) -> list[ResourceRecord]:
    """The buckets that keep evidence, recognised by the name components/naming.py gives them."""
    return [
        bucket
        for bucket in _of_type(records, BUCKET)
        if EVIDENCE_BUCKET_MARK in _bucket_name(bucket) or EVIDENCE_BUCKET_MARK in bucket.name
    ]


def evidence_buckets_are_locked(records: Sequence[ResourceRecord]) -> list[Violation]:
    """Evidence buckets are created with Object Lock and lock every new object by default."""
    found = []
    for bucket in evidence_buckets(records):
        name = _bucket_name(bucket)
        if not _is_true(_get(bucket.props, "objectLockEnabled")):
            found.append(
                _violation(bucket, f"evidence bucket {name} is created without Object Lock: set objectLockEnabled true")
            )
        locks = _referring(records, BUCKET_OBJECT_LOCK, "bucket", [bucket])
        if not any(_locks_by_default(lock) for lock in locks):
            found.append(
                _violation(
                    bucket,
                    f"evidence bucket {name} has no Object Lock configuration with a "
                    f"default retention ({' or '.join(OBJECT_LOCK_MODES)}, "
                    "days or years)",
                )
            )
    return found


def _locks_by_default(lock: ResourceRecord) -> bool:
    enabled = _get(lock.props, "objectLockEnabled")
    retention = _get(lock.props, "rule", "defaultRetention")
    if enabled not in (None, "Enabled") or not isinstance(retention, Mapping):
        return False
    period = _get(retention, "days") or _get(retention, "years")
    return _get(retention, "mode") in OBJECT_LOCK_MODES and isinstance(period, int | float) and period > 0


def _each_evidence_bucket(
    records: Sequence[ResourceRecord], kind: str, problem: Callable[[list[ResourceRecord]], str | None]
) -> list[Violation]:
    """One violation per evidence bucket whose resources of `kind` leave `problem` something to say."""
    found = []
    for bucket in evidence_buckets(records):
        said = problem(_referring(records, kind, "bucket", [bucket]))
        if said is not None:
            found.append(_violation(bucket, f"evidence bucket {_bucket_name(bucket)} {said}"))
    return found


def _unversioned(versionings: list[ResourceRecord]) -> str | None:
    statuses = [_get(versioning.props, "versioningConfiguration", "status") for versioning in versionings]
    if "Enabled" in statuses:
        return None
    seen = f" (found {', '.join(str(status) for status in statuses)})" if statuses else ""
    return f"is not versioned: it needs an aws:s3/bucketVersioning with status Enabled{seen}"


def evidence_buckets_are_versioned(records: Sequence[ResourceRecord]) -> list[Violation]:
    """Evidence buckets keep every version: an overwrite or delete never loses an object."""
    return _each_evidence_bucket(records, BUCKET_VERSIONING, _unversioned)


def _not_kms_encrypted(configurations: list[ResourceRecord]) -> str | None:
    if any(_encrypts_with_kms(configuration) for configuration in configurations):
        return None
    return "has no default SSE-KMS encryption with a customer managed key (sseAlgorithm aws:kms and kmsMasterKeyId)"


def evidence_buckets_are_encrypted_with_kms(records: Sequence[ResourceRecord]) -> list[Violation]:
    """Evidence buckets encrypt by default with SSE-KMS under a named customer managed key."""
    return _each_evidence_bucket(records, BUCKET_ENCRYPTION, _not_kms_encrypted)


def _encrypts_with_kms(configuration: ResourceRecord) -> bool:
    for rule in _items(_get(configuration.props, "rules")):
        default = _get(rule, "applyServerSideEncryptionByDefault")
        if _get(default, "sseAlgorithm") in KMS_ALGORITHMS and _get(default, "kmsMasterKeyId"):
            return True
    return False


def _publicly_accessible(blocks: list[ResourceRecord]) -> str | None:
    if any(all(_is_true(_get(block.props, flag)) for flag in PUBLIC_ACCESS_FLAGS) for block in blocks):
        return None
    off = sorted({flag for block in blocks for flag in PUBLIC_ACCESS_FLAGS if not _is_true(_get(block.props, flag))})
    detail = f" ({', '.join(off)} off)" if blocks else ""
    return f"has no public access block with {', '.join(PUBLIC_ACCESS_FLAGS)} all true{detail}"


def evidence_buckets_block_public_access(records: Sequence[ResourceRecord]) -> list[Violation]:
    """Evidence buckets have a public access block with all four flags on."""
    return _each_evidence_bucket(records, BUCKET_PUBLIC_ACCESS_BLOCK, _publicly_accessible)


def buckets_have_public_access_block(records: Sequence[ResourceRecord]) -> list[Violation]:
    """Every bucket of the stack has a public access block of its own."""
    return [
        _violation(bucket, f"bucket {_bucket_name(bucket)} has no aws:s3/bucketPublicAccessBlock")
        for bucket in _of_type(records, BUCKET)
        if not _referring(records, BUCKET_PUBLIC_ACCESS_BLOCK, "bucket", [bucket])
    ]


# -- stack invariants: analysis network --------------------------------------------------------


def analysis_vpcs(records: Sequence[ResourceRecord]) -> list[ResourceRecord]:
    """VPCs where evidence is examined, recognised by logical name or Name tag."""
    return [
        vpc
        for vpc in _of_type(records, VPC)
        if ANALYSIS_VPC_MARK in vpc.name or ANALYSIS_VPC_MARK in str(_get(vpc.props, "tags", "Name") or "")
    ]


def _internet_destinations(route: Any, *keys: str) -> list[str]:
    return [str(_get(route, key)) for key in keys if _get(route, key) in INTERNET_DESTINATIONS]


def analysis_vpc_has_no_internet_path(records: Sequence[ResourceRecord]) -> list[Violation]:
    """No gateway to the internet in an analysis VPC and no route to 0.0.0.0/0 or ::/0 in its tables.

    Any internet-wide route counts, whatever its target (a peering, a transit gateway, an
    appliance): a sample running on an analysis instance must have no way out.
    """
    found = []
    for vpc in analysis_vpcs(records):
        label = f"analysis VPC {vpc.name}"
        gateways = [
            *_referring(records, INTERNET_GATEWAY, "vpcId", [vpc]),
            *_referring(records, INTERNET_GATEWAY_ATTACHMENT, "vpcId", [vpc]),
            *_referring(records, EGRESS_ONLY_INTERNET_GATEWAY, "vpcId", [vpc]),
        ]
        subnets = _referring(records, SUBNET, "vpcId", [vpc])
        nat_gateways = [
            nat
            for nat in _of_type(records, NAT_GATEWAY)
            if _refers_to(nat, "vpcId", vpc) or any(_refers_to(nat, "subnetId", s) for s in subnets)
        ]
        for gateway in [*gateways, *nat_gateways]:
            kind = gateway.type.rsplit(":", 1)[-1]
            found.append(_violation(gateway, f"{kind} {gateway.name} gives the {label} a path to the internet"))

        tables = _referring(records, ROUTE_TABLE, "vpcId", [vpc])
        tables += [
            table
            for table in _of_type(records, DEFAULT_ROUTE_TABLE)
            if _refers_to(table, "defaultRouteTableId", vpc)
            or _get(table.props, "defaultRouteTableId") in {_get(vpc.props, "defaultRouteTableId")} - {None, ""}
        ]
        for table in tables:
            for route in _items(_get(table.props, "routes")):
                for destination in _internet_destinations(route, "cidrBlock", "ipv6CidrBlock"):
                    found.append(_violation(table, f"route table {table.name} of the {label} routes {destination} out"))
        for route in _referring(records, ROUTE, "routeTableId", tables):
            for destination in _internet_destinations(route.props, "destinationCidrBlock", "destinationIpv6CidrBlock"):
                found.append(_violation(route, f"route {route.name} sends {destination} out of the {label}"))
    return found


# -- stack invariants: Lambda roles ------------------------------------------------------------


def _is_lambda_role_policy(policy: ResourceRecord, roles: Sequence[ResourceRecord]) -> bool:
    if policy.references.get("role"):
        return any(_refers_to(policy, "role", candidate) and _is_lambda_role(candidate) for candidate in roles)
    role = _get(policy.props, "role")
    # An IAM role's id is its name; the property may also hold the role's ARN.
    return isinstance(role, str) and LAMBDA_ROLE_MARK in role.rsplit("/", 1)[-1]


def _is_lambda_role(role: ResourceRecord) -> bool:
    return LAMBDA_ROLE_MARK in str(_get(role.props, "name") or role.id)


def lambda_roles_name_their_actions(records: Sequence[ResourceRecord]) -> list[Violation]:
    """Inline policies of the security account's Lambda roles never allow "*" or "<service>:*"."""
    roles = _of_type(records, ROLE)
    found = []
    policies = [
        (policy, _get(policy.props, "policy"))
        for policy in _of_type(records, ROLE_POLICY)
        if _is_lambda_role_policy(policy, roles)
    ]
    policies += [
        (role, _get(inline, "policy"))
        for role in roles
        if _is_lambda_role(role)
        for inline in _items(_get(role.props, "inlinePolicies"))
    ]
    for record, value in policies:
        document = _policy_document(value)
        if document is None:
            continue
        for index, statement in enumerate(_statements(document)):
            for action in _allowed_actions(statement):
                if action == "*" or _SERVICE_WILDCARD.match(action):
                    found.append(
                        _violation(
                            record,
                            f"{_statement_label(statement, index)} of Lambda role policy "
                            f"{record.name} allows {action}: name the actions",
                        )
                    )
    return found


RESOURCE_INVARIANTS: tuple[ResourceInvariant, ...] = (kms_keys_rotate, no_statement_allows_every_action)
STACK_INVARIANTS: tuple[StackInvariant, ...] = (
    evidence_buckets_are_locked,
    evidence_buckets_are_versioned,
    evidence_buckets_are_encrypted_with_kms,
    evidence_buckets_block_public_access,
    buckets_have_public_access_block,
    analysis_vpc_has_no_internet_path,
    lambda_roles_name_their_actions,
)


def all_violations(records: Sequence[ResourceRecord]) -> list[Violation]:
    """Every invariant over a whole stack, in the order the policy pack reports them."""
    found = [violation for check in RESOURCE_INVARIANTS for record in records for violation in check(record)]
    return found + [violation for check in STACK_INVARIANTS for violation in check(records)]
