"""The guest's end of the harness's control channel (runs inside the QEMU guest only).

One JSON request per line (base64) on the second serial port; one `IRFGUEST <base64 json>`
answer per request. Commands run the way SSM's aws:runShellScript runs them: written to a
script file and executed by `sh`, stdout and stderr captured, bounded by a timeout.
"""

import base64
import json
import os
import subprocess
import tty
import typing

PORT = "/dev/ttyS1"
WORK = "/var/lib/amazon/ssm/orchestration"


def answer(channel: typing.BinaryIO, document: dict[str, typing.Any]) -> None:
    channel.write(b"IRFGUEST " + base64.b64encode(json.dumps(document).encode()) + b"\n")


def handle(request: dict[str, typing.Any]) -> dict[str, typing.Any]:
    op = request["op"]
    if op == "ping":
        return {"ok": True}
    if op == "write":
        os.makedirs(os.path.dirname(request["path"]), exist_ok=True)
        mode = "ab" if request.get("append") else "wb"
        with open(request["path"], mode) as target:
            target.write(base64.b64decode(request["data"]))
        os.chmod(request["path"], int(request.get("mode", "600"), 8))
        return {"ok": True}
    if op == "read":
        with open(request["path"], "rb") as source:
            return {"ok": True, "data": base64.b64encode(source.read(request.get("limit", 1 << 20))).decode()}
    if op == "run":
        os.makedirs(WORK, exist_ok=True)
        path = os.path.join(WORK, request["name"] + ".sh")
        try:
            completed = subprocess.run(
                ["sh", path], capture_output=True, timeout=request.get("timeout", 600), cwd="/", env=request.get("env")
            )
            rc, out, err = completed.returncode, completed.stdout, completed.stderr
        except subprocess.TimeoutExpired as expired:
            rc, out, err = -9, expired.stdout or b"", (expired.stderr or b"") + b"\ntimed out"
        return {
            "ok": True,
            "rc": rc,
            "stdout": base64.b64encode(out).decode(),
            "stderr": base64.b64encode(err).decode(),
        }
    return {"ok": False, "error": "unknown op " + op}


def main() -> None:
    fd = os.open(PORT, os.O_RDWR | os.O_NOCTTY)
    tty.setraw(fd)
    channel = os.fdopen(fd, "r+b", buffering=0)
    answer(channel, {"ready": True})
    pending = b""
    while True:
        chunk = channel.read(65536)
        if not chunk:
            continue
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            line = line.strip()
            if not line:
                continue
            try:
                result = handle(json.loads(base64.b64decode(line)))
            except Exception as exc:  # every failure goes back to the host, the agent keeps serving
                result = {"ok": False, "error": type(exc).__name__ + ": " + str(exc)}
            answer(channel, result)


main()
