"""`irf simulate`: a whole incident, end to end, on this machine (the embedded default and the demo).

Three simulated accounts on moto; both stacks deployed by the real Pulumi program; a compromised
web server in an Auto Scaling group behind a load balancer whose disks hold real ext4 and XFS
file systems with planted evidence; the incident triggered by tagging the instance; the real
state machine run by moto's interpreter with our handlers for its Lambda tasks; the real Sleuth
Kit and YARA on the acquired images. What is simulated is said so, in the output and the report.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from handlers.common.tags import INCIDENT_TAG
from handlers.triggers import patterns
from simulation import disk_content, disk_images, events_local, local_aws, scenarios, synthetic_memory
from simulation.console_logs import lambda_output_to
from simulation.examination_local import SINGLE_STREAM
from simulation.sandbox import LocalCloud, cloud_context
from simulation.ssm_agent import AgentBehaviour

SCENARIOS = ("webshell",)
ACTIONS = {"contain": "Contain", "analyze": "Analyze"}
# How the response starts: the entry points of DESIGN.md, each delivered as AWS would.
TRIGGERS = {
    "tag": "a responder tags the instance; its account's EventBridge rule forwards the tag change",
    "guardduty": f"GuardDuty reports a {events_local.GUARDDUTY_BACKDOOR} finding over the severity threshold",
    "securityhub": "a responder chooses the Security Hub custom action on that GuardDuty finding",
    "manual": "a responder starts the state machine with the manual-execution input",
}
# GuardDuty severities the simulation reports: over the rule's threshold (7), and over the
# contain threshold (8) for Contain (config.py: guardduty_min_severity, guardduty_contain_severity).
GUARDDUTY_SEVERITY = {"contain": 8.0, "analyze": 7.5}
SECURITYHUB_ACTION_IDS = {"contain": "IrfContainAnalyze", "analyze": "IrfForensicAnalysis"}
LAMBDA_LOG = Path("logs") / "lambda.jsonl"
ACCOUNTS_NOTE = (
    "Local simulation: AWS was simulated with moto in one process; accounts "
    f"{local_aws.SECURITY_ACCOUNT} (security), {local_aws.FORENSIC_ACCOUNT} (forensic), "
    f"{local_aws.MEMBER_ACCOUNT} (member)."
)
EXAMINATION_NOTE = (
    "Examination ran on this machine (moto runs no SSM commands) with the code the analysis instance runs; "
    "the toolset image was a stand-in (moto has no EC2 Image Builder)."
)
DISK_NOTE = (
    "Disks: each simulated volume was created from a 1 GiB snapshot written through the EBS direct APIs "
    "(the file system and nothing else); EC2 (moto) reports the volumes at the launch template's 8 and 20 GiB, "
    "so each image is 1 GiB and is flagged under Evidence lineage. Nothing of the file systems lies beyond 1 GiB."
)
SYNTHETIC_MEMORY_NOTE = (
    "Memory: the memory image is SYNTHETIC LiME-format data written by a simulated SSM agent ({why}); "
    "no module existed for its kernel, so the response asked the LimeFactory for one and a stand-in build "
    "(moto runs no CodeBuild) published placeholder lime.ko and symbol files, so Volatility has no kernel "
    "to analyse."
)
GUEST_MEMORY_NOTE = (
    "Memory: REAL. The suspect's memory is that of a QEMU guest (TCG) booting Debian's kernel {release}, "
    "standing in for the EC2 instance with the scenario's planted activity (the SUID miner from "
    "/tmp/.X11-unix/kworkerd with an RWX mapping and its sockets, root's bash with the reverse shell); "
    "the project's own SSM documents ran inside it as SSM would run them, and the capture reached the "
    "simulated evidence bucket through the guest's only network path (a loopback port)."
)
SIMULATION_NOTES = [
    ACCOUNTS_NOTE,
    SYNTHETIC_MEMORY_NOTE.format(why="moto runs no commands"),
    EXAMINATION_NOTE,
    DISK_NOTE,
]
# "synthetic" forces the stand-in memory even where QEMU is installed.
MEMORY_SOURCE_ENV = "IRF_SIMULATION_MEMORY"
# "organisation": the member account is in an OU of a simulated organisation and gets its responder
# from the security stack's StackSet (organisation mode); otherwise from `members` (explicit mode).
MEMBERS_MODE_ENV = "IRF_SIMULATION_MEMBERS"
ORGANISATION_NOTE = (
    "Organisation mode: the member responder was deployed by the security stack's CloudFormation StackSet "
    "to the simulated organisation's workloads OU (the StackSet template instantiated by the simulation's "
    "deployer; moto's CloudFormation does not create these resource types faithfully)."
)


def organisation_mode() -> bool:
    return os.environ.get(MEMBERS_MODE_ENV, "explicit") == "organisation"


def guest_memory_unavailable() -> str | None:
    """Why the simulation cannot use the real guest for memory (None: it will)."""
    if os.environ.get(MEMORY_SOURCE_ENV, "guest") == "synthetic":
        return f"{MEMORY_SOURCE_ENV}=synthetic"
    from simulation.guest import unavailable_reason

    return unavailable_reason()


def simulation_notes(guest_release: str | None, why_synthetic: str = "") -> list[str]:
    memory = (
        GUEST_MEMORY_NOTE.format(release=guest_release)
        if guest_release
        else SYNTHETIC_MEMORY_NOTE.format(why=why_synthetic or "moto runs no commands")
    )
    return [ACCOUNTS_NOTE, memory, EXAMINATION_NOTE, DISK_NOTE]


Progress = Callable[[str, str], None]


@dataclass(frozen=True)
class Watch:
    """What a console needs to follow a running response: the same APIs it would use on AWS."""

    sfn: Any  # the security account's Step Functions client
    s3: Any  # the forensic account's S3 client (the evidence bucket's in-progress uploads)
    bucket: str
    execution_arn: str


Follow = Callable[[Watch], None]
DISCOVERY_SAMPLE = Path(__file__).parent / "samples" / "amzn2-x86_64.discovery.txt"
SYNTHETIC_MEMORY_BYTES = 8 * 1024 * 1024


@dataclass
class Stage:
    name: str
    seconds: float
    detail: str = ""


@dataclass
class SimulationResult:
    case_id: str
    case_dir: Path
    action: str
    status: str
    stages: list[Stage] = field(default_factory=list)
    containment: dict[str, Any] = field(default_factory=dict)
    artefacts: list[dict[str, Any]] = field(default_factory=list)
    findings: list[dict[str, Any]] = field(default_factory=list)
    report: Path | None = None
    instance_id: str = ""
    trigger: str = ""  # as the case record and the manifest's request say
    finding: str = ""
    lambda_log: Path | None = None


def _quiet(stage: str, detail: str) -> None:
    return None


def _application_data(directory: Path, incident: datetime) -> Path:
    """The data volume: the application's uploads and reports, nothing planted."""
    for name, body in (
        ("reports/2026-q3.csv", b"month,orders\njul,1200\naug,1350\nsep,1410\n"),
        ("uploads/logo.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64),
        ("README", b"payments web data volume\n"),
    ):
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
        stamp = (incident - timedelta(days=30)).timestamp()
        os.utime(path, (stamp, stamp))
    return directory


def _download_case(cloud: LocalCloud, case_id: str, out_dir: Path, *, images: bool = True) -> Path:
    s3 = cloud.session(local_aws.FORENSIC_ACCOUNT).client("s3")
    bucket = cloud.settings.evidence_bucket
    case_dir = out_dir / case_id
    if case_dir.exists():
        shutil.rmtree(case_dir)
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{case_id}/"):
        for obj in page.get("Contents", []):
            if not images and obj["Key"].endswith((".img", ".lime")):
                continue  # the digest files and the manifest say what they hold
            target = out_dir / obj["Key"]
            target.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, obj["Key"], str(target), Config=SINGLE_STREAM)
    return case_dir


@dataclass
class Incident:
    """A compromised web server in the member account, its disks holding real file systems."""

    tier: scenarios.WebTier
    tree: disk_images.PlantedTree
    memory_sha256: str = ""

    @property
    def instance_id(self) -> str:
        return self.tier.instance_id


@dataclass(frozen=True)
class Disks:
    """A compromised web server's disks as snapshots in the member account (written through EBS direct)."""

    tree: disk_images.PlantedTree
    root_image: Path
    data_image: Path | None
    root_snapshot_id: str
    data_snapshot_id: str  # "" when the server has its root volume only


def build_disks(cloud: LocalCloud, work: Path, *, name: str = "web", data_volume: bool = True) -> Disks:
    incident_time = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    work = work / name
    # The compromised root file system is ext4 (read by The Sleuth Kit); the application's data
    # volume is XFS, as Amazon Linux formats volumes (TSK cannot read XFS; libfsxfs does).
    tree = disk_images.build_compromised_webserver_tree(work / "rootfs", incident_time)
    root_image = disk_images.build_ext4_image(tree, work / "root.ext4", size_mib=64)
    data_image = (
        disk_images.build_xfs_image(_application_data(work / "datafs", incident_time), work / "data.xfs")
        if data_volume
        else None
    )
    ebs = cloud.session(local_aws.MEMBER_ACCOUNT).client("ebs")
    return Disks(
        tree=tree,
        root_image=root_image,
        data_image=data_image,
        root_snapshot_id=disk_content.write_snapshot(ebs, root_image, description=f"{name} root disk (ext4)"),
        data_snapshot_id=disk_content.write_snapshot(ebs, data_image, description=f"{name} data disk (XFS)")
        if data_image
        else "",
    )


def build_incident(
    cloud: LocalCloud, work: Path, *, name: str = "web", disks: Disks | None = None, guest: Any = None
) -> Incident:
    """A web tier whose suspect's volumes are created from `disks` (built for it when not given).

    With `guest` (a running simulation.guest.Guest) the suspect's SSM agent runs every command in
    it: real discovery, real memory. Without, its memory is synthetic and labelled so.
    """
    disks = disks or build_disks(cloud, work, name=name)
    member = cloud.session(local_aws.MEMBER_ACCOUNT)
    tier = scenarios.build_web_tier(
        member,
        prefix=local_aws.PREFIX,
        name=name,
        root_snapshot_id=disks.root_snapshot_id,
        data_snapshot_id=disks.data_snapshot_id,
        isolation_profile=False,
        data_volume=bool(disks.data_snapshot_id),
    )
    if guest is not None:
        cloud.agent.agents[tier.instance_id] = AgentBehaviour(guest=guest)
        return Incident(tier=tier, tree=disks.tree)
    # Its SSM agent and its memory: a synthetic LiME image, labelled as such inside and in the report.
    discovery = DISCOVERY_SAMPLE.read_text()
    memory = work / f"{name}-memory.lime"
    memory.parent.mkdir(parents=True, exist_ok=True)
    synthetic_memory.synthetic_memory_image(memory, seed=sum(map(ord, name)), size=SYNTHETIC_MEMORY_BYTES)
    cloud.give_instance_an_agent(tier.instance_id, discovery, memory.read_bytes())
    return Incident(tier=tier, tree=disks.tree, memory_sha256=hashlib.sha256(memory.read_bytes()).hexdigest())


def trigger_by_tag(cloud: LocalCloud, incident: Incident, action: str) -> str:
    """Tag the instance as a responder would; EventBridge routing starts the response. Returns the execution."""
    value = ACTIONS[action]
    member = cloud.session(local_aws.MEMBER_ACCOUNT)
    member.client("ec2").create_tags(Resources=[incident.instance_id], Tags=[{"Key": INCIDENT_TAG, "Value": value}])
    events_local.deliver(
        events_local.tag_change_event(
            local_aws.MEMBER_ACCOUNT, local_aws.REGION, incident.instance_id, {INCIDENT_TAG: value}
        ),
        local_aws.MEMBER_ACCOUNT,
        local_aws.REGION,
    )
    return _started_for(cloud, incident, "tagging")


def _guardduty_finding(incident: Incident, action: str) -> dict[str, Any]:
    """GuardDuty's finding on the suspect, with the severity that makes the rule for `action` match."""
    return events_local.guardduty_finding_event(
        local_aws.SECURITY_ACCOUNT,
        local_aws.MEMBER_ACCOUNT,
        local_aws.REGION,
        incident.instance_id,
        severity=GUARDDUTY_SEVERITY[action],
    )


def trigger_by_guardduty(cloud: LocalCloud, incident: Incident, action: str) -> str:
    """GuardDuty's finding on the instance, on the security (delegated administrator) account's bus."""
    finding = _guardduty_finding(incident, action)
    if not events_local.deliver(finding, local_aws.SECURITY_ACCOUNT, local_aws.REGION):
        raise RuntimeError("no deployed EventBridge rule matched the GuardDuty finding")
    return _started_for(cloud, incident, "the GuardDuty finding")


def trigger_by_securityhub(cloud: LocalCloud, incident: Incident, action: str) -> str:
    """The Security Hub custom action chosen on the GuardDuty finding, on the security account's bus."""
    finding = _guardduty_finding(incident, action)
    action_arn = patterns.securityhub_action_arn(
        local_aws.SECURITY_ACCOUNT, local_aws.REGION, SECURITYHUB_ACTION_IDS[action]
    )
    event = events_local.securityhub_action_event(local_aws.SECURITY_ACCOUNT, action_arn, finding)
    if not events_local.deliver(event, local_aws.SECURITY_ACCOUNT, local_aws.REGION):
        raise RuntimeError("no deployed EventBridge rule matched the Security Hub custom action")
    return _started_for(cloud, incident, "the Security Hub custom action")


def trigger_manually(cloud: LocalCloud, incident: Incident, action: str) -> str:
    """StartExecution with the manual-execution input of DESIGN.md (no Trigger field: it defaults to manual)."""
    return cloud.start_response(
        {
            "InstanceId": incident.instance_id,
            "Account": local_aws.MEMBER_ACCOUNT,
            "Region": local_aws.REGION,
            "Action": ACTIONS[action],
            "RetainArtefacts": "true",
            "DryRun": False,
        },
        name=f"manual-{incident.instance_id}",
    )


TRIGGER_FUNCTIONS: dict[str, Callable[[LocalCloud, Incident, str], str]] = {
    "tag": trigger_by_tag,
    "guardduty": trigger_by_guardduty,
    "securityhub": trigger_by_securityhub,
    "manual": trigger_manually,
}


def _started_for(cloud: LocalCloud, incident: Incident, what: str) -> str:
    sfn = cloud.session(local_aws.SECURITY_ACCOUNT).client("stepfunctions")
    started = [
        e["executionArn"]
        for e in sfn.list_executions(stateMachineArn=cloud.response_state_machine_arn)["executions"]
        if json.loads(sfn.describe_execution(executionArn=e["executionArn"])["input"]).get("InstanceId")
        == incident.instance_id
    ]
    if len(started) != 1:
        raise RuntimeError(f"{what} for {incident.instance_id} started {len(started)} executions, expected 1")
    return str(started[0])


def case_id_of(execution: dict[str, Any]) -> str:
    output = json.loads(execution.get("output") or "{}")
    case_id = str(output.get("Case", {}).get("CaseId") or output.get("CaseId") or "")
    if not case_id:
        raise RuntimeError(
            f"the response ended {execution['status']} without a case id: "
            f"{execution.get('error')}: {execution.get('cause')}"
        )
    return case_id


def collect(
    cloud: LocalCloud,
    execution: dict[str, Any],
    incident: Incident,
    action: str,
    out_dir: Path,
    stages: list[Stage],
    *,
    images: bool = True,
) -> SimulationResult:
    case_id = case_id_of(execution)
    case_dir = _download_case(cloud, case_id, out_dir, images=images)
    findings = json.loads((case_dir / "analysis" / "findings.json").read_text())
    containment = case_dir / "containment"
    after_file = (
        containment / "after.json" if (containment / "after.json").exists() else containment / "protect-after.json"
    )
    after = json.loads(after_file.read_text())
    manifest = json.loads((case_dir / "manifest.json").read_text())
    return SimulationResult(
        case_id=case_id,
        case_dir=case_dir,
        action=ACTIONS[action],
        status=execution["status"],
        stages=stages,
        containment=after,
        artefacts=manifest.get("artefacts", []),
        findings=list(findings.get("findings", [])),
        report=case_dir / "report" / "report.html",
        instance_id=incident.instance_id,
        trigger=str(manifest.get("request", {}).get("Trigger", "")),
        finding=str(manifest.get("request", {}).get("Finding", "")),
    )


def quiet_moto() -> None:
    # moto's Step Functions interpreter logs every failed state with its whole parse tree.
    logging.getLogger("moto").setLevel(logging.CRITICAL)


def _check_choices(**chosen: tuple[str, Sequence[str] | Mapping[str, Any]]) -> None:
    for name, (value, choices) in chosen.items():
        if value not in choices:
            raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}")


def _guest_kernel(progress: Progress) -> tuple[str | None, str]:
    """The real guest's kernel release, or None and why the suspect's memory will be synthetic."""
    why_synthetic = guest_memory_unavailable()
    if why_synthetic is not None:
        progress("memory", f"falling back to SYNTHETIC memory: no real guest ({why_synthetic})")
        return None, why_synthetic
    from simulation.guest import image as guest_image

    return guest_image.kernel_release(), ""


def run_simulation(
    action: str = "contain",
    out_dir: Path = Path("cases"),
    scenario: str = "webshell",
    progress: Progress = _quiet,
    *,
    trigger: str = "tag",
    follow: Follow | None = None,
    on_log: Callable[[str], None] | None = None,
    organisation: bool | None = None,
) -> SimulationResult:
    """One incident, end to end. `follow` is called in the foreground while the response runs (the
    console's live progress); the Lambdas' output goes to `on_log` and `<case>/logs/lambda.jsonl`."""
    _check_choices(action=(action, ACTIONS), scenario=(scenario, SCENARIOS), trigger=(trigger, TRIGGERS))
    out_dir.mkdir(parents=True, exist_ok=True)
    stages: list[Stage] = []
    logs: list[str] = []

    def log(line: str) -> None:
        logs.append(line)
        if on_log is not None:
            on_log(line)

    def stage(name: str, started: float, detail: str = "") -> None:
        stages.append(Stage(name, time.monotonic() - started, detail))
        progress(name, detail)

    local_aws.use_fake_credentials()
    quiet_moto()
    guest_release, why_synthetic = _guest_kernel(progress)
    organisation = organisation_mode() if organisation is None else organisation
    notes = simulation_notes(guest_release, why_synthetic) + ([ORGANISATION_NOTE] if organisation else [])
    cloud = LocalCloud(examination_notes=notes, organisation=organisation)
    with (
        tempfile.TemporaryDirectory(prefix="irf-sim-") as tmp,
        lambda_output_to(log),
        cloud_context(cloud, deploy=False),
        ExitStack() as guests,
    ):
        guest = None
        if guest_release:
            from simulation.guest import Guest

            started = time.monotonic()
            guest = guests.enter_context(Guest.boot(scenario))
            stage(
                "guest",
                started,
                f"QEMU guest with Debian's kernel {guest_release} and the {scenario} scenario's planted activity "
                "(the suspect's memory will be real)",
            )
        started = time.monotonic()
        cloud.deploy()
        stage(
            "deploy",
            started,
            f"{len(cloud.deployer.deployed)} resources into 3 simulated accounts "
            f"({len(cloud.deployer.skipped)} not simulated: moto lacks them)"
            + ("; member responder by StackSet to the organisation's workloads OU" if organisation else ""),
        )
        started = time.monotonic()
        incident = build_incident(cloud, Path(tmp), guest=guest)
        stage(
            "workload",
            started,
            f"web tier with suspect {incident.instance_id}: ext4 root with planted "
            "evidence, XFS data volume, ASG + ALB, 2 ENIs, IPv6, EIP",
        )
        started = time.monotonic()
        execution_arn = TRIGGER_FUNCTIONS[trigger](cloud, incident, action)
        if follow is not None:
            follow(
                Watch(
                    sfn=cloud.session(local_aws.SECURITY_ACCOUNT).client("stepfunctions"),
                    s3=cloud.session(local_aws.FORENSIC_ACCOUNT).client("s3"),
                    bucket=cloud.settings.evidence_bucket,
                    execution_arn=execution_arn,
                )
            )
        execution = cloud.wait(execution_arn, timeout_seconds=600)
        stage(
            "response",
            started,
            f"state machine {execution['status']}: {trigger} -> {'contain' if action == 'contain' else 'protect'} "
            "-> snapshot -> copy to forensic -> image -> examine -> report",
        )
        started = time.monotonic()
        result = collect(cloud, execution, incident, action, out_dir, stages)
        result.lambda_log = result.case_dir / LAMBDA_LOG
        result.lambda_log.parent.mkdir(parents=True, exist_ok=True)
        result.lambda_log.write_text("".join(line + "\n" for line in logs))
        stage(
            "case folder",
            started,
            f"{sum(1 for p in result.case_dir.rglob('*') if p.is_file())} evidence "
            f"objects downloaded to {result.case_dir}",
        )
        return result


@dataclass
class ConcurrentRun:
    """Several incidents responded to at once in one deployed cloud, and how well their cases stayed apart."""

    incidents: list[Incident]
    results: list[SimulationResult]
    seconds: float
    problems: list[str]
    executions: list[dict[str, Any]] = field(default_factory=list)  # DescribeExecution of each response

    @property
    def overlapped(self) -> bool:
        """Every response started before the first one ended."""
        return bool(self.executions) and max(e["startDate"] for e in self.executions) < min(
            e["stopDate"] for e in self.executions
        )


def separation_problems(incidents: list[Incident], results: list[SimulationResult]) -> list[str]:
    """Each case holds its own instance's evidence and nothing of another's; an empty list is a pass."""
    problems: list[str] = []
    case_ids = [r.case_id for r in results]
    if len(set(case_ids)) != len(case_ids):
        problems.append(f"case ids are not distinct: {case_ids}")
    all_volumes = {v for i in incidents for v in (i.tier.root_volume_id, i.tier.data_volume_id) if v}
    for incident, result in zip(incidents, results, strict=True):
        who = f"{incident.instance_id} (case {result.case_id})"
        if result.status != "SUCCEEDED":
            problems.append(f"{who}: response {result.status}")
            continue
        keys = {a["key"]: a for a in result.artefacts}
        strays = [k for k in keys if not k.startswith(f"{result.case_id}/")]
        if strays:
            problems.append(f"{who}: manifest lists objects of other cases: {strays}")
        if result.containment.get("instance_id") != incident.instance_id:
            problems.append(f"{who}: the containment record is about {result.containment.get('instance_id')}")
        own = {v for v in (incident.tier.root_volume_id, incident.tier.data_volume_id) if v}
        images = {k.rsplit("/", 1)[-1].removesuffix(".img") for k in keys if k.endswith(".img")}
        if images != own:
            problems.append(
                f"{who}: disk images of {sorted(images)}, expected {sorted(own)}"
                + (" (another instance's volumes)" if images & (all_volumes - own) else "")
            )
        memory = keys.get(f"{result.case_id}/memory/{incident.instance_id}.lime")
        if memory is None or memory["sha256"] != incident.memory_sha256:
            problems.append(f"{who}: the memory image is missing or is not this instance's")
    return problems


@dataclass(frozen=True)
class SharedDiskCloud:
    """A deployed local cloud whose suspects all boot from one set of disk snapshots."""

    cloud: LocalCloud
    work: Path
    disks: Disks
    logs: list[str]  # the Lambdas' output, kept off the console

    def incident(self, name: str) -> Incident:
        return build_incident(self.cloud, self.work, name=name, disks=self.disks)


@contextmanager
def shared_disk_cloud(notes: list[str], *, data_volume: bool, prefix: str = "irf-sim-") -> Iterator[SharedDiskCloud]:
    """Several suspects in one deployment: building the disks once keeps each extra suspect cheap."""
    local_aws.use_fake_credentials()
    quiet_moto()
    cloud = LocalCloud(examination_notes=notes)
    logs: list[str] = []
    with (
        tempfile.TemporaryDirectory(prefix=prefix) as tmp,
        lambda_output_to(logs.append),
        cloud_context(cloud, deploy=False),
    ):
        cloud.deploy()
        disks = build_disks(cloud, Path(tmp), name="shared", data_volume=data_volume)
        yield SharedDiskCloud(cloud, Path(tmp), disks, logs)


def run_concurrent(
    count: int,
    action: str = "contain",
    out_dir: Path = Path("cases"),
    progress: Progress = _quiet,
    timeout_seconds: float = 1800,
    data_volume: bool = True,
) -> ConcurrentRun:
    """`count` incidents on different instances, all tagged before any response ends; one cloud.

    The instances share one set of disk snapshots (building the file systems once); each has its
    own volumes, interfaces, Auto Scaling group and synthetic memory, so every case's evidence is
    its own instance's. Case folders are written without the raw images (their digests are kept).
    Without `data_volume` each server has its ext4 root volume only (half the bytes to image).
    """
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    if action not in ACTIONS:
        raise ValueError(f"action must be one of {', '.join(ACTIONS)}, got {action!r}")
    out_dir.mkdir(parents=True, exist_ok=True)
    # One guest cannot be several suspects: concurrent incidents keep synthetic memory, and say so.
    notes = simulation_notes(None, "concurrent incidents share no guest")
    with shared_disk_cloud(notes, data_volume=data_volume) as shared:
        cloud = shared.cloud
        incidents = [shared.incident(f"web{n:02d}") for n in range(count)]
        progress("workload", f"{count} web tiers, each with its own suspect instance")
        started = time.monotonic()
        arns = [trigger_by_tag(cloud, incident, action) for incident in incidents]
        progress("triggered", f"{count} responses running at once")
        executions = [cloud.wait(arn, timeout_seconds=timeout_seconds) for arn in arns]
        seconds = time.monotonic() - started
        progress(
            "responses",
            f"{sum(e['status'] == 'SUCCEEDED' for e in executions)} of {count} succeeded in {seconds:.0f} s",
        )
        results = [
            collect(cloud, execution, incident, action, out_dir, [], images=False)
            for execution, incident in zip(executions, incidents, strict=True)
        ]
        return ConcurrentRun(
            incidents=incidents,
            results=results,
            seconds=seconds,
            problems=separation_problems(incidents, results),
            executions=executions,
        )
