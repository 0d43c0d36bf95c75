"""MemberResponder: what the security account needs inside one member account and region.

A responder role only the security account's Lambda roles can assume, the member CMK that
re-encrypts snapshots so they can be shared with the forensic account, the deny-all isolation
profile, the acquisition profile for memory capture, and the rule forwarding incident-tag
changes to the security account's event bus. Deployed through an explicit provider for the
member account and region (given by __main__.py); every child inherits it via parent=self.
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
from handlers.common.tags import INCIDENT_TAG, MANAGED_BY_TAG, MANAGED_BY_VALUE
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
    "ec2:DisassociateIamInstanceProfile",
    "ec2:DisassociateAddress",
    "ec2:AssociateAddress",
    "ec2:CreateTags",
    "ec2:DeleteTags",
    "ec2:CreateSnapshots",
    "ec2:CopySnapshot",
    "ec2:ModifySnapshotAttribute",
    "ec2:DeleteSnapshot",
)
IAM_ACTIONS: tuple[str, ...] = (
    "iam:GetInstanceProfile",
    "iam:GetRolePolicy",
    "iam:PutRolePolicy",
    "iam:DeleteRolePolicy",
    "iam:PassRole",
)
AUTOSCALING_ACTIONS: tuple[str, ...] = (
    "autoscaling:DescribeAutoScalingInstances",
    "autoscaling:DetachInstances",
    "autoscaling:AttachInstances",
)
ELB_ACTIONS: tuple[str, ...] = (
    "elasticloadbalancing:DescribeTargetGroups",
    "elasticloadbalancing:DescribeTargetHealth",
    "elasticloadbalancing:DeregisterTargets",
    "elasticloadbalancing:RegisterTargets",
)
# What EBS does with the caller's permissions when it re-encrypts a default-key snapshot copy
# with the member key (the destination key only: the AWS managed source key authorises itself).
KMS_ACTIONS: tuple[str, ...] = (
    "kms:ReEncryptTo",
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
# AWS has no resource-level permissions for these: they are the only ones granted on "*".
UNSCOPED_ACTIONS: frozenset[str] = frozenset(
    {
        *(a for a in EC2_ACTIONS if a.startswith("ec2:Describe")),
        "autoscaling:DescribeAutoScalingInstances",
        "elasticloadbalancing:DescribeTargetGroups",
        "elasticloadbalancing:DescribeTargetHealth",
        "ssm:GetCommandInvocation",
        "ssm:DescribeInstanceInformation",
    }
)
# Memory capture runs shell commands through this AWS-owned document (no custom document to tamper with).
MEMORY_COMMAND_DOCUMENT = "AWS-RunShellScript"
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
    def forwarder_role_name(self) -> str:
        return f"{self.prefix}-ir-forward-{self.region}"


def responder_statements(args: MemberResponderArgs, key_arn: pulumi.Input[str]) -> list[Statement]:
    """The responder role's policy: every action of the lists above, scoped as tightly as AWS allows."""
    ec2, iam = EC2_ACTIONS, IAM_ACTIONS
    isolation_role = args.role_arn(naming.isolation_profile(args.prefix, args.region))
    acquisition_role = args.role_arn(naming.acquisition_profile(args.prefix, args.region))
    own_roles = [
        args.role_arn(naming.member_responder_role(args.prefix, args.region)),
        isolation_role,
        acquisition_role,
        args.role_arn(args.forwarder_role_name),
    ]
    ec2_targets = [
        args.ec2_arn(f"{kind}/*")
        for kind in ("instance", "network-interface", "security-group", "volume", "elastic-ip", "vpc")
    ]
    return [
        allow("DescribeWorkload", sorted(a for a in ec2 if a in UNSCOPED_ACTIONS), "*"),
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
            _actions(
                ec2,
                "ModifyNetworkInterfaceAttribute",
                "ModifyInstanceAttribute",
                "AssociateIamInstanceProfile",
                "ReplaceIamInstanceProfileAssociation",
                "DisassociateIamInstanceProfile",
                "DisassociateAddress",
                "AssociateAddress",
            ),
            ec2_targets,
        ),
        allow("TagCaseResources", _actions(ec2, "CreateTags", "DeleteTags"), [*ec2_targets, args.snapshot_arns]),
        allow(
            "SnapshotVolumes",
            _actions(ec2, "CreateSnapshots", "CopySnapshot", "ModifySnapshotAttribute"),
            [args.ec2_arn("instance/*"), args.ec2_arn("volume/*"), args.snapshot_arns],
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
            _actions(iam, "GetInstanceProfile", "GetRolePolicy"),
            [f"arn:aws:iam::{args.account}:instance-profile/*", f"arn:aws:iam::{args.account}:role/*"],
        ),
        # Revoking what the instance's role already issued means an inline deny on that role, and
        # which role an instance uses is only known during the incident.
        allow(
            "RevokeInstanceRoleSessions",
            _actions(iam, "PutRolePolicy", "DeleteRolePolicy"),
            f"arn:aws:iam::{args.account}:role/*",
        ),
        # ...but the responder must not be able to widen its own (or its profiles') permissions.
        deny("KeepResponderRolesIntact", _actions(iam, "PutRolePolicy", "DeleteRolePolicy"), own_roles),
        allow(
            "PassIsolationRoles",
            _actions(iam, "PassRole"),
            [isolation_role, acquisition_role],
            {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
        ),
        # Release restores the instance's original profile, whose role is not known in advance:
        # any role of this account, but only to EC2.
        allow(
            "PassOriginalRoleBack",
            _actions(iam, "PassRole"),
            f"arn:aws:iam::{args.account}:role/*",
            {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
        ),
        allow("DescribeAutoScaling", sorted(a for a in AUTOSCALING_ACTIONS if a in UNSCOPED_ACTIONS), "*"),
        allow(
            "HoldInstanceInGroup",
            _actions(AUTOSCALING_ACTIONS, "DetachInstances", "AttachInstances"),
            f"arn:aws:autoscaling:{args.region}:{args.account}:autoScalingGroup:*:autoScalingGroupName/*",
        ),
        allow("DescribeTargets", sorted(a for a in ELB_ACTIONS if a in UNSCOPED_ACTIONS), "*"),
        allow(
            "DeregisterFromTargetGroups",
            _actions(ELB_ACTIONS, "DeregisterTargets", "RegisterTargets"),
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
        allow(
            "CaptureMemory",
            _actions(SSM_ACTIONS, "SendCommand"),
            [args.ec2_arn("instance/*"), f"arn:aws:ssm:{args.region}::document/{MEMORY_COMMAND_DOCUMENT}"],
        ),
        allow("FollowMemoryCapture", sorted(a for a in SSM_ACTIONS if a in UNSCOPED_ACTIONS), "*"),
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


def acquisition_statements(args: MemberResponderArgs) -> list[Statement]:
    bucket = args.evidence_bucket
    return [
        allow("WriteMemoryUnderCasePrefix", ["s3:PutObject"], f"arn:aws:s3:::{bucket}/*/memory/*"),
        # The evidence bucket encrypts with the forensic CMK (bucket key on, so the encryption
        # context is the bucket ARN); the key is only usable through S3 for that bucket.
        allow(
            "EncryptEvidenceThroughS3",
            ["kms:GenerateDataKey"],
            f"arn:aws:kms:{args.forensic_region}:{args.forensic_account}:key/*",
            {
                "StringEquals": {
                    "kms:ViaService": f"s3.{args.forensic_region}.amazonaws.com",
                    "kms:EncryptionContext:aws:s3:arn": f"arn:aws:s3:::{bucket}",
                }
            },
        ),
    ]


class MemberResponder(pulumi.ComponentResource):
    role: aws.iam.Role
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
            opts=child,
        )
        aws.kms.Alias(
            f"{name}-ebs-key-alias",
            name=naming.member_ebs_key_alias(args.prefix),
            target_key_id=self.key.arn,
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
        aws.iam.RolePolicy(
            f"{name}-acquisition-evidence",
            role=acquisition_role.id,
            policy=policy_document(acquisition_statements(args)),
            opts=child,
        )
        self.acquisition_profile = aws.iam.InstanceProfile(
            f"{name}-acquisition-profile", name=acquisition_name, role=acquisition_role.name, tags=tags, opts=child
        )

        # The only commands the responder may send (helper iam scopes SendCommand to document/<prefix>-ir-*):
        # fixed text created here, parameters held to allowedPattern; never AWS-RunShellScript.
        self.capture_document = aws.ssm.Document(
            f"{name}-memory-capture-document",
            name=capture.document_name(args.prefix, capture.CAPTURE_DOCUMENT_SUFFIX),
            document_type="Command",
            document_format="JSON",
            content=json.dumps(capture.capture_document()),
            tags=tags,
            opts=child,
        )
        self.discovery_document = aws.ssm.Document(
            f"{name}-kernel-discovery-document",
            name=capture.document_name(args.prefix, capture.DISCOVERY_DOCUMENT_SUFFIX),
            document_type="Command",
            document_format="JSON",
            content=json.dumps(capture.discovery_document()),
            tags=tags,
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
            opts=child,
        )
        aws.cloudwatch.EventTarget(
            f"{name}-tag-forward",
            rule=self.tag_rule.name,
            target_id="security-account-bus",
            arn=args.security_bus_arn,
            role_arn=forwarder.arn,
            opts=child,
        )

        self.register_outputs(
            {
                "responder_role_arn": self.role.arn,
                "key_arn": self.key.arn,
                "isolation_profile_name": self.isolation_profile.name,
                "acquisition_profile_name": self.acquisition_profile.name,
                "capture_document_name": self.capture_document.name,
                "discovery_document_name": self.discovery_document.name,
            }
        )
