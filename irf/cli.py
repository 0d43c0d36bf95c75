"""`irf`: the responder's command line (typer + rich)."""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.tree import Tree

from irf import local_aws, stacks

app = typer.Typer(help="irforensics: automated EC2 incident response and forensics.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
console = Console()
err = Console(stderr=True)


@app.command()
def preview(stack: Annotated[str, typer.Argument(help="forensic, security or all")] = "all") -> None:
    """Run the Pulumi program offline (mocks) and print the resource tree each stack registers."""
    from irf.pulumi_mocks import run_program

    chosen = ["forensic", "security"] if stack == "all" else [stack]
    for name in chosen:
        if name not in ("forensic", "security"):
            err.print(f"[red]unknown stack {name!r}: forensic, security or all[/red]")
            raise typer.Exit(2)
        if name == "forensic":
            resources = run_program(name, stacks.forensic_config(), account=local_aws.FORENSIC_ACCOUNT,
                                    region=local_aws.REGION)
        else:
            resources = run_program(name, stacks.security_config(), account=local_aws.SECURITY_ACCOUNT,
                                    region=local_aws.REGION)
        tree = Tree(f"[bold]{name}[/bold] stack: {len(resources)} resources")
        by_type: dict[str, list[str]] = defaultdict(list)
        for resource in resources:
            by_type[resource.type].append(resource.name)
        for type_token in sorted(by_type):
            branch = tree.add(f"{type_token} ({len(by_type[type_token])})")
            for resource_name in sorted(by_type[type_token]):
                branch.add(resource_name)
        console.print(tree)


@app.command()
def simulate(
    action: Annotated[str, typer.Option(help="contain or analyze")] = "contain",
    out: Annotated[Path, typer.Option(help="folder that receives <CaseId>/ with the evidence layout")] = Path("cases"),
    scenario: Annotated[str, typer.Option(help="the incident to simulate")] = "webshell",
) -> None:
    """Simulate a whole incident on this machine (moto): tag -> contain -> acquire -> examine -> report."""
    from rich.table import Table

    from irf.simulate import ACTIONS, SCENARIOS, run_simulation

    if action not in ACTIONS:
        err.print(f"[red]--action must be one of {', '.join(ACTIONS)}[/red]")
        raise typer.Exit(2)
    if scenario not in SCENARIOS:
        err.print(f"[red]--scenario must be one of {', '.join(SCENARIOS)}[/red]")
        raise typer.Exit(2)
    console.print(f"[bold]irforensics simulation[/bold]: scenario [cyan]{scenario}[/cyan], action "
                  f"[cyan]{ACTIONS[action]}[/cyan] (AWS simulated by moto; nothing leaves this machine)")
    started = time.monotonic()
    with console.status("deploying both stacks into three simulated accounts...") as status:
        def progress(stage: str, detail: str) -> None:
            console.print(f"  [green]\u2713[/green] {stage}: {detail}")
            status.update(f"{NEXT_STEP.get(stage, 'finishing')}...")

        result = run_simulation(action, out, scenario, progress=progress)

    stages = Table(title="Stages", show_header=True)
    stages.add_column("stage")
    stages.add_column("seconds", justify="right")
    for stage in result.stages:
        stages.add_row(stage.name, f"{stage.seconds:.1f}")
    console.print(stages)
    console.print(f"case [bold]{result.case_id}[/bold]: response {result.status}")
    contained = result.containment
    if contained:
        console.print(f"containment of {result.instance_id}: " + ", ".join(
            f"{k}={v}" for k, v in sorted(_containment_summary(contained).items())))
    evidence = Table(title="Evidence", show_header=True)
    for column in ("key", "size", "sha256"):
        evidence.add_column(column)
    for artefact in result.artefacts:
        if "/disk/" in artefact["key"] or "/containment/" in artefact["key"]:
            evidence.add_row(artefact["key"].split("/", 1)[1], str(artefact["size"]), artefact["sha256"][:16] + "...")
    console.print(evidence)
    findings = Table(title="Findings (most severe first)", show_header=True)
    for column in ("severity", "path", "reason"):
        findings.add_column(column)
    for finding in result.findings[:12]:
        findings.add_row(str(finding.get("severity", "")), str(finding.get("path", "")),
                         str(finding.get("reason", "")))
    console.print(findings)
    console.print(f"report: [bold]{result.report}[/bold]  (evidence folder {result.case_dir})")
    console.print(f"done in {time.monotonic() - started:.0f} s")
    if result.status != "SUCCEEDED":
        raise typer.Exit(1)


NEXT_STEP = {"deploy": "building the compromised web tier and its disks",
             "workload": "tagging the instance; the response runs (contain, snapshot, copy, image)",
             "response": "examining the acquired images (Sleuth Kit, libfsxfs, YARA) and writing the report"}


def _containment_summary(after: dict[str, Any]) -> dict[str, Any]:
    state = after.get("after", after)
    return {key: state[key] for key in ("termination_protection", "shutdown_behaviour", "instance_profile")
            if key in state}


def main() -> None:
    app()


if __name__ == "__main__":
    main()
