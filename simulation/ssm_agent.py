"""A simulated SSM agent on the member's instances (the simulation and the memory tests).

moto gaps (DESIGN.md): no DescribeInstanceInformation, and SendCommand runs nothing. `SimulatedAgent`
fills both at moto's edge: registered instances report an agent, and a command our handlers send
is answered the way the instance would answer it - discovery prints the sample output of a real
host; a capture downloads the module by its pre-signed URL, checks the sha256 the command names,
and PUTs a LiME image, part by part, to the pre-signed UploadPart URLs it was given. (That the
generated bash does the same on a host is tested in tests/handlers/test_capture.py.)
"""

from __future__ import annotations

import hashlib
import json
import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import requests
from moto.core.responses import ActionResult
from moto.ssm.models import SimpleSystemManagerBackend
from moto.ssm.responses import SimpleSystemManagerResponse

from handlers.memory import capture


@dataclass
class AgentBehaviour:
    ping: str = "Online"
    discovery: str = ""
    image: bytes | None = None
    lie_about_etags: bool = False


@dataclass
class SimulatedAgent:
    agents: dict[str, AgentBehaviour] = field(default_factory=dict)
    answered: dict[str, str] = field(default_factory=dict)

    def stdout(self, instance_id: str, commands: list[str], command_id: str) -> str:
        if command_id not in self.answered:
            agent = self.agents[instance_id]
            if capture.DISCOVERY_MARKER in commands:
                self.answered[command_id] = agent.discovery
            elif any(line.startswith(capture.CAPTURE_MARKER) for line in commands):
                self.answered[command_id] = self.capture(agent, capture.script_from_commands(commands))
            else:
                raise AssertionError(f"unexpected command to {instance_id}: {commands[:3]}")
        return self.answered[command_id]

    def capture(self, agent: AgentBehaviour, script: str) -> str:
        values = {
            line.split("=", 1)[0].removeprefix("export "): shlex.split(line.split("=", 1)[1])[0]
            for line in script.splitlines()
            if line.split("=", 1)[0].removeprefix("export ") in ("MODULE_URL", "MODULE_SHA256", "BASE", "PART_SIZE")
        }
        lines = script.split("<<'IRFORENSICS_PARTS'\n", 1)[1].split("\nIRFORENSICS_PARTS", 1)[0].splitlines()
        module = requests.get(values["MODULE_URL"], timeout=10)
        if module.status_code != 200:
            return capture.RESULT_PREFIX + json.dumps({"Acquired": False, "Reason": "downloading lime.ko failed"})
        if hashlib.sha256(module.content).hexdigest() != values["MODULE_SHA256"]:
            return capture.RESULT_PREFIX + json.dumps({"Acquired": False, "Reason": "sha256 mismatch"})
        if agent.image is None:
            return capture.RESULT_PREFIX + json.dumps({"Acquired": False, "Reason": "LiME produced no data"})
        size = int(values["PART_SIZE"])
        chunks = [agent.image[i : i + size] for i in range(0, len(agent.image), size)]
        parts = []
        for line, chunk in zip(lines, chunks, strict=False):
            answer = requests.put(capture.rebuild_part_url(values["BASE"], line), data=chunk, timeout=10)
            assert answer.status_code == 200, answer.text
            etag = answer.headers["ETag"].strip('"')
            parts.append([int(line.split()[0]), "0" * 32 if agent.lie_about_etags else etag])
        return capture.RESULT_PREFIX + json.dumps(
            {
                "Acquired": True,
                "Sha256": hashlib.sha256(agent.image).hexdigest(),
                "Size": len(agent.image),
                "PartSize": size,
                "Parts": parts,
            }
        )

    @contextmanager
    def installed(self) -> Iterator[SimulatedAgent]:
        agent = self
        original = SimpleSystemManagerBackend.get_command_invocation

        def describe_instance_information(response: SimpleSystemManagerResponse) -> ActionResult:
            filters = response._get_param("Filters", [])
            wanted = {v for f in filters if f["Key"] == "InstanceIds" for v in f["Values"]}
            return ActionResult(
                {
                    "InstanceInformationList": [
                        {"InstanceId": i, "PingStatus": a.ping, "PlatformType": "Linux", "AgentVersion": "3.3.1142.0"}
                        for i, a in agent.agents.items()
                        if i in wanted
                    ]
                }
            )

        def get_command_invocation(
            backend: SimpleSystemManagerBackend, command_id: str, instance_id: str, plugin_name: str | None
        ) -> dict[str, Any]:
            invocation = original(backend, command_id, instance_id, plugin_name)
            command = backend.get_command_by_id(command_id)
            return {
                **invocation,
                "StandardOutputContent": agent.stdout(instance_id, list(command.parameters["commands"]), command_id),
            }

        with (
            mock.patch.object(
                SimpleSystemManagerResponse, "describe_instance_information", describe_instance_information, create=True
            ),
            mock.patch.object(SimpleSystemManagerBackend, "get_command_invocation", get_command_invocation),
        ):
            yield self
