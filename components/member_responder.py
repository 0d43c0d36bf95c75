"""MemberResponder: what the security account needs inside one member account and region.

A responder role only the security account's Lambda roles can assume, the member CMK that
re-encrypts snapshots so they can be shared with the forensic account, the deny-all isolation
profile, the acquisition profile for memory capture, and the rule forwarding incident-tag
changes to the security account's event bus.

`member_definition` is the one description of all that (policy documents, names, rules, documents);
components.member_template renders it two ways:
- explicit mode, `MemberResponder`: Pulumi resources through the explicit provider of the member
  account (given by __main__.py, one per account); every child inherits it via parent=self, and each
  regional child names `args.region` itself;
- organisation mode, `MemberResponderStackSet`: the template of a service-managed StackSet for the
  organisation's OUs, built from `MemberResponderArgs.for_any_member` (account, region and partition
  are CloudFormation's pseudo parameters), deployed by the security account as delegated administrator.
ARNs are partition-aware: core.arns.partition of the member's region, `${AWS::Partition}` in the template.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components import member_template, naming
from components.member_template import MemberResource, Ref
from components.policies import Statement, allow, deny
from config import MemberTarget, SecurityConfig
from core import arns
from core.containment import revocation
from handlers.common.tags import CASE_TAG, INCIDENT_TAG, MANAGED_BY_TAG, MANAGED_BY_VALUE
from handlers.memory import capture

# The responder role's actions, one list per service, so that a least-privilege check can
# compare them with the calls the handlers really make.
EC2_ACTIONS: tuple[str, ...] = (
    "ec2:DescribeInstances",
    "ec2:DescribeInstanceAttribute",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeSnapshots",
    "ec2:DescribeSnapshotAttribute",
    "ec2:DescribeAddresses",
    "ec2:DescribeIamInstanceProfileAssociations",
    "ec2:DescribeManagedPrefixLists",
    "ec2:DescribeVpcEndpoints",
    "ec2:CreateSecurityGroup",
    "ec2:DeleteSecurityGroup",
    "ec2:AuthorizeSecurityGroupIngress",
    "ec2:AuthorizeSecurityGroupEgress",
    "ec2:RevokeSecurityGroupEgress",
    "ec2:RevokeSecurityGroupIngress",
    "ec2:ModifyNetworkInterfaceAttribute",
    "ec2:ModifyInstanceAttribute",
    "ec2:AssociateIamInstanceProfile",
    "ec2:ReplaceIamInstanceProfileAssociation",
    "ec2:DisassociateAddress",
    "ec2:CreateTags",
    "ec2:DeleteTags",
    "ec2:CreateSnapshots",
    "ec2:CopySnapshot",
    "ec2:ModifySnapshotAttribute",
    "ec2:DeleteSnapshot",
)
IAM_ACTIONS: tuple[str, ...] = (
    "iam:GetInstanceProfile",
    "iam:ListRoleTags",
    "iam:TagRole",
    "iam:AttachRolePolicy",
    "iam:PassRole",
)
AUTOSCALING_ACTIONS: tuple[str, ...] = (
    "autoscaling:DescribeAutoScalingInstances",
    "autoscaling:DetachInstances",
)
ELB_ACTIONS: tuple[str, ...] = (
    "elasticloadbalancing:DescribeTargetGroups",
    "elasticloadbalancing:DescribeTargetHealth",
    "elasticloadbalancing:DeregisterTargets",
)
# What EBS does with the caller's permissions when it re-encrypts a snapshot copy with the member
# key (destination), and, for a volume under a customer managed key, with that key (source).
KMS_ACTIONS: tuple[str, ...] = (
    "kms:ReEncryptTo",
    "kms:ReEncryptFrom",
    "kms:Decrypt",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:DescribeKey",
    "kms:CreateGrant",
)
SSM_ACTIONS: tuple[str, ...] = (
    "ssm:SendCommand",
    "ssm:GetCommandInvocation",
    "ssm:DescribeInstanceInformation",
)
RESPONDER_ACTIONS: tuple[str, ...] = (
    EC2_ACTIONS + IAM_ACTIONS + AUTOSCALING_ACTIONS + ELB_ACTIONS + KMS_ACTIONS + SSM_ACTIONS
)
# What release needs beyond reading: it puts back what containment took away, and nothing else.
RELEASE_ACTIONS: tuple[str, ...] = (
    "ec2:ModifyNetworkInterfaceAttribute",
    "ec2:ModifyInstanceAttribute",
    "ec2:AssociateIamInstanceProfile",
    "ec2:ReplaceIamInstanceProfileAssociation",
    "ec2:DisassociateIamInstanceProfile",
    "ec2:AssociateAddress",
    "ec2:DeleteTags",
    "iam:GetInstanceProfile",
    "iam:ListRoleTags",
    "iam:UntagRole",
    "iam:DetachRolePolicy",
    "iam:PassRole",
    "autoscaling:AttachInstances",
    "elasticloadbalancing:RegisterTargets",
)
# AWS has no resource-level permissions for these: they are the only ones granted on "*".
# DescribeInstanceAttribute and DescribeSnapshotAttribute are resource-scoped (Service Authorization Reference).
RESOURCE_SCOPED_DESCRIBES = frozenset({"ec2:DescribeInstanceAttribute", "ec2:DescribeSnapshotAttribute"})
UNSCOPED_ACTIONS: frozenset[str] = frozenset(
    {
        *(a for a in EC2_ACTIONS if a.startswith("ec2:Describe") and a not in RESOURCE_SCOPED_DESCRIBES),
        "autoscaling:DescribeAutoScalingInstances",
        "elasticloadbalancing:DescribeTargetGroups",
        "elasticloadbalancing:DescribeTargetHealth",
        "ssm:GetCommandInvocation",
        "ssm:DescribeInstanceInformation",
    }
)
SSM_CORE_POLICY = "AmazonSSMManagedInstanceCore"
FORWARDED_TO_SECURITY = "irforensics incident-tag changes, forwarded to the security account"


def _actions(service_actions: tuple[str, ...], *names: str) -> list[str]:
    """The named actions of one service's list; a name not in the list is a programming error."""
    wanted = [f"{service_actions[0].split(':')[0]}:{name}" for name in names]
    unknown = [action for action in wanted if action not in service_actions]
    if unknown:
        raise ValueError(f"{unknown} not in the responder's action list")
    return wanted


def member_tag_change_pattern() -> dict[str, Any]:
    """EC2 tag changes of the incident tag, as the member rule matches them."""
    try:
        from handlers.triggers.patterns import tag_change_pattern
    except ImportError:
        # The trigger package is deployed with the security stack; this is the same pattern.
        return {
            "source": ["aws.tag"],
            "detail-type": ["Tag Change on Resource"],
            "detail": {"service": ["ec2"], "resource-type": ["instance"], "changed-tag-keys": [INCIDENT_TAG]},
        }
    return tag_change_pattern()


@dataclass(frozen=True)
class MemberResponderArgs:
    prefix: str
    account: str  # the member account
    region: str  # the member region
    security_account: str
    security_region: str  # where the security stack's event bus and rules live
    forensic_account: str
    forensic_region: str

    @classmethod
    def from_config(cls, cfg: SecurityConfig, member: MemberTarget) -> MemberResponderArgs:
        return cls._of(cfg, member.account, member.region)

    @classmethod
    def for_any_member(cls, cfg: SecurityConfig) -> MemberResponderArgs:
        """Every account and region of the organisation: the StackSet template's pseudo parameters."""
        return cls._of(cfg, member_template.ACCOUNT, member_template.REGION)

    @classmethod
    def _of(cls, cfg: SecurityConfig, account: str, region: str) -> MemberResponderArgs:
        return cls(
            prefix=cfg.prefix,
            account=account,
            region=region,
            security_account=cfg.security_account,
            security_region=cfg.region,
            forensic_account=cfg.forensic_account,
            forensic_region=cfg.forensic_region,
        )

    @property
    def partition(self) -> str:
        # One deployment lives in one partition: the member's is the security account's.
        if self.region == member_template.REGION:
            return member_template.PARTITION
        return arns.partition(self.region)

    def ec2_arn(self, resource: str) -> str:
        return f"arn:{self.partition}:ec2:{self.region}:{self.account}:{resource}"

    @property
    def snapshot_arns(self) -> str:
        # Snapshot ARNs carry no account id.
        return f"arn:{self.partition}:ec2:{self.region}::snapshot/*"

    def role_arn(self, name: str) -> str:
        return f"arn:{self.partition}:iam::{self.account}:role/{name}"

    def root(self, account: str) -> str:
        return f"arn:{self.partition}:iam::{account}:root"

    @property
    def security_bus_arn(self) -> str:
        return f"arn:{self.partition}:events:{self.security_region}:{self.security_account}:event-bus/default"

    @property
    def evidence_bucket(self) -> str:
        return naming.evidence_bucket(self.prefix, self.forensic_account, self.forensic_region)

    @property
    def revocation_policy_arn(self) -> str:
        return f"arn:{self.partition}:iam::{self.account}:policy/{naming.revocation_policy(self.prefix, self.region)}"

    @property
    def own_documents(self) -> str:
        return (
            f"arn:{self.partition}:ssm:{self.region}:{self.account}:document/{naming.ssm_document_pattern(self.prefix)}"
        )

    @property
    def forwarder_role_name(self) -> str:
        return f"{self.prefix}-ir-forward-{self.region}"

    @property
    def ssm_core_policy_arn(self) -> str:
        return f"arn:{self.partition}:iam::aws:policy/{SSM_CORE_POLICY}"


def _own_roles(args: MemberResponderArgs) -> list[str]:
    return [
        args.role_arn(naming.member_responder_role(args.prefix, args.region)),
        args.role_arn(naming.release_role(args.prefix, args.region)),
        args.role_arn(naming.isolation_profile(args.prefix, args.region)),
        args.role_arn(naming.acquisition_profile(args.prefix, args.region)),
        args.role_arn(args.forwarder_role_name),
    ]


def _revocation_tag_keys() -> dict[str, Any]:
    # Only the slot tags the fixed revocation policy reads; no tag another policy could rely on (ABAC).
    return {"ForAllValues:StringLike": {"aws:TagKeys": [f"{revocation.SLOT_TAG_PREFIX}*"]}}


def responder_statements(args: MemberResponderArgs, key_arn: pulumi.Input[str]) -> list[Statement]:
    """The responder role's policy: every action of the lists above, scoped as tightly as AWS allows."""
    ec2, iam = EC2_ACTIONS, IAM_ACTIONS
    isolation_role = args.role_arn(naming.isolation_profile(args.prefix, args.region))
    acquisition_role = args.role_arn(naming.acquisition_profile(args.prefix, args.region))
    ec2_targets = [
        args.ec2_arn(f"{kind}/*")
        for kind in ("instance", "network-interface", "security-group", "volume", "elastic-ip", "vpc")
    ]
    return [
        allow("DescribeWorkload", sorted(a for a in ec2 if a in UNSCOPED_ACTIONS), "*"),
        allow(
            "DescribeInstanceAndSnapshotAttributes",
            sorted(RESOURCE_SCOPED_DESCRIBES),
            [args.ec2_arn("instance/*"), args.snapshot_arns],
        ),
        allow(
            "IsolationGroups",
            _actions(
                ec2,
                "CreateSecurityGroup",
                "AuthorizeSecurityGroupIngress",
                "AuthorizeSecurityGroupEgress",
                "RevokeSecurityGroupEgress",
                "RevokeSecurityGroupIngress",
            ),
            [
                *(args.ec2_arn(f"{kind}/*") for kind in ("security-group", "security-group-rule", "vpc")),
                # An egress rule naming the region's S3 prefix list (memory capture path) is authorised on it.
                f"arn:{args.partition}:ec2:{args.region}:aws:prefix-list/*",
            ],
        ),
        # The temporary memory-capture group is removed afterwards; only groups this flow made.
        allow(
            "DeleteCaptureGroups",
            _actions(ec2, "DeleteSecurityGroup"),
            args.ec2_arn("security-group/*"),
            {"StringEquals": {f"aws:ResourceTag/{MANAGED_BY_TAG}": MANAGED_BY_VALUE}},
        ),
        allow(
            "ContainInstance",
            _actions(ec2, "ModifyNetworkInterfaceAttribute", "ModifyInstanceAttribute", "DisassociateAddress"),
            ec2_targets,
        ),
        # The profile swap can only put one of the two profiles this stack made (PassRole below).
        allow(
            "SwapInProfile",
            _actions(ec2, "AssociateIamInstanceProfile", "ReplaceIamInstanceProfileAssociation"),
            args.ec2_arn("instance/*"),
        ),
        allow("TagCaseResources", _actions(ec2, "CreateTags", "DeleteTags"), [*ec2_targets, args.snapshot_arns]),
        allow(
            "SnapshotVolumes",
            _actions(ec2, "CreateSnapshots", "CopySnapshot"),
            [args.ec2_arn("instance/*"), args.ec2_arn("volume/*"), args.snapshot_arns],
        ),
        # Sharing only with the forensic account, never with `all` (public) or anyone else.
        allow(
            "ShareSnapshotsWithForensicAccount",
            _actions(ec2, "ModifySnapshotAttribute"),
            args.snapshot_arns,
            {
                "StringEquals": {"ec2:Add/userId": args.forensic_account},
                "Null": {"ec2:Add/group": "true", "ec2:Remove/group": "true"},
            },
        ),
        # Cleanup may remove only the intermediate snapshots the flow made, never the owner's.
        allow(
            "DeleteOwnSnapshots",
            _actions(ec2, "DeleteSnapshot"),
            args.snapshot_arns,
            {"StringEquals": {f"aws:ResourceTag/{MANAGED_BY_TAG}": MANAGED_BY_VALUE}},
        ),
        allow(
            "ReadInstanceRoles",
            _actions(iam, "GetInstanceProfile", "ListRoleTags"),
            [
                f"arn:{args.partition}:iam::{args.account}:instance-profile/*",
                f"arn:{args.partition}:iam::{args.account}:role/*",
            ],
        ),
        # Revoking what the instance's role already issued: the one fixed deny-only policy
        # (core/containment/revocation.py), and the slot tag naming the instance. Nothing written
        # at run time can allow anything (SECURITY.md "Revocation").
        allow(
            "RevokeInstanceRoleSessions",
            _actions(iam, "AttachRolePolicy"),
            f"arn:{args.partition}:iam::{args.account}:role/*",
            {"ArnEquals": {"iam:PolicyARN": args.revocation_policy_arn}},
        ),
        allow(
            "NameRevokedInstance",
            _actions(iam, "TagRole"),
            f"arn:{args.partition}:iam::{args.account}:role/*",
            _revocation_tag_keys(),
        ),
        deny("KeepResponderRolesIntact", _actions(iam, "AttachRolePolicy", "TagRole"), _own_roles(args)),
        allow(
            "PassIsolationRoles",
            _actions(iam, "PassRole"),
            [isolation_role, acquisition_role],
            {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
        ),
        allow("DescribeAutoScaling", sorted(a for a in AUTOSCALING_ACTIONS if a in UNSCOPED_ACTIONS), "*"),
        allow(
            "HoldInstanceInGroup",
            _actions(AUTOSCALING_ACTIONS, "DetachInstances"),
            f"arn:{args.partition}:autoscaling:{args.region}:{args.account}:autoScalingGroup:*:autoScalingGroupName/*",
        ),
        allow("DescribeTargets", sorted(a for a in ELB_ACTIONS if a in UNSCOPED_ACTIONS), "*"),
        allow(
            "DeregisterFromTargetGroups",
            _actions(ELB_ACTIONS, "DeregisterTargets"),
            f"arn:{args.partition}:elasticloadbalancing:{args.region}:{args.account}:targetgroup/*/*",
        ),
        allow(
            "UseMemberKey",
            _actions(KMS_ACTIONS, "ReEncryptTo", "GenerateDataKeyWithoutPlaintext", "DescribeKey"),
            key_arn,
        ),
        allow(
            "GrantMemberKeyToEbs",
            _actions(KMS_ACTIONS, "CreateGrant"),
            key_arn,
            {"Bool": {"kms:GrantIsForAWSResource": "true"}},
        ),
        # Handlers find the key by alias; DescribeKey through an alias is authorised on the key.
        allow(
            "FindMemberKeyByAlias",
            _actions(KMS_ACTIONS, "DescribeKey"),
            f"arn:{args.partition}:kms:{args.region}:{args.account}:key/*",
            {"StringEquals": {"kms:RequestAlias": naming.member_ebs_key_alias(args.prefix)}},
        ),
        # A volume under a customer managed key of this account: EBS decrypts it with the
        # responder's permissions when CopySnapshot re-encrypts the copy with the member key.
        # Only through EC2 in this region, only for this account's keys (the key policy must
        # also let the account's IAM policies grant it, as the default key policy does).
        allow(
            "ReadSourceVolumeKeysThroughEbs",
            _actions(KMS_ACTIONS, "Decrypt", "ReEncryptFrom", "DescribeKey"),
            f"arn:{args.partition}:kms:{args.region}:{args.account}:key/*",
            {
                "StringEquals": {
                    "kms:ViaService": f"ec2.{args.region}.amazonaws.com",
                    "kms:CallerAccount": args.account,
                }
            },
        ),
        allow(
            "GrantSourceVolumeKeysToEbs",
            _actions(KMS_ACTIONS, "CreateGrant"),
            f"arn:{args.partition}:kms:{args.region}:{args.account}:key/*",
            {
                "StringEquals": {
                    "kms:ViaService": f"ec2.{args.region}.amazonaws.com",
                    "kms:CallerAccount": args.account,
                },
                "Bool": {"kms:GrantIsForAWSResource": "true"},
            },
        ),
        # Only the stacks' own Command documents (fixed scripts, parameters bound by allowedPattern);
        # never AWS-RunShellScript or any other document that runs what the caller writes.
        allow(
            "CaptureMemory",
            _actions(SSM_ACTIONS, "SendCommand"),
            [args.ec2_arn("instance/*"), args.own_documents],
        ),
        allow("FollowMemoryCapture", sorted(a for a in SSM_ACTIONS if a in UNSCOPED_ACTIONS), "*"),
    ]


def release_statements(args: MemberResponderArgs) -> list[Statement]:
    """The release role: put back what containment took away, on contained instances only."""
    profile_name = naming.isolation_profile(args.prefix, args.region)
    isolation_profile = f"arn:{args.partition}:iam::{args.account}:instance-profile/{profile_name}"
    contained = {"ArnEquals": {"ec2:InstanceProfile": isolation_profile}}
    release = RELEASE_ACTIONS
    ec2_targets = [
        args.ec2_arn(f"{kind}/*") for kind in ("instance", "network-interface", "security-group", "elastic-ip")
    ]
    return [
        allow(
            "DescribeWorkload",
            sorted({a for a in UNSCOPED_ACTIONS if a.startswith(("ec2:", "autoscaling:", "elasticloadbalancing:"))}),
            "*",
        ),
        allow("DescribeInstanceAttributes", ["ec2:DescribeInstanceAttribute"], args.ec2_arn("instance/*")),
        allow(
            "RestoreNetworkAndProtection",
            [
                a
                for a in release
                if a in ("ec2:ModifyNetworkInterfaceAttribute", "ec2:ModifyInstanceAttribute", "ec2:AssociateAddress")
            ],
            ec2_targets,
        ),
        allow("RemoveIncidentTags", ["ec2:DeleteTags"], args.ec2_arn("instance/*")),
        # The original profile replaces only the isolation profile: release cannot touch an instance
        # that is not contained, whatever role it may pass.
        allow(
            "RestoreOriginalProfile",
            ["ec2:DisassociateIamInstanceProfile", "ec2:ReplaceIamInstanceProfileAssociation"],
            args.ec2_arn("instance/*"),
            contained,
        ),
        # An instance that had its profile taken away entirely: only one still under a case.
        allow(
            "ReattachOriginalProfile",
            ["ec2:AssociateIamInstanceProfile"],
            args.ec2_arn("instance/*"),
            {"Null": {f"aws:ResourceTag/{CASE_TAG}": "false"}},
        ),
        # The original role is only known during the incident: any role of this account, to EC2 only.
        allow(
            "PassOriginalRoleBack",
            ["iam:PassRole"],
            f"arn:{args.partition}:iam::{args.account}:role/*",
            {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
        ),
        allow(
            "ReadInstanceRoles",
            ["iam:GetInstanceProfile", "iam:ListRoleTags"],
            [
                f"arn:{args.partition}:iam::{args.account}:instance-profile/*",
                f"arn:{args.partition}:iam::{args.account}:role/*",
            ],
        ),
        allow(
            "EndSessionRevocation",
            ["iam:DetachRolePolicy"],
            f"arn:{args.partition}:iam::{args.account}:role/*",
            {"ArnEquals": {"iam:PolicyARN": args.revocation_policy_arn}},
        ),
        allow(
            "FreeRevocationSlot",
            ["iam:UntagRole"],
            f"arn:{args.partition}:iam::{args.account}:role/*",
            _revocation_tag_keys(),
        ),
        deny("KeepResponderRolesIntact", ["iam:DetachRolePolicy", "iam:UntagRole"], _own_roles(args)),
        allow(
            "ReturnInstanceToGroup",
            ["autoscaling:AttachInstances"],
            f"arn:{args.partition}:autoscaling:{args.region}:{args.account}:autoScalingGroup:*:autoScalingGroupName/*",
        ),
        allow(
            "RegisterWithTargetGroups",
            ["elasticloadbalancing:RegisterTargets"],
            f"arn:{args.partition}:elasticloadbalancing:{args.region}:{args.account}:targetgroup/*/*",
        ),
    ]


def member_key_policy(args: MemberResponderArgs, responder_role_arn: Any) -> list[Statement]:
    forensic_root = {"AWS": args.root(args.forensic_account)}
    return [
        {
            "Sid": "AccountAdministers",
            "Effect": "Allow",
            "Principal": {"AWS": args.root(args.account)},
            "Action": "kms:*",
            "Resource": "*",
        },
        {
            "Sid": "ResponderUsesKey",
            "Effect": "Allow",
            "Principal": {"AWS": responder_role_arn},
            "Action": _actions(KMS_ACTIONS, "ReEncryptTo", "GenerateDataKeyWithoutPlaintext", "DescribeKey"),
            "Resource": "*",
        },
        {
            "Sid": "ResponderGrantsToEbs",
            "Effect": "Allow",
            "Principal": {"AWS": responder_role_arn},
            "Action": "kms:CreateGrant",
            "Resource": "*",
            "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}},
        },
        # Copying a shared encrypted snapshot needs the source key in the destination account.
        {
            "Sid": "ForensicCopiesSharedSnapshots",
            "Effect": "Allow",
            "Principal": forensic_root,
            "Action": ["kms:Decrypt", "kms:DescribeKey", "kms:ReEncryptFrom"],
            "Resource": "*",
        },
        {
            "Sid": "ForensicGrantsToEbs",
            "Effect": "Allow",
            "Principal": forensic_root,
            "Action": "kms:CreateGrant",
            "Resource": "*",
            "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}},
        },
    ]


def _document(statements: list[Statement]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": statements}


def _service_trust(service: str) -> dict[str, Any]:
    return _document(
        [{"Sid": "ServiceAssumes", "Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"Service": [service]}}]
    )


def _security_trust(args: MemberResponderArgs, principal_arn_pattern: str) -> dict[str, Any]:
    """Trust the security account's principals, narrowed to the roles whose ARN matches the pattern."""
    return _document(
        [
            {
                "Sid": "SecurityAutomationAssumes",
                "Effect": "Allow",
                "Action": "sts:AssumeRole",
                "Principal": {"AWS": args.root(args.security_account)},
                "Condition": {"ArnLike": {"aws:PrincipalArn": principal_arn_pattern}},
            }
        ]
    )


def member_definition(args: MemberResponderArgs) -> list[MemberResource]:
    """Everything one member account and region gets, in creation order: the one source of both renderings."""
    security_roles = f"arn:{args.partition}:iam::{args.security_account}:role/"
    isolation_name = naming.isolation_profile(args.prefix, args.region)
    acquisition_name = naming.acquisition_profile(args.prefix, args.region)
    key_arn = member_template.arn_of("MemberKey")
    return [
        MemberResource(
            "ResponderRole",
            "responder",
            member_template.ROLE,
            {
                "name": naming.member_responder_role(args.prefix, args.region),
                "description": "Assumed by the irforensics Lambdas of the security account to respond to incidents",
                "trust": _security_trust(args, f"{security_roles}{args.prefix}-ir-lambda-*"),
                "max_session_duration": 3600,
            },
        ),
        MemberResource(
            "MemberKey",
            "ebs-key",
            member_template.KEY,
            {
                "description": "irforensics: re-encrypts evidence snapshots for sharing",
                "rotation": True,
                "deletion_window_days": 30,
                "policy": _document(member_key_policy(args, member_template.arn_of("ResponderRole"))),
            },
        ),
        MemberResource(
            "MemberKeyAlias",
            "ebs-key-alias",
            member_template.ALIAS,
            {"name": naming.member_ebs_key_alias(args.prefix), "target": key_arn},
        ),
        MemberResource(
            "ResponderPolicy",
            "responder-policy",
            member_template.ROLE_POLICY,
            {
                "role": Ref("ResponderRole"),
                "policy_name": "responder",
                "document": _document(responder_statements(args, key_arn)),
            },
        ),
        MemberResource(
            "IsolationRole",
            "isolation",
            member_template.ROLE,
            {
                "name": isolation_name,
                "description": "Deny-all role of a contained instance",
                "trust": _service_trust("ec2.amazonaws.com"),
            },
        ),
        # An explicit deny wins over anything attached later: a contained instance gets nothing.
        MemberResource(
            "IsolationDenyPolicy",
            "isolation-deny",
            member_template.ROLE_POLICY,
            {
                "role": Ref("IsolationRole"),
                "policy_name": "deny-everything",
                "document": _document([deny("DenyEverything", "*", "*")]),
            },
        ),
        MemberResource(
            "IsolationProfile",
            "isolation-profile",
            member_template.PROFILE,
            {"name": isolation_name, "role": Ref("IsolationRole")},
        ),
        # Fixed at deployment and deny-only: containment attaches it to an instance's role and names
        # the instance in a role tag, so no run-time policy text exists (core/containment/revocation.py).
        MemberResource(
            "RevocationPolicy",
            "revocation",
            member_template.MANAGED_POLICY,
            {
                "name": naming.revocation_policy(args.prefix, args.region),
                "description": "irforensics: denies the sessions a contained instance's role issued to that instance",
                "document": revocation.revocation_document(),
            },
        ),
        MemberResource(
            "ReleaseRole",
            "release",
            member_template.ROLE,
            {
                "name": naming.release_role(args.prefix, args.region),
                "description": "Assumed only by the irforensics release Lambda: restores a contained instance",
                "trust": _security_trust(args, f"{security_roles}{naming.release_lambda_role(args.prefix)}"),
                "max_session_duration": 3600,
            },
        ),
        MemberResource(
            "ReleasePolicy",
            "release-policy",
            member_template.ROLE_POLICY,
            {"role": Ref("ReleaseRole"), "policy_name": "release", "document": _document(release_statements(args))},
        ),
        MemberResource(
            "AcquisitionRole",
            "acquisition",
            member_template.ROLE,
            {
                "name": acquisition_name,
                "description": "Role of an instance during memory capture: SSM and writing its memory image",
                "trust": _service_trust("ec2.amazonaws.com"),
            },
        ),
        MemberResource(
            "AcquisitionSsmCore",
            "acquisition-ssm",
            member_template.ATTACHMENT,
            {"role": Ref("AcquisitionRole"), "policy_arn": args.ssm_core_policy_arn},
        ),
        # No S3 or KMS grant: the evidence bucket and key admit no member principal, so such a grant
        # would be dead; the capture writes through pre-signed URLs of the security account.
        MemberResource(
            "AcquisitionProfile",
            "acquisition-profile",
            member_template.PROFILE,
            {"name": acquisition_name, "role": Ref("AcquisitionRole")},
        ),
        # The only commands the responder may send (CaptureMemory scopes SendCommand to document/<prefix>-ir-*):
        # fixed text, parameters held to allowedPattern; never AWS-RunShellScript.
        *(
            MemberResource(
                logical_id,
                suffix,
                member_template.DOCUMENT,
                {"name": capture.document_name(args.prefix, purpose), "document_type": "Command", "content": content},
            )
            for logical_id, suffix, purpose, content in (
                (
                    "MemoryCaptureDocument",
                    "memory-capture-document",
                    capture.CAPTURE_DOCUMENT_SUFFIX,
                    capture.capture_document(),
                ),
                (
                    "KernelDiscoveryDocument",
                    "kernel-discovery-document",
                    capture.DISCOVERY_DOCUMENT_SUFFIX,
                    capture.discovery_document(),
                ),
            )
        ),
        MemberResource(
            "ForwarderRole",
            "forwarder",
            member_template.ROLE,
            {
                "name": args.forwarder_role_name,
                "description": "Lets EventBridge forward incident-tag changes to the security account",
                "trust": _service_trust("events.amazonaws.com"),
            },
        ),
        MemberResource(
            "ForwarderPolicy",
            "forwarder-policy",
            member_template.ROLE_POLICY,
            {
                "role": Ref("ForwarderRole"),
                "policy_name": "forward-to-security-bus",
                "document": _document([allow("ForwardToSecurityBus", ["events:PutEvents"], args.security_bus_arn)]),
            },
        ),
        MemberResource(
            "TagRule",
            "tag-rule",
            member_template.RULE,
            {
                "name": f"{args.prefix}-ir-incident-tag",
                "description": FORWARDED_TO_SECURITY,
                "pattern": member_tag_change_pattern(),
            },
        ),
        MemberResource(
            "TagForward",
            "tag-forward",
            member_template.TARGET,
            {
                "rule": Ref("TagRule"),
                "target_id": "security-account-bus",
                "arn": args.security_bus_arn,
                "role_arn": member_template.arn_of("ForwarderRole"),
            },
        ),
    ]


MANAGED_TAGS = {MANAGED_BY_TAG: MANAGED_BY_VALUE}


class MemberResponder(pulumi.ComponentResource):
    """Explicit mode: the member definition as Pulumi resources through the member account's provider."""

    role: aws.iam.Role
    release_role: aws.iam.Role
    revocation_policy: aws.iam.Policy
    key: aws.kms.Key
    isolation_profile: aws.iam.InstanceProfile
    acquisition_profile: aws.iam.InstanceProfile
    capture_document: aws.ssm.Document
    discovery_document: aws.ssm.Document
    tag_rule: aws.cloudwatch.EventRule

    def __init__(self, name: str, args: MemberResponderArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("irforensics:member:MemberResponder", name, None, opts)
        created: dict[str, Any] = member_template.render_pulumi(
            name, member_definition(args), region=args.region, tags=MANAGED_TAGS, parent=self
        )
        self.role = created["ResponderRole"]
        self.release_role = created["ReleaseRole"]
        self.revocation_policy = created["RevocationPolicy"]
        self.key = created["MemberKey"]
        self.isolation_profile = created["IsolationProfile"]
        self.acquisition_profile = created["AcquisitionProfile"]
        self.capture_document = created["MemoryCaptureDocument"]
        self.discovery_document = created["KernelDiscoveryDocument"]
        self.tag_rule = created["TagRule"]
        self.register_outputs(
            {
                "responder_role_arn": self.role.arn,
                "release_role_arn": self.release_role.arn,
                "key_arn": self.key.arn,
                "isolation_profile_name": self.isolation_profile.name,
                "acquisition_profile_name": self.acquisition_profile.name,
                "capture_document_name": self.capture_document.name,
                "discovery_document_name": self.discovery_document.name,
            }
        )


# --- organisation mode ----------------------------------------------------------------------------
STACK_SET_DESCRIPTION = "irforensics member responder: lets the security account respond to incidents here"


def stack_set_name(prefix: str) -> str:
    return f"{prefix}-ir-member-responders"


def member_stack_set_template(cfg: SecurityConfig) -> dict[str, Any]:
    """The StackSet's template: the same definition for any account and region of the organisation."""
    return member_template.render_template(
        member_definition(MemberResponderArgs.for_any_member(cfg)), description=STACK_SET_DESCRIPTION, tags=MANAGED_TAGS
    )


@dataclass(frozen=True)
class MemberStackSetArgs:
    prefix: str
    template: dict[str, Any]
    organizational_units: tuple[str, ...]
    regions: tuple[str, ...]

    @classmethod
    def from_config(cls, cfg: SecurityConfig) -> MemberStackSetArgs:
        return cls(
            prefix=cfg.prefix,
            template=member_stack_set_template(cfg),
            organizational_units=cfg.member_organizational_units,
            regions=cfg.member_regions,
        )


# Many accounts at once, and a few failures (an account whose SCPs refuse IAM, say) must not stop the
# rest: regions in parallel, a quarter of the accounts at a time, up to a tenth of them failing.
OPERATION_PREFERENCES: Any = {
    "failure_tolerance_percentage": 10,
    "max_concurrent_percentage": 25,
    "region_concurrency_type": "PARALLEL",
}


class MemberResponderStackSet(pulumi.ComponentResource):
    """Organisation mode: the member definition as a service-managed StackSet, one instance per region.

    Auto-deployment gives every account that joins one of the OUs its responders with no `pulumi up`;
    an account that leaves them loses its responders (retain_stacks_on_account_removal=False, see
    docs/organisation.md). The security account deploys it as the organisation's delegated administrator.
    """

    stack_set: aws.cloudformation.StackSet
    instances: list[aws.cloudformation.StackSetInstance]

    def __init__(self, name: str, args: MemberStackSetArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("irforensics:member:MemberResponderStackSet", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.stack_set = aws.cloudformation.StackSet(
            name,
            name=stack_set_name(args.prefix),
            description=STACK_SET_DESCRIPTION,
            permission_model="SERVICE_MANAGED",
            auto_deployment={"enabled": True, "retain_stacks_on_account_removal": False},
            capabilities=["CAPABILITY_NAMED_IAM"],
            call_as="DELEGATED_ADMIN",
            # CloudFormation queues operations instead of refusing one while another runs (an account
            # joining an OU during an update, say).
            managed_execution={"active": True},
            operation_preferences=OPERATION_PREFERENCES,
            template_body=json.dumps(args.template, sort_keys=True),
            tags=MANAGED_TAGS,
            opts=child,
        )
        self.instances = [
            aws.cloudformation.StackSetInstance(
                f"{name}-{region}",
                stack_set_name=self.stack_set.name,
                stack_set_instance_region=region,
                deployment_targets={"organizational_unit_ids": list(args.organizational_units)},
                call_as="DELEGATED_ADMIN",
                operation_preferences=OPERATION_PREFERENCES,
                # Removing the instance (a region dropped from config) removes the responders there too.
                retain_stack=False,
                opts=child,
            )
            for region in args.regions
        ]
        self.register_outputs({"stack_set_name": self.stack_set.name, "stack_set_regions": list(args.regions)})
