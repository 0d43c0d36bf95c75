"""`irf`: the responder's command line (typer + rich).

The commands that act on AWS (respond, status, cases, report, release) only parse options and
print; what they do is in irf/operator.py. Exit codes are a contract (EXIT_CODES, docs/cli.md).
"""

from __future__ import annotations

import io
import json
import multiprocessing
import sys
import time
import webbrowser
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import metadata
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import boto3
import typer
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProfileNotFound,
    ReadTimeoutError,
)
from rich.console import Console
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from handlers.common.errors import InstanceNotFound, InvalidInput, ResponderUnavailable
from irf import operator, progress
from irf.connection import ConnectionOptions, connection_options
from irf.progress import human_size

if TYPE_CHECKING:
    from simulation.simulate import SimulationResult, Watch

EXIT_OK = 0
EXIT_RESPONSE_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_NOT_FOUND = 3
EXIT_NO_CREDENTIALS = 4
EXIT_ACCESS_DENIED = 5
EXIT_UNREACHABLE = 6
EXIT_INTERRUPTED = 130
EXIT_CODES = {
    EXIT_OK: "ok",
    EXIT_RESPONSE_FAILED: "the response failed, downloaded evidence failed its sha256 check, or an AWS call failed",
    EXIT_BAD_INPUT: "bad input (a field is named in the message)",
    EXIT_NOT_FOUND: "not found (case, report, containment record, instance or deployed stack)",
    EXIT_NO_CREDENTIALS: "no usable AWS credentials",
    EXIT_ACCESS_DENIED: "access denied (the refused action is named)",
    EXIT_UNREACHABLE: "AWS not reachable (no network, or no endpoint for the region)",
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
    "no AWS credentials; set AWS_PROFILE (or pass --profile), export AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY, or sign in with `aws sso login`"
)
# What to do, after the `;` of every error line, by exit code.
TO_DO = {
    EXIT_BAD_INPUT: "see `irf {command} --help`",
    EXIT_NOT_FOUND: "check the id, --prefix and the account and region (`irf cases` lists the cases)",
    EXIT_ACCESS_DENIED: "use a role allowed to do it (docs/cli.md, Permissions the caller needs)",
    EXIT_UNREACHABLE: "check the network, the region (--security-region, AWS_REGION) and any AWS_ENDPOINT_URL",
    EXIT_RESPONSE_FAILED: "see `irf status <case>` and the Lambdas' logs in CloudWatch",
}
# Rows a summary table shows before it says how many more there are.
TABLE_ROWS = 12


def _version(value: bool) -> None:
    if value:
        try:
            version = metadata.version("irforensics")
        except metadata.PackageNotFoundError:
            version = "unknown (not installed)"
        typer.echo(f"irf (irforensics) {version}")
        raise typer.Exit()


app = typer.Typer(
    help="irforensics: automated EC2 incident response and forensics.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # Plain click help: it wraps to the terminal, where rich's panels cut option names short.
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 120},
    epilog="Exit codes: " + "; ".join(f"{code} {meaning}" for code, meaning in EXIT_CODES.items()) + ".",
)


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="print the version and exit")
    ] = False,
) -> None:
    """irforensics: automated EC2 incident response and forensics."""


console = Console()
err = Console(stderr=True)
# `irf report --open` hands the report to this; tests replace it so no browser opens.
open_report: Callable[[str], Any] = webbrowser.open


@app.command()
def preview(
    stack: Annotated[
        str | None,
        typer.Argument(
            help="a stack with a Pulumi.<stack>.yaml (default: every one); with --simulated forensic or security"
        ),
    ] = None,
    simulated: Annotated[
        bool, typer.Option("--simulated", help="preview the simulation's built-in configuration, not the stack files")
    ] = False,
    project_dir: Annotated[
        Path | None, typer.Option("--project-dir", help="folder of Pulumi.yaml (default: found from here upwards)")
    ] = None,
) -> None:
    """Check a stack's configuration as `pulumi up` would, then print what it registers (Pulumi mocks, offline)."""
    from config import ConfigError, SecurityConfig
    from irf.preview import preview as preview_stacks

    try:
        for shown in preview_stacks(stack, simulated=simulated, project_dir=project_dir):
            console.print(
                f"[bold]{shown.stack}[/bold] stack from {shown.source}: account {', '.join(shown.allowed_account_ids)}"
                f" (aws:allowedAccountIds), region {shown.config.region}; {len(shown.resources)} resources, "
                f"{len(shown.providers)} explicit providers (under Pulumi mocks: nothing deployed, no AWS call)",
                highlight=False,
                soft_wrap=True,
            )
            if isinstance(shown.config, SecurityConfig) and shown.config.organization_mode:
                console.print(
                    "Organisation mode: member responders through one StackSet, auto-deployed to every account"
                    f" of {', '.join(shown.config.member_organizational_units)} in"
                    f" {', '.join(shown.config.member_regions)} (docs/organisation.md)",
                    highlight=False,
                    soft_wrap=True,
                )
            elif isinstance(shown.config, SecurityConfig):
                members = Table(title=f"Member accounts ({len(shown.members)})", show_header=True)
                for column in ("account", "region", "deployment role", "provider"):
                    members.add_column(column, overflow="fold")
                for member in shown.members:
                    members.add_row(member.account, member.region, member.deployment_role_arn, member.provider)
                console.print(members)
            tree = Tree(f"[bold]{shown.stack}[/bold] stack: {len(shown.resources)} resources")
            by_type: dict[str, list[str]] = defaultdict(list)
            for resource in shown.resources:
                by_type[resource.type].append(resource.name)
            for type_token in sorted(by_type):
                branch = tree.add(f"{type_token} ({len(by_type[type_token])})")
                for resource_name in sorted(by_type[type_token]):
                    branch.add(resource_name)
            console.print(tree)
    except ConfigError as exc:
        # The config error already says what to change (the key, the closest known key, docs/config.md).
        _fail(EXIT_BAD_INPUT, str(exc), "")


@app.command()
def simulate(
    action: Annotated[str, typer.Option(help="contain or analyze")] = "contain",
    out: Annotated[Path, typer.Option(help="folder that receives <CaseId>/ with the evidence layout")] = Path("cases"),
    scenario: Annotated[str, typer.Option(help="the incident to simulate")] = "webshell",
    trigger: Annotated[
        str,
        typer.Option(
            help="how the response starts: tag (the instance is tagged), guardduty (a GuardDuty finding), "
            "securityhub (a Security Hub custom action on it) or manual (StartExecution)"
        ),
    ] = "tag",
    incidents: Annotated[
        int,
        typer.Option(
            min=1,
            max=50,
            help="incidents on different instances, responded to at once (more than 1: a concurrency run)",
        ),
    ] = 1,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="also print the Lambdas' JSON log lines (always in logs/)")
    ] = False,
    organisation: Annotated[
        bool,
        typer.Option(
            "--organisation",
            help="organisation mode: the member responder comes from the StackSet (docs/organisation.md)",
        ),
    ] = False,
) -> None:
    """Simulate a whole incident on this machine (moto): trigger -> contain -> acquire -> examine -> report."""
    from simulation.simulate import ACTIONS, MEMBERS_MODE_ENV, SCENARIOS, TRIGGERS

    with _exit_codes("simulate"):
        problems = {
            name: f"must be one of {', '.join(choices)}, got {value!r}"
            for name, value, choices in (
                ("--action", action, ACTIONS),
                ("--scenario", scenario, SCENARIOS),
                ("--trigger", trigger, TRIGGERS),
            )
            if value not in choices
        }
        if incidents > 1 and trigger != "tag":
            problems["--trigger"] = "a concurrency run (--incidents above 1) is started by tags only"
        if incidents > 1 and organisation:
            problems["--organisation"] = "a concurrency run (--incidents above 1) deploys explicit members only"
        if problems:
            raise InvalidInput(problems)
        _usable_folder(out, "--out")
    if organisation:
        import os

        os.environ[MEMBERS_MODE_ENV] = "organisation"  # read by the simulation's (forked) process
    if incidents > 1:
        _simulate_concurrent(incidents, action, out)
        return
    _line(
        f"irforensics simulation: scenario {scenario}, action {ACTIONS[action]}, trigger {trigger} "
        "(AWS simulated by moto; nothing leaves this machine)",
        style="bold",
    )
    _line(f"  {TRIGGERS[trigger]}")
    started = time.monotonic()
    transcript: list[dict[str, Any]] = []
    result = _run_simulation_live(action, out, scenario, trigger, verbose, transcript)
    _print_simulation_summary(result, time.monotonic() - started)
    if result.lambda_log is not None:
        (result.lambda_log.parent / "progress.jsonl").write_text(
            "".join(json.dumps(entry) + "\n" for entry in transcript)
        )
    if result.status != "SUCCEEDED":
        raise typer.Exit(EXIT_RESPONSE_FAILED)


def _run_simulation_live(
    action: str, out: Path, scenario: str, trigger: str, verbose: bool, transcript: list[dict[str, Any]]
) -> SimulationResult:
    """The simulation in a process of its own, this one only the console.

    moto runs the state machine and every handler in threads of the simulation's process, which
    compete for one interpreter lock; on a busy machine the console's ticks would wait for it for
    seconds. Against AWS the console has its process to itself; here too: the simulation (and the
    follower reading its execution history) runs in a forked child that sends stage lines and status
    snapshots over a pipe, and this process ticks the live line every second from the latest one.
    """
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(
        target=_simulation_child,
        args=(sender, action, out, scenario, trigger, verbose),
        name="irf-simulation",
        daemon=True,
    )
    child.start()
    sender.close()
    try:
        return _display_simulation(receiver, transcript)
    except KeyboardInterrupt:
        child.terminate()
        _fail(EXIT_INTERRUPTED, "simulation interrupted", "run it again; nothing outside this machine was touched")
    finally:
        child.join(timeout=30)
        if child.is_alive():
            child.kill()


def _simulation_child(sender: Connection, action: str, out: Path, scenario: str, trigger: str, verbose: bool) -> None:
    from simulation.simulate import run_simulation

    def send(*message: Any) -> None:
        sender.send(message)

    def log(line: str) -> None:
        if verbose:
            send("log", line)

    # Whatever this process prints is the simulation's, never the console's.
    sys.stdout = sys.stderr = _Forward(log)

    def follow(watch: Watch) -> None:
        follower = progress.Follower(
            watch.sfn, watch.execution_arn, uploads=progress.UploadWatcher(watch.s3, watch.bucket), max_interval=2.0
        )
        sent: list[Any] = [None]

        def send_shown() -> None:
            shown = follower.shown
            if shown is not sent[0]:
                sent[0] = shown
                send("shown", shown)

        def on_line(line: progress.Line) -> None:
            send("line", line)
            # With the line, what runs now: the status line never lags behind the stage lines above it.
            send_shown()

        def on_tick(_tick: progress.Tick) -> None:
            send_shown()

        tracker = follower.follow_live(on_line, on_tick)
        send("shown", tracker.snapshot())
        for note in follower.notes:
            send("note", note)

    try:
        result = run_simulation(
            action,
            out,
            scenario,
            progress=lambda name, detail: send("stage", name, detail),
            trigger=trigger,
            follow=follow,
            on_log=log,
        )
        send("result", result)
    except BaseException as exc:  # the console says what ended the simulation, on one line
        send("error", f"{type(exc).__name__}: {exc}")
    finally:
        sender.close()


class _Forward(io.TextIOBase):
    """A text stream whose complete lines go to a function."""

    def __init__(self, to: Callable[[str], None]) -> None:
        self.to = to
        self.partial = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        *lines, self.partial = (self.partial + text).split("\n")
        for line in lines:
            if line.strip():
                self.to(line)
        return len(text)


def _display_simulation(receiver: Connection, transcript: list[dict[str, Any]]) -> SimulationResult:
    status = _StatusLine("deploying both stacks into three simulated accounts...")
    shown: progress.Tracker | None = None
    next_tick = time.monotonic() + 1.0
    with Live(status, console=console, transient=True) as live:
        while True:
            if receiver.poll(max(0.0, next_tick - time.monotonic())):
                try:
                    message = receiver.recv()
                except EOFError:
                    message = ("error", "the simulation process ended without a result")
                kind = message[0]
                if kind == "stage":
                    live.console.print(_fit(f"  \u2713 {message[1]}: {message[2]}"))
                    status.show(f"{NEXT_STEP.get(message[1], 'finishing')}...")
                elif kind == "line":
                    line: progress.Line = message[1]
                    at = shown.elapsed(datetime.now(UTC)) if shown is not None else line.elapsed
                    transcript.append(
                        {"at": round(at, 3), "elapsed": round(line.elapsed, 3), "kind": line.kind, "text": line.text}
                    )
                    style = {"end": "green", "fail": "red", "start": "", "note": "yellow"}[line.kind]
                    live.console.print(_fit("  " + line.text, style), highlight=False)
                elif kind == "shown":
                    shown = message[1]
                elif kind == "log":
                    live.console.print(Text(_brief_log(message[1]), style="dim"), overflow="fold")
                elif kind == "note":
                    live.console.print(_fit(f"  note: {message[1]}", "yellow"))
                elif kind == "result":
                    result: SimulationResult = message[1]
                    return result
                elif kind == "error":
                    _fail(EXIT_RESPONSE_FAILED, f"the simulation failed: {message[1]}", "run it again with --verbose")
            if time.monotonic() >= next_tick:
                next_tick = time.monotonic() + 1.0
                if shown is not None and shown.status not in progress.TERMINAL:
                    tick = progress.tick_of(shown, datetime.now(UTC))
                    transcript.append(
                        {
                            "at": round(tick.elapsed, 3),
                            "elapsed": round(tick.elapsed, 3),
                            "kind": "tick",
                            "text": tick.text,
                        }
                    )
                    status.show(tick.text)


class _StatusLine:
    """The live line: Live's refresh thread renders whatever it holds now, so setting it never waits on the
    display (a busy terminal, the refresh thread's lock)."""

    def __init__(self, text: str) -> None:
        self.renderable = _status(text)

    def show(self, text: str) -> None:
        self.renderable = _status(text)

    def __rich__(self) -> Spinner:
        return self.renderable


def _status(text: str) -> Spinner:
    # The spinner and a space take two columns; the rest is cut to fit, never wrapped.
    return Spinner("dots", text=_fit(text, width=console.width - 2))


def _fit(text: str, style: str = "", width: int | None = None) -> Text:
    """One console line, cut with an ellipsis at the terminal's width rather than wrapped or overflowing."""
    line = Text(text, style=style, no_wrap=True, overflow="ellipsis")
    line.truncate(max(8, width or console.width), overflow="ellipsis")
    return line


def _line(text: str, style: str = "") -> None:
    """A message line: wrapped (paths folded) at the terminal's width, so it can be read and copied whole."""
    console.print(Text(text, style=style, overflow="fold"), highlight=False)


def _brief_log(line: str) -> str:
    """A Lambda's JSON log line for --verbose: level, service, message and the rest as key=value."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return f"log: {line}"
    if not isinstance(record, dict):
        return f"log: {line}"
    head = f"log {record.pop('level', '?')} {record.pop('service', '')}: {record.pop('message', '')}"
    record.pop("timestamp", None)
    record.pop("location", None)
    return head + "".join(f" {key}={value}" for key, value in record.items())


def _follow(
    follower: progress.Follower, live: Live, status: _StatusLine, transcript: list[dict[str, Any]] | None = None
) -> progress.Tracker:
    """Stage lines above the live status line, until the execution ends; each emission kept in `transcript`."""

    def on_line(line: progress.Line) -> None:
        style = {"end": "green", "fail": "red", "start": "", "note": "yellow"}[line.kind]
        if transcript is not None:
            transcript.append(
                {
                    "at": round(follower.elapsed_now(), 3),
                    "elapsed": round(line.elapsed, 3),
                    "kind": line.kind,
                    "text": line.text,
                }
            )
        live.console.print(_fit("  " + line.text, style), highlight=False)

    def on_tick(tick: progress.Tick) -> None:
        if transcript is not None:
            transcript.append(
                {"at": round(tick.elapsed, 3), "elapsed": round(tick.elapsed, 3), "kind": "tick", "text": tick.text}
            )
        status.show(tick.text)

    tracker = follower.follow_live(on_line, on_tick)
    for note in follower.notes:
        live.console.print(_fit(f"  note: {note}", "yellow"))
    return tracker


def _print_simulation_summary(result: SimulationResult, seconds: float) -> None:
    stages = Table(title="Stages", show_header=True)
    stages.add_column("stage")
    stages.add_column("seconds", justify="right")
    for stage in result.stages:
        stages.add_row(stage.name, f"{stage.seconds:.1f}")
    console.print(stages)
    _line(f"case {result.case_id}: response {result.status}", style="bold")
    if result.trigger:
        _line(f"started by: {result.trigger}" + (f" ({result.finding})" if result.finding else ""))
    contained = result.containment
    if contained:
        what = "Containment" if result.action == "Contain" else "Protection (analyze: the instance keeps serving)"
        summary = Table(title=f"{what} of {result.instance_id}", show_header=False)
        summary.add_column("what", style="bold")
        summary.add_column("state", overflow="fold")
        for what, value in _containment_summary(contained).items():
            summary.add_row(what, value)
        console.print(summary)
    evidence = Table(title="Evidence", show_header=True)
    for column in ("key", "size", "sha256"):
        evidence.add_column(column, overflow="fold")
    shown = [a for a in result.artefacts if _is_evidence(a["key"])]
    for artefact in shown:
        evidence.add_row(
            artefact["key"].split("/", 1)[1], human_size(artefact.get("size")), artefact["sha256"][:16] + "..."
        )
    others = len(result.artefacts) - len(shown)
    console.print(evidence)
    if others:
        _line(f"  and {others} more artefacts (analysis, report, custody): manifest.json lists them all")
    _findings_table(result.findings)
    _line(f"report: {result.report}")
    _line(f"evidence folder: {result.case_dir}")
    if result.lambda_log is not None:
        _line(f"Lambda logs: {result.lambda_log} (on AWS: each function's CloudWatch log group)")
    _line(f"done in {seconds:.0f} s")


def _is_evidence(key: str) -> bool:
    return "/disk/" in key or "/containment/" in key or ("/memory/" in key and not key.endswith("/"))


def _findings_table(findings: list[dict[str, Any]]) -> None:
    table = Table(title="Findings (most severe first)", show_header=True)
    for column in ("severity", "path", "reason"):
        table.add_column(column, overflow="fold")
    for finding in findings[:TABLE_ROWS]:
        table.add_row(str(finding.get("severity", "")), str(finding.get("path", "")), str(finding.get("reason", "")))
    console.print(table)
    if len(findings) > TABLE_ROWS:
        _line(f"  and {len(findings) - TABLE_ROWS} more: the report lists all {len(findings)}")
    elif not findings:
        _line("  no findings")


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
    "workload": "starting the response",
    "response": "downloading the case folder",
}


def _auto_scaling(group: Any) -> str:
    if not group:
        return "detached"
    if not isinstance(group, dict):
        return str(group)
    scale_in = ", protected from scale-in" if group.get("protected_from_scale_in") else ""
    return f"in {group.get('group_name', '?')} ({group.get('lifecycle_state', '?')}{scale_in})"


def _containment_summary(after: dict[str, Any]) -> dict[str, str]:
    state = after.get("state", after)
    summary: dict[str, str] = {
        "interfaces": ", ".join(f"{i['eni_id']} -> {'+'.join(i['groups'])}" for i in state.get("interfaces", []))
        or "none",
        "instance profile": (state.get("profile") or {}).get("profile_arn", "none").rsplit("/", 1)[-1],
        "shutdown behaviour": str(state.get("shutdown_behavior", "?")),
        "auto scaling": _auto_scaling(state.get("auto_scaling")),
    }
    for key in ("termination_protection", "disable_api_termination"):
        if key in state:
            summary["termination protection"] = "on" if state[key] else "off"
    return summary


# ---------------------------------------------------------------------------------------------
# Commands that act on a deployment in AWS.


def _fail(code: int, message: str, todo: str | None = None, command: str = "") -> NoReturn:
    """`irf: <what happened>; <what to do>` on one line of standard error, and the exit code."""
    what = " ".join(str(message).split())
    hint = todo if todo is not None else TO_DO.get(code, "").replace("{command}", command or _command_name())
    line = f"irf: {what}" + (f"; {hint}" if hint and not what.endswith(hint) else "")
    err.print(line, markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _command_name() -> str:
    """The running command's name (`respond`, `status`...), for `see irf <command> --help`."""
    try:
        from typer._click.globals import get_current_context
    except ImportError:  # typer's vendored click moved: the hint stays generic
        return "<command>"
    context = get_current_context(silent=True)
    return str(context.info_name) if context is not None and context.info_name else "<command>"


UNREACHABLE = (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, ConnectionClosedError)


@contextmanager
def _exit_codes(command: str = "") -> Iterator[None]:
    """One line and a documented exit code for every error a responder can act on."""
    try:
        yield
    except (NoCredentialsError, PartialCredentialsError):
        _fail(EXIT_NO_CREDENTIALS, NO_CREDENTIALS, "")
    except ProfileNotFound as exc:
        _fail(EXIT_NO_CREDENTIALS, f"no AWS credentials: {exc}", "list the profiles with `aws configure list-profiles`")
    except NoRegionError:
        _fail(EXIT_BAD_INPUT, "no AWS region", "pass --security-region or set AWS_REGION")
    except (InvalidInput, operator.MissingSetting) as exc:
        _fail(EXIT_BAD_INPUT, str(exc), command=command)
    except operator.CaseNotFound as exc:
        _fail(EXIT_NOT_FOUND, str(exc), "`irf cases` lists the cases; check --prefix and --security-region")
    except (operator.ReportNotFound, operator.ContainmentRecordNotFound) as exc:
        _fail(EXIT_NOT_FOUND, str(exc), f"`irf status {exc.case_id}` shows the case and its custody events")
    except (
        operator.DeploymentNotFound,
        operator.ExecutionNotFound,
        operator.ReportNotFoundInFolder,
        InstanceNotFound,
    ) as exc:
        _fail(EXIT_NOT_FOUND, str(exc), command=command)
    except ResponderUnavailable as exc:
        _fail(EXIT_ACCESS_DENIED, f"access denied: sts:AssumeRole refused: {exc}")
    except operator.EvidenceIntegrityError as exc:
        _fail(EXIT_RESPONSE_FAILED, str(exc), "do not use the file; download it again and compare")
    except operator.ReleaseFailed as exc:
        _fail(EXIT_RESPONSE_FAILED, str(exc), "the release Lambda's log in CloudWatch says more")
    except UNREACHABLE as exc:
        _fail(EXIT_UNREACHABLE, f"cannot reach AWS: {exc}")
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code, message = str(error.get("Code", "")), str(error.get("Message", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ACCESS_DENIED_CODES or (status == 403 and code == "403"):
            # A 403 whose body the protocol's parser could not read (XML for a JSON service) is still a refusal.
            message = message or _refusal_in(exc)
            _fail(EXIT_ACCESS_DENIED, f"access denied: {exc.operation_name} refused: {message}")
        if code in REJECTED_CREDENTIALS_CODES:
            _fail(
                EXIT_NO_CREDENTIALS,
                f"AWS credentials rejected ({code}) by {exc.operation_name}: {message}",
                "refresh them (`aws sso login`, new keys) or pick another --profile",
            )
        _fail(EXIT_RESPONSE_FAILED, f"AWS refused {exc.operation_name} ({code}): {message}", "try again later")
    except BotoCoreError as exc:
        _fail(EXIT_RESPONSE_FAILED, f"AWS call failed: {exc}", "try again; check the network and the region")


def _refusal_in(exc: ClientError) -> str:
    body = str(exc)
    start, end = body.find("<Message>"), body.find("</Message>")
    return body[start + len("<Message>") : end] if 0 <= start < end else body


def _usable_folder(path: Path, option: str) -> Path:
    """A folder that exists or can be made; InvalidInput naming the option otherwise (a file, /proc, ...)."""
    if path.exists() and not path.is_dir():
        raise InvalidInput({option: f"{path} is a file, not a folder"})
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".irf-write-check"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise InvalidInput({option: f"{path} cannot be created or written ({exc.strerror or exc})"}) from None
    return path


@app.command()
@connection_options(evidence=True)
def respond(
    instance: Annotated[str, typer.Argument(metavar="INSTANCE", help="the suspect EC2 instance id (i-...)")],
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
    poll_interval: Annotated[
        float, typer.Option(help="longest pause between execution-history polls with --wait (backs off to it)")
    ] = 5.0,
    *,
    conn: ConnectionOptions,
) -> None:
    """Start the response state machine for a suspect instance (same input as a manual execution).

    With --wait, one line per stage as it starts and ends, and a live line with what runs now (bytes
    imaged, memory captured, examination step). Imaging progress needs the evidence bucket
    (--forensic-account, --forensic-region); the Lambdas' logs are in CloudWatch.
    """
    with _exit_codes("respond"):
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
        session, deployment = conn.connect()
        sfn = session.client("stepfunctions")
        name = operator.execution_name(instance, datetime.now(UTC))
        execution_arn = operator.start_response(sfn, deployment, request, name)
        _line(f"started {request['Action']}{' (dry run)' if dry_run else ''} of {instance}")
        _line(f"execution: {execution_arn}")
        if not wait:
            _line(f"follow it with `irf status {case_id or '<case>'} --follow`; `irf cases` lists the cases")
            return
        outcome = _follow_execution(session, deployment, execution_arn, poll_interval, conn)
    _print_outcome(outcome, instance, dry_run)


def _follow_execution(
    session: boto3.Session,
    deployment: operator.Deployment,
    execution_arn: str,
    poll_interval: float,
    conn: ConnectionOptions,
) -> operator.ResponseOutcome:
    uploads = None
    if deployment.forensic_account and deployment.forensic_region:
        uploads = progress.UploadWatcher(conn.evidence_s3(deployment), deployment.evidence_bucket)
    follower = progress.Follower(
        session.client("stepfunctions"), execution_arn, uploads=uploads, max_interval=max(1.0, poll_interval)
    )
    try:
        status = _StatusLine("waiting for the execution's first events...")
        with Live(status, console=console, transient=True) as live:
            tracker = _follow(follower, live, status)
    except KeyboardInterrupt:
        _fail(
            EXIT_INTERRUPTED,
            "stopped following; the response goes on",
            f"`irf status <case> --follow` ({execution_arn})",
        )
    if uploads is None:
        _line("(imaging progress needs --forensic-account and --forensic-region: the evidence bucket's uploads)")
    return operator.outcome_of(follower.sfn, execution_arn, tracker)


def _print_outcome(outcome: operator.ResponseOutcome, instance: str, dry_run: bool) -> None:
    if not outcome.created:
        _line(f"instance {instance} already has open case {outcome.case_id}; nothing new started")
        return
    opened = f"case {outcome.case_id}" if outcome.case_id else "no case was opened"
    _line(f"{opened}: response {outcome.status}")
    if not outcome.succeeded:
        _fail(
            EXIT_RESPONSE_FAILED,
            f"response {outcome.status}: {outcome.reason} ({outcome.execution_arn})",
            f"see `irf status {outcome.case_id}`" if outcome.case_id else "fix the cause and start it again",
        )
    _line(f"next: irf status {outcome.case_id}" + ("" if dry_run else f"; irf report {outcome.case_id}"))


@app.command()
@connection_options(evidence=True)
def status(
    case: Annotated[str, typer.Argument(metavar="CASE", help="the case id")],
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="follow the case's response live until it ends (as respond --wait)")
    ] = False,
    poll_interval: Annotated[
        float, typer.Option(help="longest pause between execution-history polls with --follow")
    ] = 5.0,
    *,
    conn: ConnectionOptions,
) -> None:
    """A case's record (case table) and its chain-of-custody events (evidence bucket)."""
    with _exit_codes("status"):
        operator.check_case_id(case)
        session, deployment = conn.connect()
        if follow:
            record = operator.get_case(session.client("dynamodb"), deployment, case)
            execution_arn = operator.find_case_execution(session.client("stepfunctions"), deployment, record)
            _line(f"case {case}: execution {execution_arn}")
            outcome = _follow_execution(session, deployment, execution_arn, poll_interval, conn)
        found = operator.case_status(session.client("dynamodb"), conn.evidence_s3(deployment), deployment, case)
    _print_case(case, found, deployment)
    if follow and not outcome.succeeded:
        _fail(EXIT_RESPONSE_FAILED, f"response {outcome.status}: {outcome.reason}", "see the case's detail above")


def _print_case(case: str, found: operator.CaseStatus, deployment: operator.Deployment) -> None:
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
            value = record[key]
            if key == "DryRun":
                text = "yes" if value else "no"
            elif key == "Detail":
                text = operator.readable_detail(str(value))
            else:
                text = str(value)
            summary.add_row(label, text)
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
@connection_options(evidence=False)
def cases(
    limit: Annotated[int, typer.Option(help="how many of the most recent cases")] = 20,
    *,
    conn: ConnectionOptions,
) -> None:
    """The most recent cases, newest first."""
    with _exit_codes("cases"):
        session, deployment = conn.connect()
        found = operator.recent_cases(session.client("dynamodb"), deployment, limit)
    if not found:
        console.print(f"no cases in {deployment.case_table}", markup=False)
        return
    table = Table(title=f"Recent cases ({deployment.case_table})")
    # Account and region are in a derived case id; `irf status` shows every field.
    for column in ("case", "status", "action", "trigger", "instance", "opened"):
        table.add_column(column, overflow="fold", min_width=len(column))
    for case in found:
        table.add_row(
            str(case.get("CaseId", "")),
            str(case.get("Status", "")),
            str(case.get("Action", "")) + (" (dry run)" if case.get("DryRun") else ""),
            str(case.get("Trigger", "")),
            str(case.get("InstanceId", "")),
            _to_the_second(case.get("OpenedAt")),
        )
    console.print(table)


@app.command()
@connection_options(evidence=True)
def report(
    case: Annotated[
        str, typer.Argument(metavar="CASE", help="the case id, or a downloaded case folder (read offline)")
    ],
    out: Annotated[Path | None, typer.Option(help="folder for the report files [default: cases/<case>/report]")] = None,
    open_: Annotated[bool, typer.Option("--open", help="open report.html in the browser")] = False,
    *,
    conn: ConnectionOptions,
) -> None:
    """Download a case's report (HTML, Markdown, JSON), each checked against its recorded sha256.

    Given a case folder (from `irf simulate` or a download of <CaseId>/), nothing is downloaded: its
    report files are checked against the sha256 its manifest.json recorded, offline.
    """
    with _exit_codes("report"):
        folder_given = Path(case)
        if folder_given.is_dir():
            title, files = f"Report in {folder_given}", operator.local_report(folder_given)
        else:
            operator.check_case_id(case)
            session, deployment = conn.connect()
            folder = out if out is not None else Path("cases") / case / "report"
            if folder.exists() and not folder.is_dir():
                raise InvalidInput({"--out": f"{folder} is a file, not a folder"})
            title = f"Report of case {case}"
            try:
                # The folder is made only once there is a report to put in it.
                files = operator.download_report(
                    conn.evidence_s3(deployment),
                    session.client("dynamodb"),
                    deployment,
                    case,
                    folder,
                )
            except OSError as exc:
                raise InvalidInput(
                    {"--out": f"{folder} cannot be created or written ({exc.strerror or exc})"}
                ) from None
    table = Table(title=title)
    for column in ("file", "size", "sha256", "checked"):
        table.add_column(column, overflow="fold")
    for downloaded in files:
        table.add_row(
            str(downloaded.path),
            human_size(downloaded.size),
            downloaded.sha256,
            "matches recorded" if downloaded.verified else "no recorded digest",
        )
    console.print(table)
    for downloaded in files:
        console.print(str(downloaded.path), markup=False, highlight=False, soft_wrap=True)
    if open_:
        html = next((f.path for f in files if f.path.name == "report.html"), None)
        if html is None:
            _fail(EXIT_NOT_FOUND, f"case {case} has no report.html to open", "see `irf status` for why")
        open_report(html.resolve().as_uri())


@app.command()
@connection_options(evidence=False)
def release(
    instance: Annotated[str, typer.Argument(help="the contained EC2 instance id (i-...)")],
    case: Annotated[str, typer.Option("--case", help="the case whose containment record to restore (required)")] = "",
    account: Annotated[str, typer.Option(help="member account id of the instance (required)")] = "",
    region: Annotated[str, typer.Option(help="region of the instance (required)")] = "",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="show what would change; change nothing")] = False,
    *,
    conn: ConnectionOptions,
) -> None:
    """Restore a contained instance exactly to its containment/before.json (groups, profile, protections...).

    The security account's release Lambda does it (it reads the evidence and acts in the member account).
    """
    with _exit_codes():
        if not case:
            raise InvalidInput({"--case": "is required (the case that contained the instance)"})
        session, deployment = conn.connect()
        outcome = operator.release_contained_instance(
            session.client("lambda", config=operator.RELEASE_CLIENT_CONFIG),
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
@connection_options(evidence=False)
def build_modules(
    kernels: Annotated[
        list[str] | None,
        typer.Argument(
            help="kernels as distro:version:release:arch, e.g. amzn:2023:6.1.119-129.201.amzn2023.x86_64:x86_64"
        ),
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", help="follow the builds until they end")] = False,
    poll_interval: Annotated[float, typer.Option(help="seconds between progress polls with --wait")] = 10.0,
    *,
    conn: ConnectionOptions,
) -> None:
    """Build LiME modules and Volatility symbol tables ahead of time (the LimeFactory), for a fleet's kernels."""
    with _exit_codes():
        builds = operator.parse_kernel_specs(kernels or [])
        session, deployment = conn.connect()
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


# Commands defined in modules of their own register themselves on `app` when imported.
from irf import memory_commands, verify_command  # noqa: E402, F401


def main() -> None:
    app()


if __name__ == "__main__":
    main()
