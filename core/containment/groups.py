"""The two isolation groups of each VPC: found by name, created once, their rules settled.

Found with one describe by name across the account's VPCs (made at the same time as the instance's
describe: it needs no VPC id); what is missing is created at once, described once, and every rule
fix of every group is returned as a call to make before the first interface moves.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from core.containment.effects import MemberClients
from core.containment.model import ALL_IPV4, ALL_IPV6, Change, IsolationGroups
from core.groupswap import PERMISSIONS, plan_rules
from core.rounds import in_parallel
from handlers.common import naming
from handlers.common.tags import MANAGED_BY_TAG, MANAGED_BY_VALUE

Found = dict[tuple[str, str], dict[str, Any]]  # (vpc, group name) -> described group


def find_isolation_groups(aws: MemberClients, prefix: str) -> Found:
    """Every isolation group of the account and region, by name (all VPCs: no VPC id needed yet)."""
    names = list(naming.isolation_group_names(prefix))
    found = aws.ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": names}])["SecurityGroups"]
    return {(g["VpcId"], g["GroupName"]): g for g in found}


@dataclass
class SettledGroups:
    """The groups per VPC, what was (or in a dry run would be) changed, and the rule fixes still to make."""

    groups: dict[str, IsolationGroups]
    changes: list[Change] = field(default_factory=list)
    rule_fixes: list[Callable[[], object]] = field(default_factory=list)


def settle_isolation_groups(
    aws: MemberClients, found: Found, vpcs: Sequence[str], prefix: str, *, dry_run: bool
) -> SettledGroups:
    """Create (once, all at once) the groups the VPCs lack; plan every rule fix; in a dry run call nothing."""
    tracked_name, deny_name = naming.isolation_group_names(prefix)
    wanted = [(vpc, name) for vpc in vpcs for name in (tracked_name, deny_name)]
    missing = [key for key in wanted if key not in found]
    settled = SettledGroups(groups={})
    created: dict[tuple[str, str], str] = {}
    if missing and not dry_run:
        ids = in_parallel([partial(_create_isolation_group, aws, vpc, name) for vpc, name in missing])
        created = dict(zip(missing, ids, strict=True))
        described = aws.call(aws.ec2.describe_security_groups, GroupIds=list(created.values()))["SecurityGroups"]
        found = {**found, **{(g["VpcId"], g["GroupName"]): g for g in described}}
    ids_by_key: dict[tuple[str, str], str] = {}
    for vpc, name in wanted:
        if (vpc, name) in missing:
            group_id = created.get((vpc, name), name)
            settled.changes.append(
                Change("isolation-group", vpc, None, {"name": name, "group_id": group_id}, "ec2:CreateSecurityGroup")
            )
        group = found.get((vpc, name))
        if group is not None:
            for change, call in _rule_fixes(aws, group, allow_all=name == tracked_name):
                settled.changes.append(change)
                settled.rule_fixes.append(call)
        ids_by_key[(vpc, name)] = group["GroupId"] if group is not None else name
    settled.groups = {
        vpc: IsolationGroups(vpc, ids_by_key[(vpc, tracked_name)], ids_by_key[(vpc, deny_name)]) for vpc in vpcs
    }
    if dry_run:
        settled.rule_fixes = []
    return settled


def _create_isolation_group(aws: MemberClients, vpc: str, name: str) -> str:
    description = (
        "irforensics containment step 1: allow all, so tracked connections become untracked"
        if name.endswith("tracked")
        else "irforensics containment: no rules, no traffic in or out"
    )
    return str(
        aws.ec2.create_security_group(
            GroupName=name,
            Description=description,
            VpcId=vpc,
            TagSpecifications=[
                {
                    "ResourceType": "security-group",
                    "Tags": [{"Key": MANAGED_BY_TAG, "Value": MANAGED_BY_VALUE}, {"Key": "Name", "Value": name}],
                }
            ],
        )["GroupId"]
    )


ALL_TRAFFIC = {"IpProtocol": "-1", "IpRanges": [{"CidrIp": ALL_IPV4}], "Ipv6Ranges": [{"CidrIpv6": ALL_IPV6}]}
# The tracked group allows everything both ways (IPv4 and IPv6); the no-rule group has no rule at all.
TRACKED_RULES = {"ingress": [ALL_TRAFFIC], "egress": [ALL_TRAFFIC]}


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _rule_fixes(
    aws: MemberClients, group: Mapping[str, Any], *, allow_all: bool
) -> list[tuple[Change, Callable[[], object]]]:
    fixes: list[tuple[Change, Callable[[], object]]] = []
    for fix in plan_rules(group, TRACKED_RULES if allow_all else {}):
        granted = fix.verb == "authorize"
        change = Change(
            f"isolation-group-{fix.direction}",
            fix.group_id,
            # What the group had in that direction, as described: the record shows what was removed.
            None if granted else _plain(group.get(PERMISSIONS[fix.direction], [])),
            "all traffic, IPv4 and IPv6" if granted else None,
            fix.api,
        )
        call = partial(aws.call, fix.call(aws.ec2), GroupId=fix.group_id, IpPermissions=list(fix.permissions))
        fixes.append((change, call))
    return fixes
