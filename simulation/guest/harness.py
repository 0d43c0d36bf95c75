"""A real Linux guest under QEMU (TCG) whose memory the project's capture script acquires.

    with Guest.boot() as guest:
        run = guest.run_capture(document_text, parameters)

The guest boots Debian's own kernel with the initramfs of simulation.guest.image, runs the
scenario's planted activity (the SUID miner with its RWX mapping and sockets, root's bash with
the reverse shell, the web server's listener) and waits for commands on its second serial port.
`run_capture` does what SSM's aws:runShellScript does with a command document: substitutes the
parameters into the document's text, writes it to a script file and runs it with `sh`; the
script's HTTPS requests leave the guest only through QEMU's guestfwd to forwarder.py.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from simulation.guest import image as guest_image
from simulation.guest import ssm
from simulation.guest.forwarder import GUEST_ENDPOINT, Forwarder, Send, forwarding, send_with_requests

QEMU = "qemu-system-x86_64"
MEMORY_MIB = 256
BOOT_TIMEOUT_SECONDS = 240.0
CHUNK = 2048  # host-to-guest bytes per control line: a serial port's input buffer stays small


class GuestUnavailable(RuntimeError):
    """QEMU or a package the guest is built from is missing, or the guest did not come up."""


def qemu_available() -> bool:
    return shutil.which(QEMU) is not None


def unavailable_reason() -> str | None:
    """Why this machine cannot run the guest, or None when it can."""
    if not qemu_available():
        return f"{QEMU} is not installed (Debian package qemu-system-x86)"
    try:
        guest_image.kernel_release()
        for name in guest_image.PACKAGES:
            guest_image.package_version(name)
    except guest_image.GuestImageUnavailable as exc:
        return str(exc)
    return None


@dataclass(frozen=True)
class CommandRun:
    rc: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class MemoryRange:
    start: int
    end: int  # inclusive, as /proc/iomem and LiME write it


@dataclass
class Guest:
    process: subprocess.Popen[bytes]
    channel: socket.socket
    forwarder: Forwarder
    workdir: Path
    image: guest_image.GuestImage
    hosts: set[str] = field(default_factory=set)
    _pending: bytes = b""
    _count: int = 0

    @classmethod
    @contextmanager
    def boot(
        cls,
        scenario: str = "webshell",
        *,
        memory_mib: int = MEMORY_MIB,
        kernel_args: str = "",
        send: Send = send_with_requests,
    ) -> Iterator[Guest]:
        """Boot the guest with the scenario's planted activity; shut it down on exit."""
        if scenario != "webshell":
            raise ValueError(f"the guest knows the webshell scenario only, not {scenario!r}")
        reason = unavailable_reason()
        if reason:
            raise GuestUnavailable(reason)
        built = guest_image.build_image()
        with ExitStack() as stack:
            forwarder = stack.enter_context(forwarding(send))
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="irf-guest-")))
            control = workdir / "control.sock"
            relay = f"{sys.executable} -I -S {Path(__file__).parent / 'relay.py'} {forwarder.port}"
            address, port = GUEST_ENDPOINT
            command = [
                QEMU,
                "-machine",
                "q35",
                "-accel",
                "tcg",
                "-cpu",
                # 5-level paging leaves Volatility 3 unable to translate any address.
                "max,la57=off",
                "-smp",
                "1",
                "-m",
                str(memory_mib),
                "-kernel",
                str(built.kernel),
                "-initrd",
                str(built.initramfs),
                "-append",
                f"console=ttyS0 panic=-1 quiet loglevel=3 {kernel_args}".strip(),
                "-display",
                "none",
                "-monitor",
                "none",
                "-no-reboot",
                "-serial",
                f"file:{workdir / 'console.log'}",
                "-chardev",
                f"socket,id=control,path={control},server=on,wait=off",
                "-serial",
                "chardev:control",
                "-netdev",
                # restrict=on: no route out; the one guestfwd is the evidence upload's path.
                f"user,id=net0,restrict=on,ipv6=off,guestfwd=tcp:{address}:{port}-cmd:{relay}",
                "-device",
                "e1000,netdev=net0",
            ]
            errors = stack.enter_context(open(workdir / "qemu.err", "wb"))
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errors)
            stack.callback(_stop, process)
            channel = _connect(control, process)
            guest = cls(process=process, channel=channel, forwarder=forwarder, workdir=workdir, image=built)
            stack.callback(channel.close)
            guest._await_ready()
            guest._trust(forwarder.authority.pem)
            yield guest

    # -- the control channel ------------------------------------------------------------------

    def _line(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while b"\n" not in self._pending:
            left = deadline - time.monotonic()
            if left <= 0 or self.process.poll() is not None:
                raise GuestUnavailable(f"the guest stopped answering; console:\n{self.console()[-2000:]}")
            self.channel.settimeout(min(left, 5.0))
            try:
                data = self.channel.recv(65536)
            except TimeoutError:
                continue
            if not data:
                raise GuestUnavailable(f"the guest closed its control port; console:\n{self.console()[-2000:]}")
            self._pending += data
        line, self._pending = self._pending.split(b"\n", 1)
        text = line.strip()
        if not text.startswith(b"IRFGUEST "):
            return self._line(max(deadline - time.monotonic(), 1.0))
        return dict(json.loads(base64.b64decode(text[len(b"IRFGUEST ") :])))

    def _await_ready(self) -> None:
        answer = self._line(BOOT_TIMEOUT_SECONDS)
        if not answer.get("ready"):
            raise GuestUnavailable(f"unexpected first message from the guest: {answer}")

    def request(self, op: str, *, timeout: float = 120.0, **fields: Any) -> dict[str, Any]:
        self.channel.sendall(base64.b64encode(json.dumps({"op": op, **fields}).encode()) + b"\n")
        answer = self._line(timeout + 30.0)
        if not answer.get("ok"):
            raise GuestUnavailable(f"guest refused {op}: {answer.get('error')}")
        return answer

    def write_file(self, path: str, data: bytes, mode: str = "600") -> None:
        for offset in range(0, max(len(data), 1), CHUNK):
            chunk = data[offset : offset + CHUNK]
            self.request("write", path=path, data=base64.b64encode(chunk).decode(), mode=mode, append=offset > 0)

    def read_file(self, path: str, limit: int = 1 << 20) -> bytes:
        return base64.b64decode(self.request("read", path=path, limit=limit)["data"])

    def run(self, script: str, *, timeout: float = 120.0, name: str = "") -> CommandRun:
        """Run shell text the way aws:runShellScript does: as a script file, under `sh`, as root."""
        self._count += 1
        name = name or f"command-{self._count}"
        self.write_file(f"/var/lib/amazon/ssm/orchestration/{name}.sh", script.encode(), mode="700")
        answer = self.request("run", name=name, timeout=timeout)
        return CommandRun(
            rc=int(answer["rc"]),
            stdout=base64.b64decode(answer["stdout"]).decode(errors="replace"),
            stderr=base64.b64decode(answer["stderr"]).decode(errors="replace"),
        )

    def _trust(self, ca_pem: bytes) -> None:
        for path in ("/usr/lib/ssl/cert.pem", "/etc/ssl/certs/ca-certificates.crt"):
            self.write_file(path, ca_pem, mode="644")

    def _resolve(self, urls: list[str]) -> None:
        """Every host the URLs name resolves to the guestfwd endpoint (what the VPC endpoint's DNS does)."""
        hosts = {urlsplit(url).hostname or "" for url in urls} - {""}
        if hosts - self.hosts:
            self.hosts |= hosts
            lines = ["127.0.0.1 localhost", *(f"{GUEST_ENDPOINT[0]} {host}" for host in sorted(self.hosts))]
            self.write_file("/etc/hosts", ("\n".join(lines) + "\n").encode(), mode="644")

    # -- what tests and the simulation use ---------------------------------------------------

    def run_capture(self, script_text: str, parameters: Mapping[str, str], *, timeout: float = 900.0) -> CommandRun:
        """The capture document's commands, parameters substituted as SSM does, run as SSM runs them."""
        self._resolve(re.findall(r"https://[^\s'\"]+", " ".join(parameters.values())))
        return self.run(ssm.render(script_text, parameters), timeout=timeout, name="capture")

    def system_ram(self) -> list[MemoryRange]:
        """The top-level "System RAM" ranges of the guest's /proc/iomem (read as root)."""
        ranges = []
        for line in self.read_file("/proc/iomem").decode().splitlines():
            if line.startswith(" ") or not line.rstrip().endswith(": System RAM"):
                continue
            span = line.split(":", 1)[0].strip()
            start, end = (int(value, 16) for value in span.split("-"))
            ranges.append(MemoryRange(start, end))
        return ranges

    def console(self) -> str:
        path = self.workdir / "console.log"
        return path.read_text(errors="replace") if path.exists() else ""


def _connect(path: Path, process: subprocess.Popen[bytes]) -> socket.socket:
    deadline = time.monotonic() + 30.0
    while time.monotonic() < deadline:
        if process.poll() is not None:
            err = (path.parent / "qemu.err").read_text(errors="replace")
            raise GuestUnavailable(f"QEMU exited at start: {err[-1000:]}")
        if path.exists():
            channel = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                channel.connect(str(path))
                return channel
            except OSError:
                channel.close()
        time.sleep(0.05)
    raise GuestUnavailable("QEMU did not open the guest's control port")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
