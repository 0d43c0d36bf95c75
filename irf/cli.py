"""`irf`: the responder's command line (typer + rich).

The commands that act on AWS (respond, status, cases, report, release) only parse options and
print; what they do is in irf/operator.py. Exit codes are a contract (EXIT_CODES, docs/cli.md).
"""

from __future__ import annotations

import time
import webbrowser
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import boto3
import typer
from botocore.exceptions import ClientError, NoCredentialsError, PartialCredentialsError, ProfileNotFound
from rich.console import Console
from rich.table import Table
from rich.tree import Tree

from handlers.common.errors import InstanceNotFound, InvalidInput, ResponderUnavailable
from irf import operator

EXIT_OK = 0
EXIT_RESPONSE_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_NOT_FOUND = 3
EXIT_NO_CREDENTIALS = 4
EXIT_ACCESS_DENIED = 5
EXIT_CODES = {
    EXIT_OK: "ok",
    EXIT_RESPONSE_FAILED: "the response failed (or downloaded evidence failed its sha256 check)",
    EXIT_BAD_INPUT: "bad input (a field is named in the message)",
    EXIT_NOT_FOUND: "not found (case, report, containment record, instance or deployed stack)",
    EXIT_NO_CREDENTIALS: "no usable AWS credentials",
    EXIT_ACCESS_DENIED: "access denied (the refused action is named)",
}
ACCESS_DENIED_CODES = frozenset(
    {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthorizationError", "UnauthorizedAccess"}
)
REJECTED_CREDENTIALS_CODES = frozenset(
    {
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
    }
)
NO_CREDENTIALS = (
    "no AWS credentials: set AWS_PROFILE (or pass --profile), export AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY, or sign in with `aws sso login`"
)

app = typer.Typer(
    help="irforensics: automated EC2 incident response and forensics.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    epilog="Exit codes: " + "; ".join(f"{code} {meaning}" for code, meaning in EXIT_CODES.items()) + ".",
)
console = Console()
err = Console(stderr=True)
# `irf report --open` hands the report to this; tests replace it so no browser opens.
open_report: Callable[[str], Any] = webbrowser.open

Prefix = Annotated[str, typer.Option("--prefix", envvar="IRF_PREFIX", help="name prefix the stacks were deployed with")]
Profile = Annotated[
    str | None,
    typer.Option("--profile", envvar="AWS_PROFILE", help="AWS profile of the security account (else the boto3 chain)"),
]
SecurityRegion = Annotated[
    str | None,
    typer.Option(
        "--security-region",
        envvar="IRF_SECURITY_REGION",
        help="region of the security account's stack (else AWS_REGION / the profile's region)",
    ),
]
ForensicAccount = Annotated[
    str,
    typer.Option(
        "--forensic-account", envvar="IRF_FORENSIC_ACCOUNT", help="forensic account id (names the evidence bucket)"
    ),
]
ForensicRegion = Annotated[
    str,
    typer.Option("--forensic-region", envvar="IRF_FORENSIC_REGION", help="forensic region (names the evidence bucket)"),
]
EvidenceProfile = Annotated[
    str | None,
    typer.Option(
        "--evidence-profile",
        envvar="IRF_EVIDENCE_PROFILE",
        help="AWS profile that may read the evidence bucket, e.g. one assuming the investigator role "
        "(else the same credentials)",
    ),
]


@app.command()
def preview(stack: Annotated[str, typer.Argument(help="forensic, security or all")] = "all") -> None:
    """Run the Pulumi program offline (mocks) and print the resource tree each stack registers."""
    from simulation import local_aws, stacks
    from simulation.pulumi_mocks import run_program

    chosen = ["forensic", "security"] if stack == "all" else [stack]
    for name in chosen:
        if name not in ("forensic", "security"):
            err.print(f"[red]unknown stack {name!r}: forensic, security or all[/red]")
            raise typer.Exit(2)
        if name == "forensic":
            resources = run_program(
                name, stacks.forensic_config(), account=local_aws.FORENSIC_ACCOUNT, region=local_aws.REGION
            )
        else:
            resources = run_program(
                name, stacks.security_config(), account=local_aws.SECURITY_ACCOUNT, region=local_aws.REGION
            )
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
    incidents: Annotated[
        int,
        typer.Option(
            min=1,
            max=50,
            help="incidents on different instances, responded to at once (more than 1: a concurrency run)",
        ),
    ] = 1,
) -> None:
    """Simulate a whole incident on this machine (moto): tag -> contain -> acquire -> examine -> report."""
    from simulation.simulate import ACTIONS, SCENARIOS, run_simulation

    if action not in ACTIONS:
        err.print(f"[red]--action must be one of {', '.join(ACTIONS)}[/red]")
        raise typer.Exit(2)
    if scenario not in SCENARIOS:
        err.print(f"[red]--scenario must be one of {', '.join(SCENARIOS)}[/red]")
        raise typer.Exit(2)
    if incidents > 1:
        _simulate_concurrent(incidents, action, out)
        return
    console.print(
        f"[bold]irforensics simulation[/bold]: scenario [cyan]{scenario}[/cyan], action "
        f"[cyan]{ACTIONS[action]}[/cyan] (AWS simulated by moto; nothing leaves this machine)"
    )
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
        console.print(
            f"containment of {result.instance_id}: "
            + "; ".join(f"{k}: {v}" for k, v in _containment_summary(contained).items())
        )
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
        findings.add_row(str(finding.get("severity", "")), str(finding.get("path", "")), str(finding.get("reason", "")))
    console.print(findings)
    console.print(f"report: [bold]{result.report}[/bold]  (evidence folder {result.case_dir})")
    console.print(f"done in {time.monotonic() - started:.0f} s")
    if result.status != "SUCCEEDED":
        raise typer.Exit(1)


def _simulate_concurrent(count: int, action: str, out: Path) -> None:
    from simulation.simulate import ACTIONS, run_concurrent

    console.print(
        f"[bold]irforensics concurrency simulation[/bold]: {count} incidents, action "
        f"[cyan]{ACTIONS[action]}[/cyan], all tagged at once (AWS simulated by moto)"
    )
    started = time.monotonic()
    with console.status(f"deploying, then building {count} web tiers...") as status:

        def progress(stage: str, detail: str) -> None:
            console.print(f"  [green]\u2713[/green] {stage}: {detail}")
            status.update("waiting for the responses..." if stage == "triggered" else "working...")

        run = run_concurrent(count, action, out, progress=progress)
    cases = Table(title="Cases", show_header=True)
    for column in ("instance", "case", "status", "disk images", "memory sha256"):
        cases.add_column(column)
    for incident, result in zip(run.incidents, run.results, strict=True):
        images = sum(1 for a in result.artefacts if a["key"].endswith(".img"))
        memory = next((a["sha256"] for a in result.artefacts if a["key"].endswith(".lime")), "")
        cases.add_row(incident.instance_id, result.case_id, result.status, str(images), memory[:16] + "...")
    console.print(cases)
    for problem in run.problems:
        err.print(f"[red]separation problem:[/red] {problem}")
    troubled = {problem.split(" ", 1)[0] for problem in run.problems}
    console.print(
        f"{count - len(troubled)} of {count} cases complete and separate; responses took "
        f"{run.seconds:.0f} s; done in {time.monotonic() - started:.0f} s (case folders in {out}, raw "
        "images left in the simulated bucket, their digests kept)"
    )
    if run.problems:
        raise typer.Exit(1)


NEXT_STEP = {
    "deploy": "building the compromised web tier and its disks",
    "workload": "tagging the instance; the response runs (contain, snapshot, copy, image)",
    "response": "examining the acquired images (Sleuth Kit, libfsxfs, YARA) and writing the report",
}


def _containment_summary(after: dict[str, Any]) -> dict[str, Any]:
    state = after.get("state", after)
    summary: dict[str, Any] = {
        "interfaces": ", ".join(f"{i['eni_id']}->{'+'.join(i['groups'])}" for i in state.get("interfaces", [])),
        "profile": (state.get("profile") or {}).get("profile_arn", "none").rsplit("/", 1)[-1],
        "shutdown": state.get("shutdown_behavior", "?"),
        "auto scaling": "detached" if not state.get("auto_scaling") else state["auto_scaling"],
    }
    for key in ("termination_protection", "disable_api_termination"):
        if key in state:
            summary["termination protection"] = state[key]
    return summary


# ---------------------------------------------------------------------------------------------
# Commands that act on a deployment in AWS.


def _fail(code: int, message: str) -> NoReturn:
    err.print(f"irf: {message}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def _exit_codes() -> Iterator[None]:
    """One line and a documented exit code for every error a responder can act on."""
    try:
        yield
    except (NoCredentialsError, PartialCredentialsError):
        _fail(EXIT_NO_CREDENTIALS, NO_CREDENTIALS)
    except ProfileNotFound as exc:
        _fail(EXIT_NO_CREDENTIALS, f"no AWS credentials: {exc}")
    except (InvalidInput, operator.MissingSetting) as exc:
        _fail(EXIT_BAD_INPUT, str(exc))
    except (
        operator.CaseNotFound,
        operator.ReportNotFound,
        operator.ContainmentRecordNotFound,
        operator.DeploymentNotFound,
        InstanceNotFound,
    ) as exc:
        _fail(EXIT_NOT_FOUND, str(exc))
    except ResponderUnavailable as exc:
        _fail(EXIT_ACCESS_DENIED, f"access denied: sts:AssumeRole refused: {exc}")
    except operator.EvidenceIntegrityError as exc:
        _fail(EXIT_RESPONSE_FAILED, str(exc))
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code, message = str(error.get("Code", "")), str(error.get("Message", ""))
        if code in ACCESS_DENIED_CODES:
            _fail(EXIT_ACCESS_DENIED, f"access denied: {exc.operation_name} refused: {message}")
        if code in REJECTED_CREDENTIALS_CODES:
            _fail(EXIT_NO_CREDENTIALS, f"AWS credentials rejected ({code}) by {exc.operation_name}: {message}")
        raise


def _session(profile: str | None, region: str | None) -> boto3.Session:
    return boto3.Session(profile_name=profile or None, region_name=region or None)


def _deployment(
    session: boto3.Session, prefix: str, forensic_account: str = "", forensic_region: str = ""
) -> operator.Deployment:
    return operator.locate_deployment(
        session, prefix, forensic_account=forensic_account, forensic_region=forensic_region
    )


def _evidence_s3(deployment: operator.Deployment, profile: str | None, evidence_profile: str | None) -> Any:
    return _session(evidence_profile or profile, deployment.forensic_region).client("s3")


@app.command()
def respond(
    instance: Annotated[str, typer.Argument(help="the suspect EC2 instance id (i-...)")],
    account: Annotated[str, typer.Option(help="member account id of the instance (required)")] = "",
    region: Annotated[str, typer.Option(help="region of the instance (required)")] = "",
    action: Annotated[str, typer.Option(help="analyze (protect, keep serving) or contain (isolate)")] = "analyze",
    case_id: Annotated[str | None, typer.Option(help="use this case id instead of the derived one")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="report what would change; change and acquire nothing")
    ] = False,
    retain_artefacts: Annotated[
        bool, typer.Option(help="keep the intermediate member-account snapshots after imaging")
    ] = True,
    wait: Annotated[bool, typer.Option("--wait", help="follow the response live until it ends")] = False,
    wait_seconds: Annotated[
        int | None,
        typer.Option(help="seconds the state machine waits before each snapshot status poll (default: the stack's)"),
    ] = None,
    poll_interval: Annotated[float, typer.Option(help="seconds between progress polls with --wait")] = 5.0,
    prefix: Prefix = "",
    profile: Profile = None,
    security_region: SecurityRegion = None,
) -> None:
    """Start the response state machine for a suspect instance (same input as a manual execution)."""
    with _exit_codes():
        request = operator.build_request(
            instance,
            account,
            region,
            action,
            case_id=case_id,
            dry_run=dry_run,
            retain_artefacts=retain_artefacts,
            wait_seconds=wait_seconds,
        )
        session = _session(profile, security_region)
        deployment = _deployment(session, prefix)
        sfn = session.client("stepfunctions")
        name = operator.execution_name(instance, datetime.now(UTC))
        execution_arn = operator.start_response(sfn, deployment, request, name)
        console.print(
            f"started {request['Action']}{' (dry run)' if dry_run else ''} of {instance}: {execution_arn}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        if not wait:
            console.print(
                f"follow it with `irf cases` / `irf status <case>`; case id "
                f"{case_id or 'assigned when the case opens'}",
                markup=False,
                soft_wrap=True,
            )
            return
        try:
            with console.status("starting...") as spinner:

                def entered(state: str) -> None:
                    console.print(f"  -> {state}", markup=False, highlight=False)
                    spinner.update(f"{state}...")

                outcome = operator.follow_response(
                    sfn, execution_arn, poll_interval=poll_interval, on_state=entered, case_id=case_id or ""
                )
        except KeyboardInterrupt:
            _fail(130, f"stopped following; the response goes on: {execution_arn}")
    if not outcome.created:
        console.print(
            f"instance {instance} already has open case {outcome.case_id}; nothing new started",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        return
    opened = f"case {outcome.case_id}" if outcome.case_id else "no case was opened"
    console.print(f"{opened}: response {outcome.status}", markup=False, highlight=False, soft_wrap=True)
    if not outcome.succeeded:
        _fail(EXIT_RESPONSE_FAILED, f"response {outcome.status}: {outcome.reason} ({execution_arn})")
    console.print(
        f"next: irf status {outcome.case_id}" + ("" if dry_run else f"; irf report {outcome.case_id}"),
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


@app.command()
def status(
    case: Annotated[str, typer.Argument(help="the case id")],
    prefix: Prefix = "",
    forensic_account: ForensicAccount = "",
    forensic_region: ForensicRegion = "",
    profile: Profile = None,
    security_region: SecurityRegion = None,
    evidence_profile: EvidenceProfile = None,
) -> None:
    """A case's record (case table) and its chain-of-custody events (evidence bucket)."""
    with _exit_codes():
        operator.check_case_id(case)
        session = _session(profile, security_region)
        deployment = _deployment(session, prefix, forensic_account, forensic_region)
        found = operator.case_status(
            session.client("dynamodb"), _evidence_s3(deployment, profile, evidence_profile), deployment, case
        )
    record = found.case
    summary = Table(title=f"Case {case}", show_header=False)
    summary.add_column("field", style="bold")
    summary.add_column("value", overflow="fold")
    for label, key in (
        ("status", "Status"),
        ("instance", "InstanceId"),
        ("account", "Account"),
        ("region", "Region"),
        ("action", "Action"),
        ("trigger", "Trigger"),
        ("dry run", "DryRun"),
        ("opened", "OpenedAt"),
        ("closed", "ClosedAt"),
        ("detail", "Detail"),
    ):
        if key in record:
            value = str(record[key])
            summary.add_row(label, operator.readable_detail(value) if key == "Detail" else value)
    console.print(summary)
    custody = Table(title=f"Chain of custody (s3://{deployment.evidence_bucket}/{case}/custody/)")
    custody.add_column("seq", justify="right")
    custody.add_column("event", overflow="fold")
    custody.add_column("time", no_wrap=True)
    custody.add_column("actor", overflow="fold", min_width=16)
    # Seconds are enough to read the sequence; the custody object holds the exact time.
    for event in found.custody:
        custody.add_row(str(event.seq), event.event, _to_the_second(event.time), event.actor)
    console.print(custody)
    if not found.custody:
        console.print("no custody events yet", markup=False)


@app.command()
def cases(
    limit: Annotated[int, typer.Option(help="how many of the most recent cases")] = 20,
    prefix: Prefix = "",
    profile: Profile = None,
    security_region: SecurityRegion = None,
) -> None:
    """The most recent cases, newest first."""
    with _exit_codes():
        session = _session(profile, security_region)
        deployment = _deployment(session, prefix)
        found = operator.recent_cases(session.client("dynamodb"), deployment, limit)
    if not found:
        console.print(f"no cases in {deployment.case_table}", markup=False)
        return
    table = Table(title=f"Recent cases ({deployment.case_table})")
    # Account and region are in a derived case id; `irf status` shows every field.
    for column in ("case", "status", "action", "instance", "opened"):
        table.add_column(column, overflow="fold", min_width=len(column))
    for case in found:
        table.add_row(
            str(case.get("CaseId", "")),
            str(case.get("Status", "")),
            str(case.get("Action", "")) + (" (dry run)" if case.get("DryRun") else ""),
            str(case.get("InstanceId", "")),
            _to_the_second(case.get("OpenedAt")),
        )
    console.print(table)


@app.command()
def report(
    case: Annotated[str, typer.Argument(help="the case id")],
    out: Annotated[Path | None, typer.Option(help="folder for the report files [default: cases/<case>/report]")] = None,
    open_: Annotated[bool, typer.Option("--open", help="open report.html in the browser")] = False,
    prefix: Prefix = "",
    forensic_account: ForensicAccount = "",
    forensic_region: ForensicRegion = "",
    profile: Profile = None,
    security_region: SecurityRegion = None,
    evidence_profile: EvidenceProfile = None,
) -> None:
    """Download a case's report (HTML, Markdown, JSON), each checked against its recorded sha256."""
    with _exit_codes():
        operator.check_case_id(case)
        session = _session(profile, security_region)
        deployment = _deployment(session, prefix, forensic_account, forensic_region)
        folder = out if out is not None else Path("cases") / case / "report"
        files = operator.download_report(
            _evidence_s3(deployment, profile, evidence_profile), session.client("dynamodb"), deployment, case, folder
        )
    table = Table(title=f"Report of case {case}")
    for column in ("file", "size", "sha256", "checked"):
        table.add_column(column, overflow="fold")
    for downloaded in files:
        table.add_row(
            str(downloaded.path),
            str(downloaded.size),
            downloaded.sha256,
            "matches recorded" if downloaded.verified else "no recorded digest",
        )
    console.print(table)
    for downloaded in files:
        console.print(str(downloaded.path), markup=False, highlight=False, soft_wrap=True)
    if open_:
        html = next((f.path for f in files if f.path.name == "report.html"), None)
        if html is None:
            _fail(EXIT_NOT_FOUND, f"case {case} has no report.html to open")
        open_report(html.resolve().as_uri())


@app.command()
def release(
    instance: Annotated[str, typer.Argument(help="the contained EC2 instance id (i-...)")],
    case: Annotated[str, typer.Option("--case", help="the case whose containment record to restore (required)")] = "",
    account: Annotated[str, typer.Option(help="member account id of the instance (required)")] = "",
    region: Annotated[str, typer.Option(help="region of the instance (required)")] = "",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="show what would change; change nothing")] = False,
    prefix: Prefix = "",
    forensic_account: ForensicAccount = "",
    forensic_region: ForensicRegion = "",
    profile: Profile = None,
    security_region: SecurityRegion = None,
    evidence_profile: EvidenceProfile = None,
) -> None:
    """Restore a contained instance exactly to its containment/before.json (groups, profile, protections...)."""
    with _exit_codes():
        if not case:
            raise InvalidInput({"--case": "is required (the case that contained the instance)"})
        session = _session(profile, security_region)
        deployment = _deployment(session, prefix, forensic_account, forensic_region)
        outcome = operator.release_contained_instance(
            session,
            _evidence_s3(deployment, profile, evidence_profile),
            deployment,
            instance,
            case,
            account,
            region,
            dry_run=dry_run,
        )
    verb = "would change" if outcome.dry_run else "changed"
    if not outcome.changes:
        console.print(
            f"{instance} is already as recorded before containment (case {case}); nothing to change",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    else:
        table = Table(
            title=f"Release of {instance} (case {case}): {len(outcome.changes)} {verb}"
            + (" - dry run, nothing changed" if outcome.dry_run else "")
        )
        for column in ("what", "resource", "from", "to", "api"):
            table.add_column(column, overflow="fold")
        for change in outcome.changes:
            table.add_row(change.what, change.resource, _brief(change.old), _brief(change.new), change.api)
        console.print(table)
    if outcome.custody_key:
        console.print(f"custody: {outcome.custody_key}", markup=False, highlight=False, soft_wrap=True)
    else:
        err.print(
            f"irf: warning: the release is not in the custody log ({outcome.custody_error}); record it by hand",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )


@app.command("build-modules")
def build_modules(
    kernels: Annotated[
        list[str] | None,
        typer.Argument(
            help="kernels as distro:version:release:arch, e.g. amzn:2023:6.1.119-129.201.amzn2023.x86_64:x86_64"
        ),
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", help="follow the builds until they end")] = False,
    poll_interval: Annotated[float, typer.Option(help="seconds between progress polls with --wait")] = 10.0,
    prefix: Prefix = "",
    profile: Profile = None,
    security_region: SecurityRegion = None,
) -> None:
    """Build LiME modules and Volatility symbol tables ahead of time (the LimeFactory), for a fleet's kernels."""
    with _exit_codes():
        builds = operator.parse_kernel_specs(kernels or [])
        session = _session(profile, security_region)
        deployment = _deployment(session, prefix)
        sfn = session.client("stepfunctions")
        execution_arn = operator.start_module_builds(sfn, deployment, builds, datetime.now(UTC))
        console.print(
            f"LimeFactory started for {len(builds)} kernel(s): {execution_arn}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        if not wait:
            return
        outcome = operator.follow_module_builds(sfn, execution_arn, poll_interval=poll_interval)
    table = Table(title=f"LimeFactory {outcome.status}")
    for column in ("kernel", "built", "detail"):
        table.add_column(column, overflow="fold")
    for result in outcome.results:
        build = result.get("Build") or {}
        table.add_row(
            f"{build.get('Distro')} {build.get('DistroVersion')} {build.get('KernelRelease')} ({build.get('Arch')})",
            "yes" if result.get("Succeeded") else "no",
            str(result.get("BuildId") or result.get("Error") or ""),
        )
    console.print(table)
    if outcome.status != "SUCCEEDED":
        raise typer.Exit(EXIT_RESPONSE_FAILED)


def _to_the_second(iso: Any) -> str:
    """`2026-11-23T12:17:00.639441Z` -> `2026-11-23T12:17:00Z`, for tables read by people."""
    text = str(iso or "")
    return text.split(".", 1)[0] + "Z" if "." in text and text.endswith("Z") else text


def _brief(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) or "(none)"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return str(value)


from irf import memory_commands  # noqa: E402, F401  (registers `irf symbols` and `irf examine-memory`)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
