"""The program refuses a bad configuration itself, as `pulumi up` runs it (here under Pulumi mocks)."""

from __future__ import annotations

import json

import pytest
from pulumi.runtime import config as runtime_config

import config
from config import ConfigError
from simulation.pulumi_mocks import run_program
from simulation.stacks import forensic_config, security_config

SECURITY = "123456789012"
FORENSIC = "222222222222"
REGION = "eu-west-1"


def test_the_program_refuses_a_misspelled_key_before_registering_anything():
    with pytest.raises(ConfigError) as raised:
        run_program("security", {**security_config(), "pollIntervalSecond": 5}, account=SECURITY, region=REGION)
    assert raised.value.key == "pollIntervalSecond"
    assert "did you mean irforensics:pollIntervalSeconds?" in str(raised.value)


def test_the_program_refuses_the_retired_retention_key_naming_its_replacement():
    raw = {**forensic_config(), "retentionDays": 365}
    raw.pop("evidenceRetentionDays")
    with pytest.raises(ConfigError) as raised:
        run_program("forensic", raw, account=FORENSIC, region=REGION)
    assert "use irforensics:evidenceRetentionDays" in str(raised.value)


def test_the_program_refuses_a_provider_that_allows_another_account():
    with pytest.raises(ConfigError) as raised:
        run_program("forensic", forensic_config(), account=FORENSIC, region=REGION, allowed_account_ids=[SECURITY])
    assert raised.value.key == "aws:allowedAccountIds" and FORENSIC in str(raised.value)


def test_keys_the_engine_passes_in_its_environment_are_all_seen(monkeypatch):
    # The Pulumi language host hands the config over as PULUMI_CONFIG (a JSON map of "<namespace>:<key>").
    monkeypatch.setattr(runtime_config, "CONFIG", runtime_config.ContextVar("test_config", default={}))
    monkeypatch.setenv(
        "PULUMI_CONFIG",
        json.dumps({"irforensics:prefix": "acme", "irforensics:config:retentionDay": "3", "aws:region": REGION}),
    )
    assert config._engine_keys("irforensics") == ["prefix", "retentionDay"]
    assert config._engine_keys("aws") == ["region"]


def test_a_prefix_that_reads_as_json_reaches_the_program_as_the_string_it_is():
    # Pulumi passes scalars as plain strings; parsing them as JSON would turn this prefix into True.
    resources = run_program("forensic", forensic_config(prefix="true"), account=FORENSIC, region=REGION)
    buckets = [res.inputs["bucket"] for res in resources if res.type == "aws:s3/bucket:Bucket"]
    assert f"true-ir-artifacts-{FORENSIC}-{REGION}" in buckets
