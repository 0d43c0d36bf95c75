"""The Lambda functions the state machines call: one table shared by the definitions and SecurityAccount.

`access` names what a function may reach beyond its own logs; SecurityAccount turns each kind
into exact IAM statements, so adding a function here is the one place to change.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

# Kinds of access a security-account Lambda can be granted.
MEMBER = "member"  # sts:AssumeRole into the member responder roles
FORENSIC = "forensic"  # sts:AssumeRole into the forensic automation role
CASE_TABLE = "case-table"  # the case table (DynamoDB)
NOTIFY = "notify"  # publish to the notification topic (and read the Slack secret when set)
START_RESPONSE = "start-response"  # states:StartExecution on the response state machine
LIME_MODULES = "lime-modules"  # read the modules bucket (and pre-sign GETs of it), decrypt with its CMK
FIND_LIME_MODULES = "find-lime-modules"  # HEAD objects of the modules bucket: no decrypt, no download
START_LIME_FACTORY = "start-lime-factory"  # states:StartExecution on the LimeFactory
FOLLOW_LIME_FACTORY = "follow-lime-factory"  # states:DescribeExecution of the LimeFactory's runs


@dataclass(frozen=True)
class FunctionSpec:
    function: str
    package: str
    handler: str
    access: frozenset[str]
    timeout: int = 60
    memory_size: int = 256


FUNCTIONS: tuple[FunctionSpec, ...] = (
    # Pure validation: no access at all, so rejected input cannot touch any account.
    FunctionSpec("validate-input", "case", "handlers.case.handler.validate_input", frozenset()),
    # Read-only in the member account: refuses a missing responder or instance before any case exists.
    FunctionSpec("check-target", "isolation", "handlers.isolation.target.check_target", frozenset({MEMBER})),
    FunctionSpec("open-case", "case", "handlers.case.handler.open_case", frozenset({CASE_TABLE, FORENSIC, NOTIFY})),
    FunctionSpec(
        "contain", "isolation", "handlers.isolation.handler.contain", frozenset({MEMBER, FORENSIC, NOTIFY}), timeout=300
    ),
    FunctionSpec(
        "protect", "isolation", "handlers.isolation.handler.protect", frozenset({MEMBER, FORENSIC}), timeout=120
    ),
    # No state machine calls it: `irf release` invokes it (the member role trusts only these Lambdas' roles).
    FunctionSpec(
        "release", "isolation", "handlers.isolation.handler.release", frozenset({MEMBER, FORENSIC}), timeout=300
    ),
    FunctionSpec(
        "snapshot-volumes",
        "acquisition",
        "handlers.acquisition.handler.snapshot_volumes",
        frozenset({MEMBER, FORENSIC}),
    ),
    FunctionSpec(
        "snapshot-status", "acquisition", "handlers.acquisition.handler.snapshot_status", frozenset({MEMBER, FORENSIC})
    ),
    FunctionSpec(
        "share-snapshots", "acquisition", "handlers.acquisition.handler.share_snapshots", frozenset({MEMBER, FORENSIC})
    ),
    FunctionSpec(
        "copy-to-forensic", "acquisition", "handlers.acquisition.handler.copy_to_forensic", frozenset({FORENSIC})
    ),
    FunctionSpec("lock-snapshots", "acquisition", "handlers.acquisition.handler.lock_snapshots", frozenset({FORENSIC})),
    # 1769 MB is one full vCPU: hashing and block reads are CPU-bound.
    FunctionSpec(
        "image-volume",
        "acquisition",
        "handlers.acquisition.handler.image_volume",
        frozenset({FORENSIC}),
        timeout=900,
        memory_size=1769,
    ),
    FunctionSpec("memory-open-path", "memory", "handlers.memory.handler.open_path", frozenset({MEMBER, FORENSIC})),
    FunctionSpec("memory-discover", "memory", "handlers.memory.handler.discover_kernel", frozenset({MEMBER})),
    FunctionSpec("memory-discovery-result", "memory", "handlers.memory.handler.discovery_result", frozenset({MEMBER})),
    FunctionSpec(
        "memory-check-module", "memory", "handlers.memory.handler.check_module", frozenset({FIND_LIME_MODULES})
    ),
    FunctionSpec(
        "memory-request-build",
        "memory",
        "handlers.memory.handler.request_module_build",
        frozenset({START_LIME_FACTORY}),
    ),
    FunctionSpec(
        "memory-build-status", "memory", "handlers.memory.handler.module_build_status", frozenset({FOLLOW_LIME_FACTORY})
    ),
    FunctionSpec(
        "memory-start-capture",
        "memory",
        "handlers.memory.handler.start_capture",
        frozenset({MEMBER, FORENSIC, LIME_MODULES}),
        timeout=120,
    ),
    FunctionSpec(
        "memory-capture-result",
        "memory",
        "handlers.memory.handler.capture_result",
        frozenset({MEMBER, FORENSIC}),
        timeout=300,
    ),
    FunctionSpec(
        "memory-close-path", "memory", "handlers.memory.handler.close_path", frozenset({MEMBER, FORENSIC}), timeout=120
    ),
    FunctionSpec(
        "cleanup", "acquisition", "handlers.acquisition.handler.cleanup", frozenset({MEMBER, FORENSIC}), timeout=300
    ),
    FunctionSpec(
        "finalize-case", "case", "handlers.case.handler.finalize_case", frozenset({FORENSIC, NOTIFY}), timeout=300
    ),
    FunctionSpec(
        "close-case", "case", "handlers.case.handler.close_case", frozenset({CASE_TABLE, FORENSIC, NOTIFY}), timeout=300
    ),
    FunctionSpec(
        "record-failure", "case", "handlers.case.handler.record_failure", frozenset({CASE_TABLE, FORENSIC, NOTIFY})
    ),
    FunctionSpec(
        "launch-analysis-instance",
        "examination",
        "handlers.examination.handler.launch_analysis_instance",
        frozenset({FORENSIC}),
        timeout=120,
    ),
    FunctionSpec(
        "analysis-instance-ready",
        "examination",
        "handlers.examination.handler.analysis_instance_ready",
        frozenset({FORENSIC}),
    ),
    FunctionSpec(
        "run-examination", "examination", "handlers.examination.handler.run_examination", frozenset({FORENSIC})
    ),
    FunctionSpec(
        "examination-status",
        "examination",
        "handlers.examination.handler.examination_status",
        frozenset({FORENSIC}),
        timeout=120,
    ),
    FunctionSpec(
        "terminate-analysis-instance",
        "examination",
        "handlers.examination.handler.terminate_analysis_instance",
        frozenset({FORENSIC}),
        timeout=120,
    ),
    FunctionSpec("trigger-tag", "triggers", "handlers.triggers.handler.on_tag_change", frozenset({START_RESPONSE})),
    FunctionSpec(
        "trigger-guardduty", "triggers", "handlers.triggers.handler.on_guardduty_finding", frozenset({START_RESPONSE})
    ),
    FunctionSpec(
        "trigger-securityhub",
        "triggers",
        "handlers.triggers.handler.on_securityhub_action",
        frozenset({START_RESPONSE}),
    ),
)


def by_name() -> dict[str, FunctionSpec]:
    return {spec.function: spec for spec in FUNCTIONS}


def function_arn(arns: Mapping[str, str], function: str) -> str:
    """The ARN a definition calls for `function`; a missing one is an error, not a broken machine."""
    if function not in arns:
        raise KeyError(f"no ARN given for Lambda function {function!r}")
    return arns[function]


def task_timeout(function: str) -> int:
    """A Task's TimeoutSeconds: the function's own timeout plus room for the invocation itself."""
    return by_name()[function].timeout + 30
