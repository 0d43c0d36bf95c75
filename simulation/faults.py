"""Fault injection: AWS answering the way it does on a bad day, at the HTTP seam.

A `Fault` turns matching requests into the error response the service sends (throttling,
AccessDenied, capacity errors) before moto sees them. The answer goes back through botocore's
whole stack, so its retry handler, the error parsing and our handlers behave exactly as they
would against AWS: a throttled call is retried with backoff by botocore; an AccessDenied
reaches the handler as a ClientError. Every injected answer is recorded, so a test can prove
the fault really happened.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from typing import Any
from unittest import mock
from xml.sax.saxutils import escape

import botocore.endpoint
import botocore.session
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from moto.core.botocore_stubber import BotocoreStubber, MockRawResponse
from moto.iam.models import get_account_id_from

_CREDENTIAL = re.compile(r"Credential=([A-Z0-9]+)/")
# Event service ids that differ from botocore's service names.
_SERVICE_OF_EVENT_ID = {"auto-scaling": "autoscaling", "elastic-load-balancing-v2": "elbv2", "sfn": "stepfunctions"}


@dataclass
class Fault:
    """Answer `times` requests of `service`/`operation` (from `account`, when given) with `code`."""

    service: str  # botocore service name: "ec2", "s3", "dynamodb", ...
    operation: str  # API operation name: "CreateSnapshots"
    code: str  # "RequestLimitExceeded", "SlowDown", "AccessDenied", "InsufficientInstanceCapacity"
    message: str
    status: int = 400
    times: int | None = 1  # None: every matching request
    account: str | None = None
    matches: Callable[[AWSPreparedRequest], bool] | None = None
    injected: int = field(default=0, init=False)

    def applies(self, service: str, operation: str, account: str | None, request: AWSPreparedRequest) -> bool:
        if (service, operation) != (self.service, self.operation):
            return False
        if self.times is not None and self.injected >= self.times:
            return False
        if self.account is not None and account != self.account:
            return False
        return self.matches is None or self.matches(request)


@dataclass(frozen=True)
class Injected:
    service: str
    operation: str
    code: str
    account: str | None


@cache
def _protocol(service: str) -> str:
    return str(botocore.session.get_session().get_service_model(service).metadata["protocol"])


def error_body(service: str, code: str, message: str) -> tuple[dict[str, str], bytes]:
    """Headers and body of an error response in the service's own wire protocol."""
    request_id = str(uuid.uuid4())
    protocol = _protocol(service)
    if protocol in ("json", "rest-json"):
        return (
            {"Content-Type": "application/x-amz-json-1.1", "x-amzn-ErrorType": code, "x-amzn-RequestId": request_id},
            json.dumps({"__type": code, "message": message}).encode(),
        )
    text = escape(message)
    if protocol == "ec2":
        body = (
            f"<Response><Errors><Error><Code>{code}</Code><Message>{text}</Message></Error></Errors>"
            f"<RequestID>{request_id}</RequestID></Response>"
        )
    elif protocol == "rest-xml":
        body = f"<Error><Code>{code}</Code><Message>{text}</Message><RequestId>{request_id}</RequestId></Error>"
    else:  # query
        body = (
            f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{text}</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>"
        )
    return {"Content-Type": "text/xml", "x-amzn-RequestId": request_id}, body.encode()


def _account(request: AWSPreparedRequest) -> str | None:
    authorization = request.headers.get("Authorization", b"")
    found = _CREDENTIAL.search(authorization.decode() if isinstance(authorization, bytes) else str(authorization))
    return get_account_id_from(found.group(1)) if found else None


def throttling(service: str, operation: str, times: int = 2, account: str | None = None) -> Fault:
    """The throttling error each service really sends (botocore retries all of them)."""
    code, status = {
        "ec2": ("RequestLimitExceeded", 503),
        "s3": ("SlowDown", 503),
        "dynamodb": ("ThrottlingException", 400),
    }.get(service, ("Throttling", 400))
    return Fault(service, operation, code, "Rate exceeded (injected)", status=status, times=times, account=account)


def access_denied(service: str, operation: str, account: str | None = None, times: int | None = None) -> Fault:
    return Fault(
        service,
        operation,
        "AccessDenied" if service != "ec2" else "UnauthorizedOperation",
        f"You are not authorized to perform this operation: {operation} (injected)",
        status=403,
        times=times,
        account=account,
    )


class FaultInjector:
    def __init__(self, faults: list[Fault]) -> None:
        self.faults = faults
        self.injected: list[Injected] = []
        self._lock = threading.Lock()

    def answer(self, event_name: str, request: AWSPreparedRequest) -> AWSResponse | None:
        parts = event_name.split(".")
        if len(parts) < 3:
            return None
        service = _SERVICE_OF_EVENT_ID.get(parts[1], parts[1])
        operation = parts[2]
        account = _account(request)
        with self._lock:
            fault = next((f for f in self.faults if f.applies(service, operation, account, request)), None)
            if fault is None:
                return None
            fault.injected += 1
            self.injected.append(Injected(service, operation, fault.code, account))
        headers, body = error_body(service, fault.code, fault.message)
        return AWSResponse(request.url, fault.status, headers, MockRawResponse(body))  # type: ignore[arg-type]


@contextmanager
def injected(*faults: Fault) -> Iterator[FaultInjector]:
    """Inject `faults` into every AWS call made inside (moto must be active)."""
    injector = FaultInjector(list(faults))
    original = BotocoreStubber.__call__

    def call(self: BotocoreStubber, event_name: str, request: AWSPreparedRequest, **kwargs: Any) -> Any:
        if self.enabled:
            answer = injector.answer(event_name, request)
            if answer is not None:
                return answer
        return original(self, event_name, request, **kwargs)

    with mock.patch.object(BotocoreStubber, "__call__", call):
        yield injector


class _RecordedSleep:
    """Stands in for the `time` module botocore's endpoint sleeps through between retries."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self.delays: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.delays.append(seconds)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


@contextmanager
def backoff_recorded() -> Iterator[list[float]]:
    """Record (and skip) the delays botocore's retry handler sleeps between attempts."""
    recorder = _RecordedSleep(botocore.endpoint.time)  # type: ignore[attr-defined]
    with mock.patch.object(botocore.endpoint, "time", recorder):
        yield recorder.delays
