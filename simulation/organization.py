"""The simulated AWS Organization for organisation mode: OUs, accounts, and StackSets' delegated administrator.

The organisation is created in moto's Organizations by a management account of its own; the member
accounts are in a `workloads` OU (the one the security stack names in `memberOrganizationalUnits`),
the security and forensic accounts in a `security` OU. The security account is registered as the
delegated administrator of CloudFormation StackSets, after trusted access was enabled, as
docs/organisation.md tells an operator to do (the same calls, made here by the simulation).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from simulation import local_aws

MANAGEMENT_ACCOUNT = "666666666666"
STACKSETS_SERVICE = "member.org.stacksets.cloudformation.amazonaws.com"
WORKLOADS_OU = "workloads"
SECURITY_OU = "security"


@dataclass(frozen=True)
class SimulatedOrganization:
    id: str
    root_id: str
    workloads_ou: str
    security_ou: str
    management_account: str
    notes: tuple[str, ...] = ()


def _enrol(org: Any, account: str, parent: str) -> None:
    """Put an account with a fixed id into the organisation, under `parent`.

    moto gap: CreateAccount picks a random id (as AWS does), but the simulation's accounts have
    fixed ids that every scenario uses. The account is created through the API and given the fixed id
    in moto's Organizations backend; everything after that (MoveAccount, ListAccountsForParent,
    DescribeOrganization from the account) goes through the API again.
    """
    from moto.organizations.models import organizations_backends

    status = org.create_account(AccountName=f"simulated-{account}", Email=f"aws+{account}@example.com")
    created = status["CreateAccountStatus"]["AccountId"]
    backend = organizations_backends[MANAGEMENT_ACCOUNT]["aws"]
    fake = backend.get_account_by_id(created)
    organizations_backends.master_accounts.pop(created, None)
    fake.id = account
    organizations_backends.master_accounts[account] = (MANAGEMENT_ACCOUNT, "aws")
    org.move_account(AccountId=account, SourceParentId=fake.parent_id, DestinationParentId=parent)


def create_organization(members: Iterable[str], region: str = local_aws.REGION) -> SimulatedOrganization:
    """The organisation the security stack's StackSet deploys into (see the module docstring)."""
    org = local_aws.account_session(MANAGEMENT_ACCOUNT, region).client("organizations")
    organization = org.create_organization(FeatureSet="ALL")["Organization"]
    root = org.list_roots()["Roots"][0]["Id"]
    workloads = org.create_organizational_unit(ParentId=root, Name=WORKLOADS_OU)["OrganizationalUnit"]["Id"]
    security = org.create_organizational_unit(ParentId=root, Name=SECURITY_OU)["OrganizationalUnit"]["Id"]
    for account in (local_aws.SECURITY_ACCOUNT, local_aws.FORENSIC_ACCOUNT):
        _enrol(org, account, security)
    for account in dict.fromkeys(members):
        _enrol(org, account, workloads)
    # docs/organisation.md: trusted access for StackSets, then the delegated administrator.
    org.enable_aws_service_access(ServicePrincipal=STACKSETS_SERVICE)
    notes: list[str] = []
    try:
        org.register_delegated_administrator(AccountId=local_aws.SECURITY_ACCOUNT, ServicePrincipal=STACKSETS_SERVICE)
    except org.exceptions.InvalidInputException as refused:
        # moto 5.2.5 lists StackSets among trusted services but not among those with a delegated
        # administrator; on AWS this call succeeds. Nothing in moto checks CallAs=DELEGATED_ADMIN anyway.
        notes.append(f"moto gap: RegisterDelegatedAdministrator for {STACKSETS_SERVICE} refused ({refused})")
    return SimulatedOrganization(organization["Id"], root, workloads, security, MANAGEMENT_ACCOUNT, tuple(notes))


def accounts_in(units: Sequence[str], region: str = local_aws.REGION) -> list[tuple[str, str]]:
    """(account, OU) of every active account in these OUs or roots and their child OUs, as a
    service-managed StackSet targets them (never the management account)."""
    org = local_aws.account_session(MANAGEMENT_ACCOUNT, region).client("organizations")
    found: dict[str, str] = {}

    def walk(parent: str, unit: str) -> None:
        for page in org.get_paginator("list_accounts_for_parent").paginate(ParentId=parent):
            for account in page["Accounts"]:
                if account["Status"] == "ACTIVE" and account["Id"] != MANAGEMENT_ACCOUNT:
                    found.setdefault(account["Id"], unit)
        for page in org.get_paginator("list_organizational_units_for_parent").paginate(ParentId=parent):
            for child in page["OrganizationalUnits"]:
                walk(child["Id"], unit)

    for unit in units:
        walk(unit, unit)
    return sorted(found.items())
