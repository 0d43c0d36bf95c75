"""What the memory branch sends a suspect instance through SSM Run Command, and what it reads back.

The capture, as a runbook (the program itself is handlers/memory/acquire.py):
1. the Lambda starts the case's multipart upload and pre-signs every part, plus single PUTs for
   the host's BTF, kallsyms and banner (and, for the LiME method, a GET of the LimeFactory's
   lime.ko); URLs stay out of the state machine's history;
2. SendCommand names the project's own document `<prefix>-ir-memory-capture` (created by the
   member stack; never AWS-RunShellScript) with parameters its allowedPatterns admit: no quote,
   no newline, no shell metacharacter can reach the shell text SSM substitutes them into;
3. on the instance, python3 (>= 3.7, `-I -S`) runs acquire.py from that text: /proc/kcore through
   the kernel's direct map, or LiME where kcore is unavailable; LiME-format stream, hashed as
   read, PUT part by part; one `IRFORENSICS-RESULT {json}` line;
4. the Lambda compares the result with ListParts and completes the upload.

No AWS credentials appear anywhere: the instance gets pre-signed URLs that expire with the
capture, valid for one object each. No compiler, no package install, no internet: the only
network peers are S3 (through the URLs) and, implicitly, the SSM agent's own endpoints.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from handlers.common.errors import IrfError

MIB = 1024 * 1024
# S3 multipart limits: parts of 5 MiB..5 GiB (the last may be smaller), at most 10,000 parts.
MIN_PART_SIZE = 5 * MIB
MAX_PART_SIZE = 5 * 1024 * MIB
DEFAULT_PART_SIZE = 64 * MIB
# The capture holds one part in memory on the suspect host: small hosts get small parts.
MIN_PLANNED_PART_SIZE = 8 * MIB
# Every part needs a pre-signed URL in the command text, and every ETag comes back through
# the invocation's stdout (GetCommandInvocation keeps its first 24,000 characters): 400 parts
# keep both comfortably inside those limits; parts grow with memory instead.
MAX_PARTS = 400
# Kernel-reserved memory is not in MemTotal but is in the System RAM ranges LiME dumps.
SIZE_HEADROOM = 1.15
SIZE_SLACK_BYTES = 256 * MIB
UNKNOWN_MEMORY_BYTES = 64 * 1024 * MIB
# Kept well below what SendCommand accepts for a command document's parameters.
MAX_COMMAND_BYTES = 60_000
URL_MARGIN_SECONDS = 300
DISCOVERY_MARKER = "# irforensics:kernel-discovery"
CAPTURE_MARKER = "# irforensics:memory-capture"
RESULT_PREFIX = "IRFORENSICS-RESULT "
SECURE_BOOT_EFIVAR = "/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SIGNATURE = re.compile(r"^[0-9a-f]{64}$")
_AMZ_DATE = re.compile(r"^\d{8}T\d{6}Z$")
_ETAG = re.compile(r"^[0-9A-Za-z-]{1,128}$")


class CaptureReportUnreadable(IrfError):
    """The capture's output has no result line, or one that does not hold together."""


@dataclass(frozen=True)
class PartPlan:
    part_size: int
    part_count: int

    @property
    def capacity(self) -> int:
        return self.part_size * self.part_count


def plan_parts(memory_bytes: int | None) -> PartPlan:
    """Part size and count for a machine with this much memory (MemTotal); room for what LiME adds."""
    expected = int((memory_bytes or UNKNOWN_MEMORY_BYTES) * SIZE_HEADROOM) + SIZE_SLACK_BYTES
    part_size = max(MIN_PLANNED_PART_SIZE, math.ceil(expected / MAX_PARTS / MIB) * MIB)
    if part_size > MAX_PART_SIZE:
        raise ValueError(f"{memory_bytes} bytes of memory do not fit {MAX_PARTS} parts of at most 5 GiB")
    return PartPlan(part_size=part_size, part_count=min(MAX_PARTS, math.ceil(expected / part_size) + 1))


@dataclass(frozen=True)
class PresignedMultipartUpload:
    bucket: str
    key: str
    upload_id: str
    part_urls: tuple[str, ...]  # part n (1-based) is part_urls[n - 1]
    expires_seconds: int
    part_size: int = DEFAULT_PART_SIZE

    def to_event(self) -> dict[str, Any]:
        # URLs stay out of the state machine's history: they are bearer tokens for the upload.
        return {
            "Bucket": self.bucket,
            "Key": self.key,
            "UploadId": self.upload_id,
            "PartCount": len(self.part_urls),
            "PartSize": self.part_size,
            "ExpiresSeconds": self.expires_seconds,
        }


def presign_capture(
    s3_client: Any,
    bucket: str,
    key: str,
    part_count: int,
    expires_seconds: int,
    *,
    part_size: int = DEFAULT_PART_SIZE,
    metadata: dict[str, str] | None = None,
) -> PresignedMultipartUpload:
    """Start the multipart upload of the memory image and pre-sign every part (forensic account, SigV4)."""
    if not 1 <= part_count <= MAX_PARTS:
        raise ValueError(f"part count must be 1..{MAX_PARTS}, got {part_count}")
    if not MIN_PART_SIZE <= part_size <= MAX_PART_SIZE:
        raise ValueError(f"part size must be 5 MiB..5 GiB, got {part_size}")
    upload_id = str(
        s3_client.create_multipart_upload(
            Bucket=bucket,
            Key=key,
            ContentType="application/octet-stream",
            Metadata=dict(metadata or {}),
        )["UploadId"]
    )
    part_urls = tuple(
        str(
            s3_client.generate_presigned_url(
                "upload_part",
                Params={"Bucket": bucket, "Key": key, "UploadId": upload_id, "PartNumber": number},
                ExpiresIn=expires_seconds,
            )
        )
        for number in range(1, part_count + 1)
    )
    return PresignedMultipartUpload(
        bucket=bucket,
        key=key,
        upload_id=upload_id,
        part_urls=part_urls,
        expires_seconds=expires_seconds,
        part_size=part_size,
    )


def presign_module(s3_client: Any, bucket: str, key: str, expires_seconds: int) -> str:
    """The pre-signed GET of lime.ko (the security account's modules bucket)."""
    return str(
        s3_client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires_seconds)
    )


def compact_part_urls(urls: Sequence[str]) -> tuple[str, str]:
    """One shared URL base, and "<part>:<X-Amz-Date>:<X-Amz-Signature>" per part, comma-separated.

    The part URLs differ only in those three query parameters; SigV4 sorts the query before
    verifying, so the instance can put them back at the end. This keeps hundreds of URLs (each
    carrying the session token) within what one SendCommand can hold.
    """
    if not urls:
        raise ValueError("no part URLs")
    base: str | None = None
    items: list[str] = []
    for number, url in enumerate(urls, start=1):
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        values = dict(query)
        if values.get("partNumber") != str(number):
            raise ValueError(f"URL {number} is not for part {number}")
        date, signature = values.get("X-Amz-Date", ""), values.get("X-Amz-Signature", "")
        if not _AMZ_DATE.match(date) or not _SIGNATURE.match(signature):
            raise ValueError("part URLs must be SigV4 pre-signed (X-Amz-Date, X-Amz-Signature)")
        rest = [(k, v) for k, v in query if k not in ("partNumber", "X-Amz-Date", "X-Amz-Signature")]
        this_base = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(rest), ""))
        if base is None:
            base = this_base
        elif this_base != base:
            raise ValueError(f"URL {number} differs from the others beyond part number, date and signature")
        items.append(f"{number}:{date}:{signature}")
    assert base is not None
    return base, ",".join(items)


def rebuild_part_url(base: str, item: str) -> str:
    """What the instance does with one compact item (kept here so tests can compare)."""
    number, date, signature = item.split(":")
    return f"{base}&partNumber={number}&X-Amz-Date={date}&X-Amz-Signature={signature}"


def discovery_commands() -> list[str]:
    """The discovery document's shell: prints the kernel facts kernel.parse_discovery reads (read-only)."""
    return [
        "#!/bin/sh",
        DISCOVERY_MARKER,
        "export LC_ALL=C",
        "echo '### irforensics:uname-r'; uname -r",
        "echo '### irforensics:uname-m'; uname -m",
        "echo '### irforensics:os-release'; cat /etc/os-release 2>/dev/null || cat /usr/lib/os-release 2>/dev/null",
        "echo '### irforensics:mokutil'",
        "if command -v mokutil >/dev/null 2>&1; then timeout 10 mokutil --sb-state 2>&1 | head -n 5; fi",
        "echo '### irforensics:efivar-secureboot'",
        f"if [ -r {SECURE_BOOT_EFIVAR} ]; then od -An -tx1 -N 8 {SECURE_BOOT_EFIVAR}; fi",
        "echo '### irforensics:lockdown'; cat /sys/kernel/security/lockdown 2>/dev/null || true",
        "echo '### irforensics:meminfo'; grep '^MemTotal:' /proc/meminfo",
        # Whether /proc/kcore opens (lockdown=confidentiality and kernels without it refuse): its ELF magic.
        "echo '### irforensics:kcore'; head -c 4 /proc/kcore 2>/dev/null | od -An -tx1 || true",
        "echo '### irforensics:python'",
        "python3 -I -S -c 'import sys; print(\"%d.%d\" % sys.version_info[:2])' 2>/dev/null || true",
        "echo '### irforensics:btf'; [ -r /sys/kernel/btf/vmlinux ] && echo present || true",
        "echo '### irforensics:end'",
    ]


# ---------------------------------------------------------------------------------------------
# The project's own SSM command documents. SendCommand may name only these (`<prefix>-ir-*`), never
# AWS-RunShellScript: the text is fixed by the stacks, and every parameter SSM substitutes into it
# is held to an allowedPattern that admits no quote, no newline and no shell metacharacter.

CAPTURE_DOCUMENT_SUFFIX = "ir-memory-capture"
DISCOVERY_DOCUMENT_SUFFIX = "ir-kernel-discovery"
DOCUMENT_SCHEMA = "2.2"
METHODS = ("kcore", "lime")
# A pre-signed S3 URL: https, a host name, a path and a percent-encoded query (no quote, no space).
_URL_PATTERN = r"https://[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?/[A-Za-z0-9._~%/+=-]{0,1200}\?[A-Za-z0-9._~%/+=&-]{1,4000}"
_PART_ITEM = r"[0-9]{1,3}:[0-9]{8}T[0-9]{6}Z:[0-9a-f]{64}"
CAPTURE_PARAMETERS: dict[str, dict[str, str]] = {
    "Method": {
        "description": "kcore (no module) or lime (the LimeFactory's module)",
        "allowedPattern": "^(kcore|lime)$",
    },
    "UploadBase": {
        "description": "Pre-signed UploadPart URL without part number, date and signature",
        "allowedPattern": f"^{_URL_PATTERN}$",
    },
    "Parts": {
        "description": "part:X-Amz-Date:X-Amz-Signature of every part, comma-separated",
        "allowedPattern": f"^{_PART_ITEM}(,{_PART_ITEM}){{0,{MAX_PARTS - 1}}}$",
    },
    "PartSize": {"description": "Bytes per part", "allowedPattern": "^[1-9][0-9]{6,9}$"},
    "ModuleUrl": {
        "description": "Pre-signed GET of lime.ko (lime method)",
        "allowedPattern": f"^(none|{_URL_PATTERN})$",
        "default": "none",
    },
    "ModuleSha256": {
        "description": "sha256 of lime.ko from build.json",
        "allowedPattern": "^(none|[0-9a-f]{64})$",
        "default": "none",
    },
    "Port": {"description": "Loopback port LiME serves on", "allowedPattern": "^[1-9][0-9]{3,4}$", "default": "4444"},
    "TimeoutSeconds": {"description": "The capture's deadline", "allowedPattern": "^[1-9][0-9]{2,3}$"},
    "BtfUrl": {"description": "Pre-signed PUT of /sys/kernel/btf/vmlinux", "allowedPattern": f"^{_URL_PATTERN}$"},
    "KallsymsUrl": {"description": "Pre-signed PUT of /proc/kallsyms", "allowedPattern": f"^{_URL_PATTERN}$"},
    "VersionUrl": {"description": "Pre-signed PUT of /proc/version", "allowedPattern": f"^{_URL_PATTERN}$"},
    "executionTimeout": {
        "description": "Seconds before SSM stops the capture",
        "allowedPattern": "^[1-9][0-9]{2,3}$",
        "default": "3600",
    },
}


def document_name(prefix: str, suffix: str) -> str:
    return f"{prefix}-{suffix}"


def capture_program() -> str:
    """The text of handlers/memory/acquire.py: what the instance's python3 runs, unchanged."""
    return (Path(__file__).parent / "acquire.py").read_text()


def _python_check(result_prefix: str) -> list[str]:
    refusal = json.dumps(
        {"Acquired": False, "Reason": "python3 (3.7 or later) is not installed on the instance: the capture needs it"}
    )
    return [
        # python3 >= 3.7 is the host's minimum (cloud-init's runtime on mainstream EC2 Linux images).
        "PY=$(command -v python3 || true)",
        'if [ -z "$PY" ] || ! "$PY" -c "import sys; sys.exit(sys.version_info < (3, 7))" 2>/dev/null; then',
        f"  echo '{result_prefix}{refusal}'",
        "  exit 3",
        "fi",
    ]


def capture_document() -> dict[str, Any]:
    """The capture's SSM command document (schemaVersion 2.2): fixed text, checked parameters."""
    arguments = " ".join(f"'{name}={{{{ {name} }}}}'" for name in CAPTURE_PARAMETERS if name != "executionTimeout")
    program = capture_program()
    if "IRFORENSICS_CAPTURE" in program:
        raise ValueError("the capture program must not contain its here-document's end marker")
    commands = [
        "#!/bin/sh",
        CAPTURE_MARKER,
        "umask 077",
        "export LC_ALL=C",
        # Shells that put a here-document in a temporary file put it in tmpfs, not on the host's disk.
        "export TMPDIR=/dev/shm",
        *_python_check(RESULT_PREFIX),
        # -I -S: no PYTHON* variables, no user or site directories: nothing on the suspect host runs.
        f"exec \"$PY\" -I -S - {arguments} <<'IRFORENSICS_CAPTURE'",
        *program.splitlines(),
        "IRFORENSICS_CAPTURE",
    ]
    return {
        "schemaVersion": DOCUMENT_SCHEMA,
        "description": "irforensics: acquire the instance's memory (kcore, or the LimeFactory's LiME module) "
        "into the case's pre-signed multipart upload",
        "parameters": {name: {"type": "String", **spec} for name, spec in CAPTURE_PARAMETERS.items()},
        "mainSteps": [
            {
                "action": "aws:runShellScript",
                "name": "captureMemory",
                "inputs": {"timeoutSeconds": "{{ executionTimeout }}", "runCommand": commands},
            }
        ],
    }


def discovery_document() -> dict[str, Any]:
    """The read-only kernel discovery's SSM command document (no parameters)."""
    return {
        "schemaVersion": DOCUMENT_SCHEMA,
        "description": "irforensics: print the kernel facts memory acquisition depends on (read-only)",
        "mainSteps": [
            {
                "action": "aws:runShellScript",
                "name": "discoverKernel",
                "inputs": {"timeoutSeconds": "120", "runCommand": discovery_commands()},
            }
        ],
    }


@dataclass(frozen=True)
class SymbolSourceUrls:
    btf: str
    kallsyms: str
    version: str


# The names examiner.memory looks for beside the image.
SYMBOL_SOURCES = {"Btf": ".btf", "Kallsyms": ".kallsyms", "Version": ".version"}


def symbol_source_keys(image_key: str) -> dict[str, str]:
    """Where the host's BTF, kallsyms and kernel banner go, beside the memory image."""
    stem = image_key.removesuffix(".lime")
    return {name: stem + suffix for name, suffix in SYMBOL_SOURCES.items()}


def presign_symbol_sources(s3_client: Any, bucket: str, image_key: str, expires_seconds: int) -> SymbolSourceUrls:
    keys = symbol_source_keys(image_key)
    urls = {
        name: str(
            s3_client.generate_presigned_url(
                "put_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires_seconds
            )
        )
        for name, key in keys.items()
    }
    return SymbolSourceUrls(btf=urls["Btf"], kallsyms=urls["Kallsyms"], version=urls["Version"])


def capture_parameters(
    upload: PresignedMultipartUpload,
    symbols: SymbolSourceUrls,
    *,
    method: str,
    timeout_seconds: int,
    module_url: str = "none",
    module_sha256: str = "none",
    port: int = 4444,
) -> dict[str, list[str]]:
    """SendCommand's Parameters for the capture document, checked against its patterns here too."""
    if method not in METHODS:
        raise ValueError(f"capture method must be one of {METHODS}, got {method!r}")
    if method == "lime" and (module_url == "none" or not _SHA256.match(module_sha256)):
        raise ValueError("the lime method needs the module's URL and its sha256")
    if not 1024 < port < 65536:
        raise ValueError(f"port must be an unprivileged TCP port, got {port}")
    if timeout_seconds < 120:
        raise ValueError("a capture needs at least 120 seconds")
    base, parts = compact_part_urls(upload.part_urls)
    values = {
        "Method": method,
        "UploadBase": base,
        "Parts": parts,
        "PartSize": str(upload.part_size),
        "ModuleUrl": module_url,
        "ModuleSha256": module_sha256,
        "Port": str(port),
        "TimeoutSeconds": str(timeout_seconds),
        "BtfUrl": symbols.btf,
        "KallsymsUrl": symbols.kallsyms,
        "VersionUrl": symbols.version,
        "executionTimeout": str(timeout_seconds + 60),
    }
    for name, value in values.items():
        if not re.fullmatch(CAPTURE_PARAMETERS[name]["allowedPattern"], value):
            raise ValueError(f"capture parameter {name} does not match its allowedPattern")
    size = sum(len(value) for value in values.values())
    if size > MAX_COMMAND_BYTES:
        raise ValueError(f"capture parameters are {size} bytes, more than {MAX_COMMAND_BYTES}: use fewer, larger parts")
    return {name: [value] for name, value in values.items()}


@dataclass(frozen=True)
class CaptureReport:
    acquired: bool
    reason: str = ""
    method: str = ""
    sha256: str = ""
    size: int = 0
    part_size: int = 0
    parts: tuple[tuple[int, str], ...] = field(default_factory=tuple)
    ranges: tuple[tuple[int, int], ...] = field(default_factory=tuple)
    ranges_from: str = ""
    unreadable_bytes: int = 0
    seconds: float = 0.0
    symbol_sources: dict[str, dict[str, Any]] = field(default_factory=dict)


def _symbol_sources(raw: Any) -> dict[str, dict[str, Any]]:
    checked: dict[str, dict[str, Any]] = {}
    if not isinstance(raw, dict):
        return checked
    for name in SYMBOL_SOURCES:
        item = raw.get(name)
        if not isinstance(item, dict):
            continue
        digest, size = item.get("Sha256"), item.get("Size")
        if isinstance(digest, str) and _SHA256.match(digest) and isinstance(size, int) and size > 0:
            checked[name] = {"Sha256": digest, "Size": size}
        else:
            checked[name] = {"Missing": str(item.get("Missing", "not uploaded"))[:300]}
    return checked


def _checked_parts(parts: list[Any]) -> tuple[tuple[int, str], ...]:
    """(part number, ETag) in order from 1; any other entry makes the whole report unreadable."""
    checked: list[tuple[int, str]] = []
    for expected, item in enumerate(parts, start=1):
        if (
            not isinstance(item, list)
            or len(item) != 2
            or item[0] != expected
            or not isinstance(item[1], str)
            or not _ETAG.match(item[1])
        ):
            raise CaptureReportUnreadable(f"part entry {expected} of the capture is malformed")
        checked.append((expected, item[1]))
    return tuple(checked)


def _ranges(raw: Any) -> tuple[tuple[int, int], ...]:
    """The physical ranges the capture says it read; malformed entries are dropped, not trusted."""
    if not isinstance(raw, list):
        return ()
    return tuple(
        (int(r[0]), int(r[1]))
        for r in raw
        if isinstance(r, list) and len(r) == 2 and all(isinstance(v, int) and v >= 0 for v in r) and r[0] <= r[1]
    )


def parse_capture_output(stdout: str) -> CaptureReport:
    """The last `IRFORENSICS-RESULT` line of the capture's stdout (untrusted: checked field by field)."""
    lines = [line[len(RESULT_PREFIX) :] for line in stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if not lines:
        raise CaptureReportUnreadable("the capture printed no result line (cut short, or killed by its timeout?)")
    try:
        document = json.loads(lines[-1])
    except ValueError as exc:
        raise CaptureReportUnreadable(f"the capture's result line is not JSON: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("Acquired"), bool):
        raise CaptureReportUnreadable("the capture's result has no Acquired flag")
    method = document.get("Method") if document.get("Method") in METHODS else ""
    if not document["Acquired"]:
        return CaptureReport(
            acquired=False, method=str(method), reason=str(document.get("Reason", "no reason given"))[:500]
        )
    sha256, size, part_size, parts = (document.get(k) for k in ("Sha256", "Size", "PartSize", "Parts"))
    if not method:
        raise CaptureReportUnreadable("the capture does not say which method ran")
    if not isinstance(sha256, str) or not _SHA256.match(sha256):
        raise CaptureReportUnreadable("the capture's sha256 is not 64 hex digits")
    if not isinstance(size, int) or size <= 0 or not isinstance(part_size, int) or part_size <= 0:
        raise CaptureReportUnreadable("the capture's size or part size is not a positive whole number")
    if not isinstance(parts, list) or not parts:
        raise CaptureReportUnreadable("the capture lists no parts")
    checked = _checked_parts(parts)
    ranges = _ranges(document.get("Ranges", []))
    unreadable = document.get("UnreadableBytes", 0)
    seconds = document.get("Seconds", 0.0)
    return CaptureReport(
        acquired=True,
        method=str(method),
        sha256=sha256,
        size=size,
        part_size=part_size,
        parts=checked,
        ranges=ranges,
        ranges_from=str(document.get("RangesFrom", ""))[:100],
        unreadable_bytes=unreadable if isinstance(unreadable, int) and unreadable >= 0 else 0,
        seconds=float(seconds) if isinstance(seconds, int | float) else 0.0,
        symbol_sources=_symbol_sources(document.get("SymbolSources")),
    )
