"""IAM policy documents as Pulumi outputs (JSON built with Output.json_dumps, no provider calls).

ARNs in them take the partition of the stack's region (core.arns): the same statements serve
the commercial, China and GovCloud partitions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pulumi

from core import arns

Statement = dict[str, Any]

# What a state machine needs to deliver its logs and traces. CloudWatch Logs delivery has no
# resource-level permissions (AWS docs), so these are granted on "*".
STATE_MACHINE_LOG_DELIVERY_ACTIONS = (
    "logs:CreateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:DescribeLogGroups",
    "logs:DescribeResourcePolicies",
    "logs:GetLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:UpdateLogDelivery",
)
XRAY_ACTIONS = ("xray:GetSamplingRules", "xray:GetSamplingTargets", "xray:PutTelemetryRecords", "xray:PutTraceSegments")


def policy_document(statements: Sequence[Statement]) -> pulumi.Output[str]:
    for statement in statements:
        actions = statement.get("Action", [])
        wildcard = actions == "*" or (isinstance(actions, list) and "*" in actions)
        if wildcard and statement.get("Effect") == "Allow":
            raise ValueError(f"statement {statement.get('Sid', '?')} allows Action '*': name the actions")
    return pulumi.Output.json_dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(sid: str, actions: Sequence[str], resources: Any, condition: dict[str, Any] | None = None) -> Statement:
    statement: Statement = {"Sid": sid, "Effect": "Allow", "Action": sorted(actions), "Resource": resources}
    if condition:
        statement["Condition"] = condition
    return statement


def deny(
    sid: str, actions: Any, resources: Any, condition: dict[str, Any] | None = None, principal: Any = None
) -> Statement:
    statement: Statement = {"Sid": sid, "Effect": "Deny", "Action": actions, "Resource": resources}
    if principal is not None:
        statement["Principal"] = principal
    if condition:
        statement["Condition"] = condition
    return statement


def service_trust(*services: str) -> pulumi.Output[str]:
    return policy_document(
        [
            {
                "Sid": "ServiceAssumes",
                "Effect": "Allow",
                "Action": "sts:AssumeRole",
                "Principal": {"Service": sorted(services)},
            }
        ]
    )


def account_root(account: str, region: str) -> str:
    """The account as a principal: `arn:<partition>:iam::<account>:root`."""
    return arns.arn("iam", "root", region=region, account=account, scoped_region=False)


def managed_policy(name: str, region: str) -> str:
    """An AWS managed policy's ARN: `arn:<partition>:iam::aws:policy/<name>` (each partition has its own)."""
    return arns.arn("iam", f"policy/{name}", region=region, account="aws", scoped_region=False)


def stack_arn(stack_region: str, service: str, region: str, account: str, resource: str) -> str:
    """`arn:<partition>:<service>:<region>:<account>:<resource>`, the partition that of the stack's
    region: `region` and `account` may be empty (S3, IAM) or `*` (any, within that partition)."""
    return f"arn:{arns.partition(stack_region)}:{service}:{region}:{account}:{resource}"


def cross_account_trust(trusted_account: Any, principal_arn_pattern: Any, region: str = "") -> pulumi.Output[str]:
    """Trust one account's principals, narrowed to roles whose ARN matches the pattern.

    `region` (the stack's) chooses the partition of the account's ARN; empty means `aws`.
    """
    return policy_document(
        [
            {
                "Sid": "SecurityAutomationAssumes",
                "Effect": "Allow",
                "Action": "sts:AssumeRole",
                "Principal": {
                    "AWS": pulumi.Output.concat(f"arn:{arns.partition(region)}:iam::", trusted_account, ":root")
                },
                "Condition": {"ArnLike": {"aws:PrincipalArn": principal_arn_pattern}},
            }
        ]
    )


def logs_key_statements(sid: str, region: str, account: Any) -> list[Statement]:
    """Key-policy statements letting CloudWatch Logs encrypt this account's log groups with the key.

    DescribeKey carries no encryption context, so it gets its own statement, bound by the source
    account: under the encryption-context condition it would never match (issue 15, finding 5).
    """
    service = {"Service": f"logs.{region}.amazonaws.com"}
    return [
        {
            "Sid": sid,
            "Effect": "Allow",
            "Principal": service,
            "Action": [
                "kms:Decrypt",
                "kms:Encrypt",
                "kms:GenerateDataKey",
                "kms:GenerateDataKeyWithoutPlaintext",
                "kms:ReEncryptFrom",
                "kms:ReEncryptTo",
            ],
            "Resource": "*",
            "Condition": {
                # A string key holding an ARN (KMS condition keys): StringLike, as parliament's type check wants.
                "StringLike": {
                    "kms:EncryptionContext:aws:logs:arn": stack_arn(region, "logs", region, account, "log-group:*")
                }
            },
        },
        {
            "Sid": f"{sid}DescribeKey",
            "Effect": "Allow",
            "Principal": service,
            "Action": "kms:DescribeKey",
            "Resource": "*",
            "Condition": {"StringEquals": {"aws:SourceAccount": account}},
        },
    ]
