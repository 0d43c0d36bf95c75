"""Typed stack configuration, read once by __main__.py and passed down to the components.

`parse_config` works on a plain mapping (testable without Pulumi). Two readers feed it the same
way: `read_pulumi_config` takes what the Pulumi engine (or the mocks) passes to the running
program, `read_stack_files` reads Pulumi.yaml and Pulumi.<stack>.yaml as `pulumi up` merges them
(for `irf preview`). Both refuse unknown keys and an `aws:allowedAccountIds` that is not the
stack's own account. docs/config.md describes every key (a test keeps the two in step).
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core import ids
from handlers.common.naming import check_prefix

NAMESPACE = "irforensics"
ROLES = ("forensic", "security")
# The id rules of core.ids: [0-9] and \Z, not \d and $ (which let other scripts' digits and a
# trailing newline through).
_ACCOUNT = ids.ACCOUNT_ID
_REGION = ids.REGION
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
# Organizations' id formats (API reference): an OU, or the root (every account of the organisation).
_OU_ID = re.compile(r"\Aou-[0-9a-z]{4,32}-[a-z0-9]{8,32}\Z")
_ROOT_ID = re.compile(r"\Ar-[0-9a-z]{4,32}\Z")
OBJECT_LOCK_MODES = ("GOVERNANCE", "COMPLIANCE")
# Set once, in Pulumi.yaml's project config, and read by both stacks: the names each stack derives
# for the other's resources (buckets, roles, key aliases) only match when these agree.
SHARED_KEYS = ("prefix", "securityAccount", "forensicAccount", "forensicRegion")
COMMON_KEYS = ("role", *SHARED_KEYS, "logRetentionDays")
FORENSIC_KEYS = (
    "objectLockMode",
    "evidenceRetentionDays",
    "glacierAfterDays",
    "analysisAzs",
    "analysisVpcCidr",
    "buildVpcCidr",
)
SECURITY_KEYS = (
    "snapshotLockDays",
    "members",
    "memberOrganizationalUnits",
    "memberRegions",
    "guardDutyMinSeverity",
    "guardDutyContainSeverity",
    "guardDutyFindingPrefixes",
    "slackWebhookSecretArn",
    "notificationEmails",
    "pollIntervalSeconds",
    "pollBackoffRate",
    "pollMaxAttempts",
)
KEYS = (*COMMON_KEYS, *FORENSIC_KEYS, *SECURITY_KEYS)
STACK_KEYS = {"forensic": (*COMMON_KEYS, *FORENSIC_KEYS), "security": (*COMMON_KEYS, *SECURITY_KEYS)}
# `retentionDays` meant the Object Lock retention on the forensic stack and the EBS Snapshot Lock on
# the security stack; each meaning has its own key now, and the old one is refused (not guessed).
RETIRED_KEYS = {"retentionDays": {"forensic": "evidenceRetentionDays", "security": "snapshotLockDays"}}


class ConfigError(ValueError):
    """A missing or malformed config value; the message names the key and the value."""

    def __init__(self, key: str, value: Any, why: str) -> None:
        self.key = key
        self.value = value
        if key.startswith("file:"):
            # A project or stack file itself (missing, not YAML): there is no value to show.
            super().__init__(f"{key.removeprefix('file:')}: {why}")
            return
        shown = "<missing>" if value is None else repr(value)
        full = key if ":" in key else f"{NAMESPACE}:{key}"
        super().__init__(f"config {full} = {shown}: {why}")


@dataclass(frozen=True)
class MemberTarget:
    """One member account and region that gets a MemberResponder."""

    account: str
    region: str
    deployment_role_arn: str


@dataclass(frozen=True)
class CommonConfig:
    role: str
    prefix: str
    region: str
    security_account: str
    forensic_account: str
    forensic_region: str
    retention_days: int
    log_retention_days: int


@dataclass(frozen=True)
class ForensicConfig(CommonConfig):
    object_lock_mode: str = "GOVERNANCE"
    glacier_after_days: int = 30
    analysis_azs: tuple[str, ...] = ()
    analysis_vpc_cidr: str = "10.77.0.0/16"
    build_vpc_cidr: str = "10.78.0.0/16"


@dataclass(frozen=True)
class SecurityConfig(CommonConfig):
    members: tuple[MemberTarget, ...] = ()
    # Organisation mode (instead of `members`): a StackSet deploys the responders to every account
    # of these OUs (or the root) in these regions, accounts that join later included.
    member_organizational_units: tuple[str, ...] = ()
    member_regions: tuple[str, ...] = ()
    guardduty_min_severity: float = 7.0
    guardduty_contain_severity: float = 8.0
    guardduty_finding_prefixes: tuple[str, ...] = (
        "Backdoor:EC2",
        "CryptoCurrency:EC2",
        "Trojan:EC2",
        "UnauthorizedAccess:EC2",
    )
    slack_webhook_secret_arn: str = ""
    notification_emails: tuple[str, ...] = field(default_factory=tuple)
    # Status polls in the state machines (snapshot and copy progress): bounded exponential backoff.
    poll_interval_seconds: int = 15
    poll_backoff_rate: float = 1.5
    poll_max_attempts: int = 12

    @property
    def organization_mode(self) -> bool:
        return bool(self.member_organizational_units)


StackConfig = ForensicConfig | SecurityConfig


def _account(raw: Mapping[str, Any], key: str) -> str:
    value = raw.get(key)
    if value is None:
        raise ConfigError(key, value, "is required (a 12-digit AWS account id)")
    value = str(value)
    if not _ACCOUNT.match(value):
        raise ConfigError(key, value, f"must be a 12-digit AWS account id (got {len(value)} characters)")
    return value


def _region(value: Any, key: str) -> str:
    if value is None:
        raise ConfigError(key, value, "is required (an AWS region like eu-west-1)")
    if not isinstance(value, str) or not _REGION.match(value):
        raise ConfigError(key, value, "must be an AWS region like eu-west-1")
    return value


def _int(raw: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = raw.get(key, default)
    try:
        number = int(value)
        if isinstance(value, bool) or str(number) != str(value).strip():
            raise ValueError
    except (TypeError, ValueError):
        raise ConfigError(key, value, "must be a whole number") from None
    if not low <= number <= high:
        raise ConfigError(key, value, f"must be between {low} and {high}")
    return number


def _float(raw: Mapping[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = raw.get(key, default)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(key, value, "must be a number") from None
    if not low <= number <= high:
        raise ConfigError(key, value, f"must be between {low} and {high}")
    return number


def _str_list(raw: Mapping[str, Any], key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    value = raw.get(key)
    if value is None:
        return default
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(key, value, "must be a list of non-empty strings")
    return tuple(value)


def _cidr(raw: Mapping[str, Any], key: str, default: str) -> str:
    value = raw.get(key, default)
    try:
        network = ipaddress.IPv4Network(str(value), strict=True)
    except ValueError:
        raise ConfigError(key, value, "must be an IPv4 network like 10.77.0.0/16") from None
    if not 16 <= network.prefixlen <= 24:
        raise ConfigError(key, value, "must be a /16 to /24 network (subnets are carved from it)")
    return str(network)


def _members(raw: Mapping[str, Any]) -> tuple[MemberTarget, ...]:
    value = raw.get("members", [])
    if not isinstance(value, list):
        raise ConfigError("members", value, "must be a list of {account, region, deploymentRoleArn}")
    members: list[MemberTarget] = []
    seen: set[tuple[str, str]] = set()
    for index, item in enumerate(value):
        key = f"members[{index}]"
        if not isinstance(item, Mapping):
            raise ConfigError(key, item, "must be an object with account, region, deploymentRoleArn")
        account = _account(item, "account") if _ACCOUNT.match(str(item.get("account", ""))) else None
        if account is None:
            raise ConfigError(f"{key}.account", item.get("account"), "must be a 12-digit AWS account id")
        region = _region(item.get("region"), f"{key}.region")
        role_arn = item.get("deploymentRoleArn")
        if not isinstance(role_arn, str) or not _ROLE_ARN.match(role_arn) or f"::{account}:" not in role_arn:
            raise ConfigError(
                f"{key}.deploymentRoleArn",
                role_arn,
                f"must be the ARN of an IAM role in account {account} that Pulumi assumes to deploy",
            )
        if (account, region) in seen:
            raise ConfigError(key, item, f"duplicates member {account} in {region}")
        # All regions of an account are deployed through one provider, so through one role.
        other_role = next((m.deployment_role_arn for m in members if m.account == account), role_arn)
        if other_role != role_arn:
            raise ConfigError(
                f"{key}.deploymentRoleArn",
                role_arn,
                f"differs from {other_role} given for account {account} in another region: one role per account",
            )
        seen.add((account, region))
        members.append(MemberTarget(account=account, region=region, deployment_role_arn=role_arn))
    return tuple(members)


def _organisation(raw: Mapping[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Organisation mode's OUs and regions; exactly one of the two modes may be configured."""
    units, regions = raw.get("memberOrganizationalUnits"), raw.get("memberRegions")
    if units is None and regions is None:
        return (), ()
    if raw.get("members"):
        raise ConfigError(
            "memberOrganizationalUnits" if units is not None else "memberRegions",
            units if units is not None else regions,
            "cannot be combined with irforensics:members: configure members or the organisation's OUs and regions",
        )
    if units is None:
        raise ConfigError("memberOrganizationalUnits", None, "is required with memberRegions (ou-... or r-... ids)")
    if regions is None:
        raise ConfigError("memberRegions", None, "is required with memberOrganizationalUnits (regions like eu-west-1)")
    if not isinstance(units, list) or not units:
        raise ConfigError(
            "memberOrganizationalUnits", units, "must be a non-empty list of OU ids (ou-...) or the root id (r-...)"
        )
    for unit in units:
        if not isinstance(unit, str) or not (_OU_ID.match(unit) or _ROOT_ID.match(unit)):
            raise ConfigError(
                "memberOrganizationalUnits", units, f"{unit!r} is not an OU id (ou-xxxx-xxxxxxxx) or a root id (r-xxxx)"
            )
    if len(set(units)) != len(units):
        raise ConfigError("memberOrganizationalUnits", units, "lists an OU twice")
    if not isinstance(regions, list) or not regions:
        raise ConfigError("memberRegions", regions, "must be a non-empty list of regions like eu-west-1")
    for index, region in enumerate(regions):
        _region(region, f"memberRegions[{index}]")
    if len(set(regions)) != len(regions):
        raise ConfigError("memberRegions", regions, "lists a region twice")
    return tuple(units), tuple(regions)


def _check_keys(role: str, raw: Mapping[str, Any]) -> None:
    """Refuse what this stack would silently ignore: typos, retired keys, the other stack's keys."""
    known = STACK_KEYS[role]
    for key, value in raw.items():
        if key in known:
            continue
        if key in RETIRED_KEYS:
            new = RETIRED_KEYS[key][role]
            why = f"is no longer read: on the {role} stack use {NAMESPACE}:{new} (docs/config.md)"
            raise ConfigError(key, value, why)
        other = next(name for name in ROLES if name != role)
        if key in STACK_KEYS[other]:
            raise ConfigError(key, value, f"is read only by the {other} stack; remove it from this {role} stack")
        # Compare case-insensitively and include the retired names, so `retentionDay` leads to the key
        # that replaced `retentionDays` rather than to whichever name happens to be closest.
        candidates = {name.lower(): name for name in known}
        candidates.update({old.lower(): new[role] for old, new in RETIRED_KEYS.items()})
        close = difflib.get_close_matches(key.lower(), list(candidates), n=1, cutoff=0.6)
        hint = f"; did you mean {NAMESPACE}:{candidates[close[0]]}?" if close else " (docs/config.md lists every key)"
        raise ConfigError(key, value, f"is not a key irforensics knows{hint}")


def parse_config(stack: str, raw: Mapping[str, Any], region: str | None) -> StackConfig:
    """Build the typed config of a stack; the role comes from `role` or else the stack name."""
    role = raw.get("role") or (stack if stack in ROLES else None)
    if role not in ROLES:
        raise ConfigError(
            "role",
            raw.get("role"),
            f"stack {stack!r} is neither 'forensic' nor 'security'; set {NAMESPACE}:role to one",
        )
    _check_keys(role, raw)
    prefix = raw.get("prefix")
    if not isinstance(prefix, str):
        raise ConfigError("prefix", prefix, "is required (2-20 lowercase letters, digits, '-')")
    try:
        check_prefix(prefix)
    except ValueError as exc:
        raise ConfigError("prefix", prefix, str(exc)) from None
    home = _region(region, "aws:region")
    common: dict[str, Any] = dict(
        role=role,
        prefix=prefix,
        region=home,
        security_account=_account(raw, "securityAccount"),
        forensic_account=_account(raw, "forensicAccount"),
        forensic_region=_region(raw.get("forensicRegion", home), "forensicRegion"),
        log_retention_days=_int(raw, "logRetentionDays", 90, 1, 3653),
    )
    if common["security_account"] == common["forensic_account"]:
        raise ConfigError(
            "forensicAccount",
            common["forensic_account"],
            "must differ from securityAccount: evidence is kept apart from the automation",
        )
    if role == "forensic":
        return _forensic_config(raw, common, home)
    return _security_config(raw, common)


def _forensic_config(raw: Mapping[str, Any], common: dict[str, Any], home: str) -> ForensicConfig:
    mode = raw.get("objectLockMode", "GOVERNANCE")
    if mode not in OBJECT_LOCK_MODES:
        raise ConfigError("objectLockMode", mode, "must be GOVERNANCE or COMPLIANCE")
    azs = _str_list(raw, "analysisAzs", (f"{home}a", f"{home}b"))
    if len(azs) < 2 or len(set(azs)) != len(azs):
        raise ConfigError("analysisAzs", list(azs), "must list two or more distinct availability zones")
    for az in azs:
        if not az.startswith(home):
            raise ConfigError("analysisAzs", list(azs), f"zone {az!r} is not in region {home}")
    if common["forensic_region"] != home:
        raise ConfigError(
            "forensicRegion",
            common["forensic_region"],
            f"must equal aws:region ({home}) on the forensic stack: bucket names carry the region",
        )
    retention = _int(raw, "evidenceRetentionDays", 365, 1, 36500)
    glacier = _int(raw, "glacierAfterDays", 30, 1, 36500)
    if glacier >= retention:
        raise ConfigError("glacierAfterDays", glacier, "must be less than evidenceRetentionDays")
    return ForensicConfig(
        **common,
        retention_days=retention,
        object_lock_mode=mode,
        glacier_after_days=glacier,
        analysis_azs=azs,
        analysis_vpc_cidr=_cidr(raw, "analysisVpcCidr", "10.77.0.0/16"),
        build_vpc_cidr=_cidr(raw, "buildVpcCidr", "10.78.0.0/16"),
    )


def _security_config(raw: Mapping[str, Any], common: dict[str, Any]) -> SecurityConfig:
    low = _float(raw, "guardDutyMinSeverity", 7.0, 0.0, 10.0)
    contain = _float(raw, "guardDutyContainSeverity", 8.0, 0.0, 10.0)
    if contain < low:
        raise ConfigError("guardDutyContainSeverity", contain, "must be at least guardDutyMinSeverity")
    units, regions = _organisation(raw)
    return SecurityConfig(
        **common,
        # EBS Snapshot Lock allows at most 36500 days (handlers/acquisition/snapshots.py MAX_LOCK_DAYS).
        retention_days=_int(raw, "snapshotLockDays", 365, 1, 36500),
        members=_members(raw),
        member_organizational_units=units,
        member_regions=regions,
        guardduty_min_severity=low,
        guardduty_contain_severity=contain,
        guardduty_finding_prefixes=_str_list(
            raw, "guardDutyFindingPrefixes", SecurityConfig.guardduty_finding_prefixes
        ),
        slack_webhook_secret_arn=str(raw.get("slackWebhookSecretArn", "")),
        notification_emails=_str_list(raw, "notificationEmails", ()),
        poll_interval_seconds=_int(raw, "pollIntervalSeconds", 15, 1, 3600),
        poll_backoff_rate=_float(raw, "pollBackoffRate", 1.5, 1.0, 4.0),
        poll_max_attempts=_int(raw, "pollMaxAttempts", 12, 1, 50),
    )


def own_account(cfg: StackConfig) -> str:
    """The account a stack deploys into (member responders go through their own providers)."""
    return cfg.forensic_account if isinstance(cfg, ForensicConfig) else cfg.security_account


def check_allowed_account_ids(cfg: StackConfig, allowed: Any) -> None:
    """The stack's AWS provider must refuse credentials of any account but the stack's own.

    `aws:allowedAccountIds` is what the default provider checks the caller against on every
    call; it has to be exactly the configured account, or `pulumi up` with the wrong credentials
    would create the stack in whatever account they belong to.
    """
    account = own_account(cfg)
    owner = "forensicAccount" if isinstance(cfg, ForensicConfig) else "securityAccount"
    want = f'["{account}"] ({NAMESPACE}:{owner})'
    if allowed is None:
        raise ConfigError("aws:allowedAccountIds", None, f"is required: {want}, so Pulumi refuses other accounts")
    ids = allowed if isinstance(allowed, list) else [allowed]
    if [str(item) for item in ids] != [account]:
        raise ConfigError("aws:allowedAccountIds", allowed, f"must be exactly {want}, the stack's own account")


def load_config(stack: str, raw: Mapping[str, Any], aws: Mapping[str, Any]) -> StackConfig:
    """The typed config of a stack from its `irforensics:*` and `aws:*` values (keys without namespace)."""
    cfg = parse_config(stack, raw, aws.get("region"))
    check_allowed_account_ids(cfg, aws.get("allowedAccountIds"))
    return cfg


def _engine_value(namespace: str, key: str) -> Any:
    import pulumi

    # Pulumi hands every value over as a string, objects and lists as JSON. Scalars stay strings
    # (as the stack-file reader gives them): "1234" is a prefix, not a number.
    value = pulumi.Config(namespace).get(key)
    if value is not None and value.lstrip()[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _engine_keys(namespace: str) -> list[str]:
    from pulumi.runtime import config as runtime_config

    names = set(runtime_config.CONFIG.get()) | set(runtime_config.get_config_env())
    keys: set[str] = set()
    for name in names:
        space, _, key = name.partition(":")
        if space == namespace and key:
            # The older wire form is "<namespace>:config:<key>".
            keys.add(key.removeprefix("config:"))
    return sorted(keys)


def read_pulumi_config() -> StackConfig:
    """The running stack's typed config, from what the Pulumi engine (or the mocks) passes in."""
    import pulumi

    stack = pulumi.get_stack()
    raw = {key: value for key in _engine_keys(NAMESPACE) if (value := _engine_value(NAMESPACE, key)) is not None}
    aws = {key: _engine_value("aws", key) for key in ("region", "allowedAccountIds")}
    cfg = load_config(stack, raw, aws)
    # Pulumi merges Pulumi.yaml's values under the stack's before the program runs, so whether a
    # shared value was overridden per stack is only visible in the files themselves.
    check_shared_values(PROJECT_DIR, stack)
    return cfg


# Reading the project's YAML files the way `pulumi up` does (for `irf preview`, and for the check
# that shared values are set in one place). Only what this project uses of Pulumi's rules.
PROJECT_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class StackFiles:
    """One stack's configuration as `pulumi up` would see it, read from the project's files."""

    stack: str
    stack_file: Path
    irforensics: dict[str, Any]  # the merged irforensics:* values, keys without namespace
    aws: dict[str, Any]  # the merged aws:* values

    def load(self) -> StackConfig:
        return load_config(self.stack, self.irforensics, self.aws)


def _yaml(path: Path) -> dict[str, Any]:
    import yaml

    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"file:{path.name}", None, f"is not valid YAML{where}") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ConfigError(f"file:{path.name}", None, "must be a YAML mapping")
    return document


def _pulumi_value(value: Any) -> Any:
    """A stack-file value as the program receives it: scalars become strings, like Pulumi's."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict) and set(value) == {"secure"}:
        # An encrypted value: only the engine can decrypt it; its shape is all a preview needs.
        return "[secret]"
    if isinstance(value, int | float):
        return str(value)
    return value


def _namespaced(project: str, key: str) -> tuple[str, str]:
    space, sep, name = str(key).partition(":")
    return (space, name) if sep else (project, space)


def _declared_type_ok(declared: Mapping[str, Any], value: Any) -> bool:
    kind = declared.get("type")
    if kind is None:
        return True
    if kind == "string":
        return isinstance(value, str)
    if kind == "integer":
        return isinstance(value, int) or (isinstance(value, str) and value.strip().lstrip("-").isdigit())
    if kind == "boolean":
        return value in ("true", "false", True, False)
    if kind == "array":
        return isinstance(value, list)
    return True


def read_project(project_dir: Path) -> tuple[str, dict[str, Any], Path]:
    """Pulumi.yaml: the project name, its `config:` declarations and the stack files' folder."""
    path = project_dir / "Pulumi.yaml"
    if not path.is_file():
        raise ConfigError("file:Pulumi.yaml", None, f"not found in {project_dir}")
    project = _yaml(path)
    declared = project.get("config") or {}
    if not isinstance(declared, dict):
        raise ConfigError("file:Pulumi.yaml", None, "its config: must be a mapping")
    config_dir = project_dir / str(project.get("stackConfigDir") or ".")
    return str(project.get("name", NAMESPACE)), declared, config_dir


def read_stack_files(stack: str, project_dir: Path = PROJECT_DIR) -> StackFiles:
    """Merge Pulumi.yaml's project config under Pulumi.<stack>.yaml, as the engine does."""
    name, declared, config_dir = read_project(project_dir)
    stack_file = config_dir / f"Pulumi.{stack}.yaml"
    if not stack_file.is_file():
        raise ConfigError(f"file:{stack_file.name}", None, f"not found in {config_dir}: no stack {stack!r}")
    values: dict[tuple[str, str], Any] = {}
    for key, value in (_yaml(stack_file).get("config") or {}).items():
        values[_namespaced(name, key)] = _pulumi_value(value)
    for key, declaration in declared.items():
        full = _namespaced(name, key)
        declaration = declaration if isinstance(declaration, dict) else {"value": declaration}
        if full not in values:
            if "value" in declaration or "default" in declaration:
                values[full] = _pulumi_value(declaration.get("value", declaration.get("default")))
            elif full[0] == name:
                why = f"is required by Pulumi.yaml and stack {stack!r} does not set it"
                raise ConfigError(f"{full[0]}:{full[1]}", None, why)
        if full in values and not _declared_type_ok(declaration, values[full]):
            kind = declaration.get("type")
            raise ConfigError(f"{full[0]}:{full[1]}", values[full], f"must be of type {kind} (declared in Pulumi.yaml)")
    return StackFiles(
        stack=stack,
        stack_file=stack_file,
        irforensics={key: value for (space, key), value in values.items() if space == NAMESPACE},
        aws={key: value for (space, key), value in values.items() if space == "aws"},
    )


def check_shared_values(project_dir: Path, stack: str) -> None:
    """A stack file may repeat a shared value Pulumi.yaml sets, but not change it."""
    try:
        name, declared, config_dir = read_project(project_dir)
    except ConfigError:
        return  # no project file beside the program (an embedded or copied program): nothing to compare
    stack_file = config_dir / f"Pulumi.{stack}.yaml"
    if not stack_file.is_file():
        return
    project_values = {}
    for key, declaration in declared.items():
        space, short = _namespaced(name, key)
        if space == NAMESPACE and short in SHARED_KEYS and isinstance(declaration, dict) and "value" in declaration:
            project_values[short] = _pulumi_value(declaration["value"])
    for key, value in (_yaml(stack_file).get("config") or {}).items():
        space, short = _namespaced(name, key)
        if space == NAMESPACE and short in project_values and _pulumi_value(value) != project_values[short]:
            raise ConfigError(
                short,
                _pulumi_value(value),
                f"in {stack_file.name} differs from Pulumi.yaml ({project_values[short]!r}); both stacks must "
                "agree on it: set it once, in Pulumi.yaml",
            )


def stack_names(project_dir: Path = PROJECT_DIR) -> list[str]:
    """Every stack with a settings file in the project (Pulumi.<stack>.yaml)."""
    _, _, config_dir = read_project(project_dir)
    return sorted(path.name[len("Pulumi.") : -len(".yaml")] for path in config_dir.glob("Pulumi.*.yaml"))
