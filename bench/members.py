"""The security stack's size and evaluation time under Pulumi mocks as the number of members grows.

Explicit mode: every configured member account and region gets a MemberResponder, and every member
account one explicit AWS provider (each regional resource names its region). Under the Pulumi
engine each explicit provider is a provider plugin process of a few hundred MB, so the provider
count is what bounds the deployable size; resources and mock evaluation time are printed beside it.
The time is of this machine, under mocks (no engine, no AWS): a trend, not a deployment time.
Both the wall time and the process's CPU time are printed: on a shared machine the wall time
mostly measures the other processes.

Run: .venv/bin/python -m bench.members [--accounts 10 100] [--regions 1 3]
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

from simulation.pulumi_mocks import run_program
from simulation.stacks import security_config

SECURITY = "123456789012"
HOME = "eu-west-1"
REGIONS = ("eu-west-1", "us-east-1", "ap-southeast-2", "eu-central-1", "us-west-2")


@dataclass(frozen=True)
class Measurement:
    accounts: int
    regions: int
    responders: int
    resources: int
    providers: int
    seconds: float
    cpu_seconds: float


def member_accounts(count: int) -> list[str]:
    # 12-digit ids apart from the simulated security (123456789012) and forensic (222222222222) accounts
    return [f"{500000000000 + index:012d}" for index in range(count)]


def measure(accounts: int, regions: int) -> Measurement:
    members = [(account, region) for account in member_accounts(accounts) for region in REGIONS[:regions]]
    config: dict[str, Any] = security_config(members)
    started, cpu_started = time.perf_counter(), time.process_time()
    resources = run_program("security", config, account=SECURITY, region=HOME)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    return Measurement(
        accounts=accounts,
        regions=regions,
        responders=sum(res.type == "irforensics:member:MemberResponder" for res in resources),
        resources=len(resources),
        providers=sum(res.type == "pulumi:providers:aws" for res in resources),
        seconds=seconds,
        cpu_seconds=cpu_seconds,
    )


def measure_in_fresh_process(accounts: int, regions: int) -> Measurement:
    # One interpreter per measurement: a Pulumi program run leaves state behind in the SDK, which
    # would slow every later run in the same process.
    done = subprocess.run(
        [sys.executable, "-m", "bench.members", "--one", str(accounts), str(regions)],
        capture_output=True,
        text=True,
        check=True,
    )
    return Measurement(**json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--regions", type=int, nargs="+", default=[1, 3], choices=range(1, len(REGIONS) + 1))
    parser.add_argument("--one", type=int, nargs=2, metavar=("ACCOUNTS", "REGIONS"), help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.one:
        print(json.dumps(asdict(measure(*options.one))))
        return
    print("security stack, explicit mode, under Pulumi mocks (simulated: no engine, no AWS)")
    # Wall time depends on what else the machine runs; the process's CPU time is the evaluation's own cost.
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; each row in a fresh interpreter")
    print(
        f"{'accounts':>8} {'regions':>7} {'responders':>10} {'resources':>9} {'providers':>9} {'seconds':>8} "
        f"{'cpu s':>7}"
    )
    for accounts in options.accounts:
        for regions in options.regions:
            row = measure_in_fresh_process(accounts, regions)
            print(
                f"{row.accounts:>8} {row.regions:>7} {row.responders:>10} {row.resources:>9} "
                f"{row.providers:>9} {row.seconds:>8.1f} {row.cpu_seconds:>7.1f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
