"""Least privilege, proven from the calls the handlers really make (issue 9, item 1).

While the session's `world` runs both responses (Contain and Analyze), simulation.api_calls records every
AWS API call our handlers make, attributed to the IAM role whose credentials made it. Those calls
are checked against the identity policies the Pulumi program generated for that role, read from
what the deployer created (`cloud.deployer.deployed`):

(a) every recorded call is allowed: its action, on the resource ARNs derived from its parameters
    (S3 bucket/object, DynamoDB table, SNS topic, state machine/execution, IAM role/profile, KMS key
    by id/ARN/alias, STS role, EBS snapshot, and EC2 instance/ENI/volume/snapshot/security
    group/VPC/elastic IP/prefix list), plus what the call needs implicitly: iam:PassRole for an
    instance profile; KMS use by EBS for an encrypted snapshot copy; KMS use by S3 (SSE-KMS
    buckets), SNS (encrypted topic) and DynamoDB (CMK table) through those services;
(b) every action the policies we wrote for a role allow is exercised by some call of that role,
    except the documented DELIBERATE_EXCEPTIONS (release, failure and RetainArtefacts=false paths,
    the Lambda runtime's own logging...); AWS managed policies attached for an instance's SSM agent
    (AmazonSSMManagedInstanceCore) are AWS's and are only used for (a);
(c) no policy statement allows Action "*" (or uses NotAction to allow);
(d) Resource "*" is granted only on actions AWS has no resource-level permissions for.

(e) every call on a resource with a resource policy is allowed by it too, as AWS decides: a resource of
    another account needs its bucket policy or key policy to allow the caller; a role's trust policy
    and a key policy must allow the caller in any account (the account-root statement of a key policy
    lets IAM policies decide); an explicit deny in any of them wins. KMS is evaluated against the key
    the call really uses (the source key of a snapshot copy, the destination key, the bucket's key).

What is NOT checked, honestly:
- Event-bus policies: the member rules' forwarding is done by EventBridge, not by handler calls.
- EC2 snapshot sharing is an attribute (createVolumePermission), which moto enforces on copy.
- Conditions on keys a call does not determine (e.g. kms:EncryptionContext on a direct KMS call)
  are assumed to hold; every grant that depended on one is printed (run with -s).
- Where no resource can be derived (e.g. an ARN unknown to moto), only the action is checked.
- The state machine's own role (lambda:InvokeFunction): moto's interpreter invokes Lambdas without
  going through a role. Instance roles (isolation, acquisition) make no calls our code makes.
- Calls by simulation stand-ins that do what AWS would not (finding the bytes behind a forensic
  copy, simulation.sandbox.lineage_block_source) are recorded but not checked; reads and the examination
  are attributed to the roles that make them on AWS (tests/e2e/conftest.py).
"""

from __future__ import annotations

import copy
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from simulation.api_calls import ApiCall, Authorization, evaluate, evaluate_resource_policy, matches
from simulation.deploy_local import DeployedResource

pytestmark = pytest.mark.slow

# Allowed actions the two runs do not exercise, each with the reason it is still granted. A key is an
# action (any role) or "<role> <action>", the role named without its "<prefix>-ir-".
DELIBERATE_EXCEPTIONS: dict[str, str] = {
    # Written by the Lambda runtime with the execution role, not by handler code.
    "logs:CreateLogStream": "the Lambda runtime writes the function's logs",
    "logs:PutLogEvents": "the Lambda runtime writes the function's logs",
    "xray:PutTelemetryRecords": "the Lambda runtime sends active-tracing segments",
    "xray:PutTraceSegments": "the Lambda runtime sends active-tracing segments",
    # Release restores containment/before.json: it puts back what containment took away.
    "ec2:AssociateAddress": "release re-associates the Elastic IPs containment disassociated",
    "autoscaling:AttachInstances": "release returns a detached instance to its Auto Scaling group",
    "elasticloadbalancing:RegisterTargets": "release re-registers the instance with its target groups",
    "iam:DetachRolePolicy": "release detaches the session-revoking deny from the instance's role",
    "iam:UntagRole": "release frees the instance's revocation slot",
    # Instances and states the two scenario instances do not have.
    "ec2:AssociateIamInstanceProfile": "an instance without a profile is given the isolation profile",
    "ec2:RevokeSecurityGroupIngress": "an isolation or capture group that has gained rules is emptied again",
    "lambda-open-case dynamodb:GetItem": "a duplicate trigger reads the instance's open case",
    # Cleanup with RetainArtefacts=false (the runs keep everything) and failure paths.
    "ec2:DeleteSnapshot": "cleanup with RetainArtefacts=false removes the intermediate snapshots",
    "s3:AbortMultipartUpload": "a failed imaging or memory upload is aborted",
    # moto runs no SSM commands: the examination stand-in replaces them (tests/e2e/conftest.py).
    "forensic-automation ssm:SendCommand": "starts the examination on the analysis instance",
    "forensic-automation ssm:GetCommandInvocation": "follows the examination on the analysis instance",
    # The SSM agent on the analysis instance streams the examination's output to its CloudWatch log
    # group (it describes the group and stream before PutLogEvents); moto runs no agent.
    "logs:DescribeLogGroups": "the analysis instance's SSM agent finds the examination log group",
    "logs:DescribeLogStreams": "the analysis instance's SSM agent finds its examination log stream",
    # The two scenario instances carry no incident tags to lift and reuse no stale capture group.
    "ec2:DeleteTags": "release lifts the incident tags; a reused capture group's stale record tags are removed",
    # A permission that changes an answer rather than allowing a call.
    "lambda-memory-check-module s3:ListBucket": "a HEAD of a missing module answers 404 (build it), not 403",
    "lambda-memory-start-capture s3:ListBucket": "a HEAD of a missing module answers 404, not 403",
}


def _short(role_arn: str) -> str:
    return role_arn.rsplit("/", 1)[-1].split("-ir-", 1)[-1]


def excepted(role_arn: str, action: str) -> bool:
    return action in DELIBERATE_EXCEPTIONS or f"{_short(role_arn)} {action}" in DELIBERATE_EXCEPTIONS


@dataclass(frozen=True)
class Check:
    role_arn: str
    call: ApiCall
    need: Authorization


def _document(value: Any) -> dict[str, Any]:
    return dict(json.loads(value) if isinstance(value, str) else value)


def _managed_document(arn: str, deployed: Sequence[DeployedResource]) -> dict[str, Any]:
    if arn.startswith("arn:aws:iam::aws:policy/"):
        from moto.iam.aws_managed_policies import aws_managed_policies_data

        return dict(json.loads(aws_managed_policies_data)[arn.rsplit("/", 1)[-1]]["Document"])
    found = [r for r in deployed if r.type == "aws:iam/policy:Policy" and r.outputs.get("arn") == arn]
    if len(found) != 1:
        raise AssertionError(f"attached policy {arn} was not deployed by the program")
    return _document(found[0].outputs["policy"])


def role_policies(deployed: Sequence[DeployedResource], *, aws_managed: bool = True) -> dict[str, list[dict[str, Any]]]:
    """Role ARN -> the identity policy documents the program gave it (inline and attached)."""
    roles = {(r.account, r.outputs["name"]): r.outputs["arn"] for r in deployed if r.type == "aws:iam/role:Role"}
    policies: dict[str, list[dict[str, Any]]] = {arn: [] for arn in roles.values()}
    for resource in deployed:
        if resource.type == "aws:iam/rolePolicy:RolePolicy":
            policies[roles[(resource.account, resource.outputs["role"])]].append(_document(resource.outputs["policy"]))
        elif resource.type == "aws:iam/rolePolicyAttachment:RolePolicyAttachment" and (
            aws_managed or not resource.outputs["policyArn"].startswith("arn:aws:iam::aws:policy/")
        ):
            policies[roles[(resource.account, resource.outputs["role"])]].append(
                _managed_document(resource.outputs["policyArn"], deployed)
            )
    return policies


def _customer_documents(deployed: Sequence[DeployedResource]) -> list[tuple[str, dict[str, Any]]]:
    """Every identity policy document the program wrote (AWS managed ones are AWS's, not ours)."""
    found = [
        (r.name, _document(r.outputs["policy"]))
        for r in deployed
        if r.type in ("aws:iam/rolePolicy:RolePolicy", "aws:iam/policy:Policy")
    ]
    assert found, "the program deployed no identity policies"
    return found


# --- what S3, SNS and DynamoDB do with the caller's permissions (AWS docs) ------------------------


def _encryption(deployed: Sequence[DeployedResource]) -> dict[str, tuple[str, Any]]:
    """Resource (bucket name, topic ARN, table name) -> (service, its KMS key / bucket-key flag)."""
    keys: dict[str, tuple[str, Any]] = {}
    for r in deployed:
        if r.type.startswith("aws:s3/bucketServerSideEncryptionConfiguration"):
            rule = r.outputs["rules"][0]
            default = rule["applyServerSideEncryptionByDefault"]
            if default.get("sseAlgorithm") == "aws:kms" and default.get("kmsMasterKeyId"):
                keys[r.outputs["bucket"]] = ("s3", (default["kmsMasterKeyId"], bool(rule.get("bucketKeyEnabled"))))
        elif r.type == "aws:sns/topic:Topic" and r.outputs.get("kmsMasterKeyId"):
            keys[r.outputs["arn"]] = ("sns", r.outputs["kmsMasterKeyId"])
        elif r.type == "aws:dynamodb/table:Table" and (r.outputs.get("serverSideEncryption") or {}).get("kmsKeyArn"):
            keys[r.outputs["name"]] = ("dynamodb", r.outputs["serverSideEncryption"]["kmsKeyArn"])
    return keys


S3_KEY_USE = {
    "PutObject": ("kms:GenerateDataKey",),
    "CreateMultipartUpload": ("kms:GenerateDataKey",),
    # Multipart uploads to SSE-KMS need Decrypt too: S3 decrypts the data key for each part.
    "UploadPart": ("kms:Decrypt",),
    "CompleteMultipartUpload": ("kms:Decrypt",),
    "GetObject": ("kms:Decrypt",),
    "CopyObject": ("kms:GenerateDataKey",),
}


def key_aliases(deployed: Sequence[DeployedResource]) -> dict[str, tuple[str, ...]]:
    """Key ARN -> the aliases the program gave it (the kms:ResourceAliases of a call using the key)."""
    aliases: dict[str, list[str]] = defaultdict(list)
    for r in deployed:
        if r.type == "aws:kms/alias:Alias":
            aliases[r.outputs["targetKeyId"]].append(r.outputs["name"])
    return {key: tuple(sorted(names)) for key, names in aliases.items()}


def implicit_key_use(
    call: ApiCall, keys: Mapping[str, tuple[str, Any]], aliases: Mapping[str, tuple[str, ...]]
) -> list[Authorization]:
    return [
        Authorization(
            need.action,
            need.resources,
            {**need.context, "kms:RequestAlias": None, "kms:ResourceAliases": aliases.get(need.resources[0], ())},
            implicit=need.implicit,
        )
        for need in _service_key_use(call, keys)
    ]


def _service_key_use(call: ApiCall, keys: Mapping[str, tuple[str, Any]]) -> list[Authorization]:
    if call.service == "s3" and call.api in S3_KEY_USE and call.params.get("Bucket") in keys:
        bucket = call.params["Bucket"]
        key_arn, bucket_key = keys[bucket][1]
        context_arn = f"arn:aws:s3:::{bucket}" if bucket_key else f"arn:aws:s3:::{bucket}/{call.params.get('Key')}"
        region = key_arn.split(":")[3]
        context = {"kms:ViaService": f"s3.{region}.amazonaws.com", "kms:EncryptionContext:aws:s3:arn": context_arn}
        return [
            Authorization(action, (key_arn,), context, implicit=f"SSE-KMS of {bucket}")
            for action in S3_KEY_USE[call.api]
        ]
    if call.operation == "sns:Publish" and call.params.get("TopicArn") in keys:
        key_arn = keys[call.params["TopicArn"]][1]
        context = {"kms:ViaService": f"sns.{call.region}.amazonaws.com"}
        return [
            Authorization(action, (key_arn,), context, implicit="encrypted topic")
            for action in ("kms:GenerateDataKey", "kms:Decrypt")
        ]
    if call.service == "dynamodb":
        tables = {r.rsplit("/", 1)[-1] for need in call.authorizations for r in need.resources}
        return [
            Authorization(
                "kms:Decrypt",
                (keys[table][1],),
                {"kms:ViaService": f"dynamodb.{call.region}.amazonaws.com"},
                implicit="table encrypted with a customer managed key",
            )
            for table in sorted(tables)
            if table in keys
        ]
    return []


def checks(calls: Iterable[ApiCall], deployed: Sequence[DeployedResource]) -> list[Check]:
    keys, aliases = _encryption(deployed), key_aliases(deployed)
    found = []
    for call in calls:
        for need in (*call.authorizations, *implicit_key_use(call, keys, aliases)):
            found.append(Check(call.role_arn, call, need))
    return found


def checked_calls(calls: Iterable[ApiCall]) -> list[ApiCall]:
    return [c for c in calls if not c.simulation_only]


# --- resource policies: what AWS checks besides the caller's identity policy -----------------------


@dataclass(frozen=True)
class ResourcePolicy:
    account: str  # the account the resource is in
    kind: str
    document: dict[str, Any]


def resource_policies(deployed: Sequence[DeployedResource]) -> dict[str, ResourcePolicy]:
    """Resource ARN -> its resource policy: bucket policies, key policies, role trust policies."""
    found: dict[str, ResourcePolicy] = {}
    for r in deployed:
        if r.type == "aws:s3/bucketPolicy:BucketPolicy":
            found[f"arn:aws:s3:::{r.outputs['bucket']}"] = ResourcePolicy(
                r.account, "bucket", _document(r.outputs["policy"])
            )
        elif r.type == "aws:kms/key:Key" and r.outputs.get("policy"):
            found[r.outputs["arn"]] = ResourcePolicy(r.account, "key", _document(r.outputs["policy"]))
        elif r.type == "aws:iam/role:Role":
            found[r.outputs["arn"]] = ResourcePolicy(r.account, "trust", _document(r.outputs["assumeRolePolicy"]))
    return found


def _governing(resource: str, policies: Mapping[str, ResourcePolicy]) -> ResourcePolicy | None:
    if resource.startswith("arn:aws:s3:::"):
        return policies.get("arn:aws:s3:::" + resource.removeprefix("arn:aws:s3:::").split("/", 1)[0])
    if resource.startswith("arn:aws:kms:") and resource not in policies:
        return _key_policy_in_moto(resource)
    return policies.get(resource)


def _key_policy_in_moto(key_arn: str) -> ResourcePolicy | None:
    """A key the program did not create (a workload's CMK, aws/ebs): its policy as the account holds it."""
    from moto.kms.models import kms_backends

    _, _, _, region, account, key = key_arn.split(":", 5)
    try:
        policy = kms_backends[account][region].keys[key.removeprefix("key/")].policy
    except KeyError:
        return None
    return ResourcePolicy(account, "key", _document(policy))


def principal_context(role_arn: str) -> dict[str, Any]:
    account = role_arn.split(":")[4]
    # botocore always uses TLS; the caller's identity is what every request carries.
    return {"aws:PrincipalArn": role_arn, "aws:PrincipalAccount": account, "aws:SecureTransport": "true"}


def resource_policy_failures(check: Check, policies: Mapping[str, ResourcePolicy]) -> list[str]:
    """A call on a resource of another account needs that resource's policy to allow it; a trust
    policy and a key policy must allow it in any account (a key policy through the account root
    statement when the key lets IAM policies decide); an explicit deny of any resource policy wins."""
    caller = check.role_arn.split(":")[4]
    failures = []
    context = {**principal_context(check.role_arn), **check.need.context}
    for resource in check.need.resources:
        policy = _governing(resource, policies)
        if policy is None:
            continue
        if policy.kind == "trust" and not check.need.action.startswith("sts:"):
            # A trust policy decides who may assume the role; iam:PassRole and every other action on a
            # role are decided by the caller's identity policy alone.
            continue
        decision = evaluate_resource_policy(policy.document, check.role_arn, check.need.action, [resource], context)
        must_allow = policy.account != caller or policy.kind in ("trust", "key")
        if decision.denied_by or (must_allow and not decision.allowed):
            why = f"denied by {', '.join(decision.denied_by)}" if decision.denied_by else "no statement allows it"
            failures.append(
                f"{check.call.function}: {check.need.action} on {resource} by {check.role_arn.rsplit('/', 1)[-1]}: "
                f"the {policy.kind} policy ({policy.account}) says no: {why}"
            )
    return failures


def disallowed(
    policies: Mapping[str, Sequence[Mapping[str, Any]]],
    found: Iterable[Check],
    resource_side: Mapping[str, ResourcePolicy] | None = None,
) -> list[str]:
    failures = []
    for check in found:
        if resource_side is not None:
            failures += resource_policy_failures(check, resource_side)
        if check.role_arn not in policies:
            failures.append(
                f"{check.call.function}: {check.need.action} by {check.role_arn}, a role the program did not deploy"
            )
            continue
        decision = evaluate(policies[check.role_arn], check.need.action, check.need.resources, check.need.context)
        if not decision.allowed:
            why = f"denied by {', '.join(decision.denied_by)}" if decision.denied_by else "no statement allows it"
            implicit = f" ({check.need.implicit})" if check.need.implicit else ""
            failures.append(
                f"{check.call.function}: {check.need.action} on {list(check.need.resources) or '?'} "
                f"by {check.role_arn.rsplit('/', 1)[-1]}{implicit}: {why}"
            )
    return sorted(set(failures))


def unused_grants(policies: Mapping[str, Sequence[Mapping[str, Any]]], found: Sequence[Check]) -> list[str]:
    """Allow statement actions of roles that made calls, that no call of that role needed."""
    used: dict[str, set[str]] = defaultdict(set)
    for check in found:
        used[check.role_arn].add(check.need.action)
    unused = []
    for role in sorted(used):
        for policy in policies.get(role, []):
            for statement in policy.get("Statement", []):
                if statement.get("Effect") != "Allow":
                    continue
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                for action in actions:
                    if excepted(role, action):
                        continue
                    if not any(matches(action, needed, ignore_case=True) for needed in used[role]):
                        unused.append(
                            f"{role.rsplit('/', 1)[-1]}: {statement.get('Sid')} allows {action}, never called"
                        )
    return sorted(set(unused))


# --- (a) and (b): the recorded calls against the policies -----------------------------------------


@pytest.fixture(scope="module")
def recorded(world: dict[str, Any]) -> dict[str, Any]:
    deployed = world["cloud"].deployer.deployed
    calls = checked_calls(world["api_calls"])
    return {
        "policies": role_policies(deployed),
        "calls": calls,
        "checks": checks(calls, deployed),
        "deployed": deployed,
        "written": role_policies(deployed, aws_managed=False),
        "resource_policies": resource_policies(deployed),
    }


def test_the_recorder_saw_both_responses_through_the_roles_that_act_on_aws(
    world: dict[str, Any], recorded: dict[str, Any]
) -> None:
    roles = {c.role_arn.rsplit("/", 1)[-1] for c in recorded["calls"]}
    assert {
        "acme-ir-responder-eu-west-1",
        "acme-ir-forensic-automation",
        "acme-ir-lambda-contain",
        "acme-ir-lambda-protect",
        "acme-ir-lambda-open-case",
        "acme-ir-analysis",
    } <= roles, roles
    functions = {c.function for c in world["api_calls"]}
    assert {"acme-ir-contain", "acme-ir-protect", "acme-ir-image-volume"} <= functions, functions
    # Presigned URLs are recorded as calls of their signer: the capture's module download and uploads.
    assert {c.operation for c in recorded["calls"] if c.presigned} == {"s3:GetObject", "s3:PutObject"}
    stand_ins = {c.stand_in for c in world["api_calls"] if c.stand_in}
    assert len(stand_ins) == 3, stand_ins


def test_every_recorded_call_is_allowed_by_its_roles_policies(recorded: dict[str, Any]) -> None:
    failures = disallowed(recorded["policies"], recorded["checks"], recorded["resource_policies"])
    assert not failures, "calls that would fail with AccessDenied on AWS:\n" + "\n".join(failures)
    assumed = sorted(
        {
            f"{c.role_arn.rsplit('/', 1)[-1]} {c.need.action}: {condition}"
            for c in recorded["checks"]
            for condition in evaluate(
                recorded["policies"][c.role_arn], c.need.action, c.need.resources, c.need.context
            ).assumed_conditions
        }
    )
    print(
        "\ncondition-dependent grants (conditions assumed to hold, not evaluated):\n" + ("\n".join(assumed) or "none")
    )


def test_every_allowed_action_is_called_or_a_deliberate_exception(recorded: dict[str, Any]) -> None:
    # AWS managed policies attached for an instance's SSM agent are AWS's; only what we wrote is checked.
    unused = unused_grants(recorded["written"], recorded["checks"])
    assert not unused, "allowed but never called (remove, or add to DELIBERATE_EXCEPTIONS with why):\n" + "\n".join(
        unused
    )


def test_every_deliberate_exception_is_granted_and_really_not_called(recorded: dict[str, Any]) -> None:
    called = {(_short(c.role_arn), c.need.action) for c in recorded["checks"]}
    granted = {
        (_short(role), action)
        for role, documents in recorded["written"].items()
        for policy in documents
        for s in policy.get("Statement", [])
        if s.get("Effect") == "Allow"
        for action in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
    }
    stale = []
    for key in DELIBERATE_EXCEPTIONS:
        role, _, action = key.rpartition(" ")
        holders = {r for r, a in granted if a == action and (not role or r == role)}
        if not holders or any((r, action) in called for r in holders):
            stale.append(key)
    assert not stale, f"exceptions no longer needed (not granted, or called): {stale}"


# --- (c) and (d): the documents themselves ----------------------------------------------------------

# AWS has no resource-level permissions for these (Service Authorization Reference): "*" is the only resource.
NO_RESOURCE_LEVEL_PERMISSIONS: dict[str, str] = {
    "ec2:Describe*": "EC2 Describe actions are not resource-scoped",
    "autoscaling:Describe*": "Auto Scaling Describe actions are not resource-scoped",
    "elasticloadbalancing:Describe*": "ELB Describe actions are not resource-scoped",
    "ssm:DescribeInstanceInformation": "not resource-scoped",
    "ssm:GetCommandInvocation": "not resource-scoped",
    "logs:CreateLogDelivery": "CloudWatch Logs delivery (Step Functions logging) is not resource-scoped",
    "logs:DeleteLogDelivery": "CloudWatch Logs delivery is not resource-scoped",
    "logs:DescribeLogGroups": "CloudWatch Logs delivery is not resource-scoped",
    "logs:DescribeResourcePolicies": "CloudWatch Logs delivery is not resource-scoped",
    "logs:GetLogDelivery": "CloudWatch Logs delivery is not resource-scoped",
    "logs:ListLogDeliveries": "CloudWatch Logs delivery is not resource-scoped",
    "logs:PutResourcePolicy": "CloudWatch Logs delivery is not resource-scoped",
    "logs:UpdateLogDelivery": "CloudWatch Logs delivery is not resource-scoped",
    "xray:GetSamplingRules": "X-Ray is not resource-scoped",
    "xray:GetSamplingTargets": "X-Ray is not resource-scoped",
    "xray:PutTelemetryRecords": "X-Ray is not resource-scoped",
    "xray:PutTraceSegments": "X-Ray is not resource-scoped",
}


def _allow_statements(deployed: Sequence[DeployedResource]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (name, s)
        for name, document in _customer_documents(deployed)
        for s in document.get("Statement", [])
        if s.get("Effect") == "Allow"
    ]


def test_no_policy_allows_every_action(recorded: dict[str, Any]) -> None:
    broad = [
        f"{name}: {s.get('Sid')}"
        for name, s in _allow_statements(recorded["deployed"])
        if "NotAction" in s or any(a == "*" for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]]))
    ]
    assert not broad, broad


def test_resource_star_is_granted_only_where_aws_has_no_resource_level_permissions(recorded: dict[str, Any]) -> None:
    unscoped = []
    for name, statement in _allow_statements(recorded["deployed"]):
        resources = statement.get("Resource", [])
        if "*" not in (resources if isinstance(resources, list) else [resources]):
            continue
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        unscoped += [
            f"{name}: {statement.get('Sid')} {action}"
            for action in actions
            if not any(matches(pattern, action, ignore_case=True) for pattern in NO_RESOURCE_LEVEL_PERMISSIONS)
        ]
    assert not unscoped, "Resource '*' on resource-scoped actions:\n" + "\n".join(unscoped)


# --- the evaluator itself, and that drift fails the check ------------------------------------------

RESPONDER_LIKE = {
    "Version": "2012-10-17",
    "Statement": [
        {"Sid": "DescribeWorkload", "Effect": "Allow", "Action": ["ec2:Describe*"], "Resource": "*"},
        {
            "Sid": "ContainInstance",
            "Effect": "Allow",
            "Action": ["ec2:ModifyNetworkInterfaceAttribute"],
            "Resource": ["arn:aws:ec2:eu-west-1:333333333333:network-interface/*"],
        },
        {
            "Sid": "DeleteOwnSnapshots",
            "Effect": "Allow",
            "Action": ["ec2:DeleteSnapshot"],
            "Resource": "arn:aws:ec2:eu-west-1::snapshot/*",
            "Condition": {"StringEquals": {"aws:ResourceTag/ManagedBy": "irforensics"}},
        },
        {
            "Sid": "PassIsolationRole",
            "Effect": "Allow",
            "Action": ["iam:PassRole"],
            "Resource": "arn:aws:iam::333333333333:role/acme-ir-isolation-*",
            "Condition": {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
        },
        {
            "Sid": "KeepRolesIntact",
            "Effect": "Deny",
            "Action": "iam:PutRolePolicy",
            "Resource": "arn:aws:iam::333333333333:role/acme-ir-*",
        },
        {
            "Sid": "RevokeSessions",
            "Effect": "Allow",
            "Action": "iam:PutRolePolicy",
            "Resource": "arn:aws:iam::333333333333:role/*",
        },
    ],
}
ENI = "arn:aws:ec2:eu-west-1:333333333333:network-interface/eni-0abc"


def test_the_evaluator_allows_what_a_statement_grants_and_denies_everything_else() -> None:
    policies = [RESPONDER_LIKE]
    assert evaluate(policies, "ec2:DescribeInstances", ["*"]).allowed_by == ("DescribeWorkload",)
    assert evaluate(policies, "EC2:describeVolumes", ["*"]).allowed  # action names are case-insensitive
    assert evaluate(policies, "ec2:ModifyNetworkInterfaceAttribute", [ENI]).allowed
    assert not evaluate(
        policies, "ec2:ModifyNetworkInterfaceAttribute", [ENI.replace("333333333333", "444444444444")]
    ).allowed  # another account
    assert not evaluate(policies, "ec2:ModifyInstanceAttribute", [ENI]).allowed  # implicit deny
    assert not evaluate(policies, "ec2:TerminateInstances").allowed


def test_the_evaluator_applies_conditions_it_can_and_reports_those_it_cannot() -> None:
    policies, snapshot = [RESPONDER_LIKE], ["arn:aws:ec2:eu-west-1::snapshot/snap-1"]
    tagged = {"aws:ResourceTag/*": True, "aws:ResourceTag/ManagedBy": "irforensics"}
    owners = {"aws:ResourceTag/*": True, "aws:ResourceTag/Team": "payments"}
    assert evaluate(policies, "ec2:DeleteSnapshot", snapshot, tagged).allowed
    assert not evaluate(policies, "ec2:DeleteSnapshot", snapshot, owners).allowed  # the owner's snapshot
    unknown = evaluate(policies, "ec2:DeleteSnapshot", snapshot)
    assert unknown.allowed and unknown.assumed_conditions == (
        "DeleteOwnSnapshots: StringEquals aws:ResourceTag/ManagedBy",
    )
    isolation = ["arn:aws:iam::333333333333:role/acme-ir-isolation-eu-west-1"]
    assert evaluate(policies, "iam:PassRole", isolation, {"iam:PassedToService": "ec2.amazonaws.com"}).allowed
    assert not evaluate(policies, "iam:PassRole", isolation, {"iam:PassedToService": "lambda.amazonaws.com"}).allowed


def test_an_explicit_deny_wins_over_an_allow() -> None:
    decision = evaluate([RESPONDER_LIKE], "iam:PutRolePolicy", ["arn:aws:iam::333333333333:role/acme-ir-responder"])
    assert not decision.allowed and decision.denied_by == ("KeepRolesIntact",)
    assert evaluate([RESPONDER_LIKE], "iam:PutRolePolicy", ["arn:aws:iam::333333333333:role/web"]).allowed


def test_removing_one_needed_action_from_a_copied_policy_fails_the_check(recorded: dict[str, Any]) -> None:
    responder = next(role for role in recorded["policies"] if role.endswith("/acme-ir-responder-eu-west-1"))
    assert not disallowed(recorded["policies"], recorded["checks"])
    drifted = copy.deepcopy(recorded["policies"])
    for policy in drifted[responder]:
        for statement in policy["Statement"]:
            if "ec2:ModifyNetworkInterfaceAttribute" in statement["Action"]:
                statement["Action"].remove("ec2:ModifyNetworkInterfaceAttribute")
    failures = disallowed(drifted, recorded["checks"])
    assert failures and all("ec2:ModifyNetworkInterfaceAttribute" in f for f in failures)
    assert any(f.startswith("acme-ir-contain: ") for f in failures)


def test_a_call_on_another_accounts_resource_needs_that_resources_policy_too() -> None:
    key = "arn:aws:kms:eu-west-1:222222222222:key/k"
    security_role = "arn:aws:iam::123456789012:role/acme-ir-lambda-image-volume"
    key_policy = {
        "Statement": [
            {
                "Sid": "Root",
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::222222222222:root"},
                "Action": "kms:*",
            },
            {
                "Sid": "ForensicRoleUses",
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::222222222222:role/acme-ir-forensic-automation"},
                "Action": ["kms:Decrypt"],
            },
        ]
    }
    policies = {key: ResourcePolicy("222222222222", "key", key_policy)}
    call = ApiCall(security_role, "123456789012", "eu-west-1", "kms", "kms:Decrypt", "Decrypt", {}, "f")
    cross = Check(security_role, call, Authorization("kms:Decrypt", (key,)))
    # The caller's own policy may allow it; the key in the forensic account does not name the caller.
    assert resource_policy_failures(cross, policies)
    forensic_role = "arn:aws:iam::222222222222:role/acme-ir-forensic-automation"
    assert not resource_policy_failures(Check(forensic_role, call, Authorization("kms:Decrypt", (key,))), policies)
    trust = {
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
                "Action": "sts:AssumeRole",
                "Condition": {"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::123456789012:role/acme-ir-lambda-*"}},
            }
        ]
    }
    responder = "arn:aws:iam::333333333333:role/acme-ir-responder-eu-west-1"
    roles = {responder: ResourcePolicy("333333333333", "trust", trust)}
    assume = Authorization("sts:AssumeRole", (responder,))
    assert not resource_policy_failures(Check(security_role, call, assume), roles)
    outsider = "arn:aws:iam::123456789012:role/someone-else"
    assert resource_policy_failures(Check(outsider, call, assume), roles)
