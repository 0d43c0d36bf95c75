"""The memory capture that runs ON THE SUSPECT HOST (python3 >= 3.7, standard library only).

SSM runs this file's text, unchanged, from the project's own command document
(capture.capture_document); nothing here may import the project. As a runbook:

kcore (the default; no module, no compiler):
1. the top-level "System RAM" ranges of /proc/iomem (zeros when not root: kcore's segments alone);
2. /proc/kcore's ELF program headers: PT_LOAD segments with a physical address, keeping those
   at the dominant virtual-minus-physical offset (the kernel's direct map of all RAM; the
   kernel-text segment maps RAM a second time, vmalloc/modules/vmemmap have no physical address);
3. each RAM range read with pread at p_offset + (phys - p_paddr), framed as a LiME v1 range.
lime (the fallback where kcore is unavailable): the LimeFactory's lime.ko, downloaded by its
pre-signed URL into tmpfs, checked against its sha256 and the running kernel's release, loaded
with `path=tcp:<port> localhostonly=1 format=lime timeout=0` (no range skipped as "too slow" while a
part uploads); its loopback stream is read once, its LiME headers followed to the end: the
ranges it held go into the result, and a stream that stops inside a range is refused.

Either way the LiME stream is hashed as it is read and PUT part by part to the case's pre-signed
multipart upload (each part held in this process's memory, never in a file); then the kernel's
own BTF, /proc/kallsyms and /proc/version go to their pre-signed URLs (what the examination
needs to build Volatility symbols with no debug package). The last stdout line is
`IRFORENSICS-RESULT {json}`. Nothing is written to the host's disks; no credentials are present.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import json
import os
import signal
import socket
import ssl
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

RESULT_PREFIX = "IRFORENSICS-RESULT "
LIME_MAGIC = 0x4C694D45
LIME_HEADER = struct.Struct("<IIQQ8s")
READ_CHUNK = 1 << 20
NO_PHYSICAL_ADDRESS = 0xFFFFFFFFFFFFFFFF
PT_LOAD = 1
RETRIES = 5
MODULE_DIRECTORY = "/dev/shm"


class Refused(Exception):
    """The capture cannot go on: the message is the reason the result line carries."""


def refuse_text(text: str) -> str:
    # The reason comes partly from the host: keep it to plain characters and a bounded length.
    return "".join(c for c in text if c.isalnum() or c in " ._:/+=()-,")[:400]


# -- where physical memory is ------------------------------------------------------------------


def system_ram(iomem: str) -> list[tuple[int, int]]:
    """Inclusive (start, end) of the top-level "System RAM" lines; [] when they read as zeros."""
    ranges = []
    for line in iomem.splitlines():
        if line.startswith(" ") or not line.rstrip().endswith(": System RAM"):
            continue
        start, end = (int(value, 16) for value in line.split(":", 1)[0].strip().split("-"))
        ranges.append((start, end))
    if all(start == 0 and end == 0 for start, end in ranges):
        return []
    return ranges


def load_segments(header: bytes, read_at: Any) -> list[tuple[int, int, int, int]]:
    """(p_offset, p_vaddr, p_paddr, p_filesz) of every PT_LOAD in an ELF64 little-endian core."""
    if header[:4] != b"\x7fELF" or header[4] != 2 or header[5] != 1:
        raise Refused("/proc/kcore is not a 64-bit little-endian ELF core")
    (phoff,) = struct.unpack_from("<Q", header, 32)
    phentsize, phnum = struct.unpack_from("<HH", header, 54)
    table = read_at(phoff, phentsize * phnum)
    segments = []
    for index in range(phnum):
        p_type, _flags, p_offset, p_vaddr, p_paddr, p_filesz = struct.unpack_from("<IIQQQQ", table, index * phentsize)
        if p_type == PT_LOAD:
            segments.append((p_offset, p_vaddr, p_paddr, p_filesz))
    return segments


def direct_map(segments: list[tuple[int, int, int, int]]) -> list[tuple[int, int, int]]:
    """(phys start, phys end inclusive, file offset) of the segments at the direct map's offset."""
    covered: dict[int, int] = {}
    for _offset, vaddr, paddr, size in segments:
        if paddr != NO_PHYSICAL_ADDRESS and size:
            delta = (vaddr - paddr) & NO_PHYSICAL_ADDRESS
            covered[delta] = covered.get(delta, 0) + size
    if not covered:
        raise Refused("/proc/kcore has no segment with a physical address")
    dominant = max(covered, key=lambda delta: covered[delta])
    mapped = [
        (paddr, paddr + size - 1, offset)
        for offset, vaddr, paddr, size in segments
        if paddr != NO_PHYSICAL_ADDRESS and size and (vaddr - paddr) & NO_PHYSICAL_ADDRESS == dominant
    ]
    return sorted(mapped)


def plan_ranges(ram: list[tuple[int, int]], mapped: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """(phys start, phys end inclusive, kcore offset) of RAM readable through the direct map."""
    wanted = ram or [(start, end) for start, end, _ in mapped]
    plan: list[tuple[int, int, int]] = []
    for ram_start, ram_end in wanted:
        for seg_start, seg_end, offset in mapped:
            start, end = max(ram_start, seg_start), min(ram_end, seg_end)
            if start > end:
                continue
            file_offset = offset + (start - seg_start)
            if plan and plan[-1][1] + 1 == start and plan[-1][2] + (start - plan[-1][0]) == file_offset:
                plan[-1] = (plan[-1][0], end, plan[-1][2])
            else:
                plan.append((start, end, file_offset))
    return plan


def lime_header(start: int, end: int) -> bytes:
    return LIME_HEADER.pack(LIME_MAGIC, 1, start, end, b"\0" * 8)


def kcore_stream(plan: list[tuple[int, int, int]], stats: dict[str, Any]) -> Iterator[bytes]:
    descriptor = os.open("/proc/kcore", os.O_RDONLY)
    try:
        for start, end, offset in plan:
            yield lime_header(start, end)
            left, position = end - start + 1, offset
            while left:
                size = min(READ_CHUNK, left)
                try:
                    data = os.pread(descriptor, size, position)
                except OSError:
                    data = b""
                if len(data) < size:
                    # A page the kernel will not hand out (a hole it reports as an error): zeros,
                    # counted, so the image keeps every address where LiME would put it.
                    stats["UnreadableBytes"] = stats.get("UnreadableBytes", 0) + size - len(data)
                    data = data + b"\0" * (size - len(data))
                yield data
                left -= size
                position += size
    finally:
        os.close(descriptor)


# -- HTTPS ---------------------------------------------------------------------------------------


class Https:
    """One kept-alive connection per host; every request retried on a fresh one when it fails."""

    def __init__(self, deadline: float) -> None:
        self.context = ssl.create_default_context()
        self.connections: dict[str, http.client.HTTPSConnection] = {}
        self.deadline = deadline

    def request(self, method: str, url: str, body: bytes | memoryview = b"") -> tuple[int, dict[str, str], bytes]:
        if not url.startswith("https://"):
            raise Refused("a pre-signed URL is not https")
        host, _, path = url[len("https://") :].partition("/")
        headers = {"Content-Length": str(len(body))} if method == "PUT" else {}
        if method == "PUT":
            headers["Content-MD5"] = base64.b64encode(_md5(body)).decode()
        problem = "no attempt"
        for attempt in range(RETRIES):
            if time.time() > self.deadline:
                raise Refused("the capture ran out of time")
            connection = self.connections.get(host)
            if connection is None:
                connection = http.client.HTTPSConnection(host, timeout=120, context=self.context)
                self.connections[host] = connection
            try:
                connection.request(method, "/" + path, body=body, headers=headers)
                answer = connection.getresponse()
                data = answer.read()
                if answer.status < 500:
                    return answer.status, {k.lower(): v for k, v in answer.getheaders()}, data
                problem = f"HTTP {answer.status}"
            except (OSError, http.client.HTTPException) as exc:
                problem = type(exc).__name__
            connection.close()
            del self.connections[host]
            time.sleep(min(2**attempt, 10))
        raise Refused(f"{method} {host} failed {RETRIES} times ({problem})")


def _md5(data: bytes | memoryview) -> bytes:
    try:
        return hashlib.md5(data, usedforsecurity=False).digest()
    except TypeError:  # python < 3.9
        return hashlib.md5(data).digest()


class MultipartSink:
    """Cuts the stream into parts of the planned size and PUTs each to its pre-signed URL.

    One buffer of one part, allocated once: the capture must not take the memory it is reading.
    """

    def __init__(self, https: Https, base: str, parts: list[tuple[int, str, str]], part_size: int) -> None:
        self.https, self.base, self.parts, self.part_size = https, base, parts, part_size
        self.buffer = bytearray(part_size)
        self.filled = 0
        self.digest = hashlib.sha256()
        self.size = 0
        self.etags: list[tuple[int, str]] = []

    def write(self, data: bytes) -> None:
        self.digest.update(data)
        self.size += len(data)
        view = memoryview(data)
        while view:
            take = min(len(view), self.part_size - self.filled)
            self.buffer[self.filled : self.filled + take] = view[:take]
            self.filled += take
            view = view[take:]
            if self.filled == self.part_size:
                self._put(memoryview(self.buffer))
                self.filled = 0

    def close(self) -> None:
        if self.filled or not self.etags:
            self._put(memoryview(self.buffer)[: self.filled])
            self.filled = 0

    def _put(self, body: memoryview) -> None:
        number = len(self.etags) + 1
        if number > len(self.parts):
            raise Refused(f"memory is larger than the {len(self.parts)} parts pre-signed for it")
        part, date, signature = self.parts[number - 1]
        url = f"{self.base}&partNumber={part}&X-Amz-Date={date}&X-Amz-Signature={signature}"
        status, headers, _ = self.https.request("PUT", url, body)
        etag = headers.get("etag", "").strip('"')
        if status != 200 or not etag:
            raise Refused(f"part {number}: S3 answered {status} with no ETag")
        self.etags.append((number, etag))


# -- the two methods ------------------------------------------------------------------------------


def capture_kcore(sink: MultipartSink, stats: dict[str, Any]) -> None:
    try:
        with open("/proc/kcore", "rb") as kcore:
            header = kcore.read(64)
    except OSError as exc:
        raise Refused(f"/proc/kcore cannot be read ({exc.strerror}): kernel lockdown or no kcore") from exc
    with open("/proc/iomem") as iomem:
        ram = system_ram(iomem.read())
    descriptor = os.open("/proc/kcore", os.O_RDONLY)
    try:
        segments = load_segments(header, lambda at, size: os.pread(descriptor, size, at))
    finally:
        os.close(descriptor)
    plan = plan_ranges(ram, direct_map(segments))
    if not plan:
        raise Refused("no System RAM range is reachable through /proc/kcore")
    expected = sum(LIME_HEADER.size + end - start + 1 for start, end, _ in plan)
    if expected > sink.part_size * len(sink.parts):
        raise Refused(f"{expected} bytes of memory do not fit the {len(sink.parts)} parts pre-signed")
    stats["Ranges"] = [[start, end] for start, end, _ in plan]
    stats["RangesFrom"] = "/proc/iomem System RAM" if ram else "/proc/kcore segments (iomem unreadable)"
    for data in kcore_stream(plan, stats):
        sink.write(data)


def module_vermagic(module: bytes) -> str:
    """The kernel release a .ko was built for (its .modinfo `vermagic=`), without modinfo."""
    marker = module.find(b"vermagic=")
    if marker < 0:
        return ""
    return module[marker + len(b"vermagic=") : module.find(b"\0", marker)].decode(errors="replace").split(" ")[0]


def module_parameters(module: bytes) -> set[str]:
    """The parameters a .ko declares (its .modinfo `parmtype=NAME:TYPE` entries), without modinfo."""
    return {
        entry[len(b"parmtype=") :].split(b":", 1)[0].decode(errors="replace")
        for entry in module.split(b"\0")
        if entry.startswith(b"parmtype=") and b":" in entry
    }


def lime_arguments(module: bytes, port: int) -> list[str]:
    """insmod's parameters for lime.ko: a loopback TCP stream in LiME format that never skips a range."""
    arguments = [f"path=tcp:{port}", "localhostonly=1", "format=lime"]
    # LiME pads the rest of a range with zeros once writing one page takes longer than `timeout`
    # ms (1000 by default), and this reader stops reading while it PUTs each part: any part upload
    # slower than a second would leave a well-formed image of zeros. 0 turns the skipping off;
    # a module without the parameter has no such skipping.
    if "timeout" in module_parameters(module):
        arguments.append("timeout=0")
    return arguments


class LimeFraming:
    """Follows the LiME headers through the module's stream: the ranges it holds, and whether it
    ended where a range ends (a module that stops early must not pass for a whole image)."""

    def __init__(self) -> None:
        self.ranges: list[list[int]] = []
        self.header = b""
        self.left = 0
        self.broken = ""

    def feed(self, data: bytes) -> None:
        view = memoryview(data)
        while view and not self.broken:
            if self.left:
                take = min(self.left, len(view))
                self.left -= take
                view = view[take:]
                continue
            need = LIME_HEADER.size - len(self.header)
            self.header += bytes(view[:need])
            view = view[need:]
            if len(self.header) < LIME_HEADER.size:
                return
            magic, version, start, end, _reserved = LIME_HEADER.unpack(self.header)
            self.header = b""
            if magic != LIME_MAGIC or version != 1 or end < start:
                self.broken = f"the LiME stream has no valid header after range {len(self.ranges)}"
                return
            self.ranges.append([start, end])
            self.left = end - start + 1

    def problem(self) -> str:
        if self.broken:
            return self.broken
        if self.header:
            return f"the LiME stream ended inside the header of range {len(self.ranges) + 1}"
        if self.left:
            return f"the LiME stream ended inside range {len(self.ranges)} ({self.left} bytes missing)"
        if not self.ranges:
            return "the LiME module sent no memory range"
        return ""


def capture_lime(sink: MultipartSink, https: Https, params: dict[str, str], stats: dict[str, Any]) -> None:
    with open("/proc/modules") as modules:
        loaded = [line.split(" ")[0] for line in modules.read().splitlines()]
    if "lime" in loaded:
        raise Refused("a lime module is already loaded; refusing to touch it")
    status, _, module = https.request("GET", params["ModuleUrl"])
    if status != 200:
        raise Refused(f"downloading lime.ko failed (HTTP {status})")
    if hashlib.sha256(module).hexdigest() != params["ModuleSha256"]:
        raise Refused("lime.ko does not match the sha256 in build.json")
    release = os.uname().release
    if module_vermagic(module) != release:
        raise Refused(f"lime.ko was built for kernel {module_vermagic(module)} but the instance runs {release}")
    path = f"{MODULE_DIRECTORY}/irforensics-lime-{os.getpid()}.ko"
    port = int(params["Port"])
    with open(path, "wb") as target:
        target.write(module)
    loader = None
    try:
        loader = subprocess.Popen(
            ["insmod", path, *lime_arguments(module, port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        stream = None
        for _ in range(120):
            try:
                stream = socket.create_connection(("127.0.0.1", port), timeout=60)
                break
            except OSError:
                if loader.poll() is not None:
                    break
                time.sleep(0.5)
        if stream is None:
            error = loader.communicate()[1].decode(errors="replace") if loader.poll() is not None else "no listener"
            raise Refused(f"insmod lime.ko failed or LiME never listened on port {port}: {error}")
        framing = LimeFraming()
        with stream:
            stream.settimeout(300)
            while True:
                data = stream.recv(READ_CHUNK)
                if not data:
                    break
                framing.feed(data)
                sink.write(data)
        if loader.wait(timeout=120) != 0:
            raise Refused(f"LiME reported an error while dumping (insmod exit {loader.returncode})")
        if framing.problem():
            raise Refused(framing.problem())
        stats["Ranges"] = framing.ranges
    finally:
        if loader is not None and loader.poll() is None:
            # LiME blocks in accept() until a reader connects: connecting once lets insmod return.
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=5).close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                loader.wait(timeout=30)
        subprocess.call(["rmmod", "lime"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.remove(path)
    stats["RangesFrom"] = "LiME module"


# -- what the examination needs for symbols --------------------------------------------------------


def kallsyms_hidden(data: bytes) -> bool:
    # Per-CPU symbols sit at 0 even for root; with kptr_restrict every address reads as 0.
    return all(line.startswith(b"0000000000000000 ") for line in data.splitlines())


def upload_symbol_sources(https: Https, params: dict[str, str]) -> dict[str, Any]:
    uploaded: dict[str, Any] = {}
    for name, path in (
        ("Btf", "/sys/kernel/btf/vmlinux"),
        ("Kallsyms", "/proc/kallsyms"),
        ("Version", "/proc/version"),
    ):
        try:
            with open(path, "rb") as source:
                data = source.read()
        except OSError as exc:
            uploaded[name] = {"Missing": refuse_text(f"{path}: {exc.strerror}")}
            continue
        if name == "Kallsyms" and kallsyms_hidden(data):
            uploaded[name] = {"Missing": "/proc/kallsyms shows no addresses (kptr_restrict)"}
            continue
        status, _, _ = https.request("PUT", params[name + "Url"], data)
        if status != 200:
            uploaded[name] = {"Missing": f"upload of {path} answered HTTP {status}"}
            continue
        uploaded[name] = {"Sha256": hashlib.sha256(data).hexdigest(), "Size": len(data)}
    return uploaded


# -- main -----------------------------------------------------------------------------------------


def parse_parts(text: str) -> list[tuple[int, str, str]]:
    parts = []
    for item in text.split(","):
        number, date, signature = item.split(":")
        parts.append((int(number), date, signature))
    return parts


def result(document: dict[str, Any]) -> None:
    sys.stdout.write(RESULT_PREFIX + json.dumps(document, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def _terminate(signum: int, _frame: Any) -> None:
    raise Refused(f"the capture was interrupted (signal {signum})")


def main(argv: list[str]) -> int:
    params = dict(arg.split("=", 1) for arg in argv)
    method = params.get("Method", "")
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, _terminate)
    started = time.time()
    stats: dict[str, Any] = {}
    try:
        if method not in ("kcore", "lime"):
            raise Refused("unknown capture method")
        if os.geteuid() != 0:
            raise Refused("the capture must run as root")
        try:
            https = Https(started + int(params["TimeoutSeconds"]))
            sink = MultipartSink(https, params["UploadBase"], parse_parts(params["Parts"]), int(params["PartSize"]))
        except (KeyError, ValueError) as exc:
            raise Refused(f"the capture was sent without a well-formed parameter ({exc})") from exc
        if method == "kcore":
            capture_kcore(sink, stats)
        else:
            capture_lime(sink, https, params, stats)
        sink.close()
        seconds = max(time.time() - started, 0.001)
        sources = upload_symbol_sources(https, params)
    except Refused as exc:
        result({"Acquired": False, "Method": method, "Reason": refuse_text(str(exc))})
        return 1
    result(
        {
            "Acquired": True,
            "Method": method,
            "Sha256": sink.digest.hexdigest(),
            "Size": sink.size,
            "PartSize": sink.part_size,
            "Parts": [[number, etag] for number, etag in sink.etags],
            "Seconds": round(seconds, 3),
            "Kernel": refuse_text(os.uname().release),
            "SymbolSources": sources,
            **stats,
        }
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
