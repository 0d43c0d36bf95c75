"""Roles an AWS service assumes, with their inline policy, and the log group and role of a state machine.

Helpers for the components, not components: each resource is created with the caller's options
(`parent=` the component), under the logical name the caller gives, so moving a role here never
renames (and so never replaces) a deployed resource.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pulumi
import pulumi_aws as aws

from components import naming
from components.policies import (
    STATE_MACHINE_LOG_DELIVERY_ACTIONS,
    XRAY_ACTIONS,
    Statement,
    allow,
    policy_document,
    service_trust,
)


def service_role(
    logical: str,
    *,
    service: str,
    policy_logical: str,
    policy: pulumi.Input[str],
    opts: pulumi.ResourceOptions,
    name: str | None = None,
    description: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> aws.iam.Role:
    """A role only `service` assumes, and its inline policy `policy` (a JSON document)."""
    role = aws.iam.Role(
        logical,
        name=name,
        description=description,
        assume_role_policy=service_trust(service),
        tags=dict(tags) if tags is not None else None,
        opts=opts,
    )
    aws.iam.RolePolicy(policy_logical, role=role.id, policy=policy, opts=opts)
    return role


def state_machine_execution(
    logical: str,
    *,
    prefix: str,
    machine: str,
    key_arn: pulumi.Input[str],
    retention_days: int,
    statements: Sequence[Statement],
    tags: Mapping[str, str],
    opts: pulumi.ResourceOptions,
) -> tuple[aws.cloudwatch.LogGroup, aws.iam.Role]:
    """The execution log group and role of state machine `machine`.

    The group is `/aws/vendedlogs/states/<machine's name>` (the prefix AWS recommends for vended
    logs: it keeps the CloudWatch Logs resource policy within its size limit), encrypted with
    `key_arn`; the role, `<prefix>-ir-states-<machine>`, gets `statements` plus log delivery and tracing.
    """
    log_group = aws.cloudwatch.LogGroup(
        f"{logical}-logs",
        name=f"/aws/vendedlogs/states/{naming.state_machine_name(prefix, machine)}",
        retention_in_days=retention_days,
        kms_key_id=key_arn,
        tags=dict(tags),
        opts=opts,
    )
    role = service_role(
        f"{logical}-role",
        service="states.amazonaws.com",
        policy_logical=f"{logical}-policy",
        policy=policy_document(
            [
                *statements,
                allow("DeliverExecutionLogs", STATE_MACHINE_LOG_DELIVERY_ACTIONS, "*"),
                allow("Tracing", XRAY_ACTIONS, "*"),
            ]
        ),
        name=f"{prefix}-ir-states-{machine}",
        tags=tags,
        opts=opts,
    )
    return log_group, role
