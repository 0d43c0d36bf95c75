"""ForensicAccount: where evidence is kept, examined and audited (DESIGN.md "ForensicAccount").

Evidence lands in an Object-Locked, KMS-encrypted bucket that only the security account's
automation (through the forensic automation role) writes to; examination runs on instances in
an analysis VPC with no path to the internet; investigators read evidence and can change none
of it. Every name another stack needs is derived with components.naming, so the security and
member stacks never wait for this stack's outputs.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pulumi
import pulumi_aws as aws

from components import naming
from components.naming import TOOLSET_AMI_UNSET
from components.policies import (
    Statement,
    account_root,
    allow,
    cross_account_trust,
    deny,
    managed_policy,
    policy_document,
    service_trust,
    stack_arn,
)
from components.roles import service_role
from core import arns
from handlers.common.evidence import manifest_signing_key_alias
from handlers.common.tags import MANAGED_BY_TAG, MANAGED_BY_VALUE

if TYPE_CHECKING:
    from config import ForensicConfig

ROOT = Path(__file__).resolve().parent.parent
OBJECT_LOCK_MODES = ("GOVERNANCE", "COMPLIANCE")
# Interface endpoints an analysis instance needs with no internet: Session Manager and Run
# Command (ssm, ssmmessages, ec2messages), the evidence key (kms), its logs, and STS for the
# instance role's regional credentials. S3 is reached through the gateway endpoint.
INTERFACE_ENDPOINT_SERVICES = ("ssm", "ssmmessages", "ec2messages", "kms", "logs", "sts")
TOOLSET_PARENT_IMAGE = "ssm:/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
# Image Builder overwrites the parameter with the AMI id after each build; until the first build
# the parameter holds this value, which the examination step treats as "no toolset image yet".
SLEUTHKIT_VERSION = "4.12.1"
TOOLSET_SOURCE_KEY = "source/irforensics.zip"
# AWS managed policies, by name: their ARNs carry the partition (managed_policy).
SSM_CORE_POLICY = "AmazonSSMManagedInstanceCore"
IMAGE_BUILDER_INSTANCE_POLICY = "EC2InstanceProfileForImageBuilder"
# Every action that removes evidence or weakens its retention.
EVIDENCE_DESTRUCTIVE_ACTIONS = (
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
    "s3:PutObjectRetention",
    "s3:BypassGovernanceRetention",
    "s3:PutBucketObjectLockConfiguration",
)
INVESTIGATOR_DENIED_ACTIONS = (
    *EVIDENCE_DESTRUCTIVE_ACTIONS,
    "s3:DeleteObjectTagging",
    "s3:DeleteObjectVersionTagging",
    "s3:PutObjectLegalHold",
    "s3:DeleteBucket",
    "s3:DeleteBucketPolicy",
    "s3:PutBucketPolicy",
    "s3:PutLifecycleConfiguration",
    "s3:PutBucketVersioning",
    "s3:PutObject",
    "s3:PutObjectAcl",
)
KEY_USE_ACTIONS = ("kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey")
# The automation role's use of the evidence key: S3 SSE-KMS writes and reads, and EBS encrypting
# the forensic snapshot copies with it (Encrypt and the other GenerateDataKey* are never needed).
AUTOMATION_KEY_ACTIONS = (
    "kms:Decrypt",
    "kms:DescribeKey",
    "kms:GenerateDataKey",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:ReEncryptTo",
)
KEY_GRANT_ACTIONS = ("kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant")
# Administration of the key without use of it: an account administrator can manage the key
# (and so can never be locked out of it) but reads evidence only through the investigator role.
KEY_ADMIN_ACTIONS = (
    "kms:CancelKeyDeletion",
    "kms:Create*",
    "kms:Delete*",
    "kms:Describe*",
    "kms:Disable*",
    "kms:Enable*",
    "kms:Get*",
    "kms:List*",
    "kms:Put*",
    "kms:Revoke*",
    "kms:RotateKeyOnDemand",
    "kms:ScheduleKeyDeletion",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:Update*",
)


@dataclass(frozen=True)
class ForensicAccountArgs:
    prefix: str
    account: str  # the forensic account this stack deploys into
    region: str
    security_account: str
    object_lock_mode: str = "GOVERNANCE"
    retention_days: int = 365
    glacier_after_days: int = 30
    log_retention_days: int = 90
    analysis_azs: tuple[str, ...] = ()
    analysis_vpc_cidr: str = "10.77.0.0/16"
    build_vpc_cidr: str = "10.78.0.0/16"

    def __post_init__(self) -> None:
        naming.check_prefix(self.prefix)
        if self.object_lock_mode not in OBJECT_LOCK_MODES:
            raise ValueError(f"object lock mode {self.object_lock_mode!r} must be GOVERNANCE or COMPLIANCE")
        if len(set(self.analysis_azs)) < 2:
            raise ValueError(f"the analysis VPC needs two or more availability zones, got {list(self.analysis_azs)}")
        if not 0 < self.glacier_after_days < self.retention_days:
            raise ValueError(
                f"glacier transition after {self.glacier_after_days} days must come before "
                f"the {self.retention_days}-day retention ends"
            )
        subnet_cidrs(self.analysis_vpc_cidr, len(self.analysis_azs))
        subnet_cidrs(self.build_vpc_cidr, 1)

    @classmethod
    def from_config(cls, cfg: ForensicConfig) -> ForensicAccountArgs:
        # Names derive from the region this stack deploys to (aws:region); the other stacks derive
        # them from forensicRegion, so the two must agree.
        return cls(
            prefix=cfg.prefix,
            account=cfg.forensic_account,
            region=cfg.region,
            security_account=cfg.security_account,
            object_lock_mode=cfg.object_lock_mode,
            retention_days=cfg.retention_days,
            glacier_after_days=cfg.glacier_after_days,
            log_retention_days=cfg.log_retention_days,
            analysis_azs=tuple(cfg.analysis_azs),
            analysis_vpc_cidr=cfg.analysis_vpc_cidr,
            build_vpc_cidr=cfg.build_vpc_cidr,
        )


def subnet_cidrs(vpc_cidr: str, count: int) -> list[str]:
    """`count` equal subnets carved from the start of a VPC CIDR (/20s of a /16)."""
    try:
        network = ipaddress.IPv4Network(vpc_cidr, strict=True)
    except ValueError as exc:
        raise ValueError(f"VPC CIDR {vpc_cidr!r} is not an IPv4 network: {exc}") from None
    if not 16 <= network.prefixlen <= 24:
        raise ValueError(f"VPC CIDR {vpc_cidr} must be between /16 and /24 (AWS limits and room for subnets)")
    subnets = list(network.subnets(new_prefix=min(network.prefixlen + 4, 28)))
    if count > len(subnets):
        raise ValueError(f"VPC CIDR {vpc_cidr} has room for {len(subnets)} subnets, {count} needed")
    return [str(subnet) for subnet in subnets[:count]]


def bucket_arn(bucket_name: str, region: str) -> str:
    return arns.s3_bucket(bucket_name, region=region)


def role_arn(account: str, role_name: str, region: str) -> str:
    return arns.iam_role(account, role_name, region=region)


def trail_name(prefix: str) -> str:
    return f"{prefix}-ir-evidence-trail"


def project_source_files(root: Path = ROOT) -> dict[str, Path]:
    """Archive path -> file of the installable project (what `pip install .` needs), sources only."""
    files: dict[str, Path] = {}
    for name in ("pyproject.toml", "README.md", "config.py"):
        if (root / name).is_file():
            files[name] = root / name
    for package in ("components", "handlers", "examiner", "irf", "statemachines"):
        for path in sorted((root / package).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                files[path.relative_to(root).as_posix()] = path
    return files


def toolset_component_document(source_bucket: str, source_key: str = TOOLSET_SOURCE_KEY) -> str:
    """Image Builder component (AWSTOE YAML) that installs the forensic toolset on Amazon Linux 2023."""
    tsk = f"sleuthkit-{SLEUTHKIT_VERSION}"
    tsk_url = f"https://github.com/sleuthkit/sleuthkit/releases/download/{tsk}/{tsk}.tar.gz"
    # perl runs mactime; XFS is the Amazon Linux root file system.
    packages = (
        "gcc gcc-c++ make perl zlib-devel xfsprogs e2fsprogs python3.11 python3.11-pip "
        "python3.11-devel golang git unzip tar"
    )
    python_libraries = '"volatility3>=2.7,<3" "yara-python>=4.5,<5" "libfsxfs-python>=20240501"'
    return f"""\
name: irforensics-toolset
description: The Sleuth Kit, Volatility 3, YARA, libfsxfs, dwarf2json and the irforensics examination runner
schemaVersion: 1.0
phases:
  - name: build
    steps:
      - name: OperatingSystemPackages
        action: ExecuteBash
        inputs:
          commands:
            - set -euo pipefail
            # AL2023's python3 is 3.9; the project needs 3.11.
            - dnf install -y {packages}
      - name: SleuthKit
        action: ExecuteBash
        inputs:
          commands:
            - set -euo pipefail
            # AL2023 ships no sleuthkit package (and has no EPEL): build the pinned release.
            - curl -fsSL -o /tmp/{tsk}.tar.gz {tsk_url}
            - tar -xzf /tmp/{tsk}.tar.gz -C /tmp
            - cd /tmp/{tsk} && ./configure --prefix=/usr/local --disable-java
            - cd /tmp/{tsk} && make -j"$(nproc)" && make install
            - ldconfig
      - name: PythonForensicLibraries
        action: ExecuteBash
        inputs:
          commands:
            - set -euo pipefail
            - python3.11 -m pip install {python_libraries}
      - name: Dwarf2Json
        action: ExecuteBash
        inputs:
          commands:
            - set -euo pipefail
            - git clone --depth 1 https://github.com/volatilityfoundation/dwarf2json /tmp/dwarf2json
            - cd /tmp/dwarf2json && go build -o /usr/local/bin/dwarf2json
      - name: ExaminationRunner
        action: ExecuteBash
        inputs:
          commands:
            - set -euo pipefail
            # The runner is this project's own code, uploaded by the stack that defines this
            # image: the AMI examines evidence with exactly the code that was deployed.
            - aws s3 cp s3://{source_bucket}/{source_key} /tmp/irforensics.zip
            - rm -rf /opt/irforensics && mkdir -p /opt/irforensics
            - unzip -q /tmp/irforensics.zip -d /opt/irforensics
            - python3.11 -m pip install "/opt/irforensics[forensics]"
  - name: validate
    steps:
      - name: ToolsAnswer
        action: ExecuteBash
        inputs:
          commands:
            - set -euo pipefail
            - fls -V
            - mactime -V
            - vol --help > /dev/null
            - test -x /usr/local/bin/dwarf2json
            - python3.11 -c "import yara, pyfsxfs, volatility3, handlers.common.evidence"
"""


# What the examination document accepts: each parameter is checked by SSM before the script runs,
# so the fixed script below can interpolate them without a shell ever seeing anything else.
_MOMENT = r"^$|^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?(Z|[+-][0-9]{2}:[0-9]{2})?$"
EXAMINATION_PARAMETER_PATTERNS = {
    "CaseId": r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$",
    "Bucket": r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$",
    "Region": r"^[a-z]{2}(-[a-z]+)+-[0-9]$",
    "IncidentStart": _MOMENT,
    "IncidentEnd": _MOMENT,
    "ExecutionTimeout": r"^[0-9]{1,5}$",
}


def examination_document_content() -> dict[str, Any]:
    """The SSM Command document the automation runs on an analysis instance: a fixed script, bounded parameters."""
    from handlers.examination.orchestration import REMOTE_PYTHON, WORK_DIR

    defaults = {"IncidentStart": "", "IncidentEnd": "", "ExecutionTimeout": "14400"}
    parameters = {
        name: {
            "type": "String",
            "description": f"irforensics examination {name}",
            "allowedPattern": pattern,
            **({"default": defaults[name]} if name in defaults else {}),
        }
        for name, pattern in EXAMINATION_PARAMETER_PATTERNS.items()
    }
    return {
        "schemaVersion": "2.2",
        "description": "irforensics: examine one case's evidence on this analysis instance (fixed script)",
        "parameters": parameters,
        "mainSteps": [
            {
                "action": "aws:runShellScript",
                "name": "examine",
                "inputs": {
                    "timeoutSeconds": "{{ ExecutionTimeout }}",
                    "workingDirectory": "/",
                    "runCommand": [
                        "set -euo pipefail",
                        # Evidence copies on the instance are readable by root only.
                        "umask 077",
                        f"install -d -m 0700 {WORK_DIR}",
                        "set --",
                        'if [ -n "{{ IncidentStart }}" ] && [ -n "{{ IncidentEnd }}" ]; then'
                        ' set -- --incident-start "{{ IncidentStart }}" --incident-end "{{ IncidentEnd }}"; fi',
                        # Downloads each image, checks its .sha256, examines, uploads analysis/ and report/.
                        f'exec {REMOTE_PYTHON} -m examiner.remote --region "{{{{ Region }}}}"'
                        f' --bucket "{{{{ Bucket }}}}" --case-id "{{{{ CaseId }}}}" --work-dir {WORK_DIR} "$@"',
                    ],
                },
            }
        ],
    }


def _tags(name: str) -> dict[str, str]:
    return {"Name": name, MANAGED_BY_TAG: MANAGED_BY_VALUE}


def _grant(
    sid: str, principal: Any, actions: Sequence[str], resources: Any, condition: dict[str, Any] | None = None
) -> Statement:
    """An Allow statement of a resource policy (bucket or key), which names its principal."""
    statement: Statement = {
        "Sid": sid,
        "Effect": "Allow",
        "Principal": principal,
        "Action": sorted(actions),
        "Resource": resources,
    }
    if condition:
        statement["Condition"] = condition
    return statement


def _deny_insecure_transport(bucket_name: str, region: str) -> Statement:
    bucket = bucket_arn(bucket_name, region)
    return deny(
        "DenyInsecureTransport",
        "s3:*",
        [bucket, f"{bucket}/*"],
        {"Bool": {"aws:SecureTransport": "false"}},
        principal="*",
    )


class ForensicAccount(pulumi.ComponentResource):
    evidence_bucket: aws.s3.Bucket
    key: aws.kms.Key
    analysis_vpc: aws.ec2.Vpc
    analysis_subnets: list[aws.ec2.Subnet]
    analysis_security_group: aws.ec2.SecurityGroup
    analysis_instance_profile: aws.iam.InstanceProfile
    forensic_automation_role: aws.iam.Role
    investigator_role: aws.iam.Role
    trail: aws.cloudtrail.Trail
    toolset_ami_parameter: aws.ssm.Parameter

    def __init__(self, name: str, args: ForensicAccountArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("irforensics:forensic:ForensicAccount", name, None, opts)
        self._name = name
        self._args = args
        self._child = pulumi.ResourceOptions(parent=self)
        prefix, account, region = args.prefix, args.account, args.region
        self.evidence_bucket_name = naming.evidence_bucket(prefix, account, region)
        self.evidence_bucket_arn = bucket_arn(self.evidence_bucket_name, region)

        self._roles()
        self._key()
        self._manifest_signing_key()
        self._access_log_bucket()
        self._evidence_bucket()
        self._trail()
        self._analysis_network()
        self._role_policies()
        self._toolset_pipeline()

        self.register_outputs(
            {
                "evidence_bucket_name": self.evidence_bucket.bucket,
                "evidence_bucket_arn": self.evidence_bucket.arn,
                "key_arn": self.key.arn,
                "manifest_signing_key_arn": self.manifest_signing_key.arn,
                "analysis_vpc_id": self.analysis_vpc.id,
                "analysis_subnet_ids": [subnet.id for subnet in self.analysis_subnets],
                "analysis_security_group_id": self.analysis_security_group.id,
                "analysis_instance_profile_name": self.analysis_instance_profile.name,
                "forensic_automation_role_arn": self.forensic_automation_role.arn,
                "investigator_role_arn": self.investigator_role.arn,
                "trail_arn": self.trail.arn,
                "toolset_ami_parameter_name": self.toolset_ami_parameter.name,
            }
        )

    # -- identities ---------------------------------------------------------------------------

    def _roles(self) -> None:
        """The roles exist before the key, whose policy names them (KMS rejects unknown principals)."""
        args, name = self._args, self._name
        self.forensic_automation_role_name = naming.forensic_automation_role(args.prefix)
        self.forensic_automation_role = aws.iam.Role(
            f"{name}-automation-role",
            name=self.forensic_automation_role_name,
            description="Assumed by the security account's response Lambdas to copy, lock and image evidence",
            assume_role_policy=cross_account_trust(
                args.security_account,
                naming.lambda_role_pattern(args.prefix, args.security_account, args.region),
                args.region,
            ),
            max_session_duration=3600,
            tags=_tags(self.forensic_automation_role_name),
            opts=self._child,
        )

        self.analysis_role_name = naming.analysis_profile(args.prefix)
        self.analysis_role = aws.iam.Role(
            f"{name}-analysis-instance-role",
            name=self.analysis_role_name,
            description="Analysis instances: read evidence, write findings under analysis/ and report/",
            assume_role_policy=service_trust("ec2.amazonaws.com"),
            tags=_tags(self.analysis_role_name),
            opts=self._child,
        )
        aws.iam.RolePolicyAttachment(
            f"{name}-analysis-instance-ssm",
            role=self.analysis_role.name,
            policy_arn=managed_policy(SSM_CORE_POLICY, args.region),
            opts=self._child,
        )
        self.analysis_instance_profile = aws.iam.InstanceProfile(
            f"{name}-analysis-instance-profile",
            name=naming.analysis_profile(args.prefix),
            role=self.analysis_role.name,
            tags=_tags(naming.analysis_profile(args.prefix)),
            opts=self._child,
        )

        self.investigator_role_name = naming.investigator_role(args.prefix)
        # Operators federate into the forensic account (SSO, SAML) and assume this role from there;
        # who may do so is the account's own IAM, not something this stack can know.
        self.investigator_role = aws.iam.Role(
            f"{name}-investigator-role",
            name=self.investigator_role_name,
            description="Investigators: read evidence and reports; change or delete nothing",
            assume_role_policy=policy_document(
                [
                    {
                        "Sid": "ForensicAccountOperatorsAssume",
                        "Effect": "Allow",
                        "Action": "sts:AssumeRole",
                        "Principal": {"AWS": account_root(args.account, args.region)},
                    }
                ]
            ),
            max_session_duration=3600 * 4,
            tags=_tags(self.investigator_role_name),
            opts=self._child,
        )

    def _key(self) -> None:
        args, name = self._args, self._name
        automation = role_arn(args.account, self.forensic_automation_role_name, args.region)
        analysis = role_arn(args.account, self.analysis_role_name, args.region)
        investigator = role_arn(args.account, self.investigator_role_name, args.region)
        # The security account's Lambdas get nothing here: they act through the automation role.
        statements = [
            _grant("AccountAdministersKey", {"AWS": account_root(args.account, args.region)}, KEY_ADMIN_ACTIONS, "*"),
            _grant("EvidenceRolesUseKey", {"AWS": [automation, analysis]}, KEY_USE_ACTIONS, "*"),
            # EBS (snapshot copies, volumes of analysis instances) works through grants.
            _grant(
                "EvidenceRolesGrantToAwsServices",
                {"AWS": [automation, analysis]},
                KEY_GRANT_ACTIONS,
                "*",
                {"Bool": {"kms:GrantIsForAWSResource": "true"}},
            ),
            _grant("InvestigatorsDecrypt", {"AWS": investigator}, ["kms:Decrypt", "kms:DescribeKey"], "*"),
        ]
        self.key = aws.kms.Key(
            f"{name}-key",
            description=f"{args.prefix} irforensics evidence key (S3 evidence, EBS copies)",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            policy=policy_document(statements),
            tags=_tags(naming.forensic_key_alias(args.prefix)),
            opts=pulumi.ResourceOptions(
                parent=self,
                protect=True,
                depends_on=[self.forensic_automation_role, self.analysis_role, self.investigator_role],
            ),
        )
        self.key_alias = aws.kms.Alias(
            f"{name}-key-alias",
            name=naming.forensic_key_alias(args.prefix),
            target_key_id=self.key.key_id,
            opts=self._child,
        )

    def _manifest_signing_key(self) -> None:
        """Asymmetric (ECC P-256, SIGN_VERIFY) key signing each case's manifest digest.

        Only the automation role (which writes manifests) may sign; investigators may fetch the
        public key and verify, so a downloaded case is checked offline with the public half alone.
        Asymmetric keys cannot rotate: a new key gets a new id, and each signature names its key.
        """
        args, name = self._args, self._name
        automation = role_arn(args.account, self.forensic_automation_role_name, args.region)
        investigator = role_arn(args.account, self.investigator_role_name, args.region)
        statements = [
            _grant("AccountAdministersKey", {"AWS": account_root(args.account, args.region)}, KEY_ADMIN_ACTIONS, "*"),
            _grant(
                "AutomationSignsManifests",
                {"AWS": automation},
                ["kms:Sign", "kms:GetPublicKey", "kms:DescribeKey"],
                "*",
            ),
            _grant(
                "InvestigatorsVerifyManifests",
                {"AWS": investigator},
                ["kms:GetPublicKey", "kms:Verify", "kms:DescribeKey"],
                "*",
            ),
        ]
        self.manifest_signing_key = aws.kms.Key(
            f"{name}-manifest-signing-key",
            description=f"{args.prefix} irforensics manifest signing key (chain of custody)",
            customer_master_key_spec="ECC_NIST_P256",
            key_usage="SIGN_VERIFY",
            deletion_window_in_days=30,
            policy=policy_document(statements),
            tags=_tags(manifest_signing_key_alias(args.prefix)),
            opts=pulumi.ResourceOptions(
                parent=self,
                protect=True,
                depends_on=[self.forensic_automation_role, self.investigator_role],
            ),
        )
        self.manifest_signing_key_alias = aws.kms.Alias(
            f"{name}-manifest-signing-key-alias",
            name=manifest_signing_key_alias(args.prefix),
            target_key_id=self.manifest_signing_key.key_id,
            opts=self._child,
        )

    # -- buckets --------------------------------------------------------------------------------

    def _private_bucket(
        self,
        logical: str,
        bucket_name: str,
        *,
        kms_key: aws.kms.Key | None,
        object_lock: bool = False,
        protect: bool = False,
    ) -> tuple[aws.s3.Bucket, list[pulumi.Resource]]:
        """A bucket no one outside the account can read, versioned and encrypted at rest."""
        bucket = aws.s3.Bucket(
            f"{self._name}-{logical}",
            bucket=bucket_name,
            object_lock_enabled=object_lock,
            force_destroy=False,
            tags=_tags(bucket_name),
            opts=pulumi.ResourceOptions(parent=self, protect=protect),
        )
        public_access = aws.s3.BucketPublicAccessBlock(
            f"{self._name}-{logical}-public-access",
            bucket=bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=self._child,
        )
        versioning = aws.s3.BucketVersioning(
            f"{self._name}-{logical}-versioning",
            bucket=bucket.id,
            versioning_configuration={"status": "Enabled"},
            opts=self._child,
        )
        default = aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
            sse_algorithm="aws:kms" if kms_key is not None else "AES256",
            kms_master_key_id=kms_key.arn if kms_key is not None else None,
        )
        encryption = aws.s3.BucketServerSideEncryptionConfiguration(
            f"{self._name}-{logical}-encryption",
            bucket=bucket.id,
            rules=[
                aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                    apply_server_side_encryption_by_default=default, bucket_key_enabled=kms_key is not None
                )
            ],
            opts=self._child,
        )
        return bucket, [public_access, versioning, encryption]

    def _bucket_policy(
        self,
        logical: str,
        bucket: aws.s3.Bucket,
        bucket_name: str,
        statements: list[Statement],
        depends_on: Sequence[pulumi.Resource],
    ) -> aws.s3.BucketPolicy:
        # S3 refuses a policy while the public access block is being changed ("conflicting
        # conditional operation"), so policies wait for the bucket's settings.
        return aws.s3.BucketPolicy(
            f"{self._name}-{logical}-policy",
            bucket=bucket.id,
            policy=policy_document([_deny_insecure_transport(bucket_name, self._args.region), *statements]),
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(depends_on)),
        )

    def _expire(
        self,
        logical: str,
        bucket: aws.s3.Bucket,
        versioning: pulumi.Resource,
        days: int,
        glacier_after_days: int | None = None,
    ) -> aws.s3.BucketLifecycleConfiguration:
        transitions = noncurrent_transitions = None
        if glacier_after_days is not None:
            # Images older than this are rarely re-examined; a restore takes hours, not days.
            transitions = [
                aws.s3.BucketLifecycleConfigurationRuleTransitionArgs(days=glacier_after_days, storage_class="GLACIER")
            ]
            noncurrent_transitions = [
                aws.s3.BucketLifecycleConfigurationRuleNoncurrentVersionTransitionArgs(
                    noncurrent_days=glacier_after_days, storage_class="GLACIER"
                )
            ]
        rule = aws.s3.BucketLifecycleConfigurationRuleArgs(
            id="retention",
            status="Enabled",
            filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(),
            expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(days=days),
            noncurrent_version_expiration=aws.s3.BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(
                noncurrent_days=days
            ),
            abort_incomplete_multipart_upload=aws.s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
                days_after_initiation=7
            ),
            transitions=transitions,
            noncurrent_version_transitions=noncurrent_transitions,
        )
        return aws.s3.BucketLifecycleConfiguration(
            f"{self._name}-{logical}-lifecycle",
            bucket=bucket.id,
            rules=[rule],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[versioning]),
        )

    def _access_log_bucket(self) -> None:
        args = self._args
        self.access_log_bucket_name = naming.access_log_bucket(args.prefix, args.account, args.region)
        self.trail_bucket_name = naming.trail_bucket(args.prefix, args.account, args.region)
        # S3 server access log delivery cannot write with SSE-KMS: this bucket uses SSE-S3.
        self.access_log_bucket, settings = self._private_bucket(
            "access-log-bucket", self.access_log_bucket_name, kms_key=None
        )
        self.access_log_bucket_policy = self._bucket_policy(
            "access-log-bucket",
            self.access_log_bucket,
            self.access_log_bucket_name,
            [
                _grant(
                    "S3ServerAccessLogDelivery",
                    {"Service": "logging.s3.amazonaws.com"},
                    ["s3:PutObject"],
                    f"{bucket_arn(self.access_log_bucket_name, args.region)}/*",
                    {
                        "ArnLike": {
                            "aws:SourceArn": [self.evidence_bucket_arn, bucket_arn(self.trail_bucket_name, args.region)]
                        },
                        "StringEquals": {"aws:SourceAccount": args.account},
                    },
                ),
            ],
            settings,
        )
        # Access logs show who read evidence: they are kept as long as the evidence.
        self._expire("access-log-bucket", self.access_log_bucket, settings[1], args.retention_days)

    def _log_access(self, logical: str, bucket: aws.s3.Bucket, bucket_name: str) -> aws.s3.BucketLogging:
        return aws.s3.BucketLogging(
            f"{self._name}-{logical}-logging",
            bucket=bucket.id,
            target_bucket=self.access_log_bucket.id,
            target_prefix=f"{bucket_name}/",
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.access_log_bucket_policy]),
        )

    def _evidence_bucket(self) -> None:
        args = self._args
        name = self.evidence_bucket_name
        arn = self.evidence_bucket_arn
        self.evidence_bucket, settings = self._private_bucket(
            "evidence-bucket", name, kms_key=self.key, object_lock=True, protect=True
        )
        versioning = settings[1]
        self.evidence_lock = aws.s3.BucketObjectLockConfiguration(
            f"{self._name}-evidence-bucket-object-lock",
            bucket=self.evidence_bucket.id,
            object_lock_enabled="Enabled",
            rule={"default_retention": {"mode": args.object_lock_mode, "days": args.retention_days}},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[versioning]),
        )
        root = account_root(args.account, args.region)
        objects = f"{arn}/*"
        statements = [
            # Writers send no encryption header and rely on the bucket default; a header, when
            # sent, must name SSE-KMS and this key, so nothing lands under another key.
            deny(
                "DenyEncryptionOtherThanKms",
                "s3:PutObject",
                objects,
                {
                    "StringNotEquals": {"s3:x-amz-server-side-encryption": "aws:kms"},
                    "Null": {"s3:x-amz-server-side-encryption": "false"},
                },
                principal="*",
            ),
            deny(
                "DenyOtherKmsKeys",
                "s3:PutObject",
                objects,
                {
                    "StringNotEquals": {"s3:x-amz-server-side-encryption-aws-kms-key-id": self.key.arn},
                    "Null": {"s3:x-amz-server-side-encryption-aws-kms-key-id": "false"},
                },
                principal="*",
            ),
            # Only the account's root user can remove evidence or weaken its retention. That
            # includes changing the lock configuration: a new retention setting is a root task.
            deny(
                "DenyEvidenceDestructionExceptRoot",
                sorted(EVIDENCE_DESTRUCTIVE_ACTIONS),
                [arn, objects],
                {
                    "ArnNotEquals": {"aws:PrincipalArn": root},
                },
                principal="*",
            ),
        ]
        self.evidence_bucket_policy = self._bucket_policy(
            "evidence-bucket", self.evidence_bucket, name, statements, [*settings, self.evidence_lock]
        )
        self._expire("evidence-bucket", self.evidence_bucket, versioning, args.retention_days, args.glacier_after_days)
        self._log_access("evidence-bucket", self.evidence_bucket, name)

    def _trail(self) -> None:
        args = self._args
        name = trail_name(args.prefix)
        trail_arn = stack_arn(args.region, "cloudtrail", args.region, args.account, f"trail/{name}")
        # The trail bucket uses SSE-S3: CloudTrail's own integrity is the signed digest files
        # (log file validation), and keeping CloudTrail off the evidence key keeps its policy small.
        self.trail_bucket, settings = self._private_bucket("trail-bucket", self.trail_bucket_name, kms_key=None)
        trail_bucket = bucket_arn(self.trail_bucket_name, args.region)
        source = {"StringEquals": {"aws:SourceArn": trail_arn}}
        policy = self._bucket_policy(
            "trail-bucket",
            self.trail_bucket,
            self.trail_bucket_name,
            [
                _grant(
                    "CloudTrailAclCheck",
                    {"Service": "cloudtrail.amazonaws.com"},
                    ["s3:GetBucketAcl"],
                    trail_bucket,
                    source,
                ),
                _grant(
                    "CloudTrailWrite",
                    {"Service": "cloudtrail.amazonaws.com"},
                    ["s3:PutObject"],
                    f"{trail_bucket}/AWSLogs/{args.account}/*",
                    {"StringEquals": {"aws:SourceArn": trail_arn, "s3:x-amz-acl": "bucket-owner-full-control"}},
                ),
            ],
            settings,
        )
        self._expire("trail-bucket", self.trail_bucket, settings[1], args.retention_days)
        self._log_access("trail-bucket", self.trail_bucket, self.trail_bucket_name)
        self.trail = aws.cloudtrail.Trail(
            f"{self._name}-trail",
            name=name,
            s3_bucket_name=self.trail_bucket.id,
            is_multi_region_trail=True,
            include_global_service_events=True,
            enable_log_file_validation=True,
            advanced_event_selectors=[
                {
                    "name": "Management events",
                    "field_selectors": [{"field": "eventCategory", "equals": ["Management"]}],
                },
                {
                    "name": "Every read and write of evidence objects",
                    "field_selectors": [
                        {"field": "eventCategory", "equals": ["Data"]},
                        {"field": "resources.type", "equals": ["AWS::S3::Object"]},
                        {"field": "resources.ARN", "starts_withs": [f"{self.evidence_bucket_arn}/"]},
                    ],
                },
            ],
            tags=_tags(name),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[policy]),
        )

    # -- networks -------------------------------------------------------------------------------

    def _vpc(self, logical: str, cidr: str, tag: str) -> aws.ec2.Vpc:
        return aws.ec2.Vpc(
            f"{self._name}-{logical}-vpc",
            cidr_block=cidr,
            enable_dns_support=True,
            enable_dns_hostnames=True,
            tags=_tags(tag),
            opts=self._child,
        )

    def _subnet(
        self,
        logical: str,
        suffix: str,
        vpc: aws.ec2.Vpc,
        cidr: str,
        az: str,
        *,
        public: bool,
        routes: list[Any] | None = None,
    ) -> tuple[aws.ec2.Subnet, aws.ec2.RouteTable]:
        """A subnet with a route table of its own (`routes`, when given, are the table's only routes)."""
        tags = _tags(f"{self._args.prefix}-ir-{logical}{suffix}")
        subnet = aws.ec2.Subnet(
            f"{self._name}-{logical}-subnet{suffix}",
            vpc_id=vpc.id,
            cidr_block=cidr,
            availability_zone=az,
            map_public_ip_on_launch=public,
            tags=tags,
            opts=self._child,
        )
        table = aws.ec2.RouteTable(
            f"{self._name}-{logical}-rt{suffix}", vpc_id=vpc.id, routes=routes, tags=tags, opts=self._child
        )
        aws.ec2.RouteTableAssociation(
            f"{self._name}-{logical}-rta{suffix}", subnet_id=subnet.id, route_table_id=table.id, opts=self._child
        )
        return subnet, table

    # -- analysis network -----------------------------------------------------------------------

    def _analysis_network(self) -> None:
        args, name = self._args, self._name
        cidr = args.analysis_vpc_cidr
        self.analysis_vpc = self._vpc("analysis", cidr, f"{args.prefix}-ir-analysis")
        # The VPC's default group allows all egress; strip it so nothing can fall back on it.
        aws.ec2.DefaultSecurityGroup(
            f"{name}-analysis-default-sg",
            vpc_id=self.analysis_vpc.id,
            ingress=[],
            egress=[],
            tags=_tags(f"{args.prefix}-ir-analysis-default"),
            opts=self._child,
        )
        self.analysis_subnets = []
        self.analysis_route_tables: list[aws.ec2.RouteTable] = []
        cidrs = subnet_cidrs(cidr, len(args.analysis_azs))
        for az, subnet_cidr in zip(args.analysis_azs, cidrs, strict=True):
            # An explicit empty route list: only the VPC's local route, and any route added by
            # hand (to a gateway, a peering, a NAT) is removed again at the next deployment.
            subnet, table = self._subnet(
                "analysis", f"-{az}", self.analysis_vpc, subnet_cidr, az, public=False, routes=[]
            )
            self.analysis_subnets.append(subnet)
            self.analysis_route_tables.append(table)

        # Only buckets of this account are reachable from analysis instances, whatever
        # credentials a sample running there might find.
        self.s3_endpoint = aws.ec2.VpcEndpoint(
            f"{name}-analysis-s3-endpoint",
            vpc_id=self.analysis_vpc.id,
            service_name=f"com.amazonaws.{args.region}.s3",
            vpc_endpoint_type="Gateway",
            route_table_ids=[table.id for table in self.analysis_route_tables],
            policy=policy_document(
                [
                    {
                        "Sid": "OnlyThisAccountsBuckets",
                        "Effect": "Allow",
                        "Principal": "*",
                        "Action": sorted(
                            [
                                "s3:GetObject",
                                "s3:GetObjectVersion",
                                "s3:PutObject",
                                "s3:ListBucket",
                                "s3:AbortMultipartUpload",
                                "s3:ListMultipartUploadParts",
                                "s3:GetBucketLocation",
                            ]
                        ),
                        "Resource": "*",
                        "Condition": {"StringEquals": {"aws:ResourceAccount": args.account}},
                    }
                ]
            ),
            tags=_tags(f"{args.prefix}-ir-analysis-s3"),
            opts=self._child,
        )

        self.endpoint_security_group = aws.ec2.SecurityGroup(
            f"{name}-analysis-endpoint-sg",
            vpc_id=self.analysis_vpc.id,
            description="Interface endpoints of the analysis VPC: HTTPS from inside the VPC only",
            ingress=[
                {
                    "protocol": "tcp",
                    "from_port": 443,
                    "to_port": 443,
                    "cidr_blocks": [cidr],
                    "description": "HTTPS from the analysis VPC",
                }
            ],
            egress=[],
            tags=_tags(f"{args.prefix}-ir-analysis-endpoints"),
            opts=self._child,
        )
        self.interface_endpoints = [
            aws.ec2.VpcEndpoint(
                f"{name}-analysis-{service}-endpoint",
                vpc_id=self.analysis_vpc.id,
                service_name=f"com.amazonaws.{args.region}.{service}",
                vpc_endpoint_type="Interface",
                private_dns_enabled=True,
                subnet_ids=[subnet.id for subnet in self.analysis_subnets],
                security_group_ids=[self.endpoint_security_group.id],
                tags=_tags(f"{args.prefix}-ir-analysis-{service}"),
                opts=self._child,
            )
            for service in INTERFACE_ENDPOINT_SERVICES
        ]

        # Analysis instances accept no connections (operators use Session Manager, which the
        # agent opens outbound) and speak HTTPS only: to the interface endpoints inside the VPC
        # and to S3 through the gateway endpoint, whose addresses are the S3 prefix list.
        self.analysis_security_group = aws.ec2.SecurityGroup(
            f"{name}-analysis-sg",
            vpc_id=self.analysis_vpc.id,
            description="Analysis instances: no inbound, HTTPS to the VPC endpoints only",
            ingress=[],
            egress=[
                {
                    "protocol": "tcp",
                    "from_port": 443,
                    "to_port": 443,
                    "cidr_blocks": [cidr],
                    "description": "HTTPS to the interface endpoints",
                },
                {
                    "protocol": "tcp",
                    "from_port": 443,
                    "to_port": 443,
                    "prefix_list_ids": [self.s3_endpoint.prefix_list_id],
                    "description": "HTTPS to S3 through the gateway endpoint",
                },
            ],
            tags=_tags(f"{args.prefix}-ir-analysis-instances"),
            opts=self._child,
        )

        flow_log_group = aws.cloudwatch.LogGroup(
            f"{name}-analysis-flow-logs",
            name=f"/{args.prefix}/irforensics/analysis-vpc-flow-logs",
            retention_in_days=args.log_retention_days,
            opts=self._child,
        )
        flow_log_role = service_role(
            f"{name}-analysis-flow-logs-role",
            service="vpc-flow-logs.amazonaws.com",
            opts=self._child,
            policy_logical=f"{name}-analysis-flow-logs-policy",
            policy=policy_document(
                [
                    allow(
                        "DeliverFlowLogs",
                        ["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"],
                        [flow_log_group.arn, pulumi.Output.concat(flow_log_group.arn, ":*")],
                    )
                ]
            ),
        )
        aws.ec2.FlowLog(
            f"{name}-analysis-flow-log",
            vpc_id=self.analysis_vpc.id,
            traffic_type="ALL",
            log_destination_type="cloud-watch-logs",
            log_destination=flow_log_group.arn,
            iam_role_arn=flow_log_role.arn,
            tags=_tags(f"{args.prefix}-ir-analysis"),
            opts=self._child,
        )

    # -- role permissions -----------------------------------------------------------------------

    def _role_policies(self) -> None:
        args, name = self._args, self._name
        region, account = args.region, args.account
        evidence, objects = self.evidence_bucket_arn, f"{self.evidence_bucket_arn}/*"
        snapshots_here = stack_arn(region, "ec2", region, "", "snapshot/*")
        instances_here = stack_arn(region, "ec2", region, account, "instance/*")
        volumes_here = stack_arn(region, "ec2", region, account, "volume/*")
        analysis_role = role_arn(account, self.analysis_role_name, region)
        analysis_profile = arns.iam_pattern(
            account, f"instance-profile/{naming.analysis_profile(args.prefix)}", region=region
        )
        any_kms_key = stack_arn(region, "kms", "*", "*", "key/*")
        member_keys: dict[str, Any] = {
            "ForAnyValue:StringEquals": {"kms:ResourceAliases": naming.member_ebs_key_alias(args.prefix)},
            # An alias name any account can create: the key must also be in this organisation.
            "StringEquals": {"aws:ResourceOrgID": "${aws:PrincipalOrgID}"},
        }
        from handlers.examination.orchestration import examination_log_group

        log_group_name = examination_log_group(args.prefix)
        self.examination_log_group = aws.cloudwatch.LogGroup(
            f"{name}-examination-logs",
            name=log_group_name,
            retention_in_days=args.log_retention_days,
            tags=_tags(f"{args.prefix}-ir-examination"),
            opts=self._child,
        )
        log_group_arn = stack_arn(region, "logs", region, account, f"log-group:{log_group_name}")
        document_name = naming.examination_document(args.prefix)
        self.examination_document = aws.ssm.Document(
            f"{name}-examination-document",
            name=document_name,
            document_type="Command",
            document_format="JSON",
            content=json.dumps(examination_document_content()),
            tags=_tags(document_name),
            opts=self._child,
        )
        examination_document = stack_arn(region, "ssm", region, account, f"document/{document_name}")
        automation = [
            # Source snapshots are shared from member accounts in any region.
            allow("CopySharedSnapshots", ["ec2:CopySnapshot"], [stack_arn(region, "ec2", "*", "", "snapshot/*")]),
            # Launching an analysis instance looks up the image, the analysis VPC, its subnets and group.
            allow(
                "DescribeEvidence",
                [
                    "ec2:DescribeImages",
                    "ec2:DescribeInstances",
                    "ec2:DescribeSecurityGroups",
                    "ec2:DescribeSnapshots",
                    "ec2:DescribeSubnets",
                    "ec2:DescribeVpcs",
                    "ssm:GetCommandInvocation",
                ],
                "*",
            ),
            allow(
                "ReadToolsetImageId",
                ["ssm:GetParameter"],
                [stack_arn(region, "ssm", region, account, f"parameter{naming.toolset_ami_parameter(args.prefix)}")],
            ),
            allow(
                "TagSnapshotCopies",
                ["ec2:CreateTags"],
                [snapshots_here],
                {"StringEquals": {"ec2:CreateAction": "CopySnapshot"}},
            ),
            allow(
                "TagAnalysisInstancesAtLaunch",
                ["ec2:CreateTags"],
                [instances_here, volumes_here],
                {"StringEquals": {"ec2:CreateAction": "RunInstances"}},
            ),
            allow(
                "LockAndReadSnapshotCopies",
                ["ebs:GetSnapshotBlock", "ebs:ListSnapshotBlocks", "ec2:LockSnapshot"],
                [snapshots_here],
            ),
            # Examination instances start only in the analysis subnets with the analysis group.
            # Only images this account owns (the toolset pipeline's), never a public or shared one.
            allow(
                "RunAnalysisImages",
                ["ec2:RunInstances"],
                [stack_arn(region, "ec2", region, "", "image/*")],
                {"StringEquals": {"ec2:Owner": account}},
            ),
            allow(
                "RunAnalysisInstances",
                ["ec2:RunInstances"],
                [
                    instances_here,
                    volumes_here,
                    stack_arn(region, "ec2", region, account, "network-interface/*"),
                    snapshots_here,
                    pulumi.Output.concat(
                        stack_arn(region, "ec2", region, account, "security-group/"), self.analysis_security_group.id
                    ),
                    *[
                        pulumi.Output.concat(stack_arn(region, "ec2", region, account, "subnet/"), subnet.id)
                        for subnet in self.analysis_subnets
                    ],
                ],
            ),
            allow(
                "TerminateAnalysisInstances",
                ["ec2:TerminateInstances"],
                [instances_here],
                {"ArnEquals": {"ec2:InstanceProfile": analysis_profile}},
            ),
            # The fixed examination document only, on instances the automation itself launched (it can
            # tag an instance only in the RunInstances call that creates it, TagAnalysisInstancesAtLaunch).
            allow("RunExaminationDocument", ["ssm:SendCommand"], [examination_document]),
            allow(
                "RunExaminationCommands",
                ["ssm:SendCommand"],
                [instances_here],
                {"StringEquals": {f"aws:ResourceTag/{MANAGED_BY_TAG}": MANAGED_BY_VALUE}},
            ),
            allow(
                "PassAnalysisRole",
                ["iam:PassRole"],
                [analysis_role],
                {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
            ),
            allow(
                "WriteEvidence",
                ["s3:AbortMultipartUpload", "s3:GetObject", "s3:ListMultipartUploadParts", "s3:PutObject"],
                [objects],
            ),
            allow("ListEvidence", ["s3:ListBucket"], [evidence]),
            # S3 SSE-KMS (GenerateDataKey, Decrypt) and EBS encrypting the forensic copies with this key.
            allow("UseEvidenceKey", AUTOMATION_KEY_ACTIONS, [self.key.arn]),
            allow(
                "GrantEvidenceKeyToEbs",
                ["kms:CreateGrant"],
                [self.key.arn],
                {"Bool": {"kms:GrantIsForAWSResource": "true"}},
            ),
            # Member EBS keys live in member accounts this stack does not know (any number, added
            # later); they are recognised by the alias every MemberResponder gives them.
            allow(
                "ReadMemberSnapshotKeys",
                ["kms:Decrypt", "kms:DescribeKey", "kms:ReEncryptFrom"],
                [any_kms_key],
                member_keys,
            ),
            allow(
                "GrantMemberSnapshotKeysToEbs",
                ["kms:CreateGrant"],
                [any_kms_key],
                {**member_keys, "Bool": {"kms:GrantIsForAWSResource": "true"}},
            ),
        ]
        # Signing each case's manifest digest (close-case, finalize, record-failure).
        automation.append(allow("SignManifests", ["kms:GetPublicKey", "kms:Sign"], [self.manifest_signing_key.arn]))
        aws.iam.RolePolicy(
            f"{name}-automation-policy",
            role=self.forensic_automation_role.id,
            policy=policy_document(automation),
            opts=self._child,
        )

        aws.iam.RolePolicy(
            f"{name}-analysis-instance-policy",
            role=self.analysis_role.id,
            opts=self._child,
            policy=policy_document(
                [
                    allow("ReadEvidence", ["s3:GetObject"], [objects]),
                    allow("ListEvidence", ["s3:ListBucket"], [evidence]),
                    allow(
                        "WriteFindings",
                        ["s3:AbortMultipartUpload", "s3:PutObject"],
                        [f"{evidence}/*/analysis/*", f"{evidence}/*/report/*"],
                    ),
                    # IAM's `*` crosses "/": without this, <case>/disk/analysis/x or a/b/report/x would match.
                    # analysis/ and report/ must be the second segment, right under the case id.
                    deny(
                        "FindingsOnlyRightUnderTheCase",
                        ["s3:PutObject"],
                        [f"{evidence}/*/*/analysis/*", f"{evidence}/*/*/report/*"],
                    ),
                    # The examination's SSM output (SendCommand's CloudWatchOutputConfig) goes to its group.
                    allow(
                        "WriteExaminationOutput",
                        ["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"],
                        [log_group_arn, f"{log_group_arn}:*"],
                    ),
                    allow(
                        "FindExaminationLogGroup",
                        ["logs:DescribeLogGroups"],
                        "*",
                    ),
                    # Reading and writing SSE-KMS objects; S3 uses the key, nothing else does.
                    allow("UseEvidenceKey", ["kms:Decrypt", "kms:GenerateDataKey"], [self.key.arn]),
                ]
            ),
        )

        aws.iam.RolePolicy(
            f"{name}-investigator-policy",
            role=self.investigator_role.id,
            opts=self._child,
            policy=policy_document(
                [
                    allow(
                        "ReadEvidence",
                        ["s3:GetObject", "s3:GetObjectLegalHold", "s3:GetObjectRetention", "s3:GetObjectVersion"],
                        [objects],
                    ),
                    allow("ListEvidence", ["s3:ListBucket", "s3:ListBucketVersions"], [evidence]),
                    allow("DecryptEvidence", ["kms:Decrypt", "kms:DescribeKey"], [self.key.arn]),
                    # Explicit, so that no policy attached later can turn reading into changing.
                    deny("NeverChangeEvidence", sorted(INVESTIGATOR_DENIED_ACTIONS), [evidence, objects]),
                    deny(
                        "NeverTouchEvidenceKey",
                        ["kms:DisableKey", "kms:PutKeyPolicy", "kms:ScheduleKeyDeletion"],
                        [self.key.arn],
                    ),
                ]
            ),
        )

    # -- toolset image ----------------------------------------------------------------------------

    def _toolset_pipeline(self) -> None:
        args, name = self._args, self._name
        # The build needs the internet (dnf, GitHub, PyPI); it gets its own VPC so the analysis
        # VPC never has a route out. Nothing examines evidence here.
        build_vpc = self._vpc("toolset-build", args.build_vpc_cidr, f"{args.prefix}-ir-toolset-build")
        build_subnet, build_routes = self._subnet(
            "toolset-build",
            "",
            build_vpc,
            subnet_cidrs(args.build_vpc_cidr, 1)[0],
            args.analysis_azs[0],
            public=True,
        )
        gateway = aws.ec2.InternetGateway(
            f"{name}-toolset-build-igw",
            vpc_id=build_vpc.id,
            tags=_tags(f"{args.prefix}-ir-toolset-build"),
            opts=self._child,
        )
        aws.ec2.Route(
            f"{name}-toolset-build-internet-route",
            route_table_id=build_routes.id,
            destination_cidr_block="0.0.0.0/0",
            gateway_id=gateway.id,
            opts=self._child,
        )
        build_group = aws.ec2.SecurityGroup(
            f"{name}-toolset-build-sg",
            vpc_id=build_vpc.id,
            description="Toolset image builds: HTTPS out (packages, sources), nothing in",
            ingress=[],
            egress=[
                {
                    "protocol": "tcp",
                    "from_port": 443,
                    "to_port": 443,
                    "cidr_blocks": ["0.0.0.0/0"],
                    "description": "HTTPS to package repositories and source hosts",
                }
            ],
            tags=_tags(f"{args.prefix}-ir-toolset-build"),
            opts=self._child,
        )

        source_bucket_name = naming.toolset_bucket(args.prefix, args.account, args.region)
        source_bucket, settings = self._private_bucket("toolset-bucket", source_bucket_name, kms_key=None)
        self._bucket_policy("toolset-bucket", source_bucket, source_bucket_name, [], settings)
        self._expire("toolset-bucket", source_bucket, settings[1], args.retention_days)
        source = aws.s3.BucketObjectv2(
            f"{name}-toolset-source",
            bucket=source_bucket.id,
            key=TOOLSET_SOURCE_KEY,
            source=pulumi.AssetArchive(
                {path: pulumi.FileAsset(str(file)) for path, file in project_source_files().items()}
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=settings),
        )

        build_role = service_role(
            f"{name}-toolset-build-role",
            service="ec2.amazonaws.com",
            tags=_tags(f"{args.prefix}-ir-toolset-build"),
            opts=self._child,
            policy_logical=f"{name}-toolset-build-source",
            policy=policy_document(
                [
                    allow(
                        "ReadProjectSource",
                        ["s3:GetObject"],
                        [f"{bucket_arn(source_bucket_name, args.region)}/source/*"],
                    )
                ]
            ),
        )
        managed = (("image-builder", IMAGE_BUILDER_INSTANCE_POLICY), ("ssm", SSM_CORE_POLICY))
        for policy_name, policy in managed:
            aws.iam.RolePolicyAttachment(
                f"{name}-toolset-build-{policy_name}",
                role=build_role.name,
                policy_arn=managed_policy(policy, args.region),
                opts=self._child,
            )
        build_profile = aws.iam.InstanceProfile(f"{name}-toolset-build-profile", role=build_role.name, opts=self._child)

        document = toolset_component_document(source_bucket_name)
        # Components and recipes are immutable per (name, version): a changed document needs a
        # new version, so the version carries a digest of the content.
        version = f"1.0.{int(hashlib.sha256(document.encode()).hexdigest()[:6], 16)}"
        image_name = f"{args.prefix}-ir-toolset"
        component = aws.imagebuilder.Component(
            f"{name}-toolset-component",
            name=image_name,
            version=version,
            platform="Linux",
            supported_os_versions=["Amazon Linux 2023"],
            data=document,
            description="Forensic toolset for irforensics analysis instances",
            tags=_tags(image_name),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[source]),
        )
        recipe = aws.imagebuilder.ImageRecipe(
            f"{name}-toolset-recipe",
            name=image_name,
            version=version,
            parent_image=TOOLSET_PARENT_IMAGE,
            components=[{"component_arn": component.arn}],
            block_device_mappings=[
                aws.imagebuilder.ImageRecipeBlockDeviceMappingArgs(
                    device_name="/dev/xvda",
                    ebs=aws.imagebuilder.ImageRecipeBlockDeviceMappingEbsArgs(
                        volume_size=30, volume_type="gp3", encrypted="true", delete_on_termination="true"
                    ),
                )
            ],
            tags=_tags(image_name),
            opts=self._child,
        )
        infrastructure = aws.imagebuilder.InfrastructureConfiguration(
            f"{name}-toolset-build-infrastructure",
            name=image_name,
            instance_profile_name=build_profile.name,
            instance_types=["m7i.large"],
            subnet_id=build_subnet.id,
            security_group_ids=[build_group.id],
            terminate_instance_on_failure=True,
            instance_metadata_options={"http_tokens": "required", "http_put_response_hop_limit": 1},
            tags=_tags(image_name),
            opts=self._child,
        )

        self.toolset_ami_parameter = aws.ssm.Parameter(
            f"{name}-toolset-ami-parameter",
            name=naming.toolset_ami_parameter(args.prefix),
            type="String",
            data_type="text",
            value=TOOLSET_AMI_UNSET,
            description=f"AMI id of the newest forensic toolset image ('{TOOLSET_AMI_UNSET}' before the first)",
            tags=_tags(image_name),
            # Image Builder owns the value after the first build; a deployment must not reset it.
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["value"]),
        )
        distribution = aws.imagebuilder.DistributionConfiguration(
            f"{name}-toolset-distribution",
            name=image_name,
            distributions=[
                {
                    "region": args.region,
                    "ami_distribution_configuration": {
                        "name": f"{image_name}-{{{{ imagebuilder:buildDate }}}}",
                        "ami_tags": {MANAGED_BY_TAG: MANAGED_BY_VALUE, "irforensics:image": "toolset"},
                    },
                    # Written by Image Builder's service-linked role; "text" because the parameter
                    # starts with the sentinel, which the aws:ec2:image data type would refuse.
                    "ssm_parameter_configurations": [
                        {"parameter_name": self.toolset_ami_parameter.name, "data_type": "text"}
                    ],
                }
            ],
            tags=_tags(image_name),
            opts=self._child,
        )
        self.toolset_pipeline = aws.imagebuilder.ImagePipeline(
            f"{name}-toolset-pipeline",
            name=image_name,
            image_recipe_arn=recipe.arn,
            infrastructure_configuration_arn=infrastructure.arn,
            distribution_configuration_arn=distribution.arn,
            # Weekly whether or not anything changed: the image picks up the week's OS fixes.
            schedule={
                "schedule_expression": "cron(0 3 ? * sun *)",
                "pipeline_execution_start_condition": "EXPRESSION_MATCH_ONLY",
            },
            image_tests_configuration={"image_tests_enabled": True, "timeout_minutes": 60},
            tags=_tags(image_name),
            opts=self._child,
        )
