"""Deterministic cross-account names (DESIGN.md "Cross-account names").

Every stack derives the names of the other stacks' resources from the prefix and the account
id and region, so stacks deploy in any order and nothing is pasted by hand. Pure functions,
no Pulumi import: Lambdas use the same module to find what the stacks created.
"""

from __future__ import annotations

import re

from core import arns

_PREFIX = re.compile(r"^[a-z][a-z0-9-]{1,19}$")


def check_prefix(prefix: str) -> str:
    if not _PREFIX.match(prefix):
        raise ValueError(
            f"prefix {prefix!r} must be 2-20 characters of lowercase letters, digits and '-', "
            "starting with a letter (it becomes part of bucket and role names)"
        )
    return prefix


def evidence_bucket(prefix: str, account: str, region: str) -> str:
    return f"{prefix}-ir-artifacts-{account}-{region}"


def access_log_bucket(prefix: str, account: str, region: str) -> str:
    return f"{prefix}-ir-access-logs-{account}-{region}"


def trail_bucket(prefix: str, account: str, region: str) -> str:
    return f"{prefix}-ir-trail-{account}-{region}"


def modules_bucket(prefix: str, account: str, region: str) -> str:
    return f"{prefix}-ir-modules-{account}-{region}"


def toolset_bucket(prefix: str, account: str, region: str) -> str:
    return f"{prefix}-ir-toolset-{account}-{region}"


def forensic_key_alias(prefix: str) -> str:
    return f"alias/{prefix}-forensic"


def member_ebs_key_alias(prefix: str) -> str:
    return f"alias/{prefix}-ebs"


def lambda_function_name(prefix: str, function: str) -> str:
    return f"{prefix}-ir-{function}"


def lambda_role_name(prefix: str, function: str) -> str:
    """Execution role of one security-account Lambda; member and forensic roles trust this pattern."""
    return f"{prefix}-ir-lambda-{function}"


def lambda_role_pattern(prefix: str, security_account: str, region: str = "") -> str:
    # IAM ARNs carry no region; `region` (any of the deployment's) only chooses the partition.
    return arns.iam_pattern(security_account, f"role/{prefix}-ir-lambda-*", region=region)


def member_responder_role(prefix: str, region: str) -> str:
    # IAM is global: one responder per (account, region) needs the region in its role names.
    return f"{prefix}-ir-responder-{region}"


def member_responder_role_arn(prefix: str, account: str, region: str) -> str:
    return arns.iam_role(account, member_responder_role(prefix, region), region=region)


def isolation_profile(prefix: str, region: str) -> str:
    return f"{prefix}-ir-isolation-{region}"


def acquisition_profile(prefix: str, region: str) -> str:
    return f"{prefix}-ir-acquisition-{region}"


def forensic_automation_role(prefix: str) -> str:
    return f"{prefix}-ir-forensic-automation"


def forensic_automation_role_arn(prefix: str, forensic_account: str, forensic_region: str = "") -> str:
    return arns.iam_role(forensic_account, forensic_automation_role(prefix), region=forensic_region)


def investigator_role(prefix: str) -> str:
    return f"{prefix}-ir-investigator"


def analysis_profile(prefix: str) -> str:
    return f"{prefix}-ir-analysis"


def case_table(prefix: str) -> str:
    return f"{prefix}-ir-cases"


def notification_topic(prefix: str) -> str:
    return f"{prefix}-ir-notifications"


def state_machine_name(prefix: str, machine: str) -> str:
    return f"{prefix}-ir-{machine}"


# Value of the toolset AMI parameter until the image pipeline's first build replaces it.
TOOLSET_AMI_UNSET = "unset"


def toolset_ami_parameter(prefix: str) -> str:
    return f"/{prefix}/irforensics/toolset-ami-id"


def isolation_group_names(prefix: str) -> tuple[str, str]:
    """(allow-tracked, no-rule) security group names, one pair per VPC."""
    return f"{prefix}-ir-isolation-tracked", f"{prefix}-ir-isolation-deny-all"


def release_role(prefix: str, region: str) -> str:
    """Member-account role that only the release Lambda assumes: it may pass the instance's original role back."""
    return f"{prefix}-ir-release-{region}"


def release_role_arn(prefix: str, account: str, region: str) -> str:
    return arns.iam_role(account, release_role(prefix, region), region=region)


def release_lambda_role(prefix: str) -> str:
    """The security-account role of the release Lambda, the only principal the release role trusts."""
    return lambda_role_name(prefix, "release")


def revocation_policy(prefix: str, region: str) -> str:
    """The fixed, deny-only managed policy attached to an instance's role to revoke its sessions."""
    return f"{prefix}-ir-revoke-sessions-{region}"


def ssm_document(prefix: str, purpose: str) -> str:
    """An SSM Command document the stacks create; the only documents the automation may run."""
    return f"{prefix}-ir-{purpose}"


def ssm_document_pattern(prefix: str) -> str:
    return f"{prefix}-ir-*"


def examination_document(prefix: str) -> str:
    return ssm_document(prefix, "examine")
