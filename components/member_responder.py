"""MemberResponder: what the security account needs inside one member account and region.

A responder role only the security account's Lambda roles can assume, the member CMK that
re-encrypts snapshots so they can be shared with the forensic account, the deny-all isolation
profile, the acquisition profile for memory capture, and the rule forwarding incident-tag
changes to the security account's event bus. Deployed through the explicit provider of the
member account (given by __main__.py, one per account); every child inherits it via parent=self,
and each regional child names `args.region` itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components import naming
from components.policies import Statement, allow, cross_account_trust, deny, policy_document, service_trust
from config import MemberTarget, SecurityConfig
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
SSM_CORE_POLICY_ARN = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
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
        return cls(
            prefix=cfg.prefix,
            account=member.account,
            region=member.region,
            security_account=cfg.security_account,
            security_region=cfg.region,
            forensic_account=cfg.forensic_account,
            forensic_region=cfg.forensic_region,
        )

    def ec2_arn(self, resource: str) -> str:
        return f"arn:aws:ec2:{self.region}:{self.account}:{resource}"

    @property
    def snapshot_arns(self) -> str:
        # Snapshot ARNs carry no account id.
        return f"arn:aws:ec2:{self.region}::snapshot/*"

    def role_arn(self, name: str) -> str:
        return f"arn:aws:iam::{self.account}:role/{name}"

    @property
    def security_bus_arn(self) -> str:
        return f"arn:aws:events:{self.security_region}:{self.security_account}:event-bus/default"

    @property
    def evidence_bucket(self) -> str:
        return naming.evidence_bucket(self.prefix, self.forensic_account, self.forensic_region)

    @property
    def revocation_policy_arn(self) -> str:
        return f"arn:aws:iam::{self.account}:policy/{naming.revocation_policy(self.prefix, self.region)}"

    @property
    def own_documents(self) -> str:
        return f"arn:aws:ssm:{self.region}:{self.account}:document/{naming.ssm_document_pattern(self.prefix)}"

    @property
    def forwarder_role_name(self) -> str:
        return f"{self.prefix}-ir-forward-{self.region}"


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
                f"arn:aws:ec2:{args.region}:aws:prefix-list/*",
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
            [f"arn:aws:iam::{args.account}:instance-profile/*", f"arn:aws:iam::{args.account}:role/*"],
        ),
        # Revoking what the instance's role already issued: the one fixed deny-only policy
        # (core/containment/revocation.py), and the slot tag naming the instance. Nothing written
        # at run time can allow anything (SECURITY.md "Revocation").
        allow(
            "RevokeInstanceRoleSessions",
            _actions(iam, "AttachRolePolicy"),
            f"arn:aws:iam::{args.account}:role/*",
            {"ArnEquals": {"iam:PolicyARN": args.revocation_policy_arn}},
        ),
        allow(
            "NameRevokedInstance",
            _actions(iam, "TagRole"),
            f"arn:aws:iam::{args.account}:role/*",
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
            f"arn:aws:autoscaling:{args.region}:{args.account}:autoScalingGroup:*:autoScalingGroupName/*",
        ),
        allow("DescribeTargets", sorted(a for a in ELB_ACTIONS if a in UNSCOPED_ACTIONS), "*"),
        allow(
            "DeregisterFromTargetGroups",
            _actions(ELB_ACTIONS, "DeregisterTargets"),
            f"arn:aws:elasticloadbalancing:{args.region}:{args.account}:targetgroup/*/*",
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
            f"arn:aws:kms:{args.region}:{args.account}:key/*",
            {"StringEquals": {"kms:RequestAlias": naming.member_ebs_key_alias(args.prefix)}},
        ),
        # A volume under a customer managed key of this account: EBS decrypts it with the
        # responder's permissions when CopySnapshot re-encrypts the copy with the member key.
        # Only through EC2 in this region, only for this account's keys (the key policy must
        # also let the account's IAM policies grant it, as the default key policy does).
        allow(
            "ReadSourceVolumeKeysThroughEbs",
            _actions(KMS_ACTIONS, "Decrypt", "ReEncryptFrom", "DescribeKey"),
            f"arn:aws:kms:{args.region}:{args.account}:key/*",
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
            f"arn:aws:kms:{args.region}:{args.account}:key/*",
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
    isolation_profile = (
        f"arn:aws:iam::{args.account}:instance-profile/{naming.isolation_profile(args.prefix, args.region)}"
    )
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
            f"arn:aws:iam::{args.account}:role/*",
            {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
        ),
        allow(
            "ReadInstanceRoles",
            ["iam:GetInstanceProfile", "iam:ListRoleTags"],
            [f"arn:aws:iam::{args.account}:instance-profile/*", f"arn:aws:iam::{args.account}:role/*"],
        ),
        allow(
            "EndSessionRevocation",
            ["iam:DetachRolePolicy"],
            f"arn:aws:iam::{args.account}:role/*",
            {"ArnEquals": {"iam:PolicyARN": args.revocation_policy_arn}},
        ),
        allow("FreeRevocationSlot", ["iam:UntagRole"], f"arn:aws:iam::{args.account}:role/*", _revocation_tag_keys()),
        deny("KeepResponderRolesIntact", ["iam:DetachRolePolicy", "iam:UntagRole"], _own_roles(args)),
        allow(
            "ReturnInstanceToGroup",
            ["autoscaling:AttachInstances"],
            f"arn:aws:autoscaling:{args.region}:{args.account}:autoScalingGroup:*:autoScalingGroupName/*",
        ),
        allow(
            "RegisterWithTargetGroups",
            ["elasticloadbalancing:RegisterTargets"],
            f"arn:aws:elasticloadbalancing:{args.region}:{args.account}:targetgroup/*/*",
        ),
    ]


def member_key_policy(args: MemberResponderArgs, responder_role_arn: pulumi.Input[str]) -> pulumi.Output[str]:
    root = f"arn:aws:iam::{args.account}:root"
    return policy_document(
        [
            {
                "Sid": "AccountAdministers",
                "Effect": "Allow",
                "Principal": {"AWS": root},
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
                "Principal": {"AWS": f"arn:aws:iam::{args.forensic_account}:root"},
                "Action": ["kms:Decrypt", "kms:DescribeKey", "kms:ReEncryptFrom"],
                "Resource": "*",
            },
            {
                "Sid": "ForensicGrantsToEbs",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{args.forensic_account}:root"},
                "Action": "kms:CreateGrant",
                "Resource": "*",
                "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}},
            },
        ]
    )


class MemberResponder(pulumi.ComponentResource):
    role: aws.iam.Role
    release_role: aws.iam.Role
    revocation_policy: aws.iam.Policy
    key: aws.kms.Key
    isolation_profile: aws.iam.InstanceProfile
    acquisition_profile: aws.iam.InstanceProfile
    tag_rule: aws.cloudwatch.EventRule

    def __init__(self, name: str, args: MemberResponderArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("irforensics:member:MemberResponder", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = {MANAGED_BY_TAG: MANAGED_BY_VALUE}

        self.role = aws.iam.Role(
            f"{name}-responder",
            name=naming.member_responder_role(args.prefix, args.region),
            description="Assumed by the irforensics Lambdas of the security account to respond to incidents",
            assume_role_policy=cross_account_trust(
                args.security_account, naming.lambda_role_pattern(args.prefix, args.security_account)
            ),
            max_session_duration=3600,
            tags=tags,
            opts=child,
        )

        self.key = aws.kms.Key(
            f"{name}-ebs-key",
            description="irforensics: re-encrypts evidence snapshots for sharing",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            policy=member_key_policy(args, self.role.arn),
            tags=tags,
            region=args.region,
            opts=child,
        )
        aws.kms.Alias(
            f"{name}-ebs-key-alias",
            name=naming.member_ebs_key_alias(args.prefix),
            target_key_id=self.key.arn,
            region=args.region,
            opts=child,
        )

        aws.iam.RolePolicy(
            f"{name}-responder-policy",
            role=self.role.id,
            policy=policy_document(responder_statements(args, self.key.arn)),
            opts=child,
        )

        isolation_name = naming.isolation_profile(args.prefix, args.region)
        isolation_role = aws.iam.Role(
            f"{name}-isolation",
            name=isolation_name,
            description="Deny-all role of a contained instance",
            assume_role_policy=service_trust("ec2.amazonaws.com"),
            tags=tags,
            opts=child,
        )
        # An explicit deny wins over anything attached later: a contained instance gets nothing.
        aws.iam.RolePolicy(
            f"{name}-isolation-deny",
            role=isolation_role.id,
            policy=policy_document([deny("DenyEverything", "*", "*")]),
            opts=child,
        )
        self.isolation_profile = aws.iam.InstanceProfile(
            f"{name}-isolation-profile", name=isolation_name, role=isolation_role.name, tags=tags, opts=child
        )

        # Fixed at deployment and deny-only: containment attaches it to an instance's role and names
        # the instance in a role tag, so no run-time policy text exists (core/containment/revocation.py).
        self.revocation_policy = aws.iam.Policy(
            f"{name}-revocation",
            name=naming.revocation_policy(args.prefix, args.region),
            description="irforensics: denies the sessions a contained instance's role issued to that instance",
            policy=json.dumps(revocation.revocation_document()),
            tags=tags,
            opts=child,
        )

        self.release_role = aws.iam.Role(
            f"{name}-release",
            name=naming.release_role(args.prefix, args.region),
            description="Assumed only by the irforensics release Lambda: restores a contained instance",
            assume_role_policy=cross_account_trust(
                args.security_account,
                f"arn:aws:iam::{args.security_account}:role/{naming.release_lambda_role(args.prefix)}",
            ),
            max_session_duration=3600,
            tags=tags,
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-release-policy",
            role=self.release_role.id,
            policy=policy_document(release_statements(args)),
            opts=child,
        )

        acquisition_name = naming.acquisition_profile(args.prefix, args.region)
        acquisition_role = aws.iam.Role(
            f"{name}-acquisition",
            name=acquisition_name,
            description="Role of an instance during memory capture: SSM and writing its memory image",
            assume_role_policy=service_trust("ec2.amazonaws.com"),
            tags=tags,
            opts=child,
        )
        aws.iam.RolePolicyAttachment(
            f"{name}-acquisition-ssm", role=acquisition_role.name, policy_arn=SSM_CORE_POLICY_ARN, opts=child
        )
        # No S3 or KMS grant: the evidence bucket and key admit no member principal, so such a grant
        # would be dead; the capture writes through pre-signed URLs of the security account.
        self.acquisition_profile = aws.iam.InstanceProfile(
            f"{name}-acquisition-profile", name=acquisition_name, role=acquisition_role.name, tags=tags, opts=child
        )

        # The only commands the responder may send (CaptureMemory scopes SendCommand to document/<prefix>-ir-*):
        # fixed text created here, parameters held to allowedPattern; never AWS-RunShellScript.
        self.capture_document = aws.ssm.Document(
            f"{name}-memory-capture-document",
            name=capture.document_name(args.prefix, capture.CAPTURE_DOCUMENT_SUFFIX),
            document_type="Command",
            document_format="JSON",
            content=json.dumps(capture.capture_document()),
            tags=tags,
            region=args.region,
            opts=child,
        )
        self.discovery_document = aws.ssm.Document(
            f"{name}-kernel-discovery-document",
            name=capture.document_name(args.prefix, capture.DISCOVERY_DOCUMENT_SUFFIX),
            document_type="Command",
            document_format="JSON",
            content=json.dumps(capture.discovery_document()),
            tags=tags,
            region=args.region,
            opts=child,
        )

        forwarder = aws.iam.Role(
            f"{name}-forwarder",
            name=args.forwarder_role_name,
            description="Lets EventBridge forward incident-tag changes to the security account",
            assume_role_policy=service_trust("events.amazonaws.com"),
            tags=tags,
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-forwarder-policy",
            role=forwarder.id,
            opts=child,
            policy=policy_document([allow("ForwardToSecurityBus", ["events:PutEvents"], args.security_bus_arn)]),
        )
        self.tag_rule = aws.cloudwatch.EventRule(
            f"{name}-tag-rule",
            name=f"{args.prefix}-ir-incident-tag",
            description=FORWARDED_TO_SECURITY,
            event_pattern=json.dumps(member_tag_change_pattern()),
            tags=tags,
            region=args.region,
            opts=child,
        )
        aws.cloudwatch.EventTarget(
            f"{name}-tag-forward",
            rule=self.tag_rule.name,
            target_id="security-account-bus",
            arn=args.security_bus_arn,
            role_arn=forwarder.arn,
            region=args.region,
            opts=child,
        )

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
