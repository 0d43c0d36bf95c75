"""Lambda handlers of the examination (thin: parse the event, assume the forensic role, call the runbook, answer).

They run in the security account and act in the forensic account through the forensic
automation role. Event and result keys are the state machine's contract
(statemachines/examination.py).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from handlers.common import naming
from handlers.common.errors import InvalidInput, NotReady
from handlers.common.evidence import report_key, report_written
from handlers.common.sessions import case_sessions, evidence_store
from handlers.common.settings import Settings
from handlers.examination import orchestration
from handlers.examination.orchestration import ExaminationExecutor, ExaminationOrder, SsmExaminationExecutor

logger = Logger(service="irforensics")
ACTOR = "irforensics-examination"

# The port to where the examination command runs. On AWS: SSM Run Command on the analysis
# instance. moto's SSM SendCommand runs nothing and moto has no DescribeInstanceInformation, so the
# local simulation passes its own executor as the handlers' `executor` keyword.
SSM_EXECUTOR: ExaminationExecutor = SsmExaminationExecutor()


def _case_id(event: dict[str, Any]) -> str:
    case_id = orchestration.check_case_id(event.get("CaseId"))
    logger.append_keys(case_id=case_id)
    return case_id


def _instance_id(event: dict[str, Any]) -> str:
    instance_id = event.get("InstanceId")
    if not isinstance(instance_id, str) or not instance_id.startswith("i-"):
        raise InvalidInput({"InstanceId": f"must be the analysis instance's id, got {instance_id!r}"})
    return instance_id


def launch_analysis_instance(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """{"CaseId", "Attempt"?} -> {"InstanceId", "LaunchedAt"}: one analysis instance from the toolset image."""
    case_id = _case_id(event)
    settings = Settings.from_env()
    sessions = case_sessions(settings, case_id)
    forensic = sessions.forensic()
    instance = orchestration.launch_analysis_instance(
        forensic.client("ec2"),
        forensic.client("ssm"),
        forensic.client("s3"),
        forensic.client("kms"),
        prefix=settings.prefix,
        bucket=settings.evidence_bucket,
        case_id=case_id,
        attempt=orchestration.check_attempt(event.get("Attempt")),
        instance_type=settings.analysis_instance_type,
    )
    if instance.newly_launched:
        evidence_store(settings, sessions).custody(
            "analysis-instance-launched",
            {
                "InstanceId": instance.instance_id,
                "ImageId": instance.image_id,
                "SubnetId": instance.subnet_id,
                "RootVolumeGiB": instance.root_volume_gib,
                "LaunchedAt": instance.launched_at,
            },
            actor=ACTOR,
        )
    logger.info("analysis instance", extra={"instance": instance.instance_id, "new": instance.newly_launched})
    return instance.to_event()


def analysis_instance_ready(
    event: dict[str, Any], context: Any, *, executor: ExaminationExecutor = SSM_EXECUTOR
) -> dict[str, Any]:
    """NotReady until the instance runs and its SSM agent is online; AnalysisInstanceLost if it stopped."""
    case_id, instance_id = _case_id(event), _instance_id(event)
    settings = Settings.from_env()
    sessions = case_sessions(settings, case_id)
    forensic = sessions.forensic()
    state = orchestration.check_ready(forensic.client("ec2"), instance_id, case_id)
    if not executor.agent_online(forensic, instance_id):
        raise NotReady(f"the SSM agent of analysis instance {instance_id} is not online yet")
    return {"InstanceId": instance_id, "State": state, "AgentOnline": True}


def run_examination(
    event: dict[str, Any], context: Any, *, executor: ExaminationExecutor = SSM_EXECUTOR
) -> dict[str, Any]:
    """{"CaseId", "InstanceId", "Window"?: {"IncidentStart", "IncidentEnd"}} -> {"CommandId"}."""
    case_id, instance_id = _case_id(event), _instance_id(event)
    window = event.get("Window")
    start, end = orchestration.incident_window(window if isinstance(window, dict) else event)
    settings = Settings.from_env()
    sessions = case_sessions(settings, case_id)
    forensic = sessions.forensic()
    order = ExaminationOrder(
        case_id=case_id,
        instance_id=instance_id,
        bucket=settings.evidence_bucket,
        region=settings.forensic_region,
        log_group=orchestration.examination_log_group(settings.prefix),
        incident_start=start,
        incident_end=end,
        document=naming.examination_document(settings.prefix),
    )
    command_id = executor.start(forensic, order)
    logger.info("examination started", extra={"instance": instance_id, "command": command_id})
    return {"CommandId": command_id, "InstanceId": instance_id}


def examination_status(
    event: dict[str, Any], context: Any, *, executor: ExaminationExecutor = SSM_EXECUTOR
) -> dict[str, Any]:
    """NotReady while the command runs; the report's key on success; ExaminationFailed with its stderr tail."""
    case_id, instance_id = _case_id(event), _instance_id(event)
    command_id = event.get("CommandId")
    if not isinstance(command_id, str) or not command_id:
        raise InvalidInput({"CommandId": "is required"})
    settings = Settings.from_env()
    sessions = case_sessions(settings, case_id)
    forensic = sessions.forensic()
    outcome = executor.outcome(forensic, command_id, instance_id)
    store = evidence_store(settings, sessions)
    written = not outcome.waiting and outcome.status == "Success" and report_written(store.s3, store.bucket, case_id)
    orchestration.examination_result(outcome, instance_id=instance_id, report_exists=written)
    report = report_key(case_id, "report.html")
    if not any(key.endswith("-case-examined.json") for key in store.keys("custody/")):
        store.custody(
            "case-examined",
            {
                "InstanceId": instance_id,
                "CommandId": command_id,
                "Outputs": [
                    {"Key": artefact.key, "Size": artefact.size, "Sha256": artefact.sha256}
                    for artefact in map(store.artefact, store.keys("analysis/") + store.keys("report/"))
                ],
            },
            actor=ACTOR,
        )
    return {"Examined": True, "Report": report, "CommandId": command_id}


def terminate_analysis_instance(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Terminate the case's analysis instances (found by tag; InstanceId optional); already gone is success."""
    case_id = _case_id(event)
    instance_id = _instance_id(event) if event.get("InstanceId") else ""
    settings = Settings.from_env()
    sessions = case_sessions(settings, case_id)
    forensic = sessions.forensic()
    ended = orchestration.terminate_analysis_instances(forensic.client("ec2"), case_id, instance_id)
    if ended.terminated:
        evidence_store(settings, sessions).custody(
            "analysis-instance-terminated", {"InstanceIds": ended.terminated}, actor=ACTOR
        )
    return ended.to_event()
