"""Example stack configurations for the offline runs (preview, simulation, tests).

They mirror Pulumi.yaml + Pulumi.forensic.yaml / Pulumi.security.yaml with the simulated account
ids (`irf preview --simulated` shows them; `irf preview` reads the real files).
"""

from __future__ import annotations

from typing import Any

from simulation.local_aws import FORENSIC_ACCOUNT, MEMBER_ACCOUNT, PREFIX, REGION, SECURITY_ACCOUNT


def forensic_config(**overrides: Any) -> dict[str, Any]:
    return {
        "prefix": PREFIX,
        "securityAccount": SECURITY_ACCOUNT,
        "forensicAccount": FORENSIC_ACCOUNT,
        "forensicRegion": REGION,
        "objectLockMode": "GOVERNANCE",
        "evidenceRetentionDays": 365,
        "glacierAfterDays": 30,
        "analysisAzs": [f"{REGION}a", f"{REGION}b"],
        **overrides,
    }


def security_config(members: list[tuple[str, str]] | None = None, **overrides: Any) -> dict[str, Any]:
    members = members if members is not None else [(MEMBER_ACCOUNT, REGION)]
    return {
        "prefix": PREFIX,
        "securityAccount": SECURITY_ACCOUNT,
        "forensicAccount": FORENSIC_ACCOUNT,
        "forensicRegion": REGION,
        "snapshotLockDays": 365,
        # The simulation's snapshots complete at once: poll every second, a few times.
        "pollIntervalSeconds": 1,
        "pollBackoffRate": 1.0,
        "pollMaxAttempts": 5,
        "members": [
            {
                "account": account,
                "region": region,
                "deploymentRoleArn": f"arn:aws:iam::{account}:role/OrganizationAccountAccessRole",
            }
            for account, region in members
        ],
        **overrides,
    }


def organisation_security_config(
    units: list[str], regions: list[str] | None = None, **overrides: Any
) -> dict[str, Any]:
    """The security stack in organisation mode: member responders by StackSet to these OUs and regions."""
    config = security_config([], **overrides)
    del config["members"]
    config["memberOrganizationalUnits"] = list(units)
    config["memberRegions"] = list(regions if regions is not None else [REGION])
    return config


def stack_set_template(units: list[str] | None = None) -> dict[str, Any]:
    """The member responders' StackSet template of the organisation-mode example (for cfn-lint)."""
    from components.member_responder import member_stack_set_template
    from config import SecurityConfig, parse_config

    cfg = parse_config("security", organisation_security_config(units or ["ou-ab12-cdef3456"]), REGION)
    assert isinstance(cfg, SecurityConfig)
    return member_stack_set_template(cfg)


if __name__ == "__main__":
    # `python -m simulation.stacks > template.json`: what scripts/test.sh hands to cfn-lint.
    import json

    print(json.dumps(stack_set_template(), indent=1))
