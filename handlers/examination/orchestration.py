"""Examination orchestration in the forensic account: launch, run, watch and terminate an analysis instance.

The runbook, one step per Lambda (handlers/examination/handler.py), each given the forensic
account's clients:

1. Launch an analysis instance from the forensic toolset image (the AMI id Image Builder writes
   to an SSM parameter) in a private analysis subnet: no public address, IMDSv2 only, the
   analysis instance profile (reads the case, writes only `analysis/` and `report/`), an
   encrypted root volume big enough for the case's images, shutdown = terminate. A case with a
   memory image and no disk image (an instance-store instance has no EBS volume) is examined from
   its memory alone; a case with neither launches nothing (`NothingToExamine`).
2. Wait, bounded, until the instance runs and its SSM agent answers.
3. Run `python3.11 -m examiner.remote` on it with SSM Run Command. The command names the case,
   never its images, so it is the same with or without volumes: the instance lists and
   downloads the case, checks every image against its `.sha256` before reading it, examines,
   writes the report and uploads `analysis/` and `report/` with its own role. The command text
   holds no credentials.
4. Wait, bounded, for the command; its stderr tail becomes the failure cause.
5. Terminate every analysis instance of the case, whatever happened before.

Where the command runs is the `ExaminationExecutor` port: SSM here; the local simulation passes its
own (simulation.examination_local: moto's SSM runs nothing). Only Lambda code lives here: what
runs on the analysis instance is the examiner package.
"""

from __future__ import annotations

import hashlib
import math
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from botocore.exceptions import ClientError

from core.ids import check_case_id
from core.instances import InstanceState, find_instance
from core.settings import DEFAULT_ANALYSIS_INSTANCE_TYPE
from handlers.common import naming
from handlers.common.errors import ExaminationFailed, InvalidInput, IrfError, NotReady, ResponderUnavailable
from handlers.common.evidence import isotime
from handlers.common.naming import TOOLSET_AMI_UNSET
from handlers.common.tags import CASE_TAG, MANAGED_BY_TAG, MANAGED_BY_VALUE

# The value ForensicAccount gives the toolset AMI parameter until Image Builder's first build.
PURPOSE_TAG = "irforensics:purpose"
PURPOSE_EXAMINATION = "examination"
DEFAULT_INSTANCE_TYPE = DEFAULT_ANALYSIS_INSTANCE_TYPE
GIB = 1024**3
# Room for the examination's own output (bodyfile, timeline, Volatility JSON) and the OS.
ROOT_VOLUME_HEADROOM_GIB = 20
MAX_ROOT_VOLUME_GIB = 16 * 1024  # gp3's limit
# SSM Run Command: how long the examination may run, and how long delivery to the agent may take.
EXAMINATION_TIMEOUT_SECONDS = 4 * 3600
DELIVERY_TIMEOUT_SECONDS = 600
COMMAND_COMMENT = "irforensics examination"
WORK_DIR = "/var/lib/irforensics/cases"
# The toolset image installs the project for Amazon Linux 2023's python3.11 (its python3 is 3.9).
REMOTE_PYTHON = "python3.11"
STDERR_TAIL_CHARS = 2000

LIVE_STATES = ("pending", "running", "stopping", "stopped")
COMMAND_WAITING = ("Pending", "InProgress", "Delayed")
# Capacity in one zone says nothing about the next: try the other analysis subnets.
TRY_NEXT_SUBNET = ("InsufficientInstanceCapacity", "Unsupported", "InsufficientFreeAddressesInSubnet")


class ToolsetNotBuilt(IrfError):
    """The forensic toolset image does not exist yet (the image pipeline has never finished a build)."""


class AnalysisNetworkMissing(IrfError):
    """The analysis VPC, subnets or security group the forensic stack creates cannot be found."""


class AnalysisInstanceLost(IrfError):
    """The analysis instance stopped or terminated before the examination finished."""


class NothingToExamine(IrfError):
    """The case holds neither a disk image nor a memory image to examine."""


@dataclass(frozen=True)
class AnalysisNetwork:
    vpc_id: str
    subnet_ids: tuple[str, ...]
    security_group_id: str


@dataclass(frozen=True)
class CaseImages:
    """The images an analysis instance downloads: disk images (and memory images) with their sizes."""

    disk: dict[str, int]
    memory: dict[str, int]

    @property
    def total_bytes(self) -> int:
        return sum(self.disk.values()) + sum(self.memory.values())


@dataclass(frozen=True)
class AnalysisInstance:
    instance_id: str
    launched_at: str
    image_id: str
    subnet_id: str
    root_volume_gib: int
    newly_launched: bool

    def to_event(self) -> dict[str, Any]:
        return {"InstanceId": self.instance_id, "LaunchedAt": self.launched_at}


@dataclass(frozen=True)
class ExaminationOrder:
    """What to examine where: everything the remote command needs, none of it secret."""

    case_id: str
    instance_id: str
    bucket: str
    region: str
    log_group: str
    incident_start: datetime | None = None
    incident_end: datetime | None = None
    timeout_seconds: int = EXAMINATION_TIMEOUT_SECONDS
    # The forensic stack's own Command document (naming.examination_document): a fixed script.
    document: str = ""

    @property
    def incident_window(self) -> tuple[datetime, datetime] | None:
        if self.incident_start and self.incident_end:
            return self.incident_start, self.incident_end
        return None


@dataclass(frozen=True)
class CommandOutcome:
    status: str  # SSM's invocation status: Pending, InProgress, Delayed, Success, Failed, TimedOut, Cancelled
    stdout: str = ""
    stderr: str = ""

    @property
    def waiting(self) -> bool:
        return self.status in COMMAND_WAITING


@dataclass(frozen=True)
class Termination:
    terminated: list[str] = field(default_factory=list)
    already_gone: list[str] = field(default_factory=list)

    def to_event(self) -> dict[str, Any]:
        return {"Terminated": self.terminated, "AlreadyGone": self.already_gone}


def examination_log_group(prefix: str) -> str:
    return f"/{prefix}/irforensics/examination"


def _moment(field_name: str, value: Any) -> datetime:
    if not isinstance(value, str):
        raise InvalidInput({field_name: f"must be an ISO 8601 time, got {value!r}"})
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput({field_name: f"must be an ISO 8601 time, got {value!r}"}) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def incident_window(values: Mapping[str, Any]) -> tuple[datetime | None, datetime | None]:
    """IncidentStart/IncidentEnd from an event: both or neither, start before end."""
    start, end = values.get("IncidentStart"), values.get("IncidentEnd")
    if start in (None, "") and end in (None, ""):
        return None, None
    if start in (None, "") or end in (None, ""):
        raise InvalidInput({"IncidentStart": "give both IncidentStart and IncidentEnd, or neither"})
    first, last = _moment("IncidentStart", start), _moment("IncidentEnd", end)
    if first > last:
        raise InvalidInput({"IncidentEnd": "the incident window ends before it starts"})
    return first, last


def check_attempt(value: Any) -> str:
    """Which try at examining the case (the execution name): only hashed into the launch token."""
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > 256:
        raise InvalidInput({"Attempt": f"must be a string of at most 256 characters, got {value!r}"})
    return value


# -- what to launch ---------------------------------------------------------------------------------


def toolset_image_id(ssm: Any, prefix: str) -> str:
    parameter = naming.toolset_ami_parameter(prefix)
    try:
        value = str(ssm.get_parameter(Name=parameter)["Parameter"]["Value"]).strip()
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ParameterNotFound":
            raise
        raise ToolsetNotBuilt(
            f"SSM parameter {parameter} does not exist: deploy the forensic stack, then run "
            f"the {prefix}-ir-toolset image pipeline"
        ) from exc
    if value in ("", TOOLSET_AMI_UNSET) or not value.startswith("ami-"):
        raise ToolsetNotBuilt(
            f"the forensic toolset image has not been built yet ({parameter} = {value!r}): run "
            f"the {prefix}-ir-toolset EC2 Image Builder pipeline once, then examine the case again"
        )
    return value


def _name(tags: list[dict[str, str]] | None) -> str:
    return next((t["Value"] for t in tags or [] if t["Key"] == "Name"), "")


def find_analysis_network(ec2: Any, prefix: str) -> AnalysisNetwork:
    """The analysis VPC, its subnets and the analysis group, by the Name tags ForensicAccount gives them."""
    managed = {"Name": f"tag:{MANAGED_BY_TAG}", "Values": [MANAGED_BY_VALUE]}
    vpc_name = f"{prefix}-ir-analysis"
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": [vpc_name]}, managed])["Vpcs"]
    if len(vpcs) != 1:
        raise AnalysisNetworkMissing(
            f"expected one VPC tagged Name={vpc_name} in the forensic account, found "
            f"{len(vpcs)}: is the forensic stack deployed in this region?"
        )
    vpc_id = vpcs[0]["VpcId"]
    in_vpc = {"Name": "vpc-id", "Values": [vpc_id]}
    subnets = ec2.describe_subnets(Filters=[in_vpc, managed])["Subnets"]
    # Only the subnets named for their zone are analysis subnets (route tables share the names).
    subnet_ids = tuple(
        s["SubnetId"]
        for s in sorted(subnets, key=lambda s: s["AvailabilityZone"])
        if _name(s.get("Tags")) == f"{prefix}-ir-analysis-{s['AvailabilityZone']}"
    )
    if not subnet_ids:
        raise AnalysisNetworkMissing(f"the analysis VPC {vpc_id} has no subnet named {prefix}-ir-analysis-<zone>")
    group_name = f"{prefix}-ir-analysis-instances"
    groups = ec2.describe_security_groups(Filters=[in_vpc, managed, {"Name": "tag:Name", "Values": [group_name]}])[
        "SecurityGroups"
    ]
    if len(groups) != 1:
        raise AnalysisNetworkMissing(
            f"expected one security group tagged Name={group_name} in {vpc_id}, found {len(groups)}"
        )
    return AnalysisNetwork(vpc_id=vpc_id, subnet_ids=subnet_ids, security_group_id=groups[0]["GroupId"])


def case_images(s3: Any, bucket: str, case_id: str) -> CaseImages:
    """Sizes of `<CaseId>/disk/*.img` and `<CaseId>/memory/*.lime`, listed from the evidence bucket."""
    disk: dict[str, int] = {}
    memory: dict[str, int] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{case_id}/"):
        for item in page.get("Contents", []):
            key, size = str(item["Key"]), int(item["Size"])
            folder, _, name = key[len(case_id) + 1 :].partition("/")
            if folder == "disk" and "/" not in name and name.endswith(".img"):
                disk[key] = size
            elif folder == "memory" and "/" not in name and name.endswith(".lime"):
                memory[key] = size
    return CaseImages(disk=disk, memory=memory)


def root_volume_gib(image_bytes: int, image_root_gib: int) -> int:
    """Each image twice (the download and the examination's work on it) plus headroom, never below the AMI's."""
    wanted = math.ceil(2 * image_bytes / GIB) + ROOT_VOLUME_HEADROOM_GIB
    size = max(wanted, image_root_gib)
    if size > MAX_ROOT_VOLUME_GIB:
        raise ExaminationFailed(
            f"the case's images need a {size} GiB volume, more than one gp3 volume holds ({MAX_ROOT_VOLUME_GIB} GiB)"
        )
    return size


def client_token(case_id: str, attempt: str, subnet_id: str) -> str:
    """RunInstances idempotency token (at most 64 ASCII characters): a retried launch returns the same instance."""
    digest = hashlib.sha256(f"{case_id}|{attempt}|{subnet_id}".encode()).hexdigest()
    return f"irf-exam-{digest[:48]}"


def _case_filters(case_id: str) -> list[dict[str, Any]]:
    return [
        {"Name": f"tag:{CASE_TAG}", "Values": [case_id]},
        {"Name": f"tag:{PURPOSE_TAG}", "Values": [PURPOSE_EXAMINATION]},
        {"Name": f"tag:{MANAGED_BY_TAG}", "Values": [MANAGED_BY_VALUE]},
    ]


def analysis_instances(ec2: Any, case_id: str, states: tuple[str, ...] = LIVE_STATES) -> list[dict[str, Any]]:
    """The case's analysis instances in the given states (found by tag, never by id from the input alone)."""
    filters = [*_case_filters(case_id), {"Name": "instance-state-name", "Values": list(states)}]
    found: list[dict[str, Any]] = []
    for page in ec2.get_paginator("describe_instances").paginate(Filters=filters):
        for reservation in page["Reservations"]:
            found.extend(reservation["Instances"])
    return sorted(found, key=lambda i: str(i["LaunchTime"]))


def _tags(prefix: str, case_id: str) -> list[dict[str, str]]:
    return [
        {"Key": "Name", "Value": f"{prefix}-ir-analysis-{case_id}"[:255]},
        {"Key": CASE_TAG, "Value": case_id},
        {"Key": PURPOSE_TAG, "Value": PURPOSE_EXAMINATION},
        {"Key": MANAGED_BY_TAG, "Value": MANAGED_BY_VALUE},
    ]


def _image_root(ec2: Any, image_id: str) -> tuple[str, int]:
    try:
        images = ec2.describe_images(ImageIds=[image_id])["Images"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in ("InvalidAMIID.NotFound", "InvalidAMIID.Unavailable"):
            raise
        images = []
    if not images:
        raise ToolsetNotBuilt(
            f"the toolset AMI {image_id} named by the SSM parameter no longer exists: run the "
            "toolset image pipeline again"
        )
    image = images[0]
    device = str(image.get("RootDeviceName") or "/dev/xvda")
    size = next(
        (
            int(m["Ebs"].get("VolumeSize", 0))
            for m in image.get("BlockDeviceMappings", [])
            if m.get("DeviceName") == device and "Ebs" in m
        ),
        0,
    )
    return device, size


def _evidence_key_arn(kms: Any, prefix: str) -> str:
    alias = naming.forensic_key_alias(prefix)
    try:
        return str(kms.describe_key(KeyId=alias)["KeyMetadata"]["Arn"])
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("NotFoundException", "AccessDeniedException"):
            raise ResponderUnavailable(
                f"the forensic account has no usable KMS key {alias}: "
                f"{exc.response['Error']['Message']} (is the forensic stack deployed?)"
            ) from exc
        raise


def _as_instance(raw: Mapping[str, Any], *, image_id: str, size: int, newly: bool) -> AnalysisInstance:
    launched = raw.get("LaunchTime")
    return AnalysisInstance(
        instance_id=str(raw["InstanceId"]),
        launched_at=isotime(launched) if isinstance(launched, datetime) else str(launched or isotime()),
        image_id=str(raw.get("ImageId", image_id)),
        subnet_id=str(raw.get("SubnetId", "")),
        root_volume_gib=size,
        newly_launched=newly,
    )


def launch_analysis_instance(
    ec2: Any,
    ssm: Any,
    s3: Any,
    kms: Any,
    *,
    prefix: str,
    bucket: str,
    case_id: str,
    attempt: str = "",
    instance_type: str = DEFAULT_INSTANCE_TYPE,
) -> AnalysisInstance:
    """One analysis instance for the case; a repeated call returns the instance already running."""
    check_case_id(case_id)
    attempt = check_attempt(attempt)
    image_id = toolset_image_id(ssm, prefix)
    images = case_images(s3, bucket, case_id)
    # An instance without EBS volumes (instance store) leaves only its memory: that alone is examined.
    if not images.disk and not images.memory:
        raise NothingToExamine(
            f"case {case_id} has no disk image under s3://{bucket}/{case_id}/disk/ and no memory image under "
            f"{case_id}/memory/: acquisition wrote neither, so there is nothing to examine"
        )
    device, image_root_gib = _image_root(ec2, image_id)
    size = root_volume_gib(images.total_bytes, image_root_gib)
    running = analysis_instances(ec2, case_id)
    if running:
        return _as_instance(running[0], image_id=image_id, size=size, newly=False)

    network = find_analysis_network(ec2, prefix)
    key_arn = _evidence_key_arn(kms, prefix)
    tags = _tags(prefix, case_id)
    last_error: ClientError | None = None
    for subnet_id in network.subnet_ids:
        try:
            reservation = ec2.run_instances(
                ImageId=image_id,
                InstanceType=instance_type,
                MinCount=1,
                MaxCount=1,
                ClientToken=client_token(case_id, attempt, subnet_id),
                NetworkInterfaces=[
                    {
                        "DeviceIndex": 0,
                        "SubnetId": subnet_id,
                        "Groups": [network.security_group_id],
                        "AssociatePublicIpAddress": False,
                        "DeleteOnTermination": True,
                    }
                ],
                IamInstanceProfile={"Name": naming.analysis_profile(prefix)},
                # The instance ends itself (shutdown) or is ended by the flow: either way it is gone.
                InstanceInitiatedShutdownBehavior="terminate",
                MetadataOptions={"HttpTokens": "required", "HttpEndpoint": "enabled", "HttpPutResponseHopLimit": 1},
                # The root volume holds copies of evidence: encrypted under the evidence key, gone with the instance.
                BlockDeviceMappings=[
                    {
                        "DeviceName": device,
                        "Ebs": {
                            "VolumeSize": size,
                            "VolumeType": "gp3",
                            "Encrypted": True,
                            "KmsKeyId": key_arn,
                            "DeleteOnTermination": True,
                        },
                    }
                ],
                TagSpecifications=[
                    {"ResourceType": "instance", "Tags": tags},
                    {"ResourceType": "volume", "Tags": tags},
                ],
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in TRY_NEXT_SUBNET:
                raise
            last_error = exc
            continue
        return _as_instance(reservation["Instances"][0], image_id=image_id, size=size, newly=True)
    raise ExaminationFailed(f"no analysis subnet could start a {instance_type} instance: {last_error}")


# -- waiting for it -----------------------------------------------------------------------------------


def _require_analysis_instance(instance: InstanceState, case_id: str) -> None:
    tags = instance.tags
    if tags.get(CASE_TAG) != case_id or tags.get(PURPOSE_TAG) != PURPOSE_EXAMINATION:
        raise InvalidInput({"InstanceId": f"{instance.instance_id} is not an analysis instance of case {case_id}"})


def check_ready(ec2: Any, instance_id: str, case_id: str) -> str:
    """The state once the instance runs; NotReady while it starts; AnalysisInstanceLost if it stopped or went away."""
    instance = find_instance(ec2, instance_id)
    if instance is None:
        raise AnalysisInstanceLost(f"analysis instance {instance_id} no longer exists")
    _require_analysis_instance(instance, case_id)
    state = instance.state
    if state == "pending":
        raise NotReady(f"analysis instance {instance_id} is still starting")
    if state != "running":
        reason = instance.state_reason or "no reason given"
        raise AnalysisInstanceLost(
            f"analysis instance {instance_id} is {state} ({reason}); the examination cannot run on it"
        )
    return state


# -- the command ----------------------------------------------------------------------------------------


def examination_commands(order: ExaminationOrder) -> list[str]:
    """The shell lines SSM runs on the instance; the instance profile gives S3 access, the text no secret."""
    check_case_id(order.case_id)
    remote = [
        REMOTE_PYTHON,
        "-m",
        "examiner.remote",
        "--region",
        order.region,
        "--bucket",
        order.bucket,
        "--case-id",
        order.case_id,
        "--work-dir",
        WORK_DIR,
    ]
    if order.incident_start and order.incident_end:
        remote += [
            "--incident-start",
            order.incident_start.isoformat(),
            "--incident-end",
            order.incident_end.isoformat(),
        ]
    return [
        "set -euo pipefail",
        # Evidence copies on the instance are readable by root only.
        "umask 077",
        f"install -d -m 0700 {shlex.quote(WORK_DIR)}",
        # Downloads each image, runs `sha256sum -c` against its .sha256 before examining, then
        # examines, writes the report and uploads analysis/ and report/ (write-once puts).
        shlex.join(remote),
    ]


def examination_parameters(order: ExaminationOrder) -> dict[str, list[str]]:
    """The examination document's parameters; the document's allowedPattern checks them again."""
    check_case_id(order.case_id)
    window = order.incident_start and order.incident_end
    return {
        "CaseId": [order.case_id],
        "Bucket": [order.bucket],
        "Region": [order.region],
        "IncidentStart": [order.incident_start.isoformat() if window and order.incident_start else ""],
        "IncidentEnd": [order.incident_end.isoformat() if window and order.incident_end else ""],
        "ExecutionTimeout": [str(order.timeout_seconds)],
    }


class ExaminationExecutor(Protocol):
    """Where the examination command runs: SSM Run Command on AWS, this process in the simulation."""

    def agent_online(self, forensic: Any, instance_id: str) -> bool: ...

    def start(self, forensic: Any, order: ExaminationOrder) -> str: ...

    def outcome(self, forensic: Any, command_id: str, instance_id: str) -> CommandOutcome: ...


class SsmExaminationExecutor:
    """SSM Run Command (the forensic stack's examination document) on the analysis instance, output to CloudWatch."""

    def _ssm(self, forensic: Any) -> Any:
        # The session's clients carry the retry/timeout config (core.clients).
        return forensic.client("ssm")

    def agent_online(self, forensic: Any, instance_id: str) -> bool:
        answer = self._ssm(forensic).describe_instance_information(
            Filters=[{"Key": "InstanceIds", "Values": [instance_id]}]
        )
        return any(i.get("PingStatus") == "Online" for i in answer.get("InstanceInformationList", []))

    def start(self, forensic: Any, order: ExaminationOrder) -> str:
        ssm = self._ssm(forensic)
        # SendCommand has no idempotency token: a retried Lambda must not start a second examination
        # writing the same write-once keys, so an examination already sent to this instance is reused.
        for command in ssm.list_commands(InstanceId=order.instance_id).get("Commands", []):
            if command.get("Comment") == COMMAND_COMMENT and command.get("Status") in (*COMMAND_WAITING, "Success"):
                return str(command["CommandId"])
        if not order.document:
            raise ValueError("the examination order names no Command document")
        sent = ssm.send_command(
            InstanceIds=[order.instance_id],
            DocumentName=order.document,
            Comment=COMMAND_COMMENT,
            TimeoutSeconds=DELIVERY_TIMEOUT_SECONDS,
            Parameters=examination_parameters(order),
            # CloudWatch rather than S3: the only bucket the instance writes is the evidence bucket.
            CloudWatchOutputConfig={"CloudWatchOutputEnabled": True, "CloudWatchLogGroupName": order.log_group},
        )
        return str(sent["Command"]["CommandId"])

    def outcome(self, forensic: Any, command_id: str, instance_id: str) -> CommandOutcome:
        try:
            invocation = self._ssm(forensic).get_command_invocation(CommandId=command_id, InstanceId=instance_id)
        except ClientError as exc:
            # Right after SendCommand the invocation may not exist yet.
            if exc.response["Error"]["Code"] == "InvocationDoesNotExist":
                return CommandOutcome(status="Pending")
            raise
        return CommandOutcome(
            status=str(invocation.get("Status", "Pending")),
            stdout=str(invocation.get("StandardOutputContent", "")),
            stderr=str(invocation.get("StandardErrorContent", "")),
        )


def examination_result(outcome: CommandOutcome, *, instance_id: str, report_exists: bool) -> None:
    """NotReady while the command runs; ExaminationFailed with the stderr tail unless it succeeded with a report."""
    if outcome.waiting:
        raise NotReady(f"examination on {instance_id} is {outcome.status}")
    if outcome.status != "Success":
        tail = outcome.stderr.strip()[-STDERR_TAIL_CHARS:] or outcome.stdout.strip()[-STDERR_TAIL_CHARS:]
        raise ExaminationFailed(f"examination on {instance_id} ended {outcome.status}: {tail or '(no output)'}")
    if not report_exists:
        raise ExaminationFailed(f"examination on {instance_id} reported success but wrote no report/report.html")


# -- the end -------------------------------------------------------------------------------------------


def terminate_analysis_instances(ec2: Any, case_id: str, instance_id: str = "") -> Termination:
    """Terminate every analysis instance of the case (and `instance_id`, if it is one); gone ones are fine."""
    check_case_id(case_id)
    targets = {str(i["InstanceId"]): str(i["State"]["Name"]) for i in analysis_instances(ec2, case_id)}
    gone: list[str] = []
    if instance_id and instance_id not in targets:
        instance = find_instance(ec2, instance_id)
        if instance is None or instance.gone:
            gone.append(instance_id)
        else:
            _require_analysis_instance(instance, case_id)
            targets[instance_id] = instance.state
    if not targets:
        return Termination(terminated=[], already_gone=gone)
    try:
        answer = ec2.terminate_instances(InstanceIds=sorted(targets))["TerminatingInstances"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "InvalidInstanceID.NotFound":
            raise
        # One of them vanished between the describe and the terminate: end the rest one by one.
        answer = []
        for target in sorted(targets):
            try:
                answer += ec2.terminate_instances(InstanceIds=[target])["TerminatingInstances"]
            except ClientError as single:
                if single.response["Error"]["Code"] != "InvalidInstanceID.NotFound":
                    raise
                gone.append(target)
    terminated = sorted(str(item["InstanceId"]) for item in answer)
    return Termination(terminated=terminated, already_gone=sorted(gone))
