"""The examination state machine: statelint, then executed by moto's interpreter with our handlers in process."""

from __future__ import annotations

import functools
import io
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import botocore.loaders
import botocore.session
import pytest

from handlers.common import naming
from handlers.common.evidence import EvidenceStore, digest_key, digest_line, memory_image_key, sha256_hex
from handlers.common.settings import Settings
from handlers.common.tags import CASE_TAG
from simulation import lambda_local, local_aws, synthetic_memory
from simulation.disk_images import build_compromised_webserver_tree, build_ext4_image
from simulation.examination_local import InProcessExaminationExecutor
from simulation.local_aws import FORENSIC_ACCOUNT, MEMBER_ACCOUNT, PREFIX, REGION, SECURITY_ACCOUNT
from simulation.sandbox import wait_for_execution
from statemachines import examination, lint
from statemachines.asl import PollPolicy
from tests.handlers.test_examination_orchestration import ForensicLike, forensic_like
from tests.handlers.test_examination_remote import BUCKET, INSTANCE, plant_case

FAST = PollPolicy(interval_seconds=1, backoff_rate=1.0, max_attempts=3)
INCIDENT = datetime(2024, 6, 1, 3, 0, tzinfo=UTC)
EXAMPLE_ARNS = {
    spec.function: f"arn:aws:lambda:{REGION}:111122223333:function:irf-{spec.function}"
    for spec in examination.EXAMINATION_FUNCTIONS
}


def all_tasks(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: state for name, state in definition["States"].items() if state["Type"] == "Task"}


# -- the definition -------------------------------------------------------------------------------


def test_standalone_definition_passes_statelint() -> None:
    assert lint.statelint(examination.build_definition(EXAMPLE_ARNS)) == []


def test_embedded_states_pass_statelint_inside_a_machine() -> None:
    states = examination.examination_states(
        EXAMPLE_ARNS, None, next_state="Done", failure_state="Failed", case_id_path="$.Case.CaseId"
    )
    definition = {
        "StartAt": examination.start_state(),
        "States": {**states, "Done": {"Type": "Succeed"}, "Failed": {"Type": "Fail", "Error": "X"}},
    }
    assert lint.statelint(definition) == []
    assert all(name.startswith("Examine") for name in states)
    assert states["ExamineLaunchAnalysisInstance"]["Parameters"]["CaseId.$"] == "$.Case.CaseId"


def test_every_step_after_launch_is_caught_into_termination_then_the_original_error() -> None:
    definition = examination.build_definition(EXAMPLE_ARNS)
    states = definition["States"]
    for name, state in all_tasks(definition).items():
        if name == "TerminateAfterFailure":
            continue
        assert state["Catch"] == [
            {"ErrorEquals": ["States.ALL"], "ResultPath": "$.Failure", "Next": "TerminateAfterFailure"}
        ], name
    assert states["TerminateAfterFailure"]["Next"] == "ExaminationFailed"
    assert states["TerminateAfterFailure"]["Catch"][0]["Next"] == "ExaminationFailed"
    assert states["ExaminationFailed"]["ErrorPath"] == "$.Failure.Error"
    assert states["ExaminationFailed"]["CausePath"] == "$.Failure.Cause"
    assert states["TerminateAnalysisInstance"]["Next"] == "Examined"


def test_both_waits_are_bounded_polls_and_the_command_poll_outlasts_the_command() -> None:
    from handlers.examination.orchestration import EXAMINATION_TIMEOUT_SECONDS

    tasks = all_tasks(examination.build_definition(EXAMPLE_ARNS))
    polls = {name: r for name, s in tasks.items() for r in s["Retry"] if r["ErrorEquals"] == ["NotReady"]}
    assert set(polls) == {"AnalysisInstanceReady", "ExaminationStatus"}
    status = polls["ExaminationStatus"]
    assert status["IntervalSeconds"] * status["MaxAttempts"] > EXAMINATION_TIMEOUT_SECONDS
    fast = all_tasks(examination.build_definition(EXAMPLE_ARNS, poll=FAST))
    assert all(
        r["IntervalSeconds"] == 1 and r["MaxAttempts"] == 3
        for s in fast.values()
        for r in s["Retry"]
        if r["ErrorEquals"] == ["NotReady"]
    )


# -- executed ----------------------------------------------------------------------------------------


@dataclass
class ExaminationCloud:
    forensic: ForensicLike
    sfn: Any
    machine_arn: str
    invocations: list[lambda_local.Invocation]

    def run(self, case_id: str, **extra: str) -> dict[str, Any]:
        arn = self.sfn.start_execution(
            stateMachineArn=self.machine_arn, input=json.dumps({"CaseId": case_id, **extra})
        )["executionArn"]
        return wait_for_execution(self.sfn, arn)

    def case_instances(self, case_id: str) -> dict[str, str]:
        reservations = self.forensic.client("ec2").describe_instances(
            Filters=[{"Name": f"tag:{CASE_TAG}", "Values": [case_id]}]
        )["Reservations"]
        return {i["InstanceId"]: i["State"]["Name"] for r in reservations for i in r["Instances"]}

    def custody_events(self, case_id: str) -> list[str]:
        store = EvidenceStore(self.forensic.client("s3"), BUCKET, case_id)
        return [store.get_json(key)["event"] for key in store.keys("custody/")]

    def keys(self, case_id: str, under: str) -> list[str]:
        return EvidenceStore(self.forensic.client("s3"), BUCKET, case_id).keys(under)


def _code() -> bytes:
    # The code moto stores is never run: dispatch_in_process calls the configured Handler here.
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("README.txt", "handlers are dispatched in process by simulation.lambda_local")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    work = tmp_path_factory.mktemp("examination-machine")
    tree = build_compromised_webserver_tree(work / "tree", INCIDENT)
    return build_ext4_image(tree, work / "root.img").read_bytes()


@pytest.fixture
def cloud(aws: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[ExaminationCloud]:
    # Every handler call assumes the forensic role into a new boto3 session, and each session parses
    # the service models again (about a second for EC2): one shared, read-only loader keeps the file fast.
    monkeypatch.setattr(botocore.session, "create_loader", functools.cache(botocore.loaders.create_loader))
    settings = Settings(
        prefix=PREFIX, security_account=SECURITY_ACCOUNT, forensic_account=FORENSIC_ACCOUNT, forensic_region=REGION
    )
    security = boto3.Session(region_name=REGION)
    role_arn = security.client("iam").create_role(
        RoleName="irf-test-examination",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": "sts:AssumeRole",
                        "Principal": {"Service": ["lambda.amazonaws.com", "states.amazonaws.com"]},
                    }
                ],
            }
        ),
    )["Role"]["Arn"]
    lambdas = security.client("lambda")
    arns = {}
    for spec in examination.EXAMINATION_FUNCTIONS:
        arns[spec.function] = lambdas.create_function(
            FunctionName=naming.lambda_function_name(PREFIX, spec.function),
            Runtime="python3.12",
            Role=role_arn,
            Handler=spec.handler,
            Code={"ZipFile": _code()},
            Timeout=spec.timeout,
            MemorySize=spec.memory_size,
            Environment={"Variables": settings.to_env()},
        )["FunctionArn"]
    sfn = security.client("stepfunctions")
    machine_arn = sfn.create_state_machine(
        name=naming.state_machine_name(PREFIX, "examination"),
        roleArn=role_arn,
        definition=json.dumps(examination.build_definition(arns, poll=FAST)),
    )["stateMachineArn"]
    forensic = forensic_like(local_aws.account_session(FORENSIC_ACCOUNT))
    with lambda_local.dispatch_in_process(ports={"executor": InProcessExaminationExecutor()}) as invocations:
        yield ExaminationCloud(forensic=forensic, sfn=sfn, machine_arn=machine_arn, invocations=invocations)


def case_id_for(n: int) -> str:
    return f"{MEMBER_ACCOUNT}-{INSTANCE}-{REGION}-{1717300000 + n}"


def test_examination_writes_the_report_and_terminates_the_instance(cloud: ExaminationCloud, image: bytes) -> None:
    case_id = case_id_for(1)
    plant_case(cloud.forensic.client("s3"), case_id, image)
    execution = cloud.run(case_id, IncidentStart="2024-05-31T00:00:00Z", IncidentEnd="2024-06-02T00:00:00Z")
    assert execution["status"] == "SUCCEEDED", execution
    output = json.loads(execution["output"])
    assert output["Examination"]["Report"] == f"{case_id}/report/report.html"
    [(instance_id, state)] = cloud.case_instances(case_id).items()
    assert state in ("shutting-down", "terminated")
    assert output["AnalysisInstanceTermination"]["Terminated"] == [instance_id]
    assert f"{case_id}/report/report.html" in cloud.keys(case_id, "report/")
    assert f"{case_id}/analysis/timeline.csv" in cloud.keys(case_id, "analysis/")
    assert cloud.custody_events(case_id)[-3:] == [
        "analysis-instance-launched",
        "case-examined",
        "analysis-instance-terminated",
    ]
    # The incident window reached the examination.
    findings = json.loads(
        cloud.forensic.client("s3").get_object(Bucket=BUCKET, Key=f"{case_id}/analysis/findings.json")["Body"].read()
    )
    assert findings["incident_window"] == ["2024-05-31T00:00:00+00:00", "2024-06-02T00:00:00+00:00"]


def test_a_failed_examination_still_terminates_the_instance_and_fails_as_examination_failed(
    cloud: ExaminationCloud, image: bytes
) -> None:
    case_id = case_id_for(2)
    plant_case(cloud.forensic.client("s3"), case_id, image, recorded_sha256="0" * 64)
    execution = cloud.run(case_id)
    assert execution["status"] == "FAILED"
    assert execution["error"] == "ExaminationFailed"
    assert "EvidenceDigestMismatch" in execution["cause"]
    states = cloud.case_instances(case_id)
    assert len(states) == 1 and set(states.values()) <= {"shutting-down", "terminated"}
    assert cloud.keys(case_id, "report/") == [] and cloud.keys(case_id, "analysis/") == []
    assert cloud.custody_events(case_id)[-1] == "analysis-instance-terminated"


def test_an_unbuilt_toolset_image_fails_before_any_instance_exists(cloud: ExaminationCloud, image: bytes) -> None:
    case_id = case_id_for(3)
    plant_case(cloud.forensic.client("s3"), case_id, image)
    cloud.forensic.client("ssm").put_parameter(
        Name=naming.toolset_ami_parameter(PREFIX), Type="String", Value="unset", Overwrite=True
    )
    execution = cloud.run(case_id)
    assert execution["status"] == "FAILED"
    assert execution["error"] == "ToolsetNotBuilt"
    assert "Image Builder pipeline" in execution["cause"]
    assert cloud.case_instances(case_id) == {}
    # The failure path still looked for instances to end, and found none.
    terminations = [i for i in cloud.invocations if i.handler.endswith("terminate_analysis_instance")]
    assert [i.result for i in terminations] == [{"Terminated": [], "AlreadyGone": []}]


NO_EBS = f"{INSTANCE} boots from instance store and it has no EBS volumes: instance-store volumes cannot be acquired"


def plant_memory_only_case(s3: Any, case_id: str, memory: bytes) -> str:
    """An instance-store instance's case as acquisition leaves it: custody, a memory image with its digest, the
    manifest saying why no disk was acquired; no disk/ at all."""
    store = EvidenceStore(s3, BUCKET, case_id)
    request = {"instance_id": INSTANCE, "account": MEMBER_ACCOUNT, "region": REGION, "trigger": "tag"}
    store.custody("case-opened", {"request": {**request, "action": "Contain"}}, actor="test")
    key = memory_image_key(case_id, INSTANCE)
    store.put_bytes(key, memory, source=f"memory of {INSTANCE}", tool="test")
    store.put_bytes(digest_key(key), digest_line(sha256_hex(memory), key), source=key, tool="test")
    store.write_manifest({"memory": {"Acquired": True, "Key": key}, "disks_not_acquired": NO_EBS})
    return key


def test_a_case_with_memory_and_no_disk_is_examined_from_its_memory_and_the_report_says_there_was_no_disk(
    cloud: ExaminationCloud, tmp_path: Path
) -> None:
    case_id = case_id_for(4)
    image = tmp_path / "memory.lime"
    synthetic_memory.synthetic_memory_image(image, seed=4, size=1 << 20)
    key = plant_memory_only_case(cloud.forensic.client("s3"), case_id, image.read_bytes())
    execution = cloud.run(case_id)
    assert execution["status"] == "SUCCEEDED", execution
    assert cloud.keys(case_id, "disk/") == []
    [state] = cloud.case_instances(case_id).values()
    assert state in ("shutting-down", "terminated")
    assert cloud.custody_events(case_id)[-3:] == [
        "analysis-instance-launched",
        "case-examined",
        "analysis-instance-terminated",
    ]
    s3 = cloud.forensic.client("s3")

    def document(name: str) -> Any:
        return json.loads(s3.get_object(Bucket=BUCKET, Key=f"{case_id}/{name}")["Body"].read())

    # The memory image was checked against its acquisition digest before anything read it.
    assert document("analysis/verification.json")["images"][key]["sha256"] == sha256_hex(image.read_bytes())
    report = document("report/report.json")
    assert report["disk"]["examined"] is False and report["filesystems"] == []
    assert report["disk"]["summary"] == f"no disk was examined: there was no disk to examine ({NO_EBS})"
    # Synthetic memory has no kernel to find: analysed it is not, and the report and narrative say why.
    assert report["memory"]["status"] == "not analysed" and report["memory"]["image"] == f"{INSTANCE}.lime"
    assert report["narrative"][-1]["summary"].startswith(f"memory was not examined: {report['memory']['reason']}")
    assert (
        report["outcome"]["result"]
        == "response succeeded: evidence acquired; no disk to examine and memory not analysed"
    )
    html = s3.get_object(Bucket=BUCKET, Key=f"{case_id}/report/report.html")["Body"].read().decode()
    assert "No disk was examined: there was no disk to examine" in html.replace("<wbr>", "")
