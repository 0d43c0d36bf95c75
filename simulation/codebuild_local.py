"""A stand-in for Step Functions' CodeBuild integration (`codebuild:startBuild.sync`) on moto.

moto's interpreter forwards no `.sync` CodeBuild task (it fails the state), and moto runs no
builds. The LimeFactory's `StartBuild` state is the only CodeBuild task we have; with this
installed, the interpreter hands it to a `Builder` (a Python callable standing in for the
project's buildspec) and completes the task the way Step Functions does when the build ends:
`{"Build": {"Id", "BuildStatus": "SUCCEEDED", ...}}`, or a `States.TaskFailed` failure whose
cause is the build record when the builder raises. Every stand-in build is recorded.

Only projects the caller names exist: starting any other fails as CodeBuild does
(`CodeBuild.ResourceNotFoundException`), so a definition that builds the wrong project name
fails here as it would on AWS.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from unittest import mock

from moto.stepfunctions.parser.api import HistoryEventType, TaskFailedEventDetails
from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import CustomErrorName
from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
    FailureEvent,
    FailureEventException,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task import state_task_factory
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.resource import ResourceCondition
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_callback import (
    StateTaskServiceCallback,
)
from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails
from moto.stepfunctions.parser.asl.utils.encoding import to_json_str

# (project name, environment variables of the build) -> None; raising fails the build.
Builder = Callable[[str, dict[str, str]], None]
_START_BUILD_PARAMETERS = {
    "ProjectName",
    "EnvironmentVariablesOverride",
    "SourceVersion",
    "BuildspecOverride",
    "TimeoutInMinutesOverride",
    "IdempotencyToken",
}


@dataclass(frozen=True)
class StandInBuild:
    build_id: str
    project: str
    environment: dict[str, str]
    status: str  # SUCCEEDED or FAILED
    error: str = ""


class _Builds:
    def __init__(self, projects: Collection[str], builder: Builder) -> None:
        self.projects = frozenset(projects)
        self.builder = builder
        self.done: list[StandInBuild] = []
        self._lock = threading.Lock()

    def run(self, project: str, environment: dict[str, str]) -> StandInBuild:
        build_id = f"{project}:{uuid.uuid4()}"
        try:
            self.builder(project, environment)
            build = StandInBuild(build_id, project, environment, "SUCCEEDED")
        except Exception as error:
            build = StandInBuild(build_id, project, environment, "FAILED", f"{type(error).__name__}: {error}")
        with self._lock:
            self.done.append(build)
        return build


class _StandInCodeBuild(StateTaskServiceCallback):
    """`arn:aws:states:::codebuild:startBuild(.sync)` run by a Builder instead of CodeBuild."""

    def __init__(self, builds: _Builds) -> None:
        # WaitForTaskToken is listed only so moto's callback plumbing sets up its endpoint; a
        # .waitForTaskToken CodeBuild task is not something we define.
        patterns: Any = {ResourceCondition.Sync, ResourceCondition.WaitForTaskToken}  # str constants, typed as class
        super().__init__(supported_integration_patterns=patterns)
        self._builds = builds

    def _get_supported_parameters(self) -> set[str] | None:
        return _START_BUILD_PARAMETERS if self.resource.api_action.lower() == "startbuild" else None

    def _failure(self, env: Any, error: str, cause: str) -> FailureEventException:
        return FailureEventException(
            FailureEvent(
                env=env,
                error_name=CustomErrorName(error_name=error),
                event_type=HistoryEventType.TaskFailed,
                event_details=EventDetails(
                    taskFailedEventDetails=TaskFailedEventDetails(  # type: ignore[typeddict-item]
                        error=error,
                        cause=cause,
                        resource=self._get_sfn_resource(),
                        resourceType=self._get_sfn_resource_type(),
                    )
                ),
            )
        )

    def _eval_service_task(
        self, env: Any, resource_runtime_part: Any, normalised_parameters: dict[str, Any], state_credentials: Any
    ) -> None:
        project = str(normalised_parameters.get("ProjectName", ""))
        if project not in self._builds.projects:
            raise self._failure(
                env,
                "CodeBuild.ResourceNotFoundException",
                f"Project cannot be found: arn:aws:codebuild:{resource_runtime_part.region}:"
                f"{resource_runtime_part.account}:project/{project}",
            )
        environment = {
            str(v["Name"]): str(v["Value"]) for v in normalised_parameters.get("EnvironmentVariablesOverride", [])
        }
        build = self._builds.run(project, environment)
        env.stack.append({"Build": {"Id": build.build_id, "ProjectName": project, "BuildStatus": "IN_PROGRESS"}})

    def _build_sync_resolver(
        self, env: Any, resource_runtime_part: Any, normalised_parameters: dict[str, Any], state_credentials: Any
    ) -> Callable[[], Any]:
        started = env.stack.pop()["Build"]
        build = next(b for b in self._builds.done if b.build_id == started["Id"])
        record = {
            "Id": build.build_id,
            "ProjectName": build.project,
            "BuildStatus": build.status,
            "EnvironmentVariables": [
                {"Name": k, "Value": v, "Type": "PLAINTEXT"} for k, v in build.environment.items()
            ],
        }

        def resolve() -> Any:
            if build.status == "SUCCEEDED":
                return {"Build": record}
            # What Step Functions reports when a .sync build ends FAILED: the build record as the cause.
            raise self._failure(env, "States.TaskFailed", to_json_str({**record, "Error": build.error}))

        return resolve


@contextmanager
def stand_in_builds(projects: Collection[str], builder: Builder) -> Iterator[list[StandInBuild]]:
    """Run `codebuild:startBuild.sync` tasks of moto's interpreter with `builder`; yields the builds done."""
    builds = _Builds(projects, builder)
    original = state_task_factory.state_task_service_for

    def service_for(service_name: str) -> Any:
        return _StandInCodeBuild(builds) if service_name == "codebuild" else original(service_name=service_name)

    with mock.patch.object(state_task_factory, "state_task_service_for", service_for):
        yield builds.done
