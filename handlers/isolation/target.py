"""The response's second state: is there something to respond to, and may we act on it?

Runs after ValidateInput and before a case is opened or anything is changed. It assumes the
member responder role (so an account without the MemberResponder is refused with the reason)
and describes the instance read-only: a nonexistent, terminated or terminating instance is
refused with a typed error, and nothing in any account (not even the case table) is touched.
For a target it accepts it returns the facts the responder sees first: state, platform, how
many EBS volumes and interfaces, whether instance-store volumes exist (which no snapshot can
acquire).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from core.instances import INSTANCE_STORE, read_instance
from handlers.common.case import parse_request
from handlers.common.errors import InstanceNotFound
from handlers.common.sessions import BOTO_CONFIG, case_sessions
from handlers.common.settings import Settings

logger = Logger(service="irforensics-isolation")


def describe_target(ec2: Any, instance_id: str) -> dict[str, Any]:
    """Facts about the instance, or InstanceNotFound saying why there is nothing to respond to."""
    instance = read_instance(ec2, instance_id)
    if instance.gone:
        raise InstanceNotFound(
            instance_id,
            f"is {instance.state}: its memory is gone and its volumes are deleted or "
            "being deleted, so there is nothing left to contain or acquire",
        )
    volumes = [v.volume_id for v in instance.volumes]
    return {
        "InstanceId": instance_id,
        "State": instance.state,
        "Platform": instance.platform,
        "EbsVolumes": len(volumes),
        "NetworkInterfaces": len(instance.interfaces),
        "RootDeviceType": instance.root_device_type,
        # Instance-store (ephemeral) volumes never appear as EBS mappings and no snapshot covers them.
        "InstanceStoreOnly": instance.root_device_type == INSTANCE_STORE and not volumes,
    }


def check_target(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """ResponderUnavailable or InstanceNotFound before anything changes; else the target's facts."""
    request = parse_request(event)
    settings = Settings.from_env()
    # No case exists yet: the session is named after the request (CloudTrail shows it).
    session_label = request.case_id or f"check-{request.instance_id}"
    member = case_sessions(settings, session_label).member(request.account, request.region)
    facts = describe_target(member.client("ec2", config=BOTO_CONFIG), request.instance_id)
    logger.info("target accepted", extra={"target": facts, "account": request.account, "region": request.region})
    return facts
