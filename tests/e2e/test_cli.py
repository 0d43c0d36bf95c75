"""The `irf` commands against a whole deployment on moto (both stacks deployed by the real program).

One deployment per module (deploying takes ~20 s). The suspect is the web tier's instance; its
volumes hold no bytes the simulation can read, so a real `respond --action contain --wait`
contains it and then fails at imaging: the failure path (exit 1, the instance left contained,
the case closed as failed), and a real containment record for `release`. The whole flow with
disks that hold file systems runs in tests/e2e/test_simulation.py.
The dry run comes first: a contained instance carries its case's tags until it is released.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from handlers.case.store import CaseStore
from handlers.common import naming
from handlers.common.case import CaseRequest
from handlers.common.evidence import EvidenceStore, report_key
from handlers.common.tags import ACTION_ANALYZE
from irf import cli
from simulation import scenarios
from simulation.lambda_local import resolve_handler
from simulation.local_aws import FORENSIC_ACCOUNT, MEMBER_ACCOUNT, PREFIX, REGION, SECURITY_ACCOUNT
from simulation.sandbox import LocalCloud, cloud_context
from statemachines.functions import FUNCTIONS

ENV = {
    "IRF_PREFIX": PREFIX,
    "IRF_FORENSIC_ACCOUNT": FORENSIC_ACCOUNT,
    "IRF_FORENSIC_REGION": REGION,
    # Wide enough that rich never folds a case id in a table.
    "COLUMNS": "250",
}
# The consoles are made when irf.cli is imported, before any runner sets COLUMNS.
cli.console.width = 250
cli.err.width = 250
POLL = ["--poll-interval", "0.2"]
EVIDENCE_BUCKET = naming.evidence_bucket(PREFIX, FORENSIC_ACCOUNT, REGION)
FINAL_LINE = re.compile(r"^case (\S+): response (\w+)$", re.MULTILINE)


@dataclass
class Sandbox:
    cloud: LocalCloud
    tier: scenarios.WebTier
    peer_instance_id: str

    def executions(self) -> list[str]:
        sfn = self.cloud.session(SECURITY_ACCOUNT).client("stepfunctions")
        listed = sfn.list_executions(stateMachineArn=self.cloud.response_state_machine_arn)["executions"]
        return sorted(execution["executionArn"] for execution in listed)


@dataclass(frozen=True)
class Responded:
    result: Result
    case_id: str


def irf(*args: str, env: dict[str, str | None] | None = None) -> Result:
    return CliRunner(env={**ENV, **(env or {})}).invoke(cli.app, list(args))


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    # moto's Step Functions interpreter logs every failed state with its whole parse tree.
    logging.getLogger("moto").setLevel(logging.CRITICAL)
    # Powertools loggers bind sys.stdout when their module is imported; imported first inside a
    # CliRunner invocation (a Lambda the CLI invokes), they would write to its stream once it is closed.
    for spec in FUNCTIONS:
        resolve_handler(spec.handler)
    with cloud_context() as cloud:
        member = cloud.session(MEMBER_ACCOUNT)
        tier = scenarios.build_web_tier(member, prefix=PREFIX, isolation_profile=False)
        group = member.client("autoscaling").describe_auto_scaling_groups(
            AutoScalingGroupNames=[tier.auto_scaling_group]
        )["AutoScalingGroups"][0]
        peer = next(i["InstanceId"] for i in group["Instances"] if i["InstanceId"] != tier.instance_id)
        yield Sandbox(cloud=cloud, tier=tier, peer_instance_id=peer)


def _respond(sandbox: Sandbox, *extra: str) -> Responded:
    result = irf(
        "respond", sandbox.tier.instance_id, "--account", MEMBER_ACCOUNT, "--region", REGION, "--wait", *POLL, *extra
    )
    found = FINAL_LINE.search(result.stdout)
    return Responded(result=result, case_id=found.group(1) if found else "")


@pytest.fixture(scope="module")
def dry_run_case(sandbox: Sandbox) -> Responded:
    return _respond(sandbox, "--action", "analyze", "--dry-run")


@pytest.fixture(scope="module")
def failed_contain_case(sandbox: Sandbox, dry_run_case: Responded) -> Responded:
    return _respond(sandbox, "--action", "contain")


def _interface_groups(sandbox: Sandbox) -> dict[str, list[str]]:
    ec2 = sandbox.cloud.session(MEMBER_ACCOUNT).client("ec2")
    interfaces = ec2.describe_network_interfaces(
        NetworkInterfaceIds=[sandbox.tier.primary_eni_id, sandbox.tier.secondary_eni_id]
    )["NetworkInterfaces"]
    return {eni["NetworkInterfaceId"]: sorted(g["GroupId"] for g in eni["Groups"]) for eni in interfaces}


def _deny_all_group(sandbox: Sandbox) -> str:
    ec2 = sandbox.cloud.session(MEMBER_ACCOUNT).client("ec2")
    found = ec2.describe_security_groups(
        Filters=[
            {"Name": "group-name", "Values": [naming.isolation_group_names(PREFIX)[1]]},
            {"Name": "vpc-id", "Values": [sandbox.tier.vpc_id]},
        ]
    )["SecurityGroups"]
    return str(found[0]["GroupId"])


def _custody(result: Result) -> list[tuple[int, str]]:
    rows = re.findall(r"│\s*(\d+)\s*│\s*([a-z-]+)\s*│\s*(\S+Z)\s*│", result.stdout)
    return [(int(seq), event) for seq, event, _ in rows]


# Outside moto: the first test runs before the module's deployment exists.
def test_no_credentials_exits_4_with_a_one_line_hint(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("")
    result = irf(
        "cases",
        env={
            "AWS_ACCESS_KEY_ID": None,
            "AWS_SECRET_ACCESS_KEY": None,
            "AWS_SESSION_TOKEN": None,
            "AWS_PROFILE": None,
            "AWS_SHARED_CREDENTIALS_FILE": str(empty),
            "AWS_CONFIG_FILE": str(empty),
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": None,
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": None,
            "AWS_WEB_IDENTITY_TOKEN_FILE": None,
        },
    )

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
    # Live progress: one line per stage as it starts and ends, in order, with the execution's elapsed time.
    stages = re.findall(
        r"^\s+(?:\d+m)?\d+s ([\u25b8\u2713\u00b7]) ([a-z ]+?)(?: started|:| \()", result.stdout, re.MULTILINE
    )
    ended = [stage for mark, stage in stages if mark == "\u2713"]
    assert ended[:2] == ["validate", "open case"]
    assert ended.index("protect") < ended.index("close")
    assert ("\u00b7", "acquire") in stages
    assert "dry run: nothing acquired" in result.stdout
    # A dry run changes nothing: the instance keeps its groups and carries no incident tags.
    assert _interface_groups(sandbox) == {
        sandbox.tier.primary_eni_id: [sandbox.tier.web_group_id],
        sandbox.tier.secondary_eni_id: [sandbox.tier.admin_group_id],
    }
    ec2 = sandbox.cloud.session(MEMBER_ACCOUNT).client("ec2")
    instance = ec2.describe_instances(InstanceIds=[sandbox.tier.instance_id])["Reservations"][0]["Instances"][0]
    assert not [t for t in instance.get("Tags", []) if t["Key"].startswith("SecurityIncident")]


def test_respond_for_an_instance_with_an_open_case_starts_nothing_new(sandbox: Sandbox) -> None:
    security = sandbox.cloud.session(SECURITY_ACCOUNT)
    store = CaseStore(security.client("dynamodb"), naming.case_table(PREFIX))
    # What a tag trigger a moment earlier leaves behind: the open case and its lock.
    opened = store.open_case(
        CaseRequest(
            instance_id=sandbox.peer_instance_id,
            account=MEMBER_ACCOUNT,
            region=REGION,
            action=ACTION_ANALYZE,
            trigger="tag",
        ),
        now_epoch=1_700_000_000,
        now_iso="2023-11-14T22:13:20.000000Z",
    )
    cases_before = len(store.recent_cases(limit=1000))

    result = irf(
        "respond",
        sandbox.peer_instance_id,
        "--account",
        MEMBER_ACCOUNT,
        "--region",
        REGION,
        "--action",
        "contain",
        "--wait",
        *POLL,
    )

    assert result.exit_code == 0, result.output
    assert (
        f"instance {sandbox.peer_instance_id} already has open case {opened.case_id}; nothing new started"
        in result.stdout
    )
    assert len(store.recent_cases(limit=1000)) == cases_before
    ec2 = sandbox.cloud.session(MEMBER_ACCOUNT).client("ec2")
    peer = ec2.describe_instances(InstanceIds=[sandbox.peer_instance_id])["Reservations"][0]["Instances"][0]
    assert [g["GroupId"] for g in peer["SecurityGroups"]] == [sandbox.tier.web_group_id]


def test_status_shows_the_case_record_and_its_custody_events(dry_run_case: Responded, sandbox: Sandbox) -> None:
    result = irf("status", dry_run_case.case_id)

    assert result.exit_code == 0, result.output
    assert re.search(r"status\s+│?\s*closed", result.stdout)
    assert sandbox.tier.instance_id in result.stdout
    assert _custody(result) == [
        (1, "case-opened"),
        (2, "protection-dry-run"),
        (3, "evidence-acquired"),
        (4, "case-closed"),
    ]


def test_status_of_an_unknown_case_exits_3() -> None:
    result = irf("status", "333333333333-i-0123456789abcdef0-eu-west-1-1")

    assert result.exit_code == cli.EXIT_NOT_FOUND
    assert result.stderr.strip() == (
        "irf: case 333333333333-i-0123456789abcdef0-eu-west-1-1 does not exist "
        f"(no record in case table {naming.case_table(PREFIX)}); "
        "`irf cases` lists the cases; check --prefix and --security-region"
    )


def test_commands_with_a_prefix_nobody_deployed_exit_3(sandbox: Sandbox) -> None:
    before = sandbox.executions()

    responded = irf(
        "respond", sandbox.tier.instance_id, "--account", MEMBER_ACCOUNT, "--region", REGION, "--prefix", "nobody"
    )
    listed = irf("cases", "--prefix", "nobody")

    assert responded.exit_code == cli.EXIT_NOT_FOUND
    assert (
        "response state machine arn:aws:states:eu-west-1:123456789012:stateMachine:nobody-ir-response not found"
        in responded.stderr
    )
    assert listed.exit_code == cli.EXIT_NOT_FOUND
    assert "case table nobody-ir-cases not found" in listed.stderr
    assert sandbox.executions() == before


def test_cases_lists_recent_cases_in_a_table(dry_run_case: Responded, sandbox: Sandbox) -> None:
    result = irf("cases", "--limit", "10")

    assert result.exit_code == 0, result.output
    row = next(line for line in result.stdout.splitlines() if dry_run_case.case_id in line)
    assert [cell.strip() for cell in row.strip("│ ").split("│")][:5] == [
        dry_run_case.case_id,
        "closed",
        "Analyze (dry run)",
        "cli",
        sandbox.tier.instance_id,
    ]


def test_status_follow_finds_the_cases_execution_and_replays_its_stages(dry_run_case: Responded) -> None:
    result = irf("status", dry_run_case.case_id, "--follow", *POLL)

    assert result.exit_code == 0, result.output
    assert re.search(rf"^case {dry_run_case.case_id}: execution arn:aws:states:\S+:irf-i-", result.stdout, re.MULTILINE)
    for stage in ("validate", "open case", "protect", "close"):
        assert re.search(rf"^\s+\d+s \u2713 {stage} \(", result.stdout, re.MULTILINE), stage
    assert re.search(r"status\s+│?\s*closed", result.stdout)


def test_report_of_a_dry_run_case_exits_3_and_says_why(dry_run_case: Responded, tmp_path: Path) -> None:
    result = irf("report", dry_run_case.case_id, "--out", str(tmp_path / "report"))

    assert result.exit_code == cli.EXIT_NOT_FOUND
    assert result.stderr.strip() == (
        f"irf: case {dry_run_case.case_id} has no report: the case is closed: "
        "evidence acquired; it was a dry run, which examines nothing; "
        f"`irf status {dry_run_case.case_id}` shows the case and its custody events"
    )
    assert not (tmp_path / "report").exists()


def test_release_of_a_case_that_contained_nothing_exits_3(dry_run_case: Responded, sandbox: Sandbox) -> None:
    result = irf(
        "release",
        sandbox.tier.instance_id,
        "--case",
        dry_run_case.case_id,
        "--account",
        MEMBER_ACCOUNT,
        "--region",
        REGION,
    )

    assert result.exit_code == cli.EXIT_NOT_FOUND, result.output
    assert f"case {dry_run_case.case_id} has no containment record" in result.stderr


def test_respond_that_fails_exits_1_with_error_and_cause_and_leaves_the_instance_contained(
    failed_contain_case: Responded, sandbox: Sandbox
) -> None:
    result = failed_contain_case.result

    assert result.exit_code == cli.EXIT_RESPONSE_FAILED, result.output
    assert f"case {failed_contain_case.case_id}: response FAILED" in result.stdout
    error = result.stderr.strip()
    assert len(error.splitlines()) == 1
    # The simulation has no bytes for volumes that were not made from a snapshot it wrote.
    failed_volume = re.match(
        r"irf: response FAILED: RuntimeError: volume (vol-\w+) was not created from a snapshot", error
    )
    assert failed_volume and failed_volume.group(1) in (sandbox.tier.root_volume_id, sandbox.tier.data_volume_id)
    deny_all = _deny_all_group(sandbox)
    assert _interface_groups(sandbox) == {
        sandbox.tier.primary_eni_id: [deny_all],
        sandbox.tier.secondary_eni_id: [deny_all],
    }


def test_status_of_a_failed_case_shows_containment_and_the_failure(failed_contain_case: Responded) -> None:
    result = irf("status", failed_contain_case.case_id)

    assert result.exit_code == 0, result.output
    assert re.search(r"status\s+│?\s*failed", result.stdout)
    events = [event for _, event in _custody(result)]
    assert events[:2] == ["case-opened", "contained"]
    assert events[-1] == "failure"


def test_report_of_a_failed_case_exits_3_with_what_failed(failed_contain_case: Responded) -> None:
    result = irf("report", failed_contain_case.case_id)

    assert result.exit_code == cli.EXIT_NOT_FOUND
    assert re.fullmatch(
        rf"irf: case {failed_contain_case.case_id} has no report: the case is failed: "
        r"RuntimeError at acquire: volume vol-\w+ was not created from a snapshot; "
        r"the simulation has no bytes for it; the instance is contained; "
        rf"`irf status {failed_contain_case.case_id}` shows the case and its custody events",
        result.stderr.strip(),
    )


def test_report_downloads_every_report_file_checked_against_its_recorded_sha256(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    case_id = f"{MEMBER_ACCOUNT}-i-0123456789abcdef0-{REGION}-1700000000"
    s3 = sandbox.cloud.session(FORENSIC_ACCOUNT).client("s3")
    # What the analysis instance writes at the end of an examination.
    store = EvidenceStore(s3, EVIDENCE_BUCKET, case_id)
    written = {
        name: store.put_bytes(
            report_key(case_id, name),
            f"{name} of {case_id}\n".encode(),
            source="examination",
            tool="irforensics-examination-runner",
        )
        for name in ("report.html", "report.md", "report.json")
    }
    opened: list[str] = []
    monkeypatch.setattr(cli, "open_report", opened.append)
    out = tmp_path / "report"

    result = irf("report", case_id, "--out", str(out), "--open")

    assert result.exit_code == 0, result.output
    for name, artefact in written.items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == artefact.sha256
        assert artefact.sha256 in result.stdout
        assert str(out / name) in result.stdout
    assert result.stdout.count("matches recorded") == 3
    assert opened == [(out / "report.html").resolve().as_uri()]


def test_report_whose_bytes_differ_from_the_recorded_sha256_is_not_saved(sandbox: Sandbox, tmp_path: Path) -> None:
    case_id = f"{MEMBER_ACCOUNT}-i-0123456789abcdef1-{REGION}-1700000000"
    s3 = sandbox.cloud.session(FORENSIC_ACCOUNT).client("s3")
    recorded = hashlib.sha256(b"the report as examined").hexdigest()
    s3.put_object(
        Bucket=EVIDENCE_BUCKET,
        Key=report_key(case_id, "report.html"),
        Body=b"a different report",
        Metadata={"sha256": recorded},
    )

    result = irf("report", case_id, "--out", str(tmp_path / "report"))

    assert result.exit_code == cli.EXIT_RESPONSE_FAILED
    assert f"but {recorded} was recorded when it was written; not saved" in result.stderr
    assert not (tmp_path / "report" / "report.html").exists()


def test_release_after_contain_puts_every_interface_back_on_its_groups(
    failed_contain_case: Responded, sandbox: Sandbox
) -> None:
    assert failed_contain_case.case_id
    contained = _interface_groups(sandbox)
    args = [
        "release",
        sandbox.tier.instance_id,
        "--case",
        failed_contain_case.case_id,
        "--account",
        MEMBER_ACCOUNT,
        "--region",
        REGION,
    ]

    planned = irf(*args, "--dry-run")

    assert planned.exit_code == 0, planned.output
    assert "dry run, nothing changed" in planned.stdout
    assert _interface_groups(sandbox) == contained

    released = irf(*args)

    assert released.exit_code == 0, released.output
    assert _interface_groups(sandbox) == {
        sandbox.tier.primary_eni_id: [sandbox.tier.web_group_id],
        sandbox.tier.secondary_eni_id: [sandbox.tier.admin_group_id],
    }
    for eni in (sandbox.tier.primary_eni_id, sandbox.tier.secondary_eni_id):
        assert re.search(rf"interface-groups\s*│\s*{eni}\s*│", released.stdout)
    ec2 = sandbox.cloud.session(MEMBER_ACCOUNT).client("ec2")
    associations = ec2.describe_iam_instance_profile_associations(
        Filters=[
            {"Name": "instance-id", "Values": [sandbox.tier.instance_id]},
            {"Name": "state", "Values": ["associated"]},
        ]
    )["IamInstanceProfileAssociations"]
    assert [a["IamInstanceProfile"]["Arn"].rsplit("/", 1)[-1] for a in associations] == [sandbox.tier.instance_profile]
    s3 = sandbox.cloud.session(FORENSIC_ACCOUNT).client("s3")
    custody = [
        o["Key"].rsplit("/", 1)[-1]
        for o in s3.list_objects_v2(Bucket=EVIDENCE_BUCKET, Prefix=f"{failed_contain_case.case_id}/custody/")[
            "Contents"
        ]
    ]
    assert any(k.endswith("-release-dry-run.json") for k in custody)
    assert any(k.endswith("-released.json") for k in custody)


def test_release_naming_another_instance_than_the_case_contained_exits_2(
    failed_contain_case: Responded, sandbox: Sandbox
) -> None:
    result = irf(
        "release",
        sandbox.peer_instance_id,
        "--case",
        failed_contain_case.case_id,
        "--account",
        MEMBER_ACCOUNT,
        "--region",
        REGION,
    )

    assert result.exit_code == cli.EXIT_BAD_INPUT
    assert result.stderr.strip() == (
        f"irf: invalid input: InstanceId: case {failed_contain_case.case_id} "
        f"contained {sandbox.tier.instance_id}, not {sandbox.peer_instance_id}; see `irf release --help`"
    )


def _lime_factory_runs(sandbox: Sandbox) -> list[str]:
    sfn = sandbox.cloud.session(SECURITY_ACCOUNT).client("stepfunctions")
    arn = f"arn:aws:states:{REGION}:{SECURITY_ACCOUNT}:stateMachine:{naming.state_machine_name(PREFIX, 'lime-factory')}"
    return [e["executionArn"] for e in sfn.list_executions(stateMachineArn=arn)["executions"]]


def test_build_modules_builds_each_kernel_and_the_modules_land_in_the_bucket(sandbox: Sandbox) -> None:
    kernels = ("amzn:2:5.10.228-219.884.amzn2.x86_64:x86_64", "ubuntu:24.04:6.8.0-1019-aws:aarch64")
    result = irf("build-modules", *kernels, "--wait", "--poll-interval", "0.2")
    assert result.exit_code == 0, result.output
    assert "LimeFactory SUCCEEDED" in result.output
    assert "5.10.228-219.884.amzn2.x86_64" in result.output and "6.8.0-1019-aws" in result.output
    s3 = sandbox.cloud.session(SECURITY_ACCOUNT).client("s3")
    bucket = naming.modules_bucket(PREFIX, SECURITY_ACCOUNT, REGION)
    for prefix in ("amzn-2/5.10.228-219.884.amzn2.x86_64/x86_64/", "ubuntu-24.04/6.8.0-1019-aws/aarch64/"):
        listed = {o["Key"].removeprefix(prefix) for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]}
        assert listed == {"lime.ko", "build.json", "symbols.json.xz"}, prefix


def test_build_modules_names_every_bad_kernel_and_starts_nothing(sandbox: Sandbox) -> None:
    before = _lime_factory_runs(sandbox)
    result = irf("build-modules", "amzn:2", "centos:7:3.10.0-1160.el7.x86_64:x86_64", "amzn:2023:$(reboot):x86_64")
    assert result.exit_code == 2, result.output
    for named in ("amzn:2", "centos:7", "$(reboot)", "no build recipe for centos 7"):
        assert named in result.output, named
    assert _lime_factory_runs(sandbox) == before
