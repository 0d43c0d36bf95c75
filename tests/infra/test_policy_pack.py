"""The policy pack's invariants (policy/invariants.py) against what the real program registers.

Both stacks run once under Pulumi mocks; their resources must break no invariant. Then each
invariant is shown to bite: a copy of the resources with one deliberate weakening produces
exactly the violation that names it, and nothing else.
"""

from __future__ import annotations

import ast
import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from policy import invariants
from policy.invariants import (
    UNKNOWN,
    ResourceRecord,
    Violation,
    all_violations,
    analysis_vpcs,
    evidence_buckets,
)
from simulation.pulumi_mocks import run_program
from simulation.stacks import forensic_config, security_config

FORENSIC_ACCOUNT = "222222222222"
SECURITY_ACCOUNT = "123456789012"
REGION = "eu-west-1"
POLICY_DIR = Path(__file__).resolve().parents[2] / "policy"

Records = list[ResourceRecord]


def records_of_stack(stack: str, config: dict[str, Any], account: str) -> Records:
    return [
        ResourceRecord(type=res.type, name=res.name, props=copy.deepcopy(res.inputs), id=res.id)
        for res in run_program(stack, config, account=account, region=REGION)
    ]


@pytest.fixture(scope="module")
def forensic() -> Records:
    return records_of_stack("forensic", forensic_config(), FORENSIC_ACCOUNT)


@pytest.fixture(scope="module")
def security() -> Records:
    return records_of_stack("security", security_config(), SECURITY_ACCOUNT)


def named(records: Records, name: str) -> ResourceRecord:
    found = [record for record in records if record.name == name]
    assert len(found) == 1, f"expected one resource named {name}, found {len(found)}"
    return found[0]


def with_props(records: Records, name: str, change: Callable[[dict[str, Any]], None]) -> Records:
    """A copy of the stack where one resource's properties were changed in place by `change`."""
    changed = []
    for record in records:
        if record.name == name:
            props = copy.deepcopy(dict(record.props))
            change(props)
            record = ResourceRecord(type=record.type, name=record.name, props=props, id=record.id)
        changed.append(record)
    assert changed != records, f"no resource named {name}"
    return changed


def without(records: Records, name: str) -> Records:
    named(records, name)
    return [record for record in records if record.name != name]


def add_statement(statement: dict[str, Any], key: str = "policy") -> Callable[[dict[str, Any]], None]:
    def change(props: dict[str, Any]) -> None:
        document = json.loads(props[key])
        document["Statement"].append(statement)
        props[key] = json.dumps(document)

    return change


def found(records: Records) -> list[tuple[str, str]]:
    return [(violation.resource, violation.message) for violation in all_violations(records)]


EVIDENCE = "acme-ir-artifacts-222222222222-eu-west-1"
ANALYSIS_VPC = "forensic-analysis-vpc"


# -- the real stacks ---------------------------------------------------------------------------


def test_forensic_stack_breaks_no_invariant(forensic: Records) -> None:
    assert all_violations(forensic) == []


def test_security_stack_breaks_no_invariant(security: Records) -> None:
    assert all_violations(security) == []


def test_invariants_recognise_the_evidence_bucket_and_the_analysis_vpc(forensic: Records) -> None:
    assert [bucket.name for bucket in evidence_buckets(forensic)] == ["forensic-evidence-bucket"]
    assert [vpc.name for vpc in analysis_vpcs(forensic)] == [ANALYSIS_VPC]


def test_toolset_build_vpc_may_reach_the_internet_because_it_is_not_the_analysis_vpc(forensic: Records) -> None:
    assert named(forensic, "forensic-toolset-build-igw").type == invariants.INTERNET_GATEWAY
    assert invariants.analysis_vpc_has_no_internet_path(forensic) == []


# -- evidence buckets --------------------------------------------------------------------------


def test_evidence_bucket_created_without_object_lock_is_a_violation(forensic: Records) -> None:
    mutated = with_props(forensic, "forensic-evidence-bucket", lambda props: props.update(objectLockEnabled=False))
    assert found(mutated) == [
        (
            "forensic-evidence-bucket",
            f"evidence bucket {EVIDENCE} is created without Object Lock: set objectLockEnabled true",
        )
    ]


def test_evidence_bucket_lock_without_default_retention_is_a_violation(forensic: Records) -> None:
    mutated = with_props(forensic, "forensic-evidence-bucket-object-lock", lambda props: props.pop("rule"))
    assert found(mutated) == [
        (
            "forensic-evidence-bucket",
            f"evidence bucket {EVIDENCE} has no Object Lock "
            "configuration with a default retention (GOVERNANCE "
            "or COMPLIANCE, days or years)",
        )
    ]


def test_suspended_versioning_of_the_evidence_bucket_is_a_violation(forensic: Records) -> None:
    mutated = with_props(
        forensic,
        "forensic-evidence-bucket-versioning",
        lambda props: props.update(versioningConfiguration={"status": "Suspended"}),
    )
    assert found(mutated) == [
        (
            "forensic-evidence-bucket",
            f"evidence bucket {EVIDENCE} is not versioned: it "
            "needs an aws:s3/bucketVersioning with status Enabled "
            "(found Suspended)",
        )
    ]


def test_suspended_versioning_of_a_bucket_without_evidence_is_not_an_evidence_violation(forensic: Records) -> None:
    mutated = with_props(
        forensic,
        "forensic-toolset-bucket-versioning",
        lambda props: props.update(versioningConfiguration={"status": "Suspended"}),
    )
    assert found(mutated) == []


def test_evidence_bucket_encrypted_with_s3_managed_keys_is_a_violation(forensic: Records) -> None:
    mutated = with_props(
        forensic,
        "forensic-evidence-bucket-encryption",
        lambda props: props.update(rules=[{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}]),
    )
    assert found(mutated) == [
        (
            "forensic-evidence-bucket",
            f"evidence bucket {EVIDENCE} has no default SSE-KMS "
            "encryption with a customer managed key (sseAlgorithm "
            "aws:kms and kmsMasterKeyId)",
        )
    ]


def test_evidence_bucket_with_a_public_access_flag_off_is_a_violation(forensic: Records) -> None:
    mutated = with_props(
        forensic, "forensic-evidence-bucket-public-access", lambda props: props.update(restrictPublicBuckets=False)
    )
    assert found(mutated) == [
        (
            "forensic-evidence-bucket",
            f"evidence bucket {EVIDENCE} has no public access "
            "block with blockPublicAcls, blockPublicPolicy, "
            "ignorePublicAcls, restrictPublicBuckets all true "
            "(restrictPublicBuckets off)",
        )
    ]


def test_bucket_without_public_access_block_is_a_violation(forensic: Records) -> None:
    mutated = without(forensic, "forensic-access-log-bucket-public-access")
    assert found(mutated) == [
        (
            "forensic-access-log-bucket",
            "bucket acme-ir-access-logs-222222222222-eu-west-1 has no aws:s3/bucketPublicAccessBlock",
        )
    ]


def test_evidence_bucket_without_public_access_block_breaks_both_bucket_invariants(forensic: Records) -> None:
    mutated = without(forensic, "forensic-evidence-bucket-public-access")
    assert found(mutated) == [
        (
            "forensic-evidence-bucket",
            f"evidence bucket {EVIDENCE} has no public access block with "
            "blockPublicAcls, blockPublicPolicy, ignorePublicAcls, restrictPublicBuckets "
            "all true",
        ),
        ("forensic-evidence-bucket", f"bucket {EVIDENCE} has no aws:s3/bucketPublicAccessBlock"),
    ]


# -- analysis network --------------------------------------------------------------------------


def added(records: Records, type_token: str, name: str, props: dict[str, Any]) -> Records:
    return [*records, ResourceRecord(type=type_token, name=name, props=props, id=f"{name}-id")]


def analysis_vpc_id(forensic: Records) -> str:
    return named(forensic, ANALYSIS_VPC).id


def test_internet_gateway_in_the_analysis_vpc_is_a_violation(forensic: Records) -> None:
    mutated = added(forensic, invariants.INTERNET_GATEWAY, "rogue-igw", {"vpcId": analysis_vpc_id(forensic)})
    assert found(mutated) == [
        ("rogue-igw", f"InternetGateway rogue-igw gives the analysis VPC {ANALYSIS_VPC} a path to the internet")
    ]


def test_egress_only_gateway_in_the_analysis_vpc_is_a_violation(forensic: Records) -> None:
    mutated = added(
        forensic, invariants.EGRESS_ONLY_INTERNET_GATEWAY, "rogue-eigw", {"vpcId": analysis_vpc_id(forensic)}
    )
    assert found(mutated) == [
        (
            "rogue-eigw",
            f"EgressOnlyInternetGateway rogue-eigw gives the analysis VPC {ANALYSIS_VPC} a path to the internet",
        )
    ]


def test_nat_gateway_in_an_analysis_subnet_is_a_violation(forensic: Records) -> None:
    subnet = named(forensic, "forensic-analysis-subnet-eu-west-1a")
    mutated = added(forensic, invariants.NAT_GATEWAY, "rogue-nat", {"subnetId": subnet.id})
    assert found(mutated) == [
        ("rogue-nat", f"NatGateway rogue-nat gives the analysis VPC {ANALYSIS_VPC} a path to the internet")
    ]


def test_default_route_in_an_analysis_route_table_is_a_violation(forensic: Records) -> None:
    table = named(forensic, "forensic-analysis-rt-eu-west-1a")
    mutated = added(
        forensic,
        invariants.ROUTE,
        "rogue-route",
        {"routeTableId": table.id, "destinationCidrBlock": "0.0.0.0/0", "vpcPeeringConnectionId": "pcx-1"},
    )
    assert found(mutated) == [
        ("rogue-route", f"route rogue-route sends 0.0.0.0/0 out of the analysis VPC {ANALYSIS_VPC}")
    ]


def test_inline_ipv6_default_route_in_an_analysis_route_table_is_a_violation(forensic: Records) -> None:
    mutated = with_props(
        forensic,
        "forensic-analysis-rt-eu-west-1b",
        lambda props: props.update(routes=[{"ipv6CidrBlock": "::/0", "transitGatewayId": "tgw-1"}]),
    )
    assert found(mutated) == [
        (
            "forensic-analysis-rt-eu-west-1b",
            f"route table forensic-analysis-rt-eu-west-1b of the analysis VPC {ANALYSIS_VPC} routes ::/0 out",
        )
    ]


def test_gateway_known_only_by_reference_is_still_found(forensic: Records) -> None:
    # What the policy pack sees in a preview: the VPC id is not known yet, the dependency is.
    mutated = [
        *forensic,
        ResourceRecord(
            type=invariants.INTERNET_GATEWAY,
            name="rogue-igw",
            props={"vpcId": UNKNOWN},
            references={"vpcId": (ANALYSIS_VPC,)},
        ),
    ]
    assert [violation.resource for violation in all_violations(mutated)] == ["rogue-igw"]


# -- keys and IAM ------------------------------------------------------------------------------


def test_key_without_rotation_is_a_violation(forensic: Records) -> None:
    mutated = with_props(forensic, "forensic-key", lambda props: props.update(enableKeyRotation=False))
    assert found(mutated) == [("forensic-key", "KMS key forensic-key does not rotate: set enableKeyRotation true")]


def test_member_key_without_rotation_is_a_violation(security: Records) -> None:
    name = "member-333333333333-eu-west-1-ebs-key"
    mutated = with_props(security, name, lambda props: props.pop("enableKeyRotation"))
    assert found(mutated) == [(name, f"KMS key {name} does not rotate: set enableKeyRotation true")]


def test_asymmetric_key_is_not_asked_to_rotate() -> None:
    key = ResourceRecord(type=invariants.KMS_KEY, name="signing", props={"customerMasterKeySpec": "RSA_2048"})
    assert invariants.kms_keys_rotate(key) == []


def test_lambda_role_policy_allowing_a_whole_service_is_a_violation(security: Records) -> None:
    mutated = with_props(
        security,
        "security-contain-policy",
        add_statement(
            {"Sid": "Everything", "Effect": "Allow", "Action": ["ec2:DescribeInstances", "s3:*"], "Resource": "*"}
        ),
    )
    assert found(mutated) == [
        (
            "security-contain-policy",
            "statement Everything of Lambda role policy security-contain-policy allows s3:*: name the actions",
        )
    ]


def test_lambda_role_policy_allowing_every_action_breaks_both_iam_invariants(security: Records) -> None:
    mutated = with_props(
        security, "security-trigger-tag-logging", add_statement({"Effect": "Allow", "Action": "*", "Resource": "*"})
    )
    assert found(mutated) == [
        (
            "security-trigger-tag-logging",
            "statement #2 in security-trigger-tag-logging.policy allows Action '*': name the actions",
        ),
        (
            "security-trigger-tag-logging",
            "statement #2 of Lambda role policy security-trigger-tag-logging allows *: name the actions",
        ),
    ]


def test_lambda_role_found_through_a_reference_when_its_name_is_not_known_yet(security: Records) -> None:
    document = json.dumps({"Statement": [{"Effect": "Allow", "Action": "iam:*", "Resource": "*"}]})
    mutated = [
        *security,
        ResourceRecord(
            type=invariants.ROLE_POLICY,
            name="late-policy",
            props={"role": UNKNOWN, "policy": document},
            references={"role": ("security-contain-role",)},
        ),
    ]
    assert found(mutated) == [
        ("late-policy", "statement #0 of Lambda role policy late-policy allows iam:*: name the actions")
    ]


def test_service_wildcard_outside_lambda_roles_is_left_to_other_checks(forensic: Records) -> None:
    # Key policies let the account administer its own key with kms:*; that is not a Lambda role.
    mutated = with_props(
        forensic,
        "forensic-analysis-instance-policy",
        add_statement({"Effect": "Allow", "Action": "s3:*", "Resource": "*"}),
    )
    assert found(mutated) == []


def test_statement_allowing_every_action_outside_lambda_roles_is_a_violation(forensic: Records) -> None:
    mutated = with_props(
        forensic,
        "forensic-investigator-policy",
        add_statement({"Sid": "Oops", "Effect": "Allow", "Action": ["s3:GetObject", "*"], "Resource": "*"}),
    )
    assert found(mutated) == [
        (
            "forensic-investigator-policy",
            "statement Oops in forensic-investigator-policy.policy allows Action '*': name the actions",
        )
    ]


def test_key_policy_allowing_every_action_is_a_violation(forensic: Records) -> None:
    mutated = with_props(
        forensic,
        "forensic-key",
        add_statement({"Sid": "Anyone", "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "*", "Resource": "*"}),
    )
    assert found(mutated) == [
        ("forensic-key", "statement Anyone in forensic-key.policy allows Action '*': name the actions")
    ]


def test_deny_of_every_action_is_no_violation(security: Records) -> None:
    isolation = named(security, "member-333333333333-eu-west-1-isolation-deny")
    assert json.loads(isolation.props["policy"])["Statement"][0]["Action"] == "*"
    assert invariants.no_statement_allows_every_action(isolation) == []


# -- the policy pack adapter -------------------------------------------------------------------


def invariant_functions() -> set[str]:
    """Public functions of invariants.py that return violations (the helpers that list records do not)."""
    tree = ast.parse((POLICY_DIR / "invariants.py").read_text())
    return {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
        and not node.name.startswith("_")
        and node.returns is not None
        and ast.unparse(node.returns) == "list[Violation]"
        and node.name != "all_violations"
    }


def test_every_invariant_is_registered_for_all_violations() -> None:
    registered = {check.__name__ for check in (*invariants.RESOURCE_INVARIANTS, *invariants.STACK_INVARIANTS)}
    assert registered == invariant_functions()
    assert len(registered) == 9


def test_policy_pack_names_every_invariant() -> None:
    tree = ast.parse((POLICY_DIR / "__main__.py").read_text())
    named_there = {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "invariants"
    }
    assert invariant_functions() <= named_there
    pack = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "PolicyPack"
    ]
    assert len(pack) == 1
    keywords = {keyword.arg: keyword.value for keyword in pack[0].keywords}
    assert ast.literal_eval(keywords["name"]) == "irforensics-invariants"
    assert ast.unparse(keywords["enforcement_level"]) == "EnforcementLevel.MANDATORY"


def test_violation_carries_the_resource_it_is_about() -> None:
    key = ResourceRecord(type=invariants.KMS_KEY, name="k", props={}, urn="urn:pulumi:s::p::aws:kms/key:Key::k")
    assert invariants.kms_keys_rotate(key) == [
        Violation(
            resource="k",
            message="KMS key k does not rotate: set enableKeyRotation true",
            urn="urn:pulumi:s::p::aws:kms/key:Key::k",
        )
    ]
