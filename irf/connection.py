"""The options that say where a deployment is, declared once for every command that reads one.

Typer takes a command's options from its signature, so without this each command would list the
same six parameters and pass them on by hand. `connection_options` adds them to the command's
signature (after its own options, in one order for all commands) and hands the command a
`ConnectionOptions` instead.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import boto3
import typer

from handlers.common.case import REGION
from handlers.common.errors import InvalidInput
from irf import operator

_EVIDENCE_PROFILE_HELP = (
    "AWS profile that may read the evidence bucket, e.g. one assuming the investigator role (else the same credentials)"
)
# parameter: (type, default, option, environment variable, help), in the order `--help` lists them.
_TABLE: dict[str, tuple[Any, Any, str, str, str]] = {
    "prefix": (str, "", "--prefix", "IRF_PREFIX", "name prefix the stacks were deployed with"),
    "forensic_account": (
        str,
        "",
        "--forensic-account",
        "IRF_FORENSIC_ACCOUNT",
        "forensic account id (names the evidence bucket)",
    ),
    "forensic_region": (
        str,
        "",
        "--forensic-region",
        "IRF_FORENSIC_REGION",
        "forensic region (names the evidence bucket)",
    ),
    "profile": (
        str | None,
        None,
        "--profile",
        "AWS_PROFILE",
        "AWS profile of the security account (else the boto3 chain)",
    ),
    "security_region": (
        str | None,
        None,
        "--security-region",
        "IRF_SECURITY_REGION",
        "region of the security account's stack (else AWS_REGION / the profile's region)",
    ),
    "evidence_profile": (str | None, None, "--evidence-profile", "IRF_EVIDENCE_PROFILE", _EVIDENCE_PROFILE_HELP),
}
# (parameter, its Annotated option, its default).
OPTIONS: tuple[tuple[str, Any, Any], ...] = tuple(
    (name, Annotated[kind, typer.Option(flag, envvar=envvar, help=text)], default)
    for name, (kind, default, flag, envvar, text) in _TABLE.items()
)
# What a command that never reads the evidence bucket takes.
SECURITY_ONLY = frozenset({"prefix", "profile", "security_region"})


def check_region(region: str | None, option: str) -> None:
    if region and not REGION.match(region):
        raise InvalidInput({option: f"must be an AWS region like eu-west-1, got {region!r}"})


def session(profile: str | None, region: str | None) -> boto3.Session:
    check_region(region, "--security-region")
    made = boto3.Session(profile_name=profile or None, region_name=region or None)
    # AWS_REGION or the profile's region, when --security-region is not given.
    check_region(made.region_name, "--security-region (or AWS_REGION / the profile's region)")
    return made


@dataclass(frozen=True)
class ConnectionOptions:
    """Where the deployment is, as the command line gave it."""

    prefix: str = ""
    forensic_account: str = ""
    forensic_region: str = ""
    profile: str | None = None
    security_region: str | None = None
    evidence_profile: str | None = None

    def connect(self) -> tuple[boto3.Session, operator.Deployment]:
        """The security-account session every command starts from, and the deployment it finds there."""
        security = session(self.profile, self.security_region)
        deployment = operator.locate_deployment(
            security, self.prefix, forensic_account=self.forensic_account, forensic_region=self.forensic_region
        )
        return security, deployment

    def evidence_session(self, deployment: operator.Deployment) -> boto3.Session:
        """A session in the forensic account's region: --evidence-profile when given, else --profile."""
        return session(self.evidence_profile or self.profile, deployment.forensic_region)

    def evidence_s3(self, deployment: operator.Deployment) -> Any:
        return self.evidence_session(deployment).client("s3")


def connection_options(*, evidence: bool) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Give the command the connection options (with `evidence`, those of the evidence bucket too) as `conn`."""
    options = [o for o in OPTIONS if evidence or o[0] in SECURITY_ONLY]

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        own = inspect.signature(command, eval_str=True)
        parameters = [p for p in own.parameters.values() if p.name != "conn"]
        parameters += [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=option, default=default)
            for name, option, default in options
        ]

        @functools.wraps(command)
        def run(**kwargs: Any) -> None:
            conn = ConnectionOptions(**{name: kwargs.pop(name) for name, _, _ in options})
            command(conn=conn, **kwargs)

        # Typer reads the signature (and the annotations, for anything not Annotated) of what it is given.
        run.__signature__ = own.replace(parameters=parameters)  # type: ignore[attr-defined]
        run.__annotations__ = {p.name: p.annotation for p in parameters} | {"return": own.return_annotation}
        return run

    return decorate
