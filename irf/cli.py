"""`irf`: the responder's command line (typer + rich)."""

from __future__ import annotations

from collections import defaultdict

import typer
from rich.console import Console
from rich.tree import Tree

from irf import local_aws, stacks

app = typer.Typer(help="irforensics: automated EC2 incident response and forensics.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
console = Console()
err = Console(stderr=True)


@app.command()
def preview(stack: str = typer.Argument("all", help="forensic, security or all")) -> None:
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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
