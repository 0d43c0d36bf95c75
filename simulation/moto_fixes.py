"""Where moto's behaviour differs from AWS in a way that would make the simulation fail or lie.

Each fix is named, says what AWS does, and is applied only inside the simulation / test cloud.
"""

from __future__ import annotations

import fnmatch
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

from moto.core.exceptions import AccessDeniedError
from moto.ebs.models import EBSSnapshot
from moto.ec2.models.elastic_block_store import EBSBackend
from moto.iam.access_control import IAMPolicyStatement, PermissionResult
from moto.iam.models import iam_backends
from moto.s3.models import S3Backend
from moto.s3.responses import S3Response
from moto.sts.models import STSBackend

from simulation.ec2_semantics import install_ec2_semantics

_original_is_action_permitted = IAMPolicyStatement.is_action_permitted
# What every request in the simulation carries: moto's endpoints are reached over HTTPS.
REQUEST_CONTEXT = {"aws:SecureTransport": "true"}


_NEGATED = ("StringNotEquals", "StringNotLike", "ArnNotEquals", "ArnNotLike", "StringNotEqualsIgnoreCase")


def _values(value: Any) -> list[str]:
    return [str(v) for v in (value if isinstance(value, list) else [value])]


def _holds(operator: str, key: str, expected: Any, context: dict[str, str]) -> bool:
    """One condition of IAM's grammar, for the operators our policies use."""
    operator = operator.split(":", 1)[-1]  # ForAnyValue:/ForAllValues: over single-valued keys
    if_exists = operator.endswith("IfExists")
    operator = operator.removesuffix("IfExists")
    wanted = _values(expected)
    if operator == "Null":
        return (key not in context) == (wanted[0].lower() == "true")
    if key not in context:
        return if_exists or operator in _NEGATED
    actual = context[key]
    if operator == "Bool":
        return actual.lower() in [w.lower() for w in wanted]
    if operator in ("StringEquals", "ArnEquals"):
        return actual in wanted
    if operator in ("StringLike", "ArnLike"):
        return any(fnmatch.fnmatchcase(actual, w) for w in wanted)
    if operator in ("StringNotEquals", "ArnNotEquals"):
        return actual not in wanted
    if operator in ("StringNotLike", "ArnNotLike"):
        return not any(fnmatch.fnmatchcase(actual, w) for w in wanted)
    # An operator this simulation does not model: the statement is treated as not applying.
    return False


def _conditions_hold(statement: dict[str, Any], context: dict[str, str]) -> bool:
    return all(
        _holds(operator, key, expected, context)
        for operator, keys in statement.get("Condition", {}).items()
        for key, expected in keys.items()
    )


def _is_action_permitted(
    self: IAMPolicyStatement,
    action: str,
    resource: str = "*",
    principal: str | None = None,
    incoming_condition_values: dict[str, str] | None = None,
) -> PermissionResult:
    """moto 5.2.5 evaluates bucket policies with no request context at all, and answers DENIED for
    any statement whose Condition it cannot satisfy, Allow or Deny. On AWS a statement whose
    condition does not hold does not apply (NEUTRAL): "Deny s3:* unless aws:SecureTransport" must not
    deny a TLS request; and moto's condition check ignores operators it does not know (Bool) as
    satisfied. Here conditions are evaluated by IAM's rules for the operators our policies use,
    against a request context holding aws:SecureTransport=true."""
    statement: dict[str, Any] = self._statement
    if not statement.get("Condition"):
        return _original_is_action_permitted(self, action, resource, principal, incoming_condition_values)
    context = {**REQUEST_CONTEXT, **(incoming_condition_values or {})}
    if not _conditions_hold(statement, context):
        return PermissionResult.NEUTRAL
    unconditional = IAMPolicyStatement({k: v for k, v in statement.items() if k != "Condition"})
    return _original_is_action_permitted(unconditional, action, resource, principal, context)


EBS_BLOCK_SIZE = 512 * 1024
_original_snapshot_init = EBSSnapshot.__init__


def _snapshot_init(self: EBSSnapshot, *args: Any, **kwargs: Any) -> None:
    """moto reports 512-byte blocks for EBS direct snapshots; AWS's are always 512 KiB."""
    _original_snapshot_init(self, *args, **kwargs)
    self.block_size = EBS_BLOCK_SIZE


_original_copy_snapshot = EBSBackend.copy_snapshot


def copy_shared_snapshot(
    self: Any, source_snapshot_id: str, source_region: str, description: str, kms_key_id: str | None
) -> Any:
    """moto 5.2.5 looks the source snapshot up only in the caller's own account. On EC2 an account
    copies a snapshot another account shared with it (createVolumePermission): that is how the
    forensic account takes the member's snapshots. Find the shared snapshot in its owner's account."""
    from moto.ec2.models import ec2_backends

    own = ec2_backends[self.account_id][source_region]
    if source_snapshot_id in own.snapshots:
        return _original_copy_snapshot(self, source_snapshot_id, source_region, description, kms_key_id)
    for account_id, regions in ec2_backends.items():
        if account_id == self.account_id or source_region not in regions:
            continue
        snapshot = regions[source_region].snapshots.get(source_snapshot_id)
        if snapshot is None:
            continue
        if (
            self.account_id not in snapshot.create_volume_permission_userids
            and "all" not in snapshot.create_volume_permission_groups
        ):
            break
        from moto.ec2.models.elastic_block_store import Snapshot
        from moto.ec2.utils import random_snapshot_id

        copy = Snapshot(
            self,
            random_snapshot_id(),
            volume=snapshot.volume,
            description=description,
            encrypted=snapshot.encrypted,
            kms_key_id=kms_key_id,
        )
        self.snapshots[copy.id] = copy
        return copy
    return _original_copy_snapshot(self, source_snapshot_id, source_region, description, kms_key_id)


_original_create_snapshot = EBSBackend.create_snapshot


def _create_snapshot(self: Any, volume_id: str, *args: Any, **kwargs: Any) -> Any:
    """moto 5.2.5's CreateSnapshot(s) keep the volume's Encrypted flag but drop its KMS key; on EC2 a
    snapshot is under its volume's key, which is what decides how the evidence copy is re-encrypted
    (and which key EBS uses the responder's permissions on)."""
    snapshot = _original_create_snapshot(self, volume_id, *args, **kwargs)
    snapshot.kms_key_id = snapshot.volume.kms_key_id
    return snapshot


# The role every account created by AWS Organizations has for its administrators: the simulation's
# own set-up and assertions act through it (simulation.local_aws.account_session); it is never ours.
ORGANIZATION_ADMIN_ROLE = "OrganizationAccountAccessRole"
_original_assume_role = STSBackend.assume_role


def _assume_role(
    self: STSBackend, region_name: str, role_session_name: str, role_arn: str, *args: Any, **kwargs: Any
) -> Any:
    """moto issues credentials for any role ARN; AWS refuses AssumeRole of a role that does not exist
    (an account without the MemberResponder), with AccessDenied."""
    parts = role_arn.split(":")
    name = role_arn.rsplit("/", 1)[-1]
    if len(parts) == 6 and name != ORGANIZATION_ADMIN_ROLE:
        account = parts[4]
        try:
            iam_backends[account]["aws"].get_role_by_arn(role_arn)
        except Exception as missing:
            raise AccessDeniedError(
                user_arn=f"arn:aws:iam::{self.account_id}:root", action=f"sts:AssumeRole on resource: {role_arn}"
            ) from missing
    return _original_assume_role(self, region_name, role_session_name, role_arn, *args, **kwargs)


_original_complete_multipart_upload = S3Backend.complete_multipart_upload


def _complete_multipart_upload(self: S3Backend, bucket_name: str, multipart_id: str, body: Any) -> Any:
    """moto applies a bucket's default Object Lock retention to PutObject only; AWS applies it to
    every new object version, a completed multipart upload (every disk image) included."""
    key = _original_complete_multipart_upload(self, bucket_name, multipart_id, body)
    bucket = self.get_bucket(bucket_name)
    if key is not None and bucket.has_default_lock and not key.lock_mode:
        key.lock_mode = bucket.default_lock_mode
        key.lock_until = bucket.default_retention()
    return key


class Patches:
    """setattr that remembers, like pytest's MonkeyPatch, for use outside tests (the simulation)."""

    def __init__(self) -> None:
        self._saved: list[tuple[Any, str, Any, bool]] = []

    def setattr(self, target: Any, name: str, value: Any, raising: bool = True) -> None:
        present = name in vars(target) if isinstance(target, type) else hasattr(target, name)
        if raising and not hasattr(target, name):
            raise AttributeError(f"{target!r} has no attribute {name!r}")
        self._saved.append(
            (target, name, vars(target).get(name) if isinstance(target, type) else getattr(target, name, None), present)
        )
        setattr(target, name, value)

    def undo(self) -> None:
        for target, name, value, present in reversed(self._saved):
            if present:
                setattr(target, name, value)
            else:
                delattr(target, name)
        self._saved.clear()


# S3 conditional writes (If-None-Match: *, If-Match) are atomic on AWS: of two writers racing for one
# key exactly one succeeds, the other gets 412. moto checks the condition and then stores, so two threads
# can both pass the check (seen: two custody events claiming one sequence number). The check and the
# store are made one step here; unconditional puts are left as they are.
_CONDITIONAL_WRITES = threading.Lock()
_original_put_object = S3Response.put_object


def _put_object_atomically(self: S3Response) -> Any:
    if self.headers.get("If-None-Match") or self.headers.get("If-Match"):
        with _CONDITIONAL_WRITES:
            return _original_put_object(self)
    return _original_put_object(self)


@contextmanager
def atomic_conditional_writes() -> Iterator[None]:
    with mock.patch.object(S3Response, "put_object", _put_object_atomically):
        yield


@contextmanager
def aws_semantics() -> Iterator[None]:
    with (
        mock.patch.object(IAMPolicyStatement, "is_action_permitted", _is_action_permitted),
        mock.patch.object(EBSSnapshot, "__init__", _snapshot_init),
        mock.patch.object(EBSBackend, "copy_snapshot", copy_shared_snapshot),
        mock.patch.object(EBSBackend, "create_snapshot", _create_snapshot),
        mock.patch.object(STSBackend, "assume_role", _assume_role),
        mock.patch.object(S3Backend, "complete_multipart_upload", _complete_multipart_upload),
        atomic_conditional_writes(),
    ):
        patches = Patches()
        install_ec2_semantics(patches)
        try:
            yield
        finally:
            patches.undo()
