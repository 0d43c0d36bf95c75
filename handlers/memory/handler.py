"""Lambda handlers of the memory branch (thin: parse the event, pick the session, call, answer).

Event keys are the state machine's contract (statemachines/memory.py). Every handler that can
end the branch answers {"Acquired": bool, "Reason": str, "Key"?, "Sha256"?, "Size"?}; a wait
raises NotReady, which the state machine retries with a bounded backoff.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools import Logger
from botocore.config import Config
from botocore.exceptions import ClientError

from handlers.common.errors import AcquisitionFailed, InvalidInput, ModuleUnavailable, NotReady
from handlers.common.evidence import digest_key, digest_line, isotime, memory_image_key
from handlers.common.sessions import BOTO_CONFIG, case_sessions, evidence_store, lambda_session
from handlers.common.settings import Settings
from handlers.common.tags import ACTION_CONTAIN
from handlers.memory import capture, capture_path, kernel
from handlers.memory.kernel import KernelInfo

logger = Logger(service="irforensics")
ACTOR = "irforensics-memory"
TOOLS = {
    "kcore": "/proc/kcore via SSM Run Command (irforensics handlers.memory.acquire, no kernel module)",
    "lime": "LiME via SSM Run Command (irforensics handlers.memory.acquire, the LimeFactory's module)",
}
DISCOVERY_TIMEOUT_SECONDS = 60
PENDING = ("Pending", "InProgress", "Delayed")
# Pre-signed URLs must be SigV4 (SigV2 URLs carry the access key id and no session scope).
PRESIGN_CONFIG = BOTO_CONFIG.merge(Config(signature_version="s3v4", s3={"addressing_style": "virtual"}))


def _settings() -> Settings:
    settings = Settings.from_env()
    # The URLs are signed with the forensic automation role's session (one hour at most), so the
    # capture must end inside it: its timeout plus the URL margin stays below 3600 seconds.
    if not 120 <= settings.capture_timeout_seconds <= 3600 - capture.URL_MARGIN_SECONDS:
        raise RuntimeError(f"IRF_MEMORY_CAPTURE_TIMEOUT_SECONDS must be 120..{3600 - capture.URL_MARGIN_SECONDS}")
    return settings


def _require(event: Mapping[str, Any], *names: str) -> list[Any]:
    missing = {name: "is required" for name in names if event.get(name) in (None, "")}
    if missing:
        raise InvalidInput(missing)
    return [event[name] for name in names]


def _target(event: Mapping[str, Any]) -> tuple[str, str, str, str]:
    case_id, instance_id, account, region = _require(event, "CaseId", "InstanceId", "Account", "Region")
    logger.set_correlation_id(case_id)
    logger.append_keys(instance_id=instance_id, account=account, region=region)
    return str(case_id), str(instance_id), str(account), str(region)


def _kernel(event: Mapping[str, Any]) -> KernelInfo:
    raw = event.get("Kernel")
    if not isinstance(raw, Mapping):
        raise InvalidInput({"Kernel": "must be the kernel facts from discovery"})
    try:
        return KernelInfo.from_event(dict(raw))
    except (KeyError, TypeError, ValueError, kernel.DiscoveryUnreadable) as exc:
        raise InvalidInput({"Kernel": str(exc)}) from exc


def not_acquired(reason: str) -> dict[str, Any]:
    return {"Acquired": False, "Reason": reason}


# ---------------------------------------------------------------------------------------------
# The capture path (Contain mode only).


def open_path(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Contain mode: HTTPS to S3 and SSM only, acquisition profile. {"Opened", "Reason"}."""
    case_id, instance_id, account, region = _target(event)
    if event.get("Action") != ACTION_CONTAIN:
        return {
            "Opened": False,
            "Reason": "not contained: the instance keeps its own network and profile",
            "Refused": False,
        }
    config = _settings()
    sessions = case_sessions(config, case_id)
    ec2 = sessions.member(account, region).client("ec2", config=BOTO_CONFIG)
    try:
        path = capture_path.open_capture_path(ec2, instance_id, prefix=config.prefix, region=region)
    except capture_path.CapturePathUnavailable as exc:
        return {"Opened": False, "Reason": str(exc), "Refused": True}
    evidence_store(config, sessions).custody(
        "memory-capture-path-opened", {"InstanceId": instance_id, **path.to_event()}, actor=ACTOR
    )
    return {"Opened": True, "Reason": path.reason, "Refused": False}


def close_path(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Put back the isolation groups and profile recorded by open_path; delete the capture group."""
    case_id, instance_id, account, region = _target(event)
    if event.get("Action") != ACTION_CONTAIN:
        return {"Closed": True, "Changes": []}
    config = _settings()
    sessions = case_sessions(config, case_id)
    ec2 = sessions.member(account, region).client("ec2", config=BOTO_CONFIG)
    changes = capture_path.close_capture_path(ec2, instance_id, prefix=config.prefix, region=region)
    if changes:
        evidence_store(config, sessions).custody(
            "memory-capture-path-closed", {"InstanceId": instance_id, "Changes": changes}, actor=ACTOR
        )
    return {"Closed": True, "Changes": changes}


# ---------------------------------------------------------------------------------------------
# Kernel discovery.


def _agent_state(ssm: Any, instance_id: str) -> dict[str, Any] | None:
    found = ssm.describe_instance_information(Filters=[{"Key": "InstanceIds", "Values": [instance_id]}])[
        "InstanceInformationList"
    ]
    return dict(found[0]) if found else None


def discover_kernel(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Send the read-only discovery commands; {"Capturable": false, "Reason"} when SSM cannot reach it."""
    case_id, instance_id, account, region = _target(event)
    config = _settings()
    ssm = case_sessions(config, case_id).member(account, region).client("ssm", config=BOTO_CONFIG)
    agent = _agent_state(ssm, instance_id)
    if agent is None:
        return {
            "Capturable": False,
            "Reason": f"no SSM agent is registered for {instance_id} in {account}/{region}: "
            "memory cannot be captured without Run Command",
        }
    if agent.get("PlatformType", "Linux") != "Linux":
        return {"Capturable": False, "Reason": f"{instance_id} runs {agent.get('PlatformType')}: LiME is Linux only"}
    if agent.get("PingStatus") != "Online":
        if event.get("Action") == ACTION_CONTAIN:
            # The agent reconnects once the capture path is open; that takes a poll or two.
            raise NotReady(f"SSM agent of {instance_id} is {agent.get('PingStatus')}; waiting for it to reconnect")
        return {
            "Capturable": False,
            "Reason": f"the SSM agent of {instance_id} is {agent.get('PingStatus')}, not Online",
        }
    command = ssm.send_command(
        InstanceIds=[instance_id],
        DocumentName=capture.document_name(config.prefix, capture.DISCOVERY_DOCUMENT_SUFFIX),
        TimeoutSeconds=DISCOVERY_TIMEOUT_SECONDS * 2,
        Comment=f"irforensics kernel discovery {case_id}"[:100],
    )["Command"]
    return {"Capturable": True, "Reason": "SSM agent online", "CommandId": command["CommandId"]}


def _invocation(ssm: Any, command_id: str, instance_id: str) -> dict[str, Any]:
    try:
        return dict(ssm.get_command_invocation(CommandId=command_id, InstanceId=instance_id))
    except ClientError as exc:
        # Right after SendCommand the invocation may not exist yet.
        if exc.response["Error"]["Code"] == "InvocationDoesNotExist":
            raise NotReady(f"command {command_id} has no invocation on {instance_id} yet") from exc
        raise


def discovery_result(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The kernel facts; {"Kernel", "Loadable", "Reason", "Prefix"}."""
    case_id, instance_id, account, region = _target(event)
    (command_id,) = _require(event, "CommandId")
    config = _settings()
    ssm = case_sessions(config, case_id).member(account, region).client("ssm", config=BOTO_CONFIG)
    invocation = _invocation(ssm, str(command_id), instance_id)
    status = invocation.get("Status", "")
    if status in PENDING:
        raise NotReady(f"kernel discovery on {instance_id} is {status}")
    if status != "Success":
        raise AcquisitionFailed(
            f"kernel discovery on {instance_id} ended {status}: {invocation.get('StandardErrorContent', '')[:300]}"
        )
    info = kernel.parse_discovery(invocation.get("StandardOutputContent", ""))
    method, reason = kernel.capture_method(info)
    logger.info("kernel discovered", extra={"kernel": info.to_event(), "method": method})
    return {
        "Kernel": info.to_event(),
        # "Loadable": some method can capture this host; Method says which (kcore needs no module).
        "Loadable": method != "none",
        "Method": method,
        "Reason": reason,
        "Prefix": kernel.module_prefix(info),
        "Describe": info.describe(),
    }


# ---------------------------------------------------------------------------------------------
# Modules.


def _modules_s3(config: Settings, *, presign: bool = False) -> Any:
    return lambda_session(config.region).client("s3", config=PRESIGN_CONFIG if presign else BOTO_CONFIG)


def _exists(s3: Any, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
            return False
        raise
    return True


def module_sha256(s3: Any, bucket: str, prefix: str) -> str:
    """lime.ko's sha256 as build.json records it (the instance checks the download against it)."""
    build = json.loads(s3.get_object(Bucket=bucket, Key=prefix + kernel.BUILD_FILE)["Body"].read())
    digest = str(build.get("files", {}).get(kernel.MODULE_FILE, {}).get("sha256", ""))
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise ModuleUnavailable(f"s3://{bucket}/{prefix}{kernel.BUILD_FILE} has no sha256 for {kernel.MODULE_FILE}")
    return digest


def check_module(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """{"ModuleAvailable", "Prefix", "Missing"}: lime.ko, build.json and the ISF of this kernel."""
    info = _kernel(event)
    config = _settings()
    s3 = _modules_s3(config)
    prefix = kernel.module_prefix(info)
    required = kernel.required_module_files(info)
    missing = [name for name in required if not _exists(s3, config.modules_bucket, prefix + name)]
    return {
        "ModuleAvailable": not missing,
        "Prefix": prefix,
        "Missing": missing,
        "Reason": (
            f"no module for {info.describe()}: missing {', '.join(missing)} in s3://{config.modules_bucket}/{prefix}"
        )
        if missing
        else "module and symbols present",
    }


def _execution_name(info: KernelInfo, case_id: str) -> str:
    # Execution names: 1-80 of [A-Za-z0-9-_]; unique per machine for 90 days, so the case goes in.
    stem = re.sub(r"[^A-Za-z0-9_-]", "-", f"{info.distro}{info.distro_version}-{info.kernel_release}-{info.arch}")
    return f"{stem[:60]}-{secrets.token_hex(4)}-{re.sub(r'[^A-Za-z0-9]', '', case_id)[-10:]}"[:80]


def request_module_build(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Start the LimeFactory for this kernel; {"ExecutionArn"}."""
    info = _kernel(event)
    (case_id,) = _require(event, "CaseId")
    config = _settings()
    buildable, reason = kernel.is_buildable(info)
    if not buildable:
        raise ModuleUnavailable(reason)
    if not config.lime_factory_arn:
        raise ModuleUnavailable("no LimeFactory state machine is configured (IRF_LIME_FACTORY_STATE_MACHINE_ARN)")
    build = {
        "Distro": info.distro,
        "DistroVersion": info.distro_version,
        "KernelRelease": info.kernel_release,
        "Arch": info.arch,
    }
    sfn = lambda_session(config.region).client("stepfunctions", config=BOTO_CONFIG)
    started = sfn.start_execution(
        stateMachineArn=config.lime_factory_arn,
        name=_execution_name(info, str(case_id)),
        input=json.dumps({"Builds": [build], "RequestedBy": str(case_id)}),
    )
    logger.info("module build requested", extra={"build": build, "execution": started["executionArn"]})
    return {"ExecutionArn": started["executionArn"]}


def module_build_status(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """NotReady while the LimeFactory runs; then {"Succeeded", "Status"}."""
    (execution_arn,) = _require(event, "ExecutionArn")
    config = _settings()
    sfn = lambda_session(config.region).client("stepfunctions", config=BOTO_CONFIG)
    status = str(sfn.describe_execution(executionArn=execution_arn)["status"])
    if status == "RUNNING":
        raise NotReady(f"LimeFactory execution {execution_arn} is still running")
    return {"Succeeded": status == "SUCCEEDED", "Status": status}


# ---------------------------------------------------------------------------------------------
# The capture.


def start_capture(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Pre-sign the multipart upload (and for LiME the module), send the capture; {"CommandId", "Method", ...}."""
    case_id, instance_id, account, region = _target(event)
    info = _kernel(event)
    config = _settings()
    method, why = kernel.capture_method(info)
    if method == "none":
        raise ModuleUnavailable(why)
    prefix = kernel.module_prefix(info)
    timeout = config.capture_timeout_seconds
    expires = timeout + capture.URL_MARGIN_SECONDS
    module_url, digest = "none", "none"
    if method == "lime":
        modules = _modules_s3(config, presign=True)
        digest = module_sha256(modules, config.modules_bucket, prefix)
        module_url = capture.presign_module(modules, config.modules_bucket, prefix + kernel.MODULE_FILE, expires)
    sessions = case_sessions(config, case_id)
    evidence_s3 = sessions.forensic().client("s3", region_name=config.forensic_region, config=PRESIGN_CONFIG)
    key = memory_image_key(case_id, instance_id)
    plan = capture.plan_parts(info.memory_bytes)
    upload = capture.presign_capture(
        evidence_s3,
        config.evidence_bucket,
        key,
        plan.part_count,
        expires,
        part_size=plan.part_size,
        metadata={
            "source": f"ec2:{account}:{region}:{instance_id}",
            "tool": TOOLS[method][:256],
            "method": method,
            "acquired-at": isotime(),
            "kernel": info.describe()[:256],
        },
    )
    symbols = capture.presign_symbol_sources(evidence_s3, config.evidence_bucket, key, expires)
    parameters = capture.capture_parameters(
        upload,
        symbols,
        method=method,
        timeout_seconds=timeout,
        module_url=module_url,
        module_sha256=digest,
        port=20000 + secrets.randbelow(40000),
    )
    ssm = sessions.member(account, region).client("ssm", config=BOTO_CONFIG)
    try:
        command = ssm.send_command(
            InstanceIds=[instance_id],
            DocumentName=capture.document_name(config.prefix, capture.CAPTURE_DOCUMENT_SUFFIX),
            TimeoutSeconds=300,
            Comment=f"irforensics memory capture ({method}) {case_id}"[:100],
            Parameters=parameters,
        )["Command"]
    except Exception:
        evidence_s3.abort_multipart_upload(Bucket=upload.bucket, Key=key, UploadId=upload.upload_id)
        raise
    started = {
        "InstanceId": instance_id,
        "Kernel": info.to_event(),
        "Method": method,
        "MethodReason": why,
        "CommandId": command["CommandId"],
        "Upload": upload.to_event(),
    }
    if method == "lime":
        started |= {"Module": f"s3://{config.modules_bucket}/{prefix}", "ModuleSha256": digest}
    evidence_store(config, sessions).custody("memory-capture-started", started, actor=ACTOR)
    return {"CommandId": command["CommandId"], "Method": method, **upload.to_event()}


def _abort(s3: Any, capture_event: Mapping[str, Any]) -> None:
    try:
        s3.abort_multipart_upload(
            Bucket=capture_event["Bucket"], Key=capture_event["Key"], UploadId=capture_event["UploadId"]
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "NoSuchUpload":
            raise


def _uploaded_parts(s3: Any, capture_event: Mapping[str, Any]) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    for page in s3.get_paginator("list_parts").paginate(
        Bucket=capture_event["Bucket"], Key=capture_event["Key"], UploadId=capture_event["UploadId"]
    ):
        parts.extend(page.get("Parts", []))
    return sorted(parts, key=lambda p: int(p["PartNumber"]))


def complete_upload(s3: Any, capture_event: Mapping[str, Any], report: capture.CaptureReport) -> str | None:
    """Complete the upload from what S3 holds, if it is exactly what the instance says it sent.

    Returns why not, or None once completed.
    """
    uploaded = _uploaded_parts(s3, capture_event)
    held = [(int(p["PartNumber"]), str(p["ETag"]).strip('"')) for p in uploaded]
    if held != list(report.parts):
        return (
            f"the parts in S3 ({len(held)}) differ from the {len(report.parts)} the instance reported; "
            "upload not completed"
        )
    held_size = sum(int(p["Size"]) for p in uploaded)
    if held_size != report.size:
        return f"S3 holds {held_size} bytes but the instance streamed {report.size}; upload not completed"
    s3.complete_multipart_upload(
        Bucket=capture_event["Bucket"],
        Key=capture_event["Key"],
        UploadId=capture_event["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": int(p["PartNumber"]), "ETag": p["ETag"]} for p in uploaded]},
    )
    return None


def capture_result(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """NotReady while the capture runs; then the memory result of the branch."""
    case_id, instance_id, account, region = _target(event)
    capture_event = event.get("Capture")
    if not isinstance(capture_event, Mapping):
        raise InvalidInput({"Capture": "must be the answer of start_capture"})
    command_id, key = str(capture_event.get("CommandId", "")), str(capture_event.get("Key", ""))
    if not command_id or key != memory_image_key(case_id, instance_id):
        raise InvalidInput({"Capture": "needs the CommandId and this case's memory image key"})
    config = _settings()
    sessions = case_sessions(config, case_id)
    ssm = sessions.member(account, region).client("ssm", config=BOTO_CONFIG)
    invocation = _invocation(ssm, command_id, instance_id)
    status = invocation.get("Status", "")
    if status in PENDING:
        raise NotReady(f"memory capture on {instance_id} is {status}")
    s3 = sessions.forensic().client("s3", region_name=config.forensic_region, config=BOTO_CONFIG)
    store = evidence_store(config, sessions)
    try:
        report = capture.parse_capture_output(invocation.get("StandardOutputContent", ""))
    except capture.CaptureReportUnreadable as exc:
        report = capture.CaptureReport(acquired=False, reason=f"capture command ended {status}: {exc}")
    reason = report.reason if not report.acquired else complete_upload(s3, capture_event, report)
    if reason is not None:
        _abort(s3, capture_event)
        store.custody(
            "memory-not-acquired",
            {
                "InstanceId": instance_id,
                "CommandId": command_id,
                "CommandStatus": status,
                "Method": report.method or str(capture_event.get("Method", "")),
                "Reason": reason,
            },
            actor=ACTOR,
        )
        return not_acquired(f"memory capture failed: {reason}")
    size = int(s3.head_object(Bucket=capture_event["Bucket"], Key=key)["ContentLength"])
    if size != report.size:
        return not_acquired(f"the memory image holds {size} bytes, the instance streamed {report.size}")
    method = report.method
    store.put_bytes(
        digest_key(key),
        digest_line(report.sha256, key),
        source=f"ec2:{account}:{region}:{instance_id}",
        tool=TOOLS[method],
        content_type="text/plain",
    )
    sources = symbol_sources_held(s3, capture_event["Bucket"], key, report)
    store.custody(
        "memory-acquired",
        {
            "InstanceId": instance_id,
            "Key": key,
            "Method": method,
            "Sha256": report.sha256,
            "Size": size,
            "Parts": len(report.parts),
            "Ranges": [[start, end] for start, end in report.ranges],
            "RangesFrom": report.ranges_from,
            "UnreadableBytes": report.unreadable_bytes,
            "Seconds": report.seconds,
            "CommandId": command_id,
            "Sha256ComputedBy": "the capture program on the instance, over the LiME stream as it was uploaded",
            "SymbolSources": sources,
        },
        actor=ACTOR,
    )
    logger.info("memory acquired", extra={"key": key, "size": size, "sha256": report.sha256, "method": method})
    reason = (
        "physical memory read through /proc/kcore (no module) and streamed in LiME format to the evidence bucket"
        if method == "kcore"
        else "LiME dump streamed to the evidence bucket"
    )
    return {
        "Acquired": True,
        "Method": method,
        "Reason": reason,
        "Key": key,
        "Sha256": report.sha256,
        "Size": size,
        "SymbolSources": {name: item["Key"] for name, item in sources.items() if "Key" in item},
    }


def symbol_sources_held(s3: Any, bucket: str, image_key: str, report: capture.CaptureReport) -> dict[str, Any]:
    """The host's BTF, kallsyms and banner the evidence bucket holds, each as big as the instance said."""
    held: dict[str, Any] = {}
    for name, key in capture.symbol_source_keys(image_key).items():
        claimed = report.symbol_sources.get(name, {"Missing": "not reported by the capture"})
        if "Missing" in claimed:
            held[name] = claimed
            continue
        try:
            size = int(s3.head_object(Bucket=bucket, Key=key)["ContentLength"])
        except ClientError:
            held[name] = {"Missing": f"s3://{bucket}/{key} is absent"}
            continue
        if size != claimed["Size"]:
            held[name] = {"Missing": f"s3://{bucket}/{key} holds {size} bytes, the instance sent {claimed['Size']}"}
            continue
        held[name] = {"Key": key, "Sha256": claimed["Sha256"], "Size": size}
    return held
