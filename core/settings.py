"""The environment of every security-account Lambda, read once into one typed object.

Written only by `Settings.to_env` (SecurityAccount gives every function its environment from it)
and read only by `Settings.from_env`: the variable names live here and nowhere else. Values that
exist only once a resource does (the topic's and the state machine's ARNs) are passed to
`to_env` by the component as deploy-time values under their field names.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from handlers.common import naming
from handlers.common.tags import ACTIONS

# The analysis instance: memory for Volatility on a large image, not a burstable type.
DEFAULT_ANALYSIS_INSTANCE_TYPE = "m7i.xlarge"
# Seconds a memory capture may run; the pre-signed URLs it writes with must outlive it.
DEFAULT_CAPTURE_TIMEOUT_SECONDS = 2700
REQUIRED = ("IRF_PREFIX", "IRF_SECURITY_ACCOUNT", "IRF_FORENSIC_ACCOUNT", "IRF_FORENSIC_REGION")
# Set by the Lambda runtime itself (reserved: a function's configuration cannot set them).
RUNTIME_VARIABLES = ("AWS_REGION", "AWS_DEFAULT_REGION")
# Field -> variable. The order is the order `to_env` writes them in.
VARIABLES = {
    "prefix": "IRF_PREFIX",
    "security_account": "IRF_SECURITY_ACCOUNT",
    "forensic_account": "IRF_FORENSIC_ACCOUNT",
    "forensic_region": "IRF_FORENSIC_REGION",
    "retention_days": "IRF_RETENTION_DAYS",
    "topic_arn": "IRF_TOPIC_ARN",
    "slack_secret_arn": "IRF_SLACK_SECRET_ARN",
    "default_wait_seconds": "IRF_DEFAULT_WAIT_SECONDS",
    "lime_factory_arn": "IRF_LIME_FACTORY_STATE_MACHINE_ARN",
    "response_state_machine_arn": "IRF_RESPONSE_STATE_MACHINE_ARN",
    "guardduty_contain_severity": "IRF_GUARDDUTY_CONTAIN_SEVERITY",
    "securityhub_actions": "IRF_SECURITYHUB_ACTIONS",
    "analysis_instance_type": "IRF_ANALYSIS_INSTANCE_TYPE",
    "capture_timeout_seconds": "IRF_MEMORY_CAPTURE_TIMEOUT_SECONDS",
}


@dataclass(frozen=True)
class Settings:
    prefix: str
    security_account: str
    forensic_account: str
    forensic_region: str
    retention_days: int = 365
    topic_arn: str = ""
    slack_secret_arn: str = ""
    # Seconds the response waits before each first status poll when the request names none.
    default_wait_seconds: int = 30
    lime_factory_arn: str = ""
    response_state_machine_arn: str = ""
    guardduty_contain_severity: float = 8.0
    # Security Hub custom action ARN -> Action.
    securityhub_actions: Mapping[str, str] = field(default_factory=dict)
    analysis_instance_type: str = DEFAULT_ANALYSIS_INSTANCE_TYPE
    capture_timeout_seconds: int = DEFAULT_CAPTURE_TIMEOUT_SECONDS
    # The function's own region (the Lambda runtime's AWS_REGION); not written by to_env.
    lambda_region: str = ""

    @property
    def region(self) -> str:
        """Where the security account's Lambdas, modules bucket and LimeFactory live."""
        return self.lambda_region or self.forensic_region

    @property
    def evidence_bucket(self) -> str:
        return naming.evidence_bucket(self.prefix, self.forensic_account, self.forensic_region)

    @property
    def modules_bucket(self) -> str:
        return naming.modules_bucket(self.prefix, self.security_account, self.region)

    @property
    def case_table(self) -> str:
        return naming.case_table(self.prefix)

    def member_role_arn(self, account: str, region: str) -> str:
        return naming.member_responder_role_arn(self.prefix, account, region)

    @property
    def forensic_role_arn(self) -> str:
        return naming.forensic_automation_role_arn(self.prefix, self.forensic_account, self.forensic_region)

    def to_env(self, **deploy_time: Any) -> dict[str, Any]:
        """The function's environment: every variable `from_env` reads (an ARN a function has no use
        for is empty). `deploy_time` overrides fields with values (Pulumi Outputs) that exist only
        once their resource does, e.g. `topic_arn=topic.arn`."""
        unknown = sorted(set(deploy_time) - set(VARIABLES))
        if unknown:
            raise ValueError(f"Settings has no field {', '.join(unknown)}")
        env: dict[str, Any] = {}
        for name, variable in VARIABLES.items():
            value = deploy_time[name] if name in deploy_time else getattr(self, name)
            if name == "securityhub_actions":
                value = json.dumps(dict(value), sort_keys=True)
            elif name == "guardduty_contain_severity":
                value = repr(float(value))
            elif not isinstance(value, str) and isinstance(value, (int, float)):
                value = str(value)
            env[variable] = value
        return env

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        missing = [k for k in REQUIRED if not env.get(k)]
        if missing:
            raise RuntimeError(f"Lambda environment is missing {', '.join(missing)} (set by SecurityAccount)")
        actions = json.loads(env.get(VARIABLES["securityhub_actions"]) or "{}")
        if not isinstance(actions, dict) or not all(v in ACTIONS for v in actions.values()):
            raise RuntimeError(f"IRF_SECURITYHUB_ACTIONS must map action ARNs to one of {ACTIONS}, got {actions!r}")
        defaults = {f.name: f.default for f in fields(cls)}

        def text(name: str) -> str:
            return env.get(VARIABLES[name]) or str(defaults[name])

        return cls(
            prefix=env["IRF_PREFIX"],
            security_account=env["IRF_SECURITY_ACCOUNT"],
            forensic_account=env["IRF_FORENSIC_ACCOUNT"],
            forensic_region=env["IRF_FORENSIC_REGION"],
            retention_days=int(text("retention_days")),
            topic_arn=text("topic_arn"),
            slack_secret_arn=text("slack_secret_arn"),
            default_wait_seconds=int(text("default_wait_seconds")),
            lime_factory_arn=text("lime_factory_arn"),
            response_state_machine_arn=text("response_state_machine_arn"),
            guardduty_contain_severity=float(text("guardduty_contain_severity")),
            securityhub_actions=actions,
            analysis_instance_type=text("analysis_instance_type"),
            capture_timeout_seconds=int(text("capture_timeout_seconds")),
            lambda_region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "",
        )

    def require_response_state_machine(self) -> str:
        if not self.response_state_machine_arn:
            raise RuntimeError("Lambda environment is missing IRF_RESPONSE_STATE_MACHINE_ARN (set by SecurityAccount)")
        return self.response_state_machine_arn
