"""The one client factory: every boto3 client the handlers make carries the retry and timeout config.

The config is set as the botocore session's default client config, so it reaches every client
made from a session this module hands out - the Lambda's own and every assumed-role session into
a member or the forensic account - including clients made by code that passes no config at all
(containment, the block sources). A caller's own config (a larger connection pool, SigV4 for
pre-signing) is merged over it, never instead of it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import boto3
import botocore.session
from botocore.config import Config
from botocore.exceptions import ClientError

from handlers.common.errors import ResponderUnavailable

# Standard retry mode backs off on throttling; bounded so a stuck API cannot hold a Lambda forever.
BOTO_CONFIG = Config(retries={"max_attempts": 8, "mode": "standard"}, connect_timeout=10, read_timeout=60)


def configured_session(
    region: str | None = None,
    *,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
    session_token: str | None = None,
    config: Config = BOTO_CONFIG,
) -> boto3.Session:
    """A boto3 session whose every client gets `config` (merged under the client's own)."""
    core = botocore.session.Session()
    core.set_default_client_config(config)
    return boto3.Session(
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        aws_session_token=session_token,
        region_name=region,
        botocore_session=core,
    )


def lambda_session(region: str | None = None) -> boto3.Session:
    """The Lambda's own credentials (the security account)."""
    return configured_session(region)


def session_name(case_id: str) -> str:
    # RoleSessionName: 2-64 chars of [\w+=,.@-]; CloudTrail shows it, so it carries the case id.
    return ("irf-" + re.sub(r"[^\w+=,.@-]", "-", case_id))[:64]


def assume_role(role_arn: str, region: str, case_id: str, base: boto3.Session | None = None) -> boto3.Session:
    """A session in another account through `role_arn`, named for the case; ResponderUnavailable if refused."""
    sts = (base or lambda_session()).client("sts", config=BOTO_CONFIG)
    try:
        creds = sts.assume_role(RoleArn=role_arn, RoleSessionName=session_name(case_id))["Credentials"]
    except ClientError as exc:
        raise ResponderUnavailable(
            f"cannot assume {role_arn}: {exc.response['Error'].get('Message', exc)} "
            "(is the responder stack deployed in that account and region?)"
        ) from exc
    return configured_session(
        region,
        access_key_id=creds["AccessKeyId"],
        secret_access_key=creds["SecretAccessKey"],
        session_token=creds["SessionToken"],
    )


@dataclass
class CaseSessions:
    """The sessions one invocation acts with for one case: each role is assumed once, on first use."""

    member_role: Callable[[str, str], str]  # (account, region) -> the member responder role's ARN
    forensic_role_arn: str
    forensic_region: str
    case_id: str
    base: boto3.Session | None = None
    _members: dict[tuple[str, str], boto3.Session] = field(default_factory=dict, repr=False)
    _forensic: boto3.Session | None = field(default=None, repr=False)

    def member(self, account: str, region: str) -> boto3.Session:
        if (account, region) not in self._members:
            role = self.member_role(account, region)
            self._members[(account, region)] = assume_role(role, region, self.case_id, self.base)
        return self._members[(account, region)]

    def forensic(self) -> boto3.Session:
        if self._forensic is None:
            self._forensic = assume_role(self.forensic_role_arn, self.forensic_region, self.case_id, self.base)
        return self._forensic
