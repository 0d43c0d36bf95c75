"""The one way to get AWS sessions: the Lambda's own, or assumed into a member / the forensic account."""

from __future__ import annotations

import re

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from handlers.common.errors import ResponderUnavailable

# Standard retry mode backs off on throttling; bounded so a stuck API cannot hold a Lambda forever.
BOTO_CONFIG = Config(retries={"max_attempts": 8, "mode": "standard"}, connect_timeout=10, read_timeout=60)


def lambda_session(region: str | None = None) -> boto3.Session:
    return boto3.Session(region_name=region) if region else boto3.Session()


def _session_name(case_id: str) -> str:
    # RoleSessionName: 2-64 chars of [\w+=,.@-]; CloudTrail shows it, so it carries the case id.
    return ("irf-" + re.sub(r"[^\w+=,.@-]", "-", case_id))[:64]


def assume_role(role_arn: str, region: str, case_id: str, base: boto3.Session | None = None) -> boto3.Session:
    base = base or lambda_session()
    sts = base.client("sts", config=BOTO_CONFIG)
    try:
        creds = sts.assume_role(RoleArn=role_arn, RoleSessionName=_session_name(case_id))["Credentials"]
    except ClientError as exc:
        raise ResponderUnavailable(
            f"cannot assume {role_arn}: {exc.response['Error'].get('Message', exc)} "
            "(is the responder stack deployed in that account and region?)"
        ) from exc
    return boto3.Session(
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
        region_name=region,
    )
