"""parliament (duo-labs) over every policy document both stacks register: a quality gate of `scripts/test.sh`.

Both stacks run under Pulumi mocks (simulation.pulumi_mocks.run_program) with the example configs of the
offline runs, two member accounts in two regions; every policy document anywhere in a resource's inputs
is analysed (trust, inline, managed, key, bucket, bus and endpoint policies), plus the documents the
handlers write at run time (none: the session revocation is a fixed managed policy). Each finding
must either be fixed or be listed in `policy/parliament-allowlist.yaml` with its reason; an allow-list
entry that no longer matches a finding fails the gate too, so the list stays reviewed.

Run: `python -m policy.parliament_gate` (exit 1 and the findings on failure).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ALLOWLIST = Path(__file__).resolve().parent / "parliament-allowlist.yaml"


@dataclass(frozen=True)
class Finding:
    resource: str  # the Pulumi logical name
    path: str  # where in the resource's inputs the document is
    issue: str
    detail: str

    def __str__(self) -> str:
        return f"{self.resource} [{self.path}] {self.issue}: {self.detail}"


def registered_documents() -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(resource name, input path, document) for every policy document of both stacks."""
    from simulation import stacks
    from simulation.local_aws import FORENSIC_ACCOUNT, MEMBER_ACCOUNT, REGION, SECOND_MEMBER_ACCOUNT, SECURITY_ACCOUNT
    from simulation.pulumi_mocks import run_program
    from tests.infra.helpers import policy_documents

    runs: tuple[tuple[str, dict[str, Any], str], ...] = (
        ("forensic", stacks.forensic_config(), FORENSIC_ACCOUNT),
        (
            "security",
            stacks.security_config([(MEMBER_ACCOUNT, REGION), (SECOND_MEMBER_ACCOUNT, "eu-central-1")]),
            SECURITY_ACCOUNT,
        ),
    )
    # Organisation mode: the security stack's own documents, and the StackSet template's as one member
    # account and region gets them.
    runs += (("security", stacks.organisation_security_config(["ou-ab12-cdef3456"]), SECURITY_ACCOUNT),)
    for stack, config, account in runs:
        for resource in run_program(stack, config, account=account, region=REGION, on_resource=_realistic_arns):
            for path, document in policy_documents(resource):
                yield resource.name, path, document
            if resource.type == "aws:cloudformation/stackSet:StackSet":
                yield from _template_documents(resource.name, json.loads(resource.inputs["templateBody"]))


def _template_documents(name: str, template: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """The template's documents for one member account and region, named like the MemberResponder
    child each renders (so the allow-list reviews them as the same documents)."""
    from components import member_template
    from simulation.local_aws import MEMBER_ACCOUNT, REGION

    for child, path, document in member_template.policy_documents_of(
        template, account=MEMBER_ACCOUNT, region=REGION, partition="aws"
    ):
        yield f"{name}-template-{child}", path, document


# The mocks' default ARN (arn:aws:<service>:<region>:<account>:<logical name>) has no resource type, which
# parliament would report as a resource mismatch of ours; these types get the ARN AWS gives them.
_ARN_FORMATS = {
    "aws:kms/key:Key": "arn:aws:kms:{region}:{account}:key/{uuid}",
    "aws:cloudwatch/logGroup:LogGroup": "arn:aws:logs:{region}:{account}:log-group:{name}",
    "aws:sfn/stateMachine:StateMachine": "arn:aws:states:{region}:{account}:stateMachine:{name}",
    "aws:sns/topic:Topic": "arn:aws:sns:{region}:{account}:{name}",
    "aws:dynamodb/table:Table": "arn:aws:dynamodb:{region}:{account}:table/{name}",
    "aws:lambda/function:Function": "arn:aws:lambda:{region}:{account}:function:{name}",
    "aws:iam/role:Role": "arn:aws:iam::{account}:role/{name}",
    "aws:iam/policy:Policy": "arn:aws:iam::{account}:policy/{name}",
    "aws:s3/bucket:Bucket": "arn:aws:s3:::{name}",
}


def _realistic_arns(args: Any, account: str, region: str) -> tuple[str, dict[str, Any]] | None:
    import uuid

    fmt = _ARN_FORMATS.get(args.typ)
    if fmt is None:
        return None
    outputs = dict(args.inputs)
    name = str(outputs.get("name") or outputs.get("bucket") or args.name)
    outputs.setdefault("name", name)
    uid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{account}/{args.name}"))
    outputs["arn"] = fmt.format(region=region, account=account, name=name, uuid=uid)
    resource_id = uid if args.typ == "aws:kms/key:Key" else name
    return resource_id, outputs


def _detail(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def analyse(documents: Iterable[tuple[str, str, dict[str, Any]]]) -> list[Finding]:
    from parliament import analyze_policy_string

    found = []
    for name, path, document in documents:
        policy = analyze_policy_string(json.dumps(document), include_community_auditors=True)
        found += [Finding(name, path, f.issue, _detail(f.detail)) for f in policy.findings]
    return found


def _matches(entry: dict[str, Any], finding: Finding) -> bool:
    import fnmatch

    return (
        entry["issue"] == finding.issue
        and fnmatch.fnmatchcase(finding.resource, entry["resource"])
        and fnmatch.fnmatchcase(finding.path, entry.get("path", "*"))
        and fnmatch.fnmatchcase(finding.detail, entry.get("detail", "*"))
    )


def load_allowlist(path: Path = ALLOWLIST) -> list[dict[str, Any]]:
    entries = yaml.safe_load(path.read_text()) or []
    missing = [e for e in entries if not str(e.get("reason", "")).strip() or "issue" not in e or "resource" not in e]
    if missing:
        raise ValueError(f"allow-list entries need issue, resource and a reason: {missing}")
    return list(entries)


def gate(findings: list[Finding], allowlist: list[dict[str, Any]]) -> tuple[list[Finding], list[dict[str, Any]]]:
    """(findings no entry allows, entries that allow no finding)."""
    open_findings = [f for f in findings if not any(_matches(e, f) for e in allowlist)]
    stale = [e for e in allowlist if not any(_matches(e, f) for f in findings)]
    return open_findings, stale


def main() -> int:
    documents = list(registered_documents())
    findings = analyse(documents)
    if "--list" in sys.argv:
        for finding in findings:
            print(f"  {finding}")
    open_findings, stale = gate(findings, load_allowlist())
    print(f"parliament: {len(documents)} policy documents, {len(findings)} findings, {len(open_findings)} not allowed")
    for finding in open_findings:
        print(f"  {finding}")
    for entry in stale:
        print(f"  allow-list entry matches no finding (remove it): {entry}")
    return 1 if open_findings or stale else 0


if __name__ == "__main__":
    sys.exit(main())
