"""Run the Pulumi program offline with `pulumi.runtime.set_mocks` and record what it registers.

Used by the infrastructure tests, by `irf preview` (the resource tree of a stack) and by the
local simulation's deployer, which passes its own `on_resource` to create each resource.
"""

from __future__ import annotations

import hashlib
import json
import runpy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime.settings import SETTINGS
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from core.arns import partition

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "irforensics"


@dataclass
class RegisteredResource:
    type: str
    name: str
    inputs: dict[str, Any]
    provider: str | None
    id: str
    outputs: dict[str, Any] = field(default_factory=dict)

    def input(self, key: str, default: Any = None) -> Any:
        return self.inputs.get(key, default)


ResourceHook = Callable[[pulumi_mocks.MockResourceArgs, str, str], tuple[str, dict[str, Any]] | None]
# A provider function's answer (token, args, account, region), or None for the mocks' own.
CallHook = Callable[[str, dict[str, Any], str, str], dict[str, Any] | None]
ORGANIZATION_CALL = "aws:organizations/getOrganization:getOrganization"


def _service(type_token: str) -> str:
    # "aws:s3/bucketV2:BucketV2" -> "s3"
    parts = type_token.split(":")
    return parts[1].split("/")[0] if len(parts) == 3 else "resource"


class RecordingMocks(pulumi_mocks.Mocks):
    """Returns each resource's inputs as its outputs, plus a plausible id and ARN."""

    def __init__(
        self, account: str, region: str, on_resource: ResourceHook | None = None, on_call: CallHook | None = None
    ) -> None:
        self.account = account
        self.region = region
        self.on_resource = on_resource
        self.on_call = on_call
        self.resources: list[RegisteredResource] = []
        # Explicit providers by logical name: every member resource looks its provider up, so a
        # scan of all resources per lookup would make large stacks quadratic.
        self.providers: dict[str, RegisteredResource] = {}

    def new_resource(self, args: pulumi_mocks.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        account, region = self.account, self.region
        provider_state = self._provider_state(args.provider)
        if provider_state:
            account, region = provider_state
        # pulumi-aws 7: a regional resource may name its region; one provider then serves every
        # region of an account.
        if isinstance(args.inputs.get("region"), str) and args.typ != "pulumi:providers:aws":
            region = args.inputs["region"]
        hooked = self.on_resource(args, account, region) if self.on_resource else None
        if hooked is not None:
            resource_id, outputs = hooked
        else:
            outputs = dict(args.inputs)
            resource_id = str(outputs.get("name") or outputs.get("bucket") or f"{args.name}-id")
            service = _service(args.typ)
            outputs.setdefault("arn", f"arn:{partition(region)}:{service}:{region}:{account}:{args.name}")
            outputs.setdefault("name", args.name)
            if args.typ == "pulumi:providers:aws":
                outputs.setdefault("region", region)
        registered = RegisteredResource(args.typ, args.name, dict(args.inputs), args.provider, resource_id, outputs)
        self.resources.append(registered)
        if args.typ == "pulumi:providers:aws":
            self.providers[args.name] = registered
        return resource_id, outputs

    def _provider_state(self, provider_ref: str | None) -> tuple[str, str] | None:
        """Account and region of an explicit provider (from its assume-role ARN and region)."""
        # A provider reference is "<urn>::<id>", the urn ending "::pulumi:providers:aws::<name>".
        parts = (provider_ref or "").split("::")
        if len(parts) < 3 or not parts[-3].endswith("pulumi:providers:aws"):
            return None
        res = self.providers.get(parts[-2])
        if res is None:
            return None
        return self._provider_account(res), str(res.inputs.get("region", self.region))

    def _provider_account(self, res: RegisteredResource) -> str:
        assume = res.inputs.get("assumeRoles") or res.inputs.get("assumeRole") or []
        if isinstance(assume, str):
            assume = json.loads(assume)
        if isinstance(assume, dict):
            assume = [assume]
        for item in assume:
            arn = item.get("roleArn") or item.get("role_arn") or ""
            if arn.startswith("arn:aws:iam::"):
                return str(arn.split(":")[4])
        allowed = res.inputs.get("allowedAccountIds")
        if allowed:
            return str(json.loads(allowed)[0] if isinstance(allowed, str) else allowed[0])
        return self.account

    def call(self, args: pulumi_mocks.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        answer = self.on_call(args.token, dict(args.args), self.account, self.region) if self.on_call else None
        if answer is not None:
            return answer, []
        if args.token == ORGANIZATION_CALL:
            # A mock organisation (ids derived from the caller's account); the simulation's deployer
            # answers from moto's Organizations instead.
            org = "o-" + hashlib.sha256(self.account.encode()).hexdigest()[:10]
            return {
                "id": org,
                "arn": f"arn:aws:organizations::{self.account}:organization/{org}",
                "masterAccountId": self.account,
                "featureSet": "ALL",
            }, []
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {"accountId": self.account, "arn": f"arn:aws:iam::{self.account}:root", "userId": self.account}, None
        if args.token == "aws:index/getRegion:getRegion":
            return {"name": self.region, "region": self.region, "id": self.region}, None
        raise NotImplementedError(
            f"the program calls {args.token}; components avoid provider calls "
            "so that stacks preview offline - derive the value instead"
        )


def stack_config(values: Mapping[str, Any], region: str, allowed_account_ids: list[str]) -> dict[str, str]:
    """Pulumi config keys for set_all_config: strings stay strings, everything else as JSON."""
    config = {"aws:region": region, "aws:allowedAccountIds": json.dumps(allowed_account_ids)}
    for key, value in values.items():
        config[f"{PROJECT}:{key}"] = value if isinstance(value, str) else json.dumps(value)
    return config


def run_program(
    stack: str,
    config: Mapping[str, Any],
    *,
    account: str,
    region: str,
    on_resource: ResourceHook | None = None,
    allowed_account_ids: list[str] | None = None,
    on_call: CallHook | None = None,
) -> list[RegisteredResource]:
    """Run __main__.py under mocks for `stack`; return every resource it registered.

    `account` plays the caller's account; the stack's `aws:allowedAccountIds` is that account
    unless given (the program refuses a stack whose provider would accept another).
    """
    mocks = RecordingMocks(account=account, region=region, on_resource=on_resource, on_call=on_call)
    allowed = allowed_account_ids if allowed_account_ids is not None else [account]
    pulumi.runtime.set_all_config(stack_config(config, region, allowed))
    SETTINGS.rpc_manager.clear()
    SETTINGS.outputs.clear()
    pulumi_mocks.set_mocks(mocks, project=PROJECT, stack=stack, preview=False)

    def program() -> None:
        runpy.run_path(str(ROOT / "__main__.py"), run_name="irforensics_program")

    _sync_await(run_pulumi_func(program))
    return mocks.resources
