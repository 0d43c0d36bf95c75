"""The parliament gate's allow-list logic (the full run over both stacks is `python -m policy.parliament_gate`)."""

from __future__ import annotations

import pytest

from policy.parliament_gate import Finding, analyse, gate, load_allowlist


def test_a_finding_passes_only_with_a_matching_entry_and_a_stale_entry_fails() -> None:
    star = Finding("security-contain-policy", "policy", "RESOURCE_STAR", '["s3:GetObject"]')
    trust = Finding("security-contain-role", "assumeRolePolicy", "MALFORMED", '"no Resource"')
    entries = [
        {"issue": "MALFORMED", "resource": "*", "path": "assumeRolePolicy", "reason": "trust policies"},
        {"issue": "RESOURCE_STAR", "resource": "*-key", "path": "policy", "reason": "key policies"},
    ]
    open_findings, stale = gate([star, trust], entries)
    assert open_findings == [star]
    assert stale == [entries[1]]


def test_parliament_really_reports_an_unscoped_grant_and_a_privilege_escalation() -> None:
    document = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": ["iam:PassRole", "ec2:RunInstances"], "Resource": "*"},
        ],
    }
    issues = {f.issue for f in analyse([("probe", "policy", document)])}
    assert {"RESOURCE_STAR", "PRIVILEGE_ESCALATION"} <= issues


def test_every_allow_list_entry_gives_a_reason(tmp_path) -> None:
    assert all(entry["reason"].strip() for entry in load_allowlist())
    unexplained = tmp_path / "list.yaml"
    unexplained.write_text("- {issue: RESOURCE_STAR, resource: '*'}\n")
    with pytest.raises(ValueError, match="reason"):
        load_allowlist(unexplained)
