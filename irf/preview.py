"""`irf preview`: what `pulumi up` would register for a stack, worked out offline.

By default a stack's configuration is read from the project's files exactly as `pulumi up` merges
them (Pulumi.yaml's project config under Pulumi.<stack>.yaml) and checked by the same code the
program runs (config.load_config), so a preview refuses what a deployment would refuse. The
program then runs under Pulumi mocks (simulation.pulumi_mocks, imported only here): nothing is
deployed and no AWS account is called. `simulated=True` previews the local simulation's built-in
configuration instead.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import config
from config import ROLES, ConfigError, SecurityConfig, StackConfig

SIMULATED_SOURCE = "the simulation's built-in configuration (simulated account ids)"


@dataclass(frozen=True)
class MemberPreview:
    account: str
    region: str
    deployment_role_arn: str
    provider: str  # the logical name of the explicit provider the member's resources go through


@dataclass(frozen=True)
class StackPreview:
    stack: str
    source: str  # the stack file read, or SIMULATED_SOURCE
    config: StackConfig
    allowed_account_ids: tuple[str, ...]
    resources: list[Any]  # simulation.pulumi_mocks.RegisteredResource, kept untyped: imported lazily
    members: tuple[MemberPreview, ...] = ()

    @property
    def providers(self) -> list[str]:
        return sorted(res.name for res in self.resources if res.type == "pulumi:providers:aws")


def find_project_dir(start: Path | None = None) -> Path:
    """The nearest folder upwards holding this project's Pulumi.yaml (as Pulumi finds it), else the package's."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / "Pulumi.yaml"
        if candidate.is_file():
            try:
                name, _, _ = config.read_project(folder)
            except ConfigError:
                continue
            if name == config.NAMESPACE:
                return folder
    return config.PROJECT_DIR


def stacks_to_preview(stack: str | None, *, simulated: bool, project_dir: Path) -> list[str]:
    if stack not in (None, "all"):
        return [str(stack)]
    if simulated:
        return list(ROLES)
    names = config.stack_names(project_dir)
    if not names:
        raise ConfigError("file:Pulumi.<stack>.yaml", None, f"no stack settings file in {project_dir}")
    return names


def preview(
    stack: str | None = None, *, simulated: bool = False, project_dir: Path | None = None
) -> Iterator[StackPreview]:
    """Each chosen stack's preview, in turn; a ConfigError stops at the first stack that has one."""
    folder = project_dir or find_project_dir()
    for name in stacks_to_preview(stack, simulated=simulated, project_dir=folder):
        yield preview_stack(name, simulated=simulated, project_dir=folder)


def preview_stack(stack: str, *, simulated: bool = False, project_dir: Path | None = None) -> StackPreview:
    from simulation.pulumi_mocks import run_program

    folder = project_dir or find_project_dir()
    if simulated:
        raw, aws, source = _simulated_config(stack)
    else:
        files = config.read_stack_files(stack, folder)
        config.check_shared_values(folder, stack)
        raw, aws, source = files.irforensics, files.aws, files.stack_file.name
    cfg = config.load_config(stack, raw, aws)
    allowed = [str(account) for account in aws["allowedAccountIds"]]
    # The mocks play a caller in the stack's own account: the one allowedAccountIds admits.
    resources = run_program(stack, raw, account=config.own_account(cfg), region=cfg.region, allowed_account_ids=allowed)
    return StackPreview(
        stack=stack,
        source=source,
        config=cfg,
        allowed_account_ids=tuple(allowed),
        resources=resources,
        members=_members(cfg, resources),
    )


def _simulated_config(stack: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    from simulation import local_aws, stacks

    if stack == "forensic":
        raw, account = stacks.forensic_config(), local_aws.FORENSIC_ACCOUNT
    elif stack == "security":
        raw, account = stacks.security_config(), local_aws.SECURITY_ACCOUNT
    else:
        raise ConfigError("stack", stack, f"--simulated knows the stacks {' and '.join(ROLES)} only")
    return raw, {"region": local_aws.REGION, "allowedAccountIds": [account]}, SIMULATED_SOURCE


def _members(cfg: StackConfig, resources: list[Any]) -> tuple[MemberPreview, ...]:
    if not isinstance(cfg, SecurityConfig):
        return ()
    # The provider is read back from what the program registered, not recomputed here.
    provider_of: dict[str, str] = {}
    for res in resources:
        if res.type == "pulumi:providers:aws":
            allowed = res.inputs.get("allowedAccountIds") or []
            # Provider inputs travel as JSON strings.
            for account in json.loads(allowed) if isinstance(allowed, str) else allowed:
                provider_of[str(account)] = res.name
    return tuple(
        MemberPreview(
            account=member.account,
            region=member.region,
            deployment_role_arn=member.deployment_role_arn,
            provider=provider_of.get(member.account, "<none>"),
        )
        for member in cfg.members
    )
