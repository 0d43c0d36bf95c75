"""Environment of a security-account Lambda, read into one typed object."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from handlers.common import naming


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

    @property
    def evidence_bucket(self) -> str:
        return naming.evidence_bucket(self.prefix, self.forensic_account, self.forensic_region)

    @property
    def case_table(self) -> str:
        return naming.case_table(self.prefix)

    def member_role_arn(self, account: str, region: str) -> str:
        return naming.member_responder_role_arn(self.prefix, account, region)

    @property
    def forensic_role_arn(self) -> str:
        return naming.forensic_automation_role_arn(self.prefix, self.forensic_account)

    def to_env(self) -> dict[str, str]:
        return {
            "IRF_PREFIX": self.prefix,
            "IRF_SECURITY_ACCOUNT": self.security_account,
            "IRF_FORENSIC_ACCOUNT": self.forensic_account,
            "IRF_FORENSIC_REGION": self.forensic_region,
            "IRF_RETENTION_DAYS": str(self.retention_days),
            "IRF_TOPIC_ARN": self.topic_arn,
            "IRF_SLACK_SECRET_ARN": self.slack_secret_arn,
            "IRF_DEFAULT_WAIT_SECONDS": str(self.default_wait_seconds),
        }

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        missing = [
            k
            for k in ("IRF_PREFIX", "IRF_SECURITY_ACCOUNT", "IRF_FORENSIC_ACCOUNT", "IRF_FORENSIC_REGION")
            if not env.get(k)
        ]
        if missing:
            raise RuntimeError(f"Lambda environment is missing {', '.join(missing)} (set by SecurityAccount)")
        return cls(
            prefix=env["IRF_PREFIX"],
            security_account=env["IRF_SECURITY_ACCOUNT"],
            forensic_account=env["IRF_FORENSIC_ACCOUNT"],
            forensic_region=env["IRF_FORENSIC_REGION"],
            retention_days=int(env.get("IRF_RETENTION_DAYS", "365")),
            topic_arn=env.get("IRF_TOPIC_ARN", ""),
            slack_secret_arn=env.get("IRF_SLACK_SECRET_ARN", ""),
            default_wait_seconds=int(env.get("IRF_DEFAULT_WAIT_SECONDS", "30")),
        )
