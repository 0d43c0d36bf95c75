"""`irf preview`: the user's stack files, checked as `pulumi up` checks them, previewed under mocks."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner, Result

from irf import cli
from irf.preview import find_project_dir, preview_stack

ROOT = Path(__file__).resolve().parents[2]
NEW_MEMBER = "555566667777"


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    for name in ("Pulumi.yaml", "Pulumi.forensic.yaml", "Pulumi.security.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path


def set_config(path: Path, key: str, value: object) -> None:
    document = yaml.safe_load(path.read_text())
    document["config"][key] = value
    path.write_text(yaml.safe_dump(document))


def irf(*args: str) -> Result:
    return CliRunner().invoke(cli.app, list(args))


def test_preview_of_the_security_stack_shows_the_member_accounts_of_its_stack_file(project):
    members = yaml.safe_load((project / "Pulumi.security.yaml").read_text())["config"]["irforensics:members"]
    members[1] = {
        "account": NEW_MEMBER,
        "region": "ap-southeast-2",
        "deploymentRoleArn": f"arn:aws:iam::{NEW_MEMBER}:role/PulumiDeploy",
    }
    set_config(project / "Pulumi.security.yaml", "irforensics:members", members)
    result = irf("preview", "security", "--project-dir", str(project))
    assert result.exit_code == 0, result.output
    assert "security stack from Pulumi.security.yaml: account 111122223333 (aws:allowedAccountIds)" in result.stdout
    assert "Member accounts (2)" in result.stdout
    for account, region in (("333344445555", "eu-west-1"), (NEW_MEMBER, "ap-southeast-2")):
        row = next(line for line in result.stdout.splitlines() if account in line and region in line)
        assert f"aws-{account}" in row
    assert f"member-{NEW_MEMBER}-ap-southeast-2-responder" in result.stdout
    assert "444455556666" not in result.stdout


def test_preview_in_organisation_mode_shows_the_units_and_regions_and_one_stack_set(project):
    document = yaml.safe_load((project / "Pulumi.security.yaml").read_text())
    del document["config"]["irforensics:members"]
    document["config"]["irforensics:memberOrganizationalUnits"] = ["ou-ab12-workload1", "ou-ab12-workload2"]
    document["config"]["irforensics:memberRegions"] = ["eu-west-1", "us-east-1"]
    (project / "Pulumi.security.yaml").write_text(yaml.safe_dump(document))
    result = irf("preview", "security", "--project-dir", str(project))
    assert result.exit_code == 0, result.output
    assert (
        "Organisation mode: member responders through one StackSet, auto-deployed to every account of "
        "ou-ab12-workload1, ou-ab12-workload2 in eu-west-1, us-east-1"
    ) in " ".join(result.stdout.split())
    assert "Member accounts" not in result.stdout
    assert "aws:cloudformation/stackSet:StackSet (1)" in result.stdout
    assert "aws:cloudformation/stackSetInstance:StackSetInstance (2)" in result.stdout
    assert "0 explicit providers" in result.stdout


def test_preview_refuses_a_misspelled_key_in_one_line_with_exit_2(project):
    set_config(project / "Pulumi.security.yaml", "irforensics:guardDutyMinSeverty", "5")
    result = irf("preview", "security", "--project-dir", str(project))
    assert result.exit_code == cli.EXIT_BAD_INPUT
    assert result.stderr.strip().splitlines() == [
        "irf: config irforensics:guardDutyMinSeverty = '5': is not a key irforensics knows; "
        "did you mean irforensics:guardDutyMinSeverity?"
    ]
    assert "resources" not in result.stdout


def test_preview_refuses_an_invalid_prefix_as_pulumi_up_would(project):
    text = (project / "Pulumi.yaml").read_text().replace("value: acme", "value: ACME")
    (project / "Pulumi.yaml").write_text(text)
    result = irf("preview", "forensic", "--project-dir", str(project))
    assert result.exit_code == cli.EXIT_BAD_INPUT
    assert result.stderr.startswith("irf: config irforensics:prefix = 'ACME': ")


def test_preview_refuses_a_stack_whose_provider_would_accept_another_account(project):
    set_config(project / "Pulumi.forensic.yaml", "aws:allowedAccountIds", ["111122223333"])
    result = irf("preview", "forensic", "--project-dir", str(project))
    assert result.exit_code == cli.EXIT_BAD_INPUT
    assert "irf: config aws:allowedAccountIds = ['111122223333']: must be exactly" in result.stderr


def test_the_simulated_configuration_is_previewed_only_behind_its_flag():
    simulated = preview_stack("security", simulated=True)
    assert simulated.allowed_account_ids == ("123456789012",)
    assert [(m.account, m.provider) for m in simulated.members] == [("333333333333", "aws-333333333333")]
    result = irf("preview", "nonsense", "--simulated")
    assert result.exit_code == cli.EXIT_BAD_INPUT and "--simulated knows the stacks" in result.stderr


def test_the_project_is_found_from_a_folder_below_it(project):
    below = project / "some" / "where"
    below.mkdir(parents=True)
    assert find_project_dir(below) == project
