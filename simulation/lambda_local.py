"""Run Lambda functions deployed in moto by calling our handlers in this process.

moto's Step Functions interpreter invokes Lambda tasks through the Lambda backend; with
`use_docker: False` that backend only echoes the payload. `dispatch_in_process()` patches
`LambdaSimpleBackend.invoke` (the seam DESIGN.md names) so each invocation imports the
function's configured `Handler` and calls it with the function's own environment, the way
the Lambda runtime would. A handler exception reaches the state machine as an unhandled
function error whose `errorType` is the exception's class name, so `Catch` works by name.

Ports: a handler declares what the simulation may replace as keyword-only parameters with the
AWS implementation as default (`image_volume(..., *, block_source=ebs_direct_source)`); the
dispatcher passes each handler the entries of its `ports` registry that the handler declares.
Nothing is patched into a handler module.

Time: moto's interpreter bounds a Task's `TimeoutSeconds` with a wall clock, and in-process
handler work on a loaded machine is far slower than the same work on Lambda (the in-process
examination alone can outlast the examine task's timeout on a busy 2-core machine). So a Lambda
Task's TimeoutSeconds is not applied to in-process handler work here: the task waits for the
handler. A Lambda timeout is what `SimulatedTimeout` simulates (`Sandbox.Timedout`), and the
state machine's own execution timeout still bounds the whole run.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from unittest import mock

from moto.awslambda_simple.models import LambdaSimpleBackend
from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import Timeout
from moto.stepfunctions.parser.asl.component.state.exec.execute_state import ExecutionState
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_lambda import (
    StateTaskServiceLambda,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.state_task_lambda import StateTaskLambda

# Environment variables are process-wide; Parallel branches invoke from several threads.
_ENV_LOCK = threading.RLock()
# Set while moto evaluates a Lambda Task's timeout in this thread (see `_lambda_tasks_wait_for_the_handler`).
_LAMBDA_TASK = threading.local()
# What a Lambda Task waits for in-process work: long enough to mean "until the handler returns".
UNBOUNDED_SECONDS = 10**8
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


def resolve_handler(path: str) -> Callable[..., Any]:
    module, _, name = path.rpartition(".")
    handler: Callable[..., Any] = getattr(importlib.import_module(module), name)
    return handler


def handler_ports(handler: Callable[..., Any], ports: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of `ports` this handler declares as keyword-only parameters."""
    parameters = inspect.signature(handler).parameters.values()
    return {p.name: ports[p.name] for p in parameters if p.kind is p.KEYWORD_ONLY and p.name in ports}


@contextmanager
def _lambda_tasks_wait_for_the_handler() -> Iterator[None]:
    """A Lambda Task's TimeoutSeconds does not bound in-process handler work (module docstring)."""
    evaluate = ExecutionState._evaluate_with_timeout
    seconds = Timeout._eval_body

    def evaluate_with_timeout(self: ExecutionState, env: Any) -> None:
        if not isinstance(self, (StateTaskLambda, StateTaskServiceLambda)):
            evaluate(self, env)
            return
        # The timeout is evaluated first, in this thread; the handler then runs in a worker thread.
        outer = getattr(_LAMBDA_TASK, "active", False)
        _LAMBDA_TASK.active = True
        try:
            evaluate(self, env)
        finally:
            _LAMBDA_TASK.active = outer

    def eval_body(self: Timeout, env: Any) -> None:
        seconds(self, env)
        if getattr(_LAMBDA_TASK, "active", False):
            env.stack[-1] = max(int(env.stack[-1]), UNBOUNDED_SECONDS)

    with (
        mock.patch.object(ExecutionState, "_evaluate_with_timeout", evaluate_with_timeout),
        mock.patch.object(Timeout, "_eval_body", eval_body),
    ):
        yield


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
    log: list[Invocation] | None = None,
    on_invoke: Callable[[Invocation], None] | None = None,
    ports: Mapping[str, Any] | None = None,
) -> Iterator[list[Invocation]]:
    """Patch moto's Lambda backend so invocations run our handlers (given the `ports` they declare,
    read at each invocation, so a test may swap an entry); yields the invocation log."""
    invocations: list[Invocation] = [] if log is None else log
    registry: Mapping[str, Any] = {} if ports is None else ports

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
                result = handler(event, context, **handler_ports(handler, registry))
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

    with mock.patch.object(LambdaSimpleBackend, "invoke", invoke), _lambda_tasks_wait_for_the_handler():
        yield invocations
