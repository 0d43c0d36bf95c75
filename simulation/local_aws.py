"""Simulated accounts on moto: the account ids the simulation and the tests use, and sessions into them.

moto keeps separate state per account id; a session made from `assume_role` into an account
id acts in that account, exactly as the Lambdas do on AWS. The process's own credentials are
moto's default account, which plays the security account (where the Lambdas run).
"""

from __future__ import annotations

import os

import boto3
from moto.core import DEFAULT_ACCOUNT_ID

SECURITY_ACCOUNT = DEFAULT_ACCOUNT_ID  # "123456789012"
FORENSIC_ACCOUNT = "222222222222"
MEMBER_ACCOUNT = "333333333333"
SECOND_MEMBER_ACCOUNT = "444444444444"
REGION = "eu-west-1"
PREFIX = "acme"

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
}


def use_fake_credentials() -> None:
    """Point boto3 at fake credentials so nothing can reach a real account by mistake."""
    os.environ.update(FAKE_CREDENTIALS)
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "MOTO_ACCOUNT_ID"):
        os.environ.pop(var, None)


def account_session(account: str, region: str = REGION, role: str = "OrganizationAccountAccessRole") -> boto3.Session:
    """An administrator session in a simulated account (for setting up scenarios and asserting)."""
    if account == SECURITY_ACCOUNT:
        return boto3.Session(region_name=region)
    creds = boto3.client("sts", region_name=region).assume_role(
        RoleArn=f"arn:aws:iam::{account}:role/{role}", RoleSessionName="irf-local-admin"
    )["Credentials"]
    return boto3.Session(
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
        region_name=region,
    )
