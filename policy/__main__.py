"""irforensics-invariants: the CrossGuard policy pack (`pulumi up --policy-pack policy`).

A thin adapter: each policy hands CrossGuard's resources to one function of invariants.py as
`ResourceRecord`s and reports what it returns. The decisions live in invariants.py, which the
project's tests run offline against the resources the real program registers
(tests/infra/test_policy_pack.py); this file must name every invariant there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import invariants
from invariants import UNKNOWN, ResourceInvariant, ResourceRecord, StackInvariant
from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyPack,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
    proxy,
)

# The placeholders CrossGuard's proxies stand in for values a preview does not know yet.
UNKNOWN_VALUES = frozenset(
    {
        proxy.UNKNOWN_ARCHIVE_VALUE,
        proxy.UNKNOWN_ARRAY_VALUE,
        proxy.UNKNOWN_ASSET_VALUE,
        proxy.UNKNOWN_BOOLEAN_VALUE,
        proxy.UNKNOWN_NUMBER_VALUE,
        proxy.UNKNOWN_OBJECT_VALUE,
        proxy.UNKNOWN_STRING_VALUE,
    }
)


def known_props(value: Any) -> Any:
    """CrossGuard's properties as plain data, invariants.UNKNOWN where a preview does not know a value.

    CrossGuard's proxies raise on reading an unknown, which would abort a whole policy in a
    preview because one unrelated property (say a role id) is not known yet.
    """
    if isinstance(value, Mapping):
        raw = value.get("__target", value)
        return {key: known_props(raw[key]) for key in raw}
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        try:
            raw = value["__target"]  # type: ignore[call-overload]
        except (TypeError, KeyError, IndexError):
            raw = value
        return [known_props(item) for item in raw]
    if isinstance(value, str) and value in UNKNOWN_VALUES:
        return UNKNOWN
    return value


def record_of(resource: PolicyResource) -> ResourceRecord:
    # Property dependencies link a resource to the ones it refers to even when their ids are
    # not known yet (a preview of resources still to be created).
    references = {
        prop: tuple(dependency.name for dependency in dependencies)
        for prop, dependencies in resource.property_dependencies.items()
    }
    return ResourceRecord(
        type=resource.resource_type,
        name=resource.name,
        props=known_props(resource.props),
        urn=resource.urn,
        references=references,
    )


def resource_policy(name: str, description: str, check: ResourceInvariant) -> Policy:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        record = ResourceRecord(type=args.resource_type, name=args.name, props=known_props(args.props), urn=args.urn)
        for violation in check(record):
            report_violation(violation.message, None)

    return ResourceValidationPolicy(name=name, description=description, validate=validate)


def stack_policy(name: str, description: str, check: StackInvariant) -> Policy:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        records: Sequence[ResourceRecord] = [record_of(resource) for resource in args.resources]
        for violation in check(records):
            report_violation(violation.message, violation.urn or None)

    return StackValidationPolicy(name=name, description=description, validate=validate)


PolicyPack(
    name="irforensics-invariants",
    enforcement_level=EnforcementLevel.MANDATORY,
    description="Evidence stays locked, versioned, encrypted and private; analysis has no way out; "
    "keys rotate; no role holds wildcard power.",
    policies=[
        resource_policy("kms-keys-rotate", "Every KMS key rotates its key material", invariants.kms_keys_rotate),
        resource_policy(
            "no-statement-allows-every-action",
            "No IAM statement anywhere allows Action '*'",
            invariants.no_statement_allows_every_action,
        ),
        stack_policy(
            "evidence-buckets-are-locked",
            "Evidence buckets have Object Lock with a default retention",
            invariants.evidence_buckets_are_locked,
        ),
        stack_policy(
            "evidence-buckets-are-versioned",
            "Evidence buckets have versioning Enabled",
            invariants.evidence_buckets_are_versioned,
        ),
        stack_policy(
            "evidence-buckets-are-encrypted-with-kms",
            "Evidence buckets encrypt by default with SSE-KMS under a customer managed key",
            invariants.evidence_buckets_are_encrypted_with_kms,
        ),
        stack_policy(
            "evidence-buckets-block-public-access",
            "Evidence buckets have a public access block with all four flags on",
            invariants.evidence_buckets_block_public_access,
        ),
        stack_policy(
            "buckets-have-public-access-block",
            "Every S3 bucket has a public access block",
            invariants.buckets_have_public_access_block,
        ),
        stack_policy(
            "analysis-vpc-has-no-internet-path",
            "No internet, NAT or egress-only gateway and no 0.0.0.0/0 or ::/0 route in the analysis VPC",
            invariants.analysis_vpc_has_no_internet_path,
        ),
        stack_policy(
            "lambda-roles-name-their-actions",
            "Inline policies of the security account's Lambda roles never allow '*' or '<service>:*'",
            invariants.lambda_roles_name_their_actions,
        ),
    ],
)
