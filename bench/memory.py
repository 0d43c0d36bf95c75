"""Memory capture throughput in the real guest: the kcore path against `dd` of the same memory.

    .venv/bin/python -m bench.memory [--memory-mib 256] [--lime]

One QEMU guest (Debian's kernel, TCG) and moto's evidence bucket, all in the same run:
- kcore: the project's capture document, run as SSM runs it: /proc/kcore read through the
  direct map, framed as LiME, hashed and uploaded part by part over TLS through the guest's
  forwarded port (the time is the program's own, from its first read to its last part);
- dd: busybox `dd` of the same kcore offsets to /dev/null inside the guest: the floor for
  "read these bytes once" (`/dev/mem` refuses RAM under STRICT_DEVMEM, so kcore is what dd reads);
- lime (with --lime and the LimeFactory script's module): the same document by the module.
Printed: bytes, seconds and MiB/s of each, and kcore/dd as a ratio measured in this run.
TCG emulates every guest instruction: absolute numbers are far below a real instance's.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

MIB = 1024 * 1024
EVIDENCE = "bench-evidence"
MODULES = "bench-modules"

# Run inside the guest: the capture program's own planning, then dd over each planned range.
DD_PLAN = r"""
import json, os, subprocess, sys, time
sys.path.insert(0, "/dev/shm")
import acquire
header = open("/proc/kcore", "rb").read(64)
fd = os.open("/proc/kcore", os.O_RDONLY)
segments = acquire.load_segments(header, lambda at, size: os.pread(fd, size, at))
plan = acquire.plan_ranges(acquire.system_ram(open("/proc/iomem").read()), acquire.direct_map(segments))
started = time.monotonic()
for start, end, offset in plan:
    subprocess.run(["dd", "if=/proc/kcore", "of=/dev/null", "bs=1M", "iflag=skip_bytes,count_bytes",
                    "skip=%d" % offset, "count=%d" % (end - start + 1)], check=True, stderr=subprocess.DEVNULL)
print(json.dumps({"seconds": time.monotonic() - started, "bytes": sum(e - s + 1 for s, e, _ in plan)}))
"""


def _capture(guest: Any, s3: Any, key: str, memory_mib: int, **method: Any) -> dict[str, Any]:
    from handlers.memory import capture
    from simulation.guest import ssm

    plan = capture.plan_parts(memory_mib * MIB)
    upload = capture.presign_capture(s3, EVIDENCE, key, plan.part_count, 3600, part_size=plan.part_size)
    symbols = capture.presign_symbol_sources(s3, EVIDENCE, key, 3600)
    document = capture.capture_document()
    values = ssm.resolve(document, capture.capture_parameters(upload, symbols, timeout_seconds=1800, **method))
    run = guest.run_capture(ssm.commands_of(document), values, timeout=1800)
    report = capture.parse_capture_output(run.stdout)
    if not report.acquired:
        raise SystemExit(f"capture failed: {report.reason}\n{run.stderr[-2000:]}")
    return {"bytes": report.size, "seconds": report.seconds}


def _line(name: str, result: dict[str, Any]) -> str:
    rate = result["bytes"] / MIB / result["seconds"]
    return f"{name:6} {result['bytes'] / MIB:9.1f} MiB {result['seconds']:8.2f} s {rate:8.1f} MiB/s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memory-mib", type=int, default=256)
    parser.add_argument("--lime", action="store_true", help="also capture by the LiME module (builds it first)")
    args = parser.parse_args(argv)

    import boto3
    from botocore.config import Config
    from moto import mock_aws

    from components import lime_factory
    from handlers.memory import capture
    from simulation.guest import Guest, unavailable_reason
    from simulation.guest import image as guest_image

    reason = unavailable_reason()
    if reason:
        print(f"bench.memory: no guest on this machine: {reason}", file=sys.stderr)
        return 2
    module = b""
    if args.lime:
        with tempfile.TemporaryDirectory() as out:
            env = {
                **os.environ,
                "DISTRO": "debian",
                "DISTRO_VERSION": "12",
                "KERNEL_RELEASE": guest_image.kernel_release(),
                "ARCH": "x86_64",
                "OUT": out,
                "IRF_SKIP_INSTALL": "1",
            }
            subprocess.run(["bash", str(lime_factory.BUILD_SCRIPT)], env=env, check=True, capture_output=True)
            module = (Path(out) / "lime.ko").read_bytes()
    with mock_aws():
        s3: Any = boto3.client(
            "s3", region_name="us-east-1", config=Config(signature_version="s3v4", s3={"addressing_style": "virtual"})
        )
        for bucket in (EVIDENCE, MODULES):
            s3.create_bucket(Bucket=bucket)
        with Guest.boot(memory_mib=args.memory_mib) as guest:
            kcore = _capture(guest, s3, "bench/memory/kcore.lime", args.memory_mib, method="kcore")
            guest.write_file("/dev/shm/acquire.py", capture.capture_program().encode())
            ran = guest.run(f"python3 -I -S - <<'EOF'\n{DD_PLAN}\nEOF\n", timeout=1800)
            dd = json.loads(ran.stdout.strip().splitlines()[-1])
            guest.run("rm -f /dev/shm/acquire.py")
            results = {"kcore": kcore, "dd": dd}
            if module:
                s3.put_object(Bucket=MODULES, Key="lime.ko", Body=module)
                url = capture.presign_module(s3, MODULES, "lime.ko", 3600)
                results["lime"] = _capture(
                    guest,
                    s3,
                    "bench/memory/lime.lime",
                    args.memory_mib,
                    method="lime",
                    module_url=url,
                    module_sha256=hashlib.sha256(module).hexdigest(),
                    port=45123,
                )
    print(f"guest: {args.memory_mib} MiB, Debian kernel {guest_image.kernel_release()}, QEMU TCG")
    for name, result in results.items():
        print(_line(name, result))
    ratio = (kcore["bytes"] / kcore["seconds"]) / (dd["bytes"] / dd["seconds"])
    print(f"kcore capture / dd throughput: {ratio:.2f} (hash, LiME framing, TLS upload included in kcore)")
    if "lime" in results:
        lime = results["lime"]
        print(f"kcore / lime throughput: {(kcore['bytes'] / kcore['seconds']) / (lime['bytes'] / lime['seconds']):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
