"""Revoking the sessions an instance's original role issued to it, without writing any policy at run time.

A free `iam:PutRolePolicy` on every role would let whoever holds the responder role grant any role
anything (SECURITY.md). Instead each member stack creates one fixed, deny-only managed policy
(`revocation_document`); containment attaches it to the instance's role (`iam:AttachRolePolicy`,
bound by `iam:PolicyARN` to that one policy) and names the instance in a role tag
(`iam:TagRole`, bound by `aws:TagKeys` to the slot keys below). Each statement of the policy
denies every action to credentials whose `ec2:SourceInstanceARN` equals the ARN a slot tag holds
(`${aws:PrincipalTag/...}` is resolved from the role's tags), so neither the policy nor any
document grows per instance: a role can carry `SLOTS` contained instances at once (tags, not
policy characters). When the tag is absent the variable does not resolve and the statement
matches nothing. Credentials from the instance's original role are all denied, whatever their
issue time: once contained the instance holds isolation-role credentials only, so every live
original-role session of that instance predates containment.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from botocore.exceptions import ClientError

SLOTS = 10
SLOT_TAG_PREFIX = "irforensics-revoked-"
# The time the slot was filled: kept so a repeated containment reports the same cut-off.
SINCE_SUFFIX = "-since"


def slot_key(slot: int) -> str:
    return f"{SLOT_TAG_PREFIX}{slot}"


def revocation_document() -> dict[str, Any]:
    """The deny-only policy every contained instance's role carries; fixed when the stack is deployed."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": f"RevokeSessionsOfContainedInstance{slot}",
                "Effect": "Deny",
                "Action": "*",
                "Resource": "*",
                "Condition": {"StringEquals": {"ec2:SourceInstanceARN": f"${{aws:PrincipalTag/{slot_key(slot)}}}"}},
            }
            for slot in range(1, SLOTS + 1)
        ],
    }


def policy_arn(instance_arn: str, policy_name: str) -> str:
    # arn:<partition>:ec2:<region>:<account>:instance/<id>: the policy is in the instance's account.
    parts = instance_arn.split(":")
    return f"arn:{parts[1]}:iam::{parts[4]}:policy/{policy_name}"


class NoRevocationSlot(Exception):
    """Every slot of the role already names another contained instance."""


def _tags(iam: Any, role: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    kwargs: dict[str, Any] = {"RoleName": role}
    while True:
        page = iam.list_role_tags(**kwargs)
        tags |= {t["Key"]: t["Value"] for t in page.get("Tags", [])}
        if not page.get("IsTruncated"):
            return tags
        kwargs["Marker"] = page["Marker"]


def _tags_of_existing(iam: Any, role: str) -> dict[str, str] | None:
    """The role's tags; None once the role is deleted (nothing of it is left to revoke or restore)."""
    try:
        return _tags(iam, role)
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "NoSuchEntity":
            return None
        raise


def _slot_of(tags: dict[str, str], instance_arn: str) -> int | None:
    for slot in range(1, SLOTS + 1):
        if tags.get(slot_key(slot)) == instance_arn:
            return slot
    return None


def revoked_roles(iam: Any, roles: Iterable[str], instance_arn: str) -> dict[str, str]:
    """Roles whose sessions from this instance are already revoked, with the time it was done."""
    found: dict[str, str] = {}
    for role in roles:
        tags = _tags_of_existing(iam, role)
        if tags is None:
            continue
        slot = _slot_of(tags, instance_arn)
        if slot is not None:
            found[role] = tags.get(slot_key(slot) + SINCE_SUFFIX, "")
    return found


def revoke(iam: Any, role: str, instance_arn: str, policy_name: str, since: str) -> None:
    """Name the instance in a free slot of its role, then make sure the deny policy is attached."""
    tags = _tags(iam, role)
    slot = _slot_of(tags, instance_arn)
    if slot is None:
        free = [s for s in range(1, SLOTS + 1) if slot_key(s) not in tags]
        if not free:
            raise NoRevocationSlot(
                f"role {role} already revokes the sessions of {SLOTS} contained instances; release one first"
            )
        slot = free[0]
        iam.tag_role(
            RoleName=role,
            Tags=[
                {"Key": slot_key(slot), "Value": instance_arn},
                {"Key": slot_key(slot) + SINCE_SUFFIX, "Value": since},
            ],
        )
    # Tag first: the attached policy denies nothing until a slot names the instance.
    iam.attach_role_policy(RoleName=role, PolicyArn=policy_arn(instance_arn, policy_name))


def restore(iam: Any, role: str, instance_arn: str, policy_name: str) -> None:
    """Free the instance's slot; detach the deny policy when no slot is left in use."""
    tags = _tags_of_existing(iam, role)
    if tags is None:
        return
    slot = _slot_of(tags, instance_arn)
    if slot is not None:
        iam.untag_role(RoleName=role, TagKeys=[slot_key(slot), slot_key(slot) + SINCE_SUFFIX])
        tags = {k: v for k, v in tags.items() if k not in (slot_key(slot), slot_key(slot) + SINCE_SUFFIX)}
    if any(slot_key(s) in tags for s in range(1, SLOTS + 1)):
        return
    try:
        iam.detach_role_policy(RoleName=role, PolicyArn=policy_arn(instance_arn, policy_name))
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "NoSuchEntity":
            raise
