"""The security stack's size and evaluation time under Pulumi mocks as the number of members grows.

Explicit mode: every configured member account and region gets a MemberResponder, and every member
account one explicit AWS provider (each regional resource names its region). Under the Pulumi
engine each explicit provider is a provider plugin process of a few hundred MB, so the provider
count is what bounds the deployable size; resources and mock evaluation time are printed beside it.

Organisation mode: the stack names OUs, not accounts; one StackSet and one stack set instance per
region, whatever the number of accounts in the OUs. To show the accounts are really there, the
instances are expanded over an OU of N accounts the way CloudFormation expands them: the StackSet's
template is instantiated per account and region with ARNs as AWS forms them (under mocks: nothing is
created, no moto), and the member stacks and their resources are counted beside the Pulumi resources.
The time is of this machine, under mocks (no engine, no AWS): a trend, not a deployment time.
Both the wall time and the process's CPU time are printed: on a shared machine the wall time
mostly measures the other processes.

Run: .venv/bin/python -m bench.members [--accounts 10 100 1000] [--regions 1 3] [--mode explicit organisation]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

from components import member_template
from simulation.pulumi_mocks import RegisteredResource, run_program
from simulation.stacks import organisation_security_config, security_config

SECURITY = "123456789012"
HOME = "eu-west-1"
REGIONS = ("eu-west-1", "us-east-1", "ap-southeast-2", "eu-central-1", "us-west-2")


OU = "ou-ab12-cdef3456"


@dataclass(frozen=True)
class Measurement:
    accounts: int
    regions: int
    responders: int
    resources: int
    providers: int
    seconds: float
    cpu_seconds: float
    mode: str = "explicit"
    member_stacks: int = 0  # organisation mode: stacks CloudFormation makes from the StackSet
    member_resources: int = 0


@dataclass
class StackSetExpansion:
    """`on_resource` hook: each stack set instance expanded over the OU's accounts (see the docstring)."""

    accounts: list[str]
    template: dict[str, Any] | None = None
    stacks: int = 0
    resources: int = 0

    def __call__(self, args: Any, account: str, region: str) -> tuple[str, dict[str, Any]] | None:
        if args.typ == "aws:cloudformation/stackSet:StackSet":
            self.template = json.loads(args.inputs["templateBody"])
        elif args.typ == "aws:cloudformation/stackSetInstance:StackSetInstance":
            if self.template is None:
                raise RuntimeError("a stack set instance was registered before its stack set")
            target = args.inputs["stackSetInstanceRegion"]
            for member in self.accounts:
                create, seen = member_template.realistic_creator(member, target, "aws")
                member_template.instantiate(
                    self.template, account=member, region=target, partition="aws", create=create
                )
                self.stacks += 1
                self.resources += len(seen)
        return None


def organisation_run(accounts: int, regions: int) -> tuple[list[RegisteredResource], StackSetExpansion]:
    """The security stack in organisation mode, its instances expanded over an OU of `accounts` accounts."""
    expansion = StackSetExpansion(member_accounts(accounts))
    config = organisation_security_config([OU], list(REGIONS[:regions]))
    return run_program("security", config, account=SECURITY, region=HOME, on_resource=expansion), expansion


def member_accounts(count: int) -> list[str]:
    # 12-digit ids apart from the simulated security (123456789012) and forensic (222222222222) accounts
    return [f"{500000000000 + index:012d}" for index in range(count)]


def measure(accounts: int, regions: int, mode: str = "explicit") -> Measurement:
    started, cpu_started = time.perf_counter(), time.process_time()
    if mode == "organisation":
        resources, expansion = organisation_run(accounts, regions)
        stacks, member_resources = expansion.stacks, expansion.resources
    else:
        members = [(account, region) for account in member_accounts(accounts) for region in REGIONS[:regions]]
        config: dict[str, Any] = security_config(members)
        resources = run_program("security", config, account=SECURITY, region=HOME)
        stacks = member_resources = 0
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    return Measurement(
        mode=mode,
        member_stacks=stacks,
        member_resources=member_resources,
        accounts=accounts,
        regions=regions,
        responders=sum(res.type == "irforensics:member:MemberResponder" for res in resources),
        resources=len(resources),
        providers=sum(res.type == "pulumi:providers:aws" for res in resources),
        seconds=seconds,
        cpu_seconds=cpu_seconds,
    )


def measure_in_fresh_process(accounts: int, regions: int, mode: str) -> Measurement:
    # One interpreter per measurement: a Pulumi program run leaves state behind in the SDK, which
    # would slow every later run in the same process.
    done = subprocess.run(
        [sys.executable, "-m", "bench.members", "--one", str(accounts), str(regions), mode],
        capture_output=True,
        text=True,
        check=True,
    )
    return Measurement(**json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--regions", type=int, nargs="+", default=[1, 3], choices=range(1, len(REGIONS) + 1))
    parser.add_argument("--mode", nargs="+", default=["explicit", "organisation"], choices=["explicit", "organisation"])
    parser.add_argument("--one", nargs=3, metavar=("ACCOUNTS", "REGIONS", "MODE"), help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.one:
        print(json.dumps(asdict(measure(int(options.one[0]), int(options.one[1]), options.one[2]))))
        return
    print("security stack under Pulumi mocks (simulated: no engine, no AWS)")
    # Wall time depends on what else the machine runs; the process's CPU time is the evaluation's own cost.
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; each row in a fresh interpreter")
    print(
        f"{'mode':>12} {'accounts':>8} {'regions':>7} {'responders':>10} {'resources':>9} {'providers':>9} "
        f"{'member stacks':>13} {'member res':>10} {'seconds':>8} {'cpu s':>7}"
    )
    for mode in options.mode:
        for accounts in options.accounts:
            for regions in options.regions:
                row = measure_in_fresh_process(accounts, regions, mode)
                print(
                    f"{row.mode:>12} {row.accounts:>8} {row.regions:>7} {row.responders:>10} {row.resources:>9} "
                    f"{row.providers:>9} {row.member_stacks:>13} {row.member_resources:>10} {row.seconds:>8.1f} "
                    f"{row.cpu_seconds:>7.1f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
