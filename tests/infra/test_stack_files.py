"""Reading Pulumi.yaml + Pulumi.<stack>.yaml the way `pulumi up` merges them (config.read_stack_files)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

import config
from config import ConfigError, ForensicConfig, SecurityConfig

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    for name in ("Pulumi.yaml", "Pulumi.forensic.yaml", "Pulumi.security.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path


def edit(path: Path, **changes: object) -> None:
    """Set (or, with None, remove) top-level config keys of a stack file, like `pulumi config set`."""
    document = yaml.safe_load(path.read_text())
    for key, value in changes.items():
        full = key.replace("__", ":")
        if value is None:
            document["config"].pop(full, None)
        else:
            document["config"][full] = value
    path.write_text(yaml.safe_dump(document))


def error_of(project: Path, stack: str) -> ConfigError:
    with pytest.raises(ConfigError) as raised:
        config.read_stack_files(stack, project).load()
    return raised.value


def test_the_repository_stack_files_give_the_configs_pulumi_up_would_deploy():
    forensic = config.read_stack_files("forensic").load()
    security = config.read_stack_files("security").load()
    assert isinstance(forensic, ForensicConfig) and isinstance(security, SecurityConfig)
    assert (forensic.prefix, forensic.security_account, forensic.forensic_account) == (
        "acme",
        "111122223333",
        "222233334444",
    )
    assert [(m.account, m.region) for m in security.members] == [
        ("333344445555", "eu-west-1"),
        ("444455556666", "us-east-1"),
    ]
    assert (forensic.retention_days, security.retention_days) == (365, 365)
    assert config.stack_names() == ["forensic", "security"]


def test_values_both_stacks_share_are_set_once_in_pulumi_yaml_and_in_no_stack_file():
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]
    for key in config.SHARED_KEYS:
        assert "value" in project[f"irforensics:{key}"], key
    for stack in ("forensic", "security"):
        stack_keys = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
        assert not {f"irforensics:{key}" for key in config.SHARED_KEYS} & set(stack_keys)
        config.check_shared_values(ROOT, stack)


def test_a_stack_file_that_changes_a_shared_value_is_refused_naming_pulumi_yaml(project):
    edit(project / "Pulumi.security.yaml", irforensics__prefix="acme2")
    with pytest.raises(ConfigError) as raised:
        config.check_shared_values(project, "security")
    assert (raised.value.key, raised.value.value) == ("prefix", "acme2")
    assert "Pulumi.security.yaml differs from Pulumi.yaml ('acme')" in str(raised.value)
    edit(project / "Pulumi.security.yaml", irforensics__prefix="acme")
    config.check_shared_values(project, "security")  # repeating the same value is harmless


def test_a_misspelled_key_in_a_stack_file_is_refused(project):
    edit(project / "Pulumi.forensic.yaml", irforensics__glacierAfterDay="30")
    error = error_of(project, "forensic")
    assert error.key == "glacierAfterDay" and "did you mean irforensics:glacierAfterDays?" in str(error)


def test_an_invalid_prefix_in_pulumi_yaml_fails_both_stacks(project):
    text = (project / "Pulumi.yaml").read_text().replace("value: acme", "value: Acme_IR")
    (project / "Pulumi.yaml").write_text(text)
    for stack in ("forensic", "security"):
        assert (error_of(project, stack).key, error_of(project, stack).value) == ("prefix", "Acme_IR")


def test_a_stack_without_allowed_account_ids_is_refused(project):
    edit(project / "Pulumi.forensic.yaml", aws__allowedAccountIds=None)
    error = error_of(project, "forensic")
    assert error.key == "aws:allowedAccountIds" and '["222233334444"]' in str(error)


def test_allowed_account_ids_of_another_account_are_refused(project):
    edit(project / "Pulumi.security.yaml", aws__allowedAccountIds=["222233334444"])
    error = error_of(project, "security")
    assert (error.key, error.value) == ("aws:allowedAccountIds", ["222233334444"])


def test_scalars_reach_the_program_as_strings_and_lists_stay_lists_as_under_pulumi(project):
    edit(project / "Pulumi.security.yaml", irforensics__pollMaxAttempts=7, irforensics__notificationEmails=["a@b.c"])
    files = config.read_stack_files("security", project)
    assert files.irforensics["pollMaxAttempts"] == "7"
    assert files.irforensics["notificationEmails"] == ["a@b.c"]
    assert files.irforensics["role"] == ""  # Pulumi.yaml's default
    cfg = files.load()
    assert isinstance(cfg, SecurityConfig) and cfg.poll_max_attempts == 7


def test_an_encrypted_value_is_read_as_a_placeholder(project):
    edit(project / "Pulumi.security.yaml", irforensics__slackWebhookSecretArn={"secure": "v1:abc"})
    cfg = config.read_stack_files("security", project).load()
    assert isinstance(cfg, SecurityConfig) and cfg.slack_webhook_secret_arn == "[secret]"


def test_a_project_key_declared_without_a_default_is_required_as_pulumi_requires_it(project):
    text = (project / "Pulumi.yaml").read_text().replace('    default: ""\n', "")
    (project / "Pulumi.yaml").write_text(text)
    error = error_of(project, "forensic")
    assert error.key == "irforensics:role" and "required by Pulumi.yaml" in str(error)


def test_a_value_of_the_wrong_declared_type_is_refused_as_pulumi_refuses_it(project):
    edit(project / "Pulumi.forensic.yaml", irforensics__forensicRegion=["eu-west-1"])
    error = error_of(project, "forensic")
    assert error.key == "irforensics:forensicRegion" and "type string" in str(error)


def test_a_missing_stack_file_names_the_stack(project):
    error = error_of(project, "prod")
    assert str(error).startswith("Pulumi.prod.yaml: not found") and "'prod'" in str(error)
