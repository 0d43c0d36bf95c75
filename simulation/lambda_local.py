"""Run Lambda functions deployed in moto by calling our handlers in this process.

moto's Step Functions interpreter invokes Lambda tasks through the Lambda backend; with
`use_docker: False` that backend only echoes the payload. `dispatch_in_process()` patches
`LambdaSimpleBackend.invoke` (the seam DESIGN.md names) so each invocation imports the
function's configured `Handler` and calls it with the function's own environment, the way
the Lambda runtime would. A handler exception reaches the state machine as an unhandled
function error whose `errorType` is the exception's class name, so `Catch` works by name.
"""

from __future__ import annotations

import importlib
import json
import os
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from unittest import mock

from moto.awslambda_simple.models import LambdaSimpleBackend

# Environment variables are process-wide; Parallel branches invoke from several threads.
_ENV_LOCK = threading.RLock()
# Which function this thread is running: moto's Step Functions interpreter invokes from background
# threads, so a recorder of API calls (simulation.api_calls) can only learn the caller per thread.
_RUNNING = threading.local()


@dataclass(frozen=True)
class RunningFunction:
    """The Lambda function whose handler this thread is running, and the role its runtime credentials carry."""

    function_name: str
    role_arn: str
    account: str
    region: str


def running_function() -> RunningFunction | None:
    running: RunningFunction | None = getattr(_RUNNING, "function", None)
    return running


@contextmanager
def _running(function: RunningFunction) -> Iterator[None]:
    outer = running_function()
    _RUNNING.function = function
    try:
        yield
    finally:
        _RUNNING.function = outer


@dataclass
class LocalContext:
    """The parts of the Lambda context object our handlers and Powertools use."""

    function_name: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    timeout_seconds: int
    aws_request_id: str
    started: float

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.started + self.timeout_seconds - time.monotonic()) * 1000))


@dataclass
class Invocation:
    function_name: str
    handler: str
    event: Any
    result: Any = None
    error: str | None = None


def resolve_handler(path: str) -> Callable[[Any, Any], Any]:
    module, _, name = path.rpartition(".")
    handler: Callable[[Any, Any], Any] = getattr(importlib.import_module(module), name)
    return handler


@contextmanager
def _environment(variables: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


TIMEOUT_ERROR = "Sandbox.Timedout"


class SimulatedTimeout(Exception):
    """Raise inside a handler to end the invocation as the Lambda runtime does at the function's
    timeout: whatever the handler did so far stays done, it returns nothing, Step Functions sees
    `Sandbox.Timedout`."""


@contextmanager
def dispatch_in_process(
    log: list[Invocation] | None = None, on_invoke: Callable[[Invocation], None] | None = None
) -> Iterator[list[Invocation]]:
    """Patch moto's Lambda backend so invocations run our handlers; yields the invocation log."""
    invocations: list[Invocation] = [] if log is None else log

    def invoke(
        self: LambdaSimpleBackend,
        function_name: str,
        qualifier: str | None,
        body: Any,
        headers: Any,
        response_headers: Any,
    ) -> bytes:
        function = self.get_function(function_name, qualifier)
        event = json.loads(body) if body else {}
        record = Invocation(function_name=function.function_name, handler=str(function.handler), event=event)
        context = LocalContext(
            function_name=function.function_name,
            invoked_function_arn=function.function_arn,
            memory_limit_in_mb=int(function.memory_size or 128),
            timeout_seconds=int(function.timeout or 3),
            aws_request_id=str(uuid.uuid4()),
            started=time.monotonic(),
        )
        try:
            handler = resolve_handler(record.handler)
            running = RunningFunction(
                function_name=function.function_name,
                role_arn=str(function.role),
                account=str(function.account_id),
                region=str(function.region),
            )
            with _ENV_LOCK, _environment(dict(function.environment_vars or {})), _running(running):
                if on_invoke:
                    on_invoke(record)
                result = handler(event, context)
            record.result = result
            return json.dumps(result).encode()
        except Exception as exc:
            record.error = f"{type(exc).__name__}: {exc}"
            response_headers["x-amz-function-error"] = "Unhandled"
            if isinstance(exc, SimulatedTimeout):
                # What the Lambda runtime reports when it stops a function at its timeout.
                return json.dumps(
                    {
                        "errorType": TIMEOUT_ERROR,
                        "errorMessage": (
                            f"{context.aws_request_id} Task timed out after {context.timeout_seconds:.2f} seconds"
                        ),
                    }
                ).encode()
            return json.dumps(
                {
                    "errorType": type(exc).__name__,
                    "errorMessage": str(exc),
                    "stackTrace": traceback.format_exception(exc)[-3:],
                }
            ).encode()
        finally:
            invocations.append(record)

    with mock.patch.object(LambdaSimpleBackend, "invoke", invoke):
        yield invocations
