"""The member responder's two renderings: Pulumi resources and a CloudFormation template.

components.member_responder.member_definition lists what one member account and region gets (roles,
policies, key, profiles, documents, rule) as `MemberResource`s. The same list becomes:

- the children of the `MemberResponder` component (explicit mode: one provider per member account,
  account and region known at deploy time), by `render_pulumi`;
- the template of the organisation's StackSet (organisation mode: CloudFormation instantiates it in
  every account of the organisational units, including accounts created later), by `render_template`.

Strings in a definition may hold the CloudFormation pseudo parameters `${AWS::AccountId}`,
`${AWS::Region}`, `${AWS::Partition}` (a definition built for "any account") and `${<LogicalId>.Arn}`,
a sibling's ARN, known only once it exists. `Ref` names a sibling by name (a role, a rule). The
template wraps such strings in Fn::Sub (GetAtt/Ref when they are nothing else); the Pulumi rendering
replaces a sibling's ARN by its Output. SSM document content is fixed text and is never interpolated.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from components.policies import policy_document

ACCOUNT = "${AWS::AccountId}"
REGION = "${AWS::Region}"
PARTITION = "${AWS::Partition}"
PSEUDO_PARAMETERS = (ACCOUNT, REGION, PARTITION)

ROLE = "role"
ROLE_POLICY = "role-policy"
KEY = "key"
ALIAS = "alias"
PROFILE = "instance-profile"
MANAGED_POLICY = "managed-policy"
ATTACHMENT = "managed-policy-attachment"
DOCUMENT = "ssm-document"
RULE = "event-rule"
TARGET = "event-target"
# The kinds that live in a region (pulumi-aws 7: they name it; IAM is global).
REGIONAL = frozenset({KEY, ALIAS, DOCUMENT, RULE, TARGET})
CFN_TYPES = {
    ROLE: "AWS::IAM::Role",
    ROLE_POLICY: "AWS::IAM::RolePolicy",
    KEY: "AWS::KMS::Key",
    ALIAS: "AWS::KMS::Alias",
    PROFILE: "AWS::IAM::InstanceProfile",
    MANAGED_POLICY: "AWS::IAM::ManagedPolicy",
    DOCUMENT: "AWS::SSM::Document",
    RULE: "AWS::Events::Rule",
}

_SIBLING_ARN = re.compile(r"\$\{([A-Za-z][A-Za-z0-9]*)\.Arn\}")
_SUBSTITUTED = re.compile(r"\$\{(?:AWS::AccountId|AWS::Region|AWS::Partition|[A-Za-z][A-Za-z0-9]*\.Arn)\}")
# Any other `${` (an IAM policy variable such as ${aws:PrincipalTag/...}) is literal inside Fn::Sub.
_LITERAL = re.compile(r"\$\{(?!AWS::AccountId\}|AWS::Region\}|AWS::Partition\}|[A-Za-z][A-Za-z0-9]*\.Arn\})")


def arn_of(logical_id: str) -> str:
    """A sibling's ARN, as a definition string."""
    return f"${{{logical_id}.Arn}}"


@dataclass(frozen=True)
class Ref:
    """A sibling named by its name (CloudFormation `Ref` of a role or rule)."""

    logical_id: str


@dataclass(frozen=True)
class MemberResource:
    logical_id: str  # CloudFormation logical id
    suffix: str  # the Pulumi child is "<component name>-<suffix>"
    kind: str
    props: Mapping[str, Any] = field(default_factory=dict)


# --- Pulumi -------------------------------------------------------------------------------------
def _resolve(value: Any, created: Mapping[str, Any]) -> Any:
    """A definition value with siblings' names and ARNs replaced by their Outputs."""
    if isinstance(value, Ref):
        return created[value.logical_id].name
    if isinstance(value, str):
        parts = _SIBLING_ARN.split(value)
        if len(parts) == 1:
            return value
        pieces = [created[part].arn if index % 2 else part for index, part in enumerate(parts)]
        pieces = [piece for piece in pieces if not (isinstance(piece, str) and not piece)]
        return pieces[0] if len(pieces) == 1 else pulumi.Output.concat(*pieces)
    if isinstance(value, Mapping):
        return {key: _resolve(item, created) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_resolve(item, created) for item in value]
    return value


def _document(value: Mapping[str, Any], created: Mapping[str, Any]) -> pulumi.Output[str]:
    return policy_document(_resolve(value["Statement"], created))


def _pulumi_resource(
    item: MemberResource, created: Mapping[str, Any], tags: dict[str, str]
) -> tuple[Any, dict[str, Any]]:
    """The Pulumi resource class of a definition item and its arguments (region and options aside)."""
    p = item.props

    def document(key: str) -> pulumi.Output[str]:
        return _document(p[key], created)

    def resolved(key: str) -> Any:
        return _resolve(p[key], created)

    if item.kind == ROLE:
        extra = {"max_session_duration": p["max_session_duration"]} if "max_session_duration" in p else {}
        role = {"name": p["name"], "description": p["description"], "assume_role_policy": document("trust")}
        return aws.iam.Role, {**role, "tags": tags, **extra}
    if item.kind == ROLE_POLICY:
        return aws.iam.RolePolicy, {"role": resolved("role"), "policy": document("document")}
    if item.kind == KEY:
        key = {"description": p["description"], "enable_key_rotation": p["rotation"], "policy": document("policy")}
        return aws.kms.Key, {**key, "deletion_window_in_days": p["deletion_window_days"], "tags": tags}
    if item.kind == ALIAS:
        return aws.kms.Alias, {"name": p["name"], "target_key_id": resolved("target")}
    if item.kind == PROFILE:
        return aws.iam.InstanceProfile, {"name": p["name"], "role": resolved("role"), "tags": tags}
    if item.kind == MANAGED_POLICY:
        # Fixed text naming no sibling (the deny-only revocation policy): plain JSON, no Output to build.
        fixed = json.dumps(p["document"])
        if _SIBLING_ARN.search(fixed):
            raise ValueError(f"{item.logical_id}: a managed policy here is fixed text; it cannot name a sibling's ARN")
        policy = {"name": p["name"], "description": p["description"], "policy": fixed}
        return aws.iam.Policy, {**policy, "tags": tags}
    if item.kind == ATTACHMENT:
        return aws.iam.RolePolicyAttachment, {"role": resolved("role"), "policy_arn": resolved("policy_arn")}
    if item.kind == DOCUMENT:
        # Fixed text: serialised as is, never interpolated.
        content = json.dumps(p["content"])
        ssm = {"name": p["name"], "document_type": p["document_type"], "document_format": "JSON", "content": content}
        return aws.ssm.Document, {**ssm, "tags": tags}
    if item.kind == RULE:
        rule = {"name": p["name"], "description": p["description"], "event_pattern": json.dumps(p["pattern"])}
        return aws.cloudwatch.EventRule, {**rule, "tags": tags}
    if item.kind == TARGET:
        target = {"rule": resolved("rule"), "target_id": p["target_id"], "arn": resolved("arn")}
        return aws.cloudwatch.EventTarget, {**target, "role_arn": resolved("role_arn")}
    raise ValueError(f"{item.logical_id}: no Pulumi rendering for kind {item.kind!r}")


def render_pulumi(
    name: str,
    definition: Sequence[MemberResource],
    *,
    region: str,
    tags: Mapping[str, str],
    parent: pulumi.Resource,
) -> dict[str, pulumi.CustomResource]:
    """The definition as Pulumi resources, children of `parent`; logical id -> resource."""
    child = pulumi.ResourceOptions(parent=parent)
    created: dict[str, pulumi.CustomResource] = {}
    for item in definition:
        resource_class, kwargs = _pulumi_resource(item, created, dict(tags))
        if item.kind in REGIONAL:
            kwargs["region"] = region
        created[item.logical_id] = resource_class(f"{name}-{item.suffix}", opts=child, **kwargs)
    return created


# --- CloudFormation -----------------------------------------------------------------------------
def _cfn(value: Any) -> Any:
    """A definition value as CloudFormation: Fn::Sub for strings with pseudo parameters or ARNs."""
    if isinstance(value, Ref):
        return {"Ref": value.logical_id}
    if isinstance(value, str):
        if not _SUBSTITUTED.search(value):
            return value
        whole = _SIBLING_ARN.fullmatch(value)
        if whole:
            return {"Fn::GetAtt": [whole.group(1), "Arn"]}
        return {"Fn::Sub": _LITERAL.sub("${!", value)}
    if isinstance(value, Mapping):
        return {key: _cfn(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_cfn(item) for item in value]
    return value


def _cfn_tags(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Key": key, "Value": value} for key, value in sorted(tags.items())]


def _role(p: Mapping[str, Any], tags: Mapping[str, str], attached: list[Any]) -> dict[str, Any]:
    properties = {
        "RoleName": _cfn(p["name"]),
        "Description": p["description"],
        "AssumeRolePolicyDocument": _cfn(p["trust"]),
        "Tags": _cfn_tags(tags),
    }
    if "max_session_duration" in p:
        properties["MaxSessionDuration"] = p["max_session_duration"]
    if attached:
        properties["ManagedPolicyArns"] = attached
    return properties


def _rule(p: Mapping[str, Any], tags: Mapping[str, str], attached: list[Any]) -> dict[str, Any]:
    return {
        "Name": _cfn(p["name"]),
        "Description": p["description"],
        "EventPattern": p["pattern"],
        "State": "ENABLED",
        "Targets": attached,
    }


# Each kind's CloudFormation properties: (props, the stack's tags, what is attached to it: a role's
# managed-policy ARNs, a rule's targets).
_PROPERTIES: dict[str, Callable[[Mapping[str, Any], Mapping[str, str], list[Any]], dict[str, Any]]] = {
    ROLE: _role,
    ROLE_POLICY: lambda p, tags, _: {
        "RoleName": _cfn(p["role"]),
        "PolicyName": p["policy_name"],
        "PolicyDocument": _cfn(p["document"]),
    },
    KEY: lambda p, tags, _: {
        "Description": p["description"],
        "EnableKeyRotation": p["rotation"],
        "PendingWindowInDays": p["deletion_window_days"],
        "KeyPolicy": _cfn(p["policy"]),
        "Tags": _cfn_tags(tags),
    },
    ALIAS: lambda p, tags, _: {"AliasName": _cfn(p["name"]), "TargetKeyId": _cfn(p["target"])},
    PROFILE: lambda p, tags, _: {"InstanceProfileName": _cfn(p["name"]), "Roles": [_cfn(p["role"])]},
    MANAGED_POLICY: lambda p, tags, _: {
        "ManagedPolicyName": _cfn(p["name"]),
        "Description": p["description"],
        "PolicyDocument": _cfn(p["document"]),
    },
    # Fixed text with its own {{ parameter }} syntax: never interpolated by CloudFormation.
    DOCUMENT: lambda p, tags, _: {
        "Name": _cfn(p["name"]),
        "DocumentType": p["document_type"],
        "DocumentFormat": "JSON",
        "Content": p["content"],
        "Tags": _cfn_tags(tags),
    },
    RULE: _rule,
}


def _attached(definition: Sequence[MemberResource]) -> dict[str, list[Any]]:
    """A managed-policy attachment as its role's ManagedPolicyArns, an event target as its rule's Targets."""
    attached: dict[str, list[Any]] = {}
    for item in definition:
        if item.kind == ATTACHMENT:
            attached.setdefault(item.props["role"].logical_id, []).append(_cfn(item.props["policy_arn"]))
        elif item.kind == TARGET:
            attached.setdefault(item.props["rule"].logical_id, []).append(
                {
                    "Id": item.props["target_id"],
                    "Arn": _cfn(item.props["arn"]),
                    "RoleArn": _cfn(item.props["role_arn"]),
                }
            )
    return attached


def render_template(
    definition: Sequence[MemberResource], *, description: str, tags: Mapping[str, str]
) -> dict[str, Any]:
    """The definition as a CloudFormation template (a StackSet's, so every value is per account/region).

    A managed-policy attachment becomes its role's ManagedPolicyArns and an event target its rule's
    Targets: CloudFormation has no separate resource for either.
    """
    attached = _attached(definition)
    resources: dict[str, Any] = {}
    for item in definition:
        if item.kind in (ATTACHMENT, TARGET):
            continue
        render = _PROPERTIES.get(item.kind)
        if render is None:
            raise ValueError(f"{item.logical_id}: no CloudFormation rendering for kind {item.kind!r}")
        properties = render(item.props, tags, attached.get(item.logical_id, []))
        # Which child of the MemberResponder component this resource is (checks compare the two).
        metadata = {"irforensics": {"component-child": item.suffix}}
        resources[item.logical_id] = {"Type": CFN_TYPES[item.kind], "Properties": properties, "Metadata": metadata}
    return {"AWSTemplateFormatVersion": "2010-09-09", "Description": description, "Resources": resources}


# --- instantiating a template (tests, parliament, the simulation's StackSet) --------------------
def substitute(value: Any, *, account: str, region: str, partition: str, attributes: Mapping[str, Any]) -> Any:
    """A template value with its intrinsic functions evaluated for one account and region.

    `attributes` maps "<LogicalId>.Arn" and "<LogicalId>" (Ref) to values. Only the functions
    render_template writes are understood; anything else is an error, not a guess.
    """
    pseudo = {"AWS::AccountId": account, "AWS::Region": region, "AWS::Partition": partition}

    def lookup(name: str) -> Any:
        if name in pseudo:
            return pseudo[name]
        if name not in attributes:
            raise KeyError(f"template refers to {name}, which is not created before it")
        return attributes[name]

    def walk(item: Any) -> Any:
        if isinstance(item, Mapping):
            if set(item) == {"Fn::Sub"}:
                text = item["Fn::Sub"]
                if not isinstance(text, str):
                    raise ValueError(f"Fn::Sub with variables is not used by the member template: {item!r}")
                replaced = re.sub(r"\$\{([^!}][^}]*)\}", lambda m: str(lookup(m.group(1))), text)
                return replaced.replace("${!", "${")
            if set(item) == {"Fn::GetAtt"}:
                logical, attribute = item["Fn::GetAtt"]
                return lookup(f"{logical}.{attribute}")
            if set(item) == {"Ref"}:
                return lookup(item["Ref"])
            if any(str(key).startswith("Fn::") for key in item):
                raise ValueError(f"intrinsic function not used by the member template: {list(item)}")
            return {key: walk(inner) for key, inner in item.items()}
        if isinstance(item, list):
            return [walk(inner) for inner in item]
        return item

    return walk(value)


def references(value: Any) -> set[str]:
    """The logical ids a template value depends on (Ref, GetAtt, ${X.Arn} in Fn::Sub)."""
    found: set[str] = set()
    if isinstance(value, Mapping):
        if set(value) == {"Ref"} and not str(value["Ref"]).startswith("AWS::"):
            found.add(str(value["Ref"]))
        elif set(value) == {"Fn::GetAtt"}:
            found.add(str(value["Fn::GetAtt"][0]))
        elif set(value) == {"Fn::Sub"} and isinstance(value["Fn::Sub"], str):
            found |= set(_SIBLING_ARN.findall(value["Fn::Sub"]))
        else:
            for inner in value.values():
                found |= references(inner)
    elif isinstance(value, list):
        for inner in value:
            found |= references(inner)
    return found


def creation_order(resources: Mapping[str, Any]) -> list[str]:
    """Logical ids in an order where each comes after what it refers to (CloudFormation's own order)."""
    order: list[str] = []
    pending = dict(resources)
    while pending:
        ready = [lid for lid, res in pending.items() if references(res).issubset(order)]
        if not ready:
            raise ValueError(f"template resources refer to each other in a cycle: {sorted(pending)}")
        for lid in ready:
            order.append(lid)
            del pending[lid]
    return order


# A template property holding a policy document -> the component input holding the same document.
POLICY_PROPERTIES = {"AssumeRolePolicyDocument": "assumeRolePolicy", "PolicyDocument": "policy", "KeyPolicy": "policy"}


def component_child(template: Mapping[str, Any], logical_id: str) -> str:
    """The MemberResponder child suffix a template resource renders (its Metadata says)."""
    return str(template["Resources"][logical_id]["Metadata"]["irforensics"]["component-child"])


def policy_documents_of(
    template: Mapping[str, Any], *, account: str, region: str, partition: str
) -> Iterable[tuple[str, str, dict[str, Any]]]:
    """(component child, component input, document) of every policy document of the template as one
    account and region gets it (sibling ARNs as AWS forms them)."""
    create, seen = realistic_creator(account, region, partition)
    instantiate(template, account=account, region=region, partition=partition, create=create)
    for logical_id, properties in seen.items():
        for key, input_name in POLICY_PROPERTIES.items():
            if key in properties:
                yield component_child(template, logical_id), input_name, dict(properties[key])


# What CloudFormation returns for `Ref` and `Fn::GetAtt ... Arn` of each type, as a creator sees it.
Created = tuple[str, Mapping[str, Any]]  # (Ref value, attributes such as {"Arn": ...})
Creator = Callable[[str, str, Mapping[str, Any]], Created]


def instantiate(template: Mapping[str, Any], *, account: str, region: str, partition: str, create: Creator) -> None:
    """Create a template's resources in one account and region, in dependency order, the way a
    StackSet instance does: `create(logical_id, type, properties)` gets the properties with every
    intrinsic function already evaluated and answers the resource's Ref value and attributes."""
    resources = template["Resources"]
    attributes: dict[str, Any] = {}
    for logical_id in creation_order(resources):
        resource = resources[logical_id]
        properties = substitute(
            resource.get("Properties", {}), account=account, region=region, partition=partition, attributes=attributes
        )
        ref, attrs = create(logical_id, resource["Type"], properties)
        attributes[logical_id] = ref
        for attribute, value in attrs.items():
            attributes[f"{logical_id}.{attribute}"] = value


def realistic_creator(account: str, region: str, partition: str) -> tuple[Creator, dict[str, Mapping[str, Any]]]:
    """A creator that creates nothing and answers the Ref and ARN AWS would (for checks of the
    template's documents: parliament, the comparison with the component); it records the properties."""
    import uuid

    seen: dict[str, Mapping[str, Any]] = {}

    def create(logical_id: str, type_: str, properties: Mapping[str, Any]) -> Created:
        seen[logical_id] = properties
        name = str(
            properties.get("RoleName")
            or properties.get("ManagedPolicyName")
            or properties.get("InstanceProfileName")
            or properties.get("Name")
            or properties.get("AliasName")
            or logical_id
        )
        iam = f"arn:{partition}:iam::{account}"
        if type_ == "AWS::IAM::Role":
            return name, {"Arn": f"{iam}:role/{name}"}
        if type_ == "AWS::IAM::ManagedPolicy":
            return f"{iam}:policy/{name}", {}
        if type_ == "AWS::IAM::InstanceProfile":
            return name, {"Arn": f"{iam}:instance-profile/{name}"}
        if type_ == "AWS::KMS::Key":
            key = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{account}/{region}/{logical_id}"))
            return key, {"Arn": f"arn:{partition}:kms:{region}:{account}:key/{key}"}
        if type_ == "AWS::Events::Rule":
            return name, {"Arn": f"arn:{partition}:events:{region}:{account}:rule/{name}"}
        return name, {}

    return create, seen
