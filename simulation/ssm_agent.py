"""A simulated SSM agent on the member's instances (the simulation and the memory tests).

moto gaps (DESIGN.md): no DescribeInstanceInformation, SendCommand runs nothing and checks
neither that the document exists nor its parameters. `SimulatedAgent` fills these at moto's
edge: SendCommand refuses what SSM refuses (an unknown document, a parameter off its
allowedPattern); registered instances report an agent; a command is answered the way the
instance would answer it:

- with a guest (`AgentBehaviour.guest`, a running simulation.guest.Guest: a real Linux kernel
  under QEMU), the document's own text, parameters substituted as SSM does, runs inside the
  guest, whose uploads reach moto through the guest's forwarder: a REAL memory image;
- without one, discovery prints the sample output of a real host, and the capture is answered
  by SYNTHETIC data (simulation.synthetic_memory): the agent downloads the module when the method
  is LiME, checks its sha256, and PUTs a labelled pseudo-random LiME image part by part to the
  pre-signed URLs, as the capture program would.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import requests
from moto.core.responses import ActionResult
from moto.ssm.exceptions import InvalidDocument, ValidationException
from moto.ssm.models import SimpleSystemManagerBackend
from moto.ssm.responses import SimpleSystemManagerResponse

from handlers.memory import capture
from simulation.guest import ssm


@dataclass
class AgentBehaviour:
    ping: str = "Online"
    discovery: str = ""
    image: bytes | None = None
    lie_about_etags: bool = False
    guest: Any = None  # a simulation.guest.Guest: documents run inside it


@dataclass
class SimulatedAgent:
    agents: dict[str, AgentBehaviour] = field(default_factory=dict)
    answered: dict[str, str] = field(default_factory=dict)
    runs: dict[str, Any] = field(default_factory=dict)  # command id -> the guest's CommandRun

    def stdout(self, instance_id: str, document: dict[str, Any], values: dict[str, str], command_id: str) -> str:
        if command_id not in self.answered:
            agent = self.agents[instance_id]
            text = ssm.commands_of(document)
            if agent.guest is not None:
                run = agent.guest.run_capture(text, values)
                self.runs[command_id] = run
                self.answered[command_id] = run.stdout
            elif capture.DISCOVERY_MARKER in text:
                self.answered[command_id] = agent.discovery
            elif capture.CAPTURE_MARKER in text:
                self.answered[command_id] = self.synthetic_capture(agent, values)
            else:
                raise AssertionError(f"unexpected document sent to {instance_id}: {text[:200]}")
        return self.answered[command_id]

    def synthetic_capture(self, agent: AgentBehaviour, values: dict[str, str]) -> str:
        """What the capture program reports, over a synthetic image (no kernel ran)."""
        method = values["Method"]

        def refused(reason: str) -> str:
            return capture.RESULT_PREFIX + json.dumps({"Acquired": False, "Method": method, "Reason": reason})

        if method == "lime":
            module = requests.get(values["ModuleUrl"], timeout=10)
            if module.status_code != 200:
                return refused("downloading lime.ko failed")
            if hashlib.sha256(module.content).hexdigest() != values["ModuleSha256"]:
                return refused("lime.ko does not match the sha256 in build.json")
        if agent.image is None:
            return refused("LiME produced no data")
        size = int(values["PartSize"])
        chunks = [agent.image[i : i + size] for i in range(0, len(agent.image), size)]
        items = values["Parts"].split(",")
        parts = []
        for item, chunk in zip(items, chunks, strict=False):
            answer = requests.put(capture.rebuild_part_url(values["UploadBase"], item), data=chunk, timeout=10)
            assert answer.status_code == 200, answer.text
            etag = answer.headers["ETag"].strip('"')
            parts.append([int(item.split(":")[0]), "0" * 32 if agent.lie_about_etags else etag])
        return capture.RESULT_PREFIX + json.dumps(
            {
                "Acquired": True,
                "Method": method,
                "Sha256": hashlib.sha256(agent.image).hexdigest(),
                "Size": len(agent.image),
                "PartSize": size,
                "Parts": parts,
                "SymbolSources": {name: {"Missing": "synthetic memory: no kernel"} for name in capture.SYMBOL_SOURCES},
            }
        )

    @contextmanager
    def installed(self) -> Iterator[SimulatedAgent]:
        agent = self
        original_invocation = SimpleSystemManagerBackend.get_command_invocation
        original_send = SimpleSystemManagerBackend.send_command

        def document_of(backend: SimpleSystemManagerBackend, name: str) -> dict[str, Any]:
            try:
                found = backend.get_document(name, "", "", "JSON")
            except Exception as exc:
                raise InvalidDocument(f"Document {name} does not exist") from exc
            return dict(json.loads(found["Content"]))

        def send_command(backend: SimpleSystemManagerBackend, *args: Any, **kwargs: Any) -> Any:
            name = kwargs.get("document_name") or (args[1] if len(args) > 1 else None)
            document = document_of(backend, str(name))
            try:
                ssm.resolve(document, kwargs.get("parameters") or {})
            except ssm.InvalidParameters as exc:
                raise ValidationException(f"InvalidParameters: {exc}") from exc
            return original_send(backend, *args, **kwargs)

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
            invocation = original_invocation(backend, command_id, instance_id, plugin_name)
            command = backend.get_command_by_id(command_id)
            document = document_of(backend, str(command.document_name))
            values = ssm.resolve(document, command.parameters or {})
            return {**invocation, "StandardOutputContent": agent.stdout(instance_id, document, values, command_id)}

        with (
            mock.patch.object(
                SimpleSystemManagerResponse, "describe_instance_information", describe_instance_information, create=True
            ),
            mock.patch.object(SimpleSystemManagerBackend, "get_command_invocation", get_command_invocation),
            mock.patch.object(SimpleSystemManagerBackend, "send_command", send_command),
        ):
            yield self


def install_documents(ssm_client: Any, prefix: str) -> None:
    """The member stack's command documents, for tests that build a member account without deploying it."""
    for suffix, document in (
        (capture.CAPTURE_DOCUMENT_SUFFIX, capture.capture_document()),
        (capture.DISCOVERY_DOCUMENT_SUFFIX, capture.discovery_document()),
    ):
        ssm_client.create_document(
            Name=capture.document_name(prefix, suffix),
            Content=json.dumps(document),
            DocumentType="Command",
            DocumentFormat="JSON",
        )
