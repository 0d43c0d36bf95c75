"""The shell a suspect instance runs through SSM Run Command: kernel discovery and the LiME capture.

The capture, as a runbook:
1. download the pre-built lime.ko by a pre-signed GET URL into tmpfs (nothing touches the
   suspect's disks), check its sha256 against build.json and its vermagic against `uname -r`;
2. `insmod lime.ko path=tcp:<port> localhostonly=1 format=lime` - LiME serves the dump on a
   loopback port (only one reader, only from the host itself);
3. read that stream, hash it (sha256sum over a FIFO fed by tee) and cut it into parts of a fixed
   size; each part is PUT to its pre-signed UploadPart URL of the case's multipart upload;
4. print one `IRFORENSICS-RESULT {json}` line: sha256, size, the ETag of every part; the Lambda
   compares it with ListParts and completes the upload;
5. always (trap on EXIT): release LiME if it still waits for a reader, `rmmod lime`, wipe tmpfs.

No AWS credentials appear anywhere: the instance gets pre-signed URLs that expire with the
capture, valid for one object each. No compiler, no package install, no internet: the only
network peers are S3 (through the URLs) and, implicitly, the SSM agent's own endpoints.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from handlers.common.errors import IrfError

MIB = 1024 * 1024
# S3 multipart limits: parts of 5 MiB..5 GiB (the last may be smaller), at most 10,000 parts.
MIN_PART_SIZE = 5 * MIB
MAX_PART_SIZE = 5 * 1024 * MIB
DEFAULT_PART_SIZE = 64 * MIB
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
    part_size = max(DEFAULT_PART_SIZE, math.ceil(expected / MAX_PARTS / MIB) * MIB)
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
    module_bucket: str,
    module_key: str,
    part_count: int,
    expires_seconds: int,
    *,
    module_s3_client: Any | None = None,
    part_size: int = DEFAULT_PART_SIZE,
    metadata: dict[str, str] | None = None,
) -> tuple[str, PresignedMultipartUpload]:
    """Start the multipart upload of the memory image and pre-sign everything the instance needs.

    `s3_client` writes the evidence bucket (forensic account, SigV4); `module_s3_client` reads the
    modules bucket (the security account's Lambda role) and defaults to the same client.
    """
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
    module_url = str(
        (module_s3_client or s3_client).generate_presigned_url(
            "get_object", Params={"Bucket": module_bucket, "Key": module_key}, ExpiresIn=expires_seconds
        )
    )
    return module_url, PresignedMultipartUpload(
        bucket=bucket,
        key=key,
        upload_id=upload_id,
        part_urls=part_urls,
        expires_seconds=expires_seconds,
        part_size=part_size,
    )


def compact_part_urls(urls: Sequence[str]) -> tuple[str, list[str]]:
    """One shared URL base, and "<part> <X-Amz-Date> <X-Amz-Signature>" per part.

    The part URLs differ only in those three query parameters; SigV4 sorts the query before
    verifying, so the instance can put them back at the end. This keeps hundreds of URLs (each
    carrying the session token) within what a Run Command can hold.
    """
    if not urls:
        raise ValueError("no part URLs")
    base: str | None = None
    lines: list[str] = []
    for number, url in enumerate(urls, start=1):
        if "'" in url or "\n" in url:
            raise ValueError("a pre-signed URL with a quote or a newline cannot go into shell text")
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
        lines.append(f"{number} {date} {signature}")
    assert base is not None
    return base, lines


def rebuild_part_url(base: str, line: str) -> str:
    """What the instance's shell does with one compact line (kept here so tests can compare)."""
    number, date, signature = line.split()
    return f"{base}&partNumber={number}&X-Amz-Date={date}&X-Amz-Signature={signature}"


def discovery_commands() -> list[str]:
    """AWS-RunShellScript lines that print the kernel facts kernel.parse_discovery reads (read-only)."""
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
        "echo '### irforensics:end'",
    ]


# The capture script proper. Runs under bash (AWS-RunShellScript uses sh, which is dash on Ubuntu),
# from tmpfs. {{NAME}} placeholders are filled with shell-quoted values.
_CAPTURE_SCRIPT = r"""set -u -o pipefail
umask 077
export LC_ALL=C
MODULE_URL={{MODULE_URL}}
MODULE_SHA256={{MODULE_SHA256}}
PORT={{PORT}}
PART_SIZE={{PART_SIZE}}
MAX_PARTS={{MAX_PARTS}}
DEADLINE=$(( $(date +%s) + {{TIMEOUT}} ))
export BASE={{BASE}}
SELF="$0"
INSMOD_PID=""

result() { echo "IRFORENSICS-RESULT $1"; }
refuse() {
  # Reasons are fixed text plus sanitised values: nothing from the host can break the JSON.
  result "{\"Acquired\":false,\"Reason\":\"$(printf '%s' "$1" | tr -cd 'A-Za-z0-9 ._:/+=()-')\"}"
  exit "${2:-1}"
}
remaining() { echo $(( DEADLINE - $(date +%s) )); }

cleanup() {
  if [ -n "$INSMOD_PID" ] && kill -0 "$INSMOD_PID" 2>/dev/null; then
    # LiME blocks in accept() until a reader connects; connecting once lets insmod return.
    (exec 9<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null || true
    for _ in $(seq 1 30); do kill -0 "$INSMOD_PID" 2>/dev/null || break; sleep 1; done
  fi
  rmmod lime 2>/dev/null || true
  rm -rf "${WORK:-/nonexistent}" "$SELF"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

for tool in curl sha256sum split tee mkfifo insmod rmmod modinfo timeout awk sort stat; do
  command -v "$tool" >/dev/null 2>&1 || refuse "required tool $tool is missing on the instance" 3
done
grep -q '^lime ' /proc/modules && refuse "a lime module is already loaded; refusing to touch it" 4
WORK=$(mktemp -d /dev/shm/irforensics-lime.XXXXXX) || refuse "cannot create a working folder in /dev/shm" 5
export WORK MAX_PARTS

curl --fail --silent --show-error --proto '=https' --connect-timeout 10 --max-time 120 \
  --retry 3 --retry-delay 2 --output "$WORK/lime.ko" "$MODULE_URL" \
  || refuse "downloading lime.ko failed" 6
echo "$MODULE_SHA256  $WORK/lime.ko" | sha256sum --check --status - \
  || refuse "lime.ko does not match the sha256 in build.json" 7
VERMAGIC=$(modinfo -F vermagic "$WORK/lime.ko" 2>/dev/null | awk '{print $1}')
[ "$VERMAGIC" = "$(uname -r)" ] \
  || refuse "lime.ko was built for kernel $VERMAGIC but the instance runs $(uname -r)" 8

cat > "$WORK/parts" <<'IRFORENSICS_PARTS'
{{PART_LINES}}
IRFORENSICS_PARTS
cat > "$WORK/put-part" <<'IRFORENSICS_PUT_PART'
#!/bin/bash
# One part from stdin (split --filter), buffered in tmpfs: S3 needs each part's length up front.
set -u -o pipefail
n=$((10#${FILE##*-}))
[ "$n" -le "$MAX_PARTS" ] || { echo "memory is larger than $MAX_PARTS parts" >&2; exit 1; }
read -r number date signature < <(sed -n "${n}p" "$WORK/parts")
[ "$number" = "$n" ] || exit 1
cat > "$WORK/part"
size=$(stat -c %s "$WORK/part")
etag=$(curl --fail --silent --show-error --proto '=https' --connect-timeout 10 --max-time 900 \
         --retry 5 --retry-delay 2 --retry-all-errors --upload-file "$WORK/part" --dump-header - \
         --output /dev/null "${BASE}&partNumber=${number}&X-Amz-Date=${date}&X-Amz-Signature=${signature}" \
       | tr -d '\r' | awk 'tolower($1) == "etag:" {gsub(/"/, "", $2); print $2}')
rm -f "$WORK/part"
[ -n "$etag" ] || { echo "part $n: no ETag from S3" >&2; exit 1; }
echo "$n $etag $size" >> "$WORK/etags"
IRFORENSICS_PUT_PART
chmod 700 "$WORK/put-part"

mkfifo "$WORK/hash.fifo"
sha256sum < "$WORK/hash.fifo" > "$WORK/sha256" &
HASH_PID=$!
insmod "$WORK/lime.ko" "path=tcp:$PORT" localhostonly=1 format=lime &
INSMOD_PID=$!

connected=0
for _ in $(seq 1 60); do
  if exec 3<>"/dev/tcp/127.0.0.1/$PORT"; then connected=1; break; fi 2>/dev/null
  kill -0 "$INSMOD_PID" 2>/dev/null || break
  sleep 1
done
if [ "$connected" != 1 ]; then
  exec 3>&- 2>/dev/null; : > "$WORK/hash.fifo" & wait "$HASH_PID" 2>/dev/null
  wait "$INSMOD_PID"; refuse "insmod lime.ko failed or LiME never listened on port $PORT (exit $?)" 9
fi

LEFT=$(remaining)
[ "$LEFT" -gt 60 ] || refuse "no time left for the capture" 10
timeout "$LEFT" cat <&3 | tee "$WORK/hash.fifo" \
  | split --bytes="$PART_SIZE" --numeric-suffixes=1 --suffix-length=5 --filter="$WORK/put-part" - "$WORK/part-"
STREAM=("${PIPESTATUS[@]}")
exec 3<&-
wait "$HASH_PID"
wait "$INSMOD_PID"; LOADED=$?
INSMOD_PID=""
[ "${STREAM[0]}" = 0 ] || refuse "reading the LiME stream failed or timed out (exit ${STREAM[0]})" 11
[ "${STREAM[1]}" = 0 ] && [ "${STREAM[2]}" = 0 ] || refuse "uploading a part failed (exit ${STREAM[2]})" 12
[ "$LOADED" = 0 ] || refuse "LiME reported an error while dumping (insmod exit $LOADED)" 13
[ -s "$WORK/etags" ] || refuse "LiME produced no data" 14

SHA256=$(awk '{print $1}' "$WORK/sha256")
SIZE=$(awk '{s += $3} END {printf "%d", s}' "$WORK/etags")
PARTS=$(sort -n "$WORK/etags" | awk '{printf "%s[%d,\"%s\"]", (NR > 1 ? "," : ""), $1, $2}')
result "{\"Acquired\":true,\"Sha256\":\"$SHA256\",\"Size\":$SIZE,\"PartSize\":$PART_SIZE,\"Parts\":[$PARTS]}"
"""


def _script_path(upload: PresignedMultipartUpload) -> str:
    return f"/dev/shm/irforensics-capture-{hashlib.sha256(upload.upload_id.encode()).hexdigest()[:16]}.sh"


def capture_script(
    module_url: str, upload: PresignedMultipartUpload, *, module_sha256: str, timeout_seconds: int, port: int
) -> str:
    """The bash script alone (what `capture_commands` writes to tmpfs and runs)."""
    if not _SHA256.match(module_sha256):
        raise ValueError(f"module sha256 must be 64 lowercase hex digits, got {module_sha256!r}")
    if not 1024 < port < 65536:
        raise ValueError(f"port must be an unprivileged TCP port, got {port}")
    if timeout_seconds < 120:
        raise ValueError("a capture needs at least 120 seconds")
    if "'" in module_url or "\n" in module_url:
        raise ValueError("module URL cannot go into shell text")
    base, lines = compact_part_urls(upload.part_urls)
    values = {
        "MODULE_URL": shlex.quote(module_url),
        "MODULE_SHA256": module_sha256,
        "PORT": str(port),
        "PART_SIZE": str(upload.part_size),
        "MAX_PARTS": str(len(upload.part_urls)),
        "TIMEOUT": str(timeout_seconds),
        "BASE": shlex.quote(base),
        "PART_LINES": "\n".join(lines),
    }
    script = _CAPTURE_SCRIPT
    for name, value in values.items():
        script = script.replace("{{" + name + "}}", value)
    return script


def capture_commands(
    module_url: str,
    upload: PresignedMultipartUpload,
    *,
    module_sha256: str,
    timeout_seconds: int,
    port: int = 4444,
    case_id: str = "",
    instance_id: str = "",
) -> list[str]:
    """AWS-RunShellScript lines: write the capture script to tmpfs, run it under bash (bounded)."""
    script = capture_script(module_url, upload, module_sha256=module_sha256, timeout_seconds=timeout_seconds, port=port)
    path = _script_path(upload)
    label = re.sub(r"[^A-Za-z0-9._-]", "-", f"{case_id} {instance_id}".strip())
    commands = [
        "#!/bin/sh",
        f"{CAPTURE_MARKER} {label}".rstrip(),
        "umask 077",
        f"cat > {path} <<'IRFORENSICS_CAPTURE'",
        *script.splitlines(),
        "IRFORENSICS_CAPTURE",
        f"exec timeout --kill-after=30 {timeout_seconds} /bin/bash {path}",
    ]
    size = sum(len(line) + 1 for line in commands)
    if size > MAX_COMMAND_BYTES:
        raise ValueError(f"capture command is {size} bytes, more than {MAX_COMMAND_BYTES}: use fewer, larger parts")
    return commands


def script_from_commands(commands: Sequence[str]) -> str:
    """The bash script inside a capture command list (for syntax checks and the simulated agent)."""
    start = next(i for i, line in enumerate(commands) if line.endswith("<<'IRFORENSICS_CAPTURE'"))
    end = commands.index("IRFORENSICS_CAPTURE", start)
    return "\n".join(commands[start + 1 : end]) + "\n"


@dataclass(frozen=True)
class CaptureReport:
    acquired: bool
    reason: str = ""
    sha256: str = ""
    size: int = 0
    part_size: int = 0
    parts: tuple[tuple[int, str], ...] = field(default_factory=tuple)


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
    if not document["Acquired"]:
        return CaptureReport(acquired=False, reason=str(document.get("Reason", "no reason given"))[:500])
    sha256, size, part_size, parts = (document.get(k) for k in ("Sha256", "Size", "PartSize", "Parts"))
    if not isinstance(sha256, str) or not _SHA256.match(sha256):
        raise CaptureReportUnreadable("the capture's sha256 is not 64 hex digits")
    if not isinstance(size, int) or size <= 0 or not isinstance(part_size, int) or part_size <= 0:
        raise CaptureReportUnreadable("the capture's size or part size is not a positive whole number")
    if not isinstance(parts, list) or not parts:
        raise CaptureReportUnreadable("the capture lists no parts")
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
    return CaptureReport(acquired=True, sha256=sha256, size=size, part_size=part_size, parts=tuple(checked))
