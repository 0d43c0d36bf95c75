"""The `irf` commands against a whole deployment on moto (both stacks deployed by the real program).

One deployment per module (deploying takes ~20 s). The suspect is the web tier's instance with
real ext4 disks, so a real `respond --action contain --wait` acquires, examines and reports.
Its dry run comes first: a contained instance carries its case's tags until it is released.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from handlers.case.store import CaseStore
from handlers.common import naming
from handlers.common.case import CaseRequest
from handlers.common.tags import ACTION_ANALYZE
from irf import cli, disk_content, disk_images, scenarios
from irf.local_aws import FORENSIC_ACCOUNT, MEMBER_ACCOUNT, PREFIX, REGION, SECURITY_ACCOUNT
from irf.sandbox import LocalCloud, cloud_context

ENV = {"IRF_PREFIX": PREFIX, "IRF_FORENSIC_ACCOUNT": FORENSIC_ACCOUNT, "IRF_FORENSIC_REGION": REGION,
       # Wide enough that rich never folds a case id in a table.
       "COLUMNS": "250"}
POLL = ["--poll-interval", "0.2"]
EVIDENCE_BUCKET = naming.evidence_bucket(PREFIX, FORENSIC_ACCOUNT, REGION)
FINAL_LINE = re.compile(r"^case (\S+): response (\w+)$", re.MULTILINE)


@dataclass
class Sandbox:
    cloud: LocalCloud
    tier: scenarios.WebTier
    peer_instance_id: str

    def member_ec2(self) -> object:
        return self.cloud.session(MEMBER_ACCOUNT).client("ec2")

    def executions(self) -> list[dict[str, object]]:
        sfn = self.cloud.session(SECURITY_ACCOUNT).client("stepfunctions")
        return list(sfn.list_executions(stateMachineArn=self.cloud.response_state_machine_arn)["executions"])


@dataclass(frozen=True)
class Responded:
    result: Result
    case_id: str


def irf(*args: str, env: dict[str, str | None] | None = None) -> Result:
    return CliRunner(env={**ENV, **(env or {})}).invoke(cli.app, list(args))


def _disks(work: Path) -> tuple[Path, Path]:
    incident = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    tree = disk_images.build_compromised_webserver_tree(work / "rootfs", incident)
    root = disk_images.build_ext4_image(tree, work / "root.ext4", size_mib=16)
    data_tree = work / "datafs"
    (data_tree / "reports").mkdir(parents=True)
    (data_tree / "reports" / "orders.csv").write_bytes(b"month,orders\njul,1200\naug,1350\n")
    return root, disk_images.build_ext4_image(data_tree, work / "data.ext4", size_mib=16)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    # moto's Step Functions interpreter logs every failed state with its whole parse tree.
    logging.getLogger("moto").setLevel(logging.CRITICAL)
    with cloud_context() as cloud:
        member = cloud.session(MEMBER_ACCOUNT)
        root, data = _disks(tmp_path_factory.mktemp("disks"))
        ebs = member.client("ebs")
        tier = scenarios.build_web_tier(
            member, prefix=PREFIX, isolation_profile=False,
            root_snapshot_id=disk_content.write_snapshot(ebs, root, description="web root disk (ext4)"),
            data_snapshot_id=disk_content.write_snapshot(ebs, data, description="web data disk (ext4)"))
        group = member.client("autoscaling").describe_auto_scaling_groups(
            AutoScalingGroupNames=[tier.auto_scaling_group])["AutoScalingGroups"][0]
        peer = next(i["InstanceId"] for i in group["Instances"] if i["InstanceId"] != tier.instance_id)
        yield Sandbox(cloud=cloud, tier=tier, peer_instance_id=peer)


def _respond(sandbox: Sandbox, *extra: str) -> Responded:
    result = irf("respond", sandbox.tier.instance_id, "--account", MEMBER_ACCOUNT, "--region", REGION, "--wait",
                 *POLL, *extra)
    found = FINAL_LINE.search(result.stdout)
    return Responded(result=result, case_id=found.group(1) if found else "")


@pytest.fixture(scope="module")
def dry_run_case(sandbox: Sandbox) -> Responded:
    return _respond(sandbox, "--action", "analyze", "--dry-run")


@pytest.fixture(scope="module")
def contained_case(sandbox: Sandbox, dry_run_case: Responded) -> Responded:
    return _respond(sandbox, "--action", "contain")


def _interface_groups(sandbox: Sandbox) -> dict[str, list[str]]:
    ec2 = sandbox.cloud.session(MEMBER_ACCOUNT).client("ec2")
    interfaces = ec2.describe_network_interfaces(
        NetworkInterfaceIds=[sandbox.tier.primary_eni_id, sandbox.tier.secondary_eni_id])["NetworkInterfaces"]
    return {eni["NetworkInterfaceId"]: sorted(g["GroupId"] for g in eni["Groups"]) for eni in interfaces}


# Outside moto: the first test runs before the module's deployment exists.
def test_no_credentials_exits_4_with_a_one_line_hint(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("")
    result = irf("cases", env={
        "AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None, "AWS_SESSION_TOKEN": None, "AWS_PROFILE": None,
        "AWS_SHARED_CREDENTIALS_FILE": str(empty), "AWS_CONFIG_FILE": str(empty),
        "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": None,
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": None, "AWS_WEB_IDENTITY_TOKEN_FILE": None,
    })

    assert result.exit_code == cli.EXIT_NO_CREDENTIALS
    assert result.stderr.strip().splitlines() == [f"irf: {cli.NO_CREDENTIALS}"]


def test_help_documents_every_exit_code() -> None:
    result = irf("--help")

    assert result.exit_code == 0
    flat = " ".join(result.stdout.split())
    for code, meaning in cli.EXIT_CODES.items():
        assert f"{code} {meaning}" in flat


def test_respond_with_bad_input_names_each_field_and_starts_nothing(sandbox: Sandbox) -> None:
    before = sandbox.executions()

    result = irf("respond", "i-12345", "--account", "12", "--region", REGION, "--action", "isolate", "--wait", *POLL)

    assert result.exit_code == cli.EXIT_BAD_INPUT
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1
    for field in ("Account", "InstanceId", "Action"):
        assert f"{field}: " in message
    assert "Region" not in message
    assert sandbox.executions() == before


def test_respond_dry_run_waits_for_success_and_prints_the_case(sandbox: Sandbox, dry_run_case: Responded) -> None:
    result = dry_run_case.result

    assert result.exit_code == 0, result.output
    assert dry_run_case.case_id.startswith(f"{MEMBER_ACCOUNT}-{sandbox.tier.instance_id}-{REGION}-")
    assert f"case {dry_run_case.case_id}: response SUCCEEDED" in result.stdout
    # Live progress names the states the execution went through, in order.
    entered = re.findall(r"^  -> (\w+)$", result.stdout, re.MULTILINE)
    assert entered[:3] == ["ValidateInput", "Init", "OpenCase"]
    assert entered.index("Protect") < entered.index("NothingAcquired") < entered.index("CloseCase")
    # A dry run changes nothing: the instance keeps its groups and carries no incident tags.
    ec2 = sandbox.cloud.session(MEMBER_ACCOUNT).client("ec2")
    instance = ec2.describe_instances(InstanceIds=[sandbox.tier.instance_id])["Reservations"][0]["Instances"][0]
    assert not [t for t in instance.get("Tags", []) if t["Key"].startswith("SecurityIncident")]


def test_respond_for_an_instance_with_an_open_case_starts_nothing_new(sandbox: Sandbox) -> None:
    security = sandbox.cloud.session(SECURITY_ACCOUNT)
    store = CaseStore(security.client("dynamodb"), naming.case_table(PREFIX))
    opened = store.open_case(CaseRequest(instance_id=sandbox.peer_instance_id, account=MEMBER_ACCOUNT, region=REGION,
                                         action=ACTION_ANALYZE, trigger="tag"),
                             now_epoch=1_700_000_000, now_iso="2023-11-14T22:13:20.000000Z")
    cases_before = len(store.recent_cases(limit=1000))

    result = irf("respond", sandbox.peer_instance_id, "--account", MEMBER_ACCOUNT, "--region", REGION,
                 "--action", "contain", "--wait", *POLL)

    assert result.exit_code == 0, result.output
    assert (f"instance {sandbox.peer_instance_id} already has open case {opened.case_id}; nothing new started"
            in result.stdout)
    assert len(store.recent_cases(limit=1000)) == cases_before
    ec2 = sandbox.cloud.session(MEMBER_ACCOUNT).client("ec2")
    peer = ec2.describe_instances(InstanceIds=[sandbox.peer_instance_id])["Reservations"][0]["Instances"][0]
    assert [g["GroupId"] for g in peer["SecurityGroups"]] == [sandbox.tier.web_group_id]


def test_status_shows_the_case_record_and_its_custody_events(dry_run_case: Responded, sandbox: Sandbox) -> None:
    result = irf("status", dry_run_case.case_id)

    assert result.exit_code == 0, result.output
    assert re.search(r"status\s+│?\s*closed", result.stdout)
    assert sandbox.tier.instance_id in result.stdout
    rows = re.findall(r"│\s*(\d+)\s*│\s*([a-z-]+)\s*│\s*(\S+Z)\s*│", result.stdout)
    assert [(int(seq), event) for seq, event, _ in rows] == [
        (1, "case-opened"), (2, "protection-dry-run"), (3, "evidence-acquired"), (4, "case-closed")]


def test_status_of_an_unknown_case_exits_3() -> None:
    result = irf("status", "333333333333-i-0123456789abcdef0-eu-west-1-1")

    assert result.exit_code == cli.EXIT_NOT_FOUND
    assert result.stderr.strip() == (
        "irf: case 333333333333-i-0123456789abcdef0-eu-west-1-1 does not exist "
        f"(no record in case table {naming.case_table(PREFIX)})")


def test_cases_lists_recent_cases_in_a_table(dry_run_case: Responded, sandbox: Sandbox) -> None:
    result = irf("cases", "--limit", "10")

    assert result.exit_code == 0, result.output
    row = next(line for line in result.stdout.splitlines() if dry_run_case.case_id in line)
    assert [cell.strip() for cell in row.strip("│ ").split("│")][:6] == [
        dry_run_case.case_id, "closed", sandbox.tier.instance_id, MEMBER_ACCOUNT, REGION, "Analyze"]


def test_report_of_a_case_without_a_report_exits_3_and_says_why(dry_run_case: Responded, tmp_path: Path) -> None:
    result = irf("report", dry_run_case.case_id, "--out", str(tmp_path / "report"))

    assert result.exit_code == cli.EXIT_NOT_FOUND
    assert result.stderr.strip() == (f"irf: case {dry_run_case.case_id} has no report: the case is closed: "
                                     "evidence acquired; it was a dry run, which examines nothing")
    assert not (tmp_path / "report").exists()


def test_release_of_a_case_that_contained_nothing_exits_3(dry_run_case: Responded, sandbox: Sandbox) -> None:
    result = irf("release", sandbox.tier.instance_id, "--case", dry_run_case.case_id, "--account", MEMBER_ACCOUNT,
                 "--region", REGION)

    assert result.exit_code == cli.EXIT_NOT_FOUND
    assert f"case {dry_run_case.case_id} has no containment record" in result.stderr


def test_respond_contain_isolates_acquires_and_reports(contained_case: Responded, sandbox: Sandbox) -> None:
    assert contained_case.result.exit_code == 0, contained_case.result.output
    assert f"case {contained_case.case_id}: response SUCCEEDED" in contained_case.result.stdout
    deny_all = naming.isolation_group_names(PREFIX)[1]
    ec2 = sandbox.cloud.session(MEMBER_ACCOUNT).client("ec2")
    isolation = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": [deny_all]}])
    deny_all_id = isolation["SecurityGroups"][0]["GroupId"]
    assert _interface_groups(sandbox) == {sandbox.tier.primary_eni_id: [deny_all_id],
                                          sandbox.tier.secondary_eni_id: [deny_all_id]}


def test_report_downloads_the_report_files_with_their_recorded_hashes(
        contained_case: Responded, sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[str] = []
    monkeypatch.setattr(cli, "open_report", opened.append)
    out = tmp_path / "report"

    result = irf("report", contained_case.case_id, "--out", str(out), "--open")

    assert result.exit_code == 0, result.output
    s3 = sandbox.cloud.session(FORENSIC_ACCOUNT).client("s3")
    for name in ("report.html", "report.md", "report.json"):
        stored = s3.get_object(Bucket=EVIDENCE_BUCKET, Key=f"{contained_case.case_id}/report/{name}")["Body"].read()
        assert (out / name).read_bytes() == stored
        assert hashlib.sha256(stored).hexdigest() in result.stdout
        assert str(out / name) in result.stdout
    assert opened == [(out / "report.html").resolve().as_uri()]


def test_release_after_contain_puts_every_interface_back_on_its_groups(
        contained_case: Responded, sandbox: Sandbox) -> None:
    assert contained_case.result.exit_code == 0, contained_case.result.output
    contained = _interface_groups(sandbox)
    args = ["release", sandbox.tier.instance_id, "--case", contained_case.case_id, "--account", MEMBER_ACCOUNT,
            "--region", REGION]

    planned = irf(*args, "--dry-run")

    assert planned.exit_code == 0, planned.output
    assert "dry run, nothing changed" in planned.stdout
    assert _interface_groups(sandbox) == contained

    released = irf(*args)

    assert released.exit_code == 0, released.output
    assert _interface_groups(sandbox) == {sandbox.tier.primary_eni_id: [sandbox.tier.web_group_id],
                                          sandbox.tier.secondary_eni_id: [sandbox.tier.admin_group_id]}
    for eni in (sandbox.tier.primary_eni_id, sandbox.tier.secondary_eni_id):
        assert re.search(rf"interface-groups\s*│\s*{eni}\s*│", released.stdout)
    ec2 = sandbox.cloud.session(MEMBER_ACCOUNT).client("ec2")
    associations = ec2.describe_iam_instance_profile_associations(
        Filters=[{"Name": "instance-id", "Values": [sandbox.tier.instance_id]},
                 {"Name": "state", "Values": ["associated"]}])["IamInstanceProfileAssociations"]
    assert [a["IamInstanceProfile"]["Arn"].rsplit("/", 1)[-1] for a in associations] == [
        sandbox.tier.instance_profile]
    s3 = sandbox.cloud.session(FORENSIC_ACCOUNT).client("s3")
    custody = [o["Key"].rsplit("/", 1)[-1] for o in s3.list_objects_v2(
        Bucket=EVIDENCE_BUCKET, Prefix=f"{contained_case.case_id}/custody/")["Contents"]]
    assert any(k.endswith("-release-dry-run.json") for k in custody)
    assert any(k.endswith("-released.json") for k in custody)
