"""Typed stack configuration, read once by __main__.py and passed down to the components.

`parse_config` works on a plain mapping (testable without Pulumi); `read_pulumi_config` reads
the `irforensics:*` keys of the current stack into that mapping.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
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
OBJECT_LOCK_MODES = ("GOVERNANCE", "COMPLIANCE")
KEYS = (
    "role",
    "prefix",
    "securityAccount",
    "forensicAccount",
    "forensicRegion",
    "objectLockMode",
    "retentionDays",
    "glacierAfterDays",
    "logRetentionDays",
    "analysisAzs",
    "analysisVpcCidr",
    "buildVpcCidr",
    "members",
    "guardDutyMinSeverity",
    "guardDutyContainSeverity",
    "guardDutyFindingPrefixes",
    "slackWebhookSecretArn",
    "notificationEmails",
    "pollIntervalSeconds",
    "pollBackoffRate",
    "pollMaxAttempts",
)


class ConfigError(ValueError):
    """A missing or malformed config value; the message names the key and the value."""

    def __init__(self, key: str, value: Any, why: str) -> None:
        self.key = key
        self.value = value
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
        seen.add((account, region))
        members.append(MemberTarget(account=account, region=region, deployment_role_arn=role_arn))
    return tuple(members)


def parse_config(stack: str, raw: Mapping[str, Any], region: str | None) -> StackConfig:
    """Build the typed config of a stack; the role comes from `role` or else the stack name."""
    role = raw.get("role") or (stack if stack in ROLES else None)
    if role not in ROLES:
        raise ConfigError(
            "role",
            raw.get("role"),
            f"stack {stack!r} is neither 'forensic' nor 'security'; set {NAMESPACE}:role to one",
        )
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
        retention_days=_int(raw, "retentionDays", 365, 1, 36500),
        log_retention_days=_int(raw, "logRetentionDays", 90, 1, 3653),
    )
    if common["security_account"] == common["forensic_account"]:
        raise ConfigError(
            "forensicAccount",
            common["forensic_account"],
            "must differ from securityAccount: evidence is kept apart from the automation",
        )
    if role == "forensic":
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
        glacier = _int(raw, "glacierAfterDays", 30, 1, 36500)
        if glacier >= common["retention_days"]:
            raise ConfigError("glacierAfterDays", glacier, "must be less than retentionDays")
        return ForensicConfig(
            **common,
            object_lock_mode=mode,
            glacier_after_days=glacier,
            analysis_azs=azs,
            analysis_vpc_cidr=_cidr(raw, "analysisVpcCidr", "10.77.0.0/16"),
            build_vpc_cidr=_cidr(raw, "buildVpcCidr", "10.78.0.0/16"),
        )
    low = _float(raw, "guardDutyMinSeverity", 7.0, 0.0, 10.0)
    contain = _float(raw, "guardDutyContainSeverity", 8.0, 0.0, 10.0)
    if contain < low:
        raise ConfigError("guardDutyContainSeverity", contain, "must be at least guardDutyMinSeverity")
    return SecurityConfig(
        **common,
        members=_members(raw),
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


def read_pulumi_config() -> StackConfig:
    import pulumi

    cfg = pulumi.Config(NAMESPACE)
    raw: dict[str, Any] = {}
    for key in KEYS:
        try:
            value = cfg.get_object(key)
        except Exception:
            value = cfg.get(key)
        if value is not None:
            raw[key] = value
    return parse_config(pulumi.get_stack(), raw, pulumi.Config("aws").get("region"))
