"""IAM policy documents as Pulumi outputs (JSON built with Output.json_dumps, no provider calls)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pulumi

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


def cross_account_trust(trusted_account: Any, principal_arn_pattern: Any) -> pulumi.Output[str]:
    """Trust one account's principals, narrowed to roles whose ARN matches the pattern."""
    return policy_document(
        [
            {
                "Sid": "SecurityAutomationAssumes",
                "Effect": "Allow",
                "Action": "sts:AssumeRole",
                "Principal": {"AWS": pulumi.Output.concat("arn:aws:iam::", trusted_account, ":root")},
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
                "StringLike": {"kms:EncryptionContext:aws:logs:arn": f"arn:aws:logs:{region}:{account}:log-group:*"}
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
