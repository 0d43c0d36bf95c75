"""What the analysis instance runs (`python3.11 -m examiner.remote`): one case, bucket to bucket.

1. Download the case prefix into a folder named after the case: containment/, custody/,
   manifest.json, disk/*.img and memory/*.lime with their `.sha256` files (never analysis/ or
   report/, which this run writes).
2. Check every image with `sha256sum -c` against the digest written at acquisition, before any
   tool reads it; a mismatch or a missing digest stops the examination.
3. Examine (examiner.runner.examine_case) and write the report
   (examiner.casefile.write_report).
4. Upload analysis/ then report/ with write-once puts; report/report.html last, so its presence
   means the examination is complete. A case that already has it is not examined again.

The instance's own role (the analysis instance profile) reads the case and writes only
analysis/ and report/; nothing here takes or prints a credential. The local simulation calls
`examine_from_bucket` in process with the forensic account's S3 client.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from examiner import ExaminationFailed
from examiner.casefile import write_report
from examiner.runner import DiskImage, MemoryImage, examine_case
from handlers.common.errors import EvidenceConflict
from handlers.common.evidence import EvidenceStore, analysis_key, digest_key, report_key, report_written

TOOL = "irforensics-examination"
# Folders of the case prefix the examination needs; analysis/ and report/ are its output.
CASE_INPUTS = ("containment", "custody", "disk", "memory")
# The manifest with its signature and public key: the report states whether the case verifies.
CASE_RECORDS = ("manifest.json", "manifest.json.sig", "manifest-signing-key.pem")
_DIGEST_LINE = re.compile(r"^([0-9a-f]{64}) [ *](\S+)\n?$")
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".md": "text/markdown; charset=utf-8",
    ".json": "application/json",
    ".csv": "text/csv; charset=utf-8",
}


class EvidenceDigestMismatch(ExaminationFailed):
    """An image does not match the digest recorded at acquisition: it is not examined."""


@dataclass(frozen=True)
class RemoteExamination:
    case_id: str
    report: str
    uploaded: list[str] = field(default_factory=list)
    verified: dict[str, str] = field(default_factory=dict)  # image key -> sha256 checked
    findings: int = 0
    already_examined: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def download_case(s3: Any, bucket: str, case_id: str, case_dir: Path, *, transfer: Any = None) -> list[str]:
    """The case's records and images into `case_dir` (named after the case, as casefile expects)."""
    prefix = f"{case_id}/"
    fetched: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            key = str(item["Key"])
            relative = key[len(prefix) :]
            if relative not in CASE_RECORDS and relative.split("/", 1)[0] not in CASE_INPUTS:
                continue
            target = (case_dir / relative).resolve()
            # A key like "<case>/disk/../../etc/x" must not write outside the case folder.
            if case_dir.resolve() not in target.parents:
                raise ExaminationFailed(f"evidence key {key!r} points outside the case folder")
            target.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, key, str(target), Config=transfer)
            fetched.append(key)
    return sorted(fetched)


def verify_image(image: Path) -> str:
    """`sha256sum -c` of one image against its `.sha256`; returns the digest checked."""
    digest_file = image.with_name(image.name + ".sha256")
    if not digest_file.is_file():
        raise EvidenceDigestMismatch(
            f"{image.name} has no {digest_file.name}: an image without its acquisition "
            "digest cannot be shown to be the acquired bytes, so it is not examined"
        )
    line = digest_file.read_text(errors="replace")
    match = _DIGEST_LINE.match(line)
    # The digest file must name this image: sha256sum -c would otherwise check whatever file it names.
    if not match or match.group(2) != image.name:
        raise EvidenceDigestMismatch(f"{digest_file.name} is not one sha256sum line for {image.name}: {line[:200]!r}")
    try:
        done = subprocess.run(
            ["sha256sum", "--check", "--strict", digest_file.name],
            cwd=image.parent,
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError as exc:
        raise ExaminationFailed("sha256sum is not installed (coreutils)") from exc
    if done.returncode != 0:
        detail = " / ".join((done.stdout + done.stderr).strip().splitlines()[-3:])
        raise EvidenceDigestMismatch(
            f"{image.name} does not match the sha256 recorded at acquisition "
            f"({match.group(1)}): {detail}; the image is not examined"
        )
    return match.group(1)


def _case_images(case_dir: Path) -> tuple[list[Path], list[Path]]:
    disks = sorted((case_dir / "disk").glob("*.img")) if (case_dir / "disk").is_dir() else []
    memory = sorted((case_dir / "memory").glob("*.lime")) if (case_dir / "memory").is_dir() else []
    return disks, memory


def _upload_folder(store: EvidenceStore, folder: Path, key_of: Any, *, last: str = "") -> list[str]:
    files = sorted((p for p in folder.rglob("*") if p.is_file()), key=lambda p: (p.name == last, p.as_posix()))
    keys: list[str] = []
    for path in files:
        key = key_of(store.case_id, path.relative_to(folder).as_posix())
        store.put_bytes(
            key,
            path.read_bytes(),
            source=f"examination of {store.case_id}",
            tool=TOOL,
            content_type=CONTENT_TYPES.get(path.suffix, "application/octet-stream"),
        )
        keys.append(key)
    return keys


def examine_from_bucket(
    s3: Any,
    bucket: str,
    case_id: str,
    work_dir: Path,
    *,
    incident_window: tuple[datetime, datetime] | None = None,
    symbols_dir: Path | None = None,
    transfer: Any = None,
    notes: list[str] | None = None,
) -> RemoteExamination:
    """Download, verify, examine, report and upload one case (the whole job of an analysis instance)."""
    report = report_key(case_id, "report.html")
    if report_written(s3, bucket, case_id):
        return RemoteExamination(case_id=case_id, report=report, already_examined=True)
    case_dir = work_dir / case_id
    case_dir.mkdir(parents=True, exist_ok=True)
    download_case(s3, bucket, case_id, case_dir, transfer=transfer)
    disks, memories = _case_images(case_dir)
    if not disks and not memories:
        # An instance without EBS volumes is examined from its memory alone.
        raise ExaminationFailed(
            f"case {case_id} has no disk image under s3://{bucket}/{case_id}/disk/ and no memory image under memory/"
        )
    verified = {f"{case_id}/{p.relative_to(case_dir).as_posix()}": verify_image(p) for p in [*disks, *memories]}

    memory = MemoryImage(path=memories[0], symbols_dir=symbols_dir) if memories else None
    notes = [
        *(notes or []),
        *(f"Memory image {p.name} was not examined: one memory image per case is analysed" for p in memories[1:]),
    ]
    result = examine_case(
        [DiskImage(path=p, volume_id=p.name.removesuffix(".img")) for p in disks],
        memory,
        case_dir,
        incident_window=incident_window,
    )
    written = write_report(case_dir, result, notes=notes)
    (case_dir / "analysis" / "verification.json").write_text(
        json.dumps(
            {
                "verified_with": "sha256sum --check --strict",
                "verified_at": datetime.now(UTC).isoformat(),
                "images": {key: {"sha256": digest, "digest_key": digest_key(key)} for key, digest in verified.items()},
            },
            indent=2,
            sort_keys=True,
        )
        + "\n"
    )

    store = EvidenceStore(s3, bucket, case_id)
    uploaded = _upload_folder(store, case_dir / "analysis", analysis_key)
    uploaded += _upload_folder(store, written["report.html"].parent, report_key, last="report.html")
    return RemoteExamination(
        case_id=case_id, report=report, uploaded=uploaded, verified=verified, findings=len(result.findings)
    )


def _moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def main(argv: Sequence[str] | None = None, *, s3: Any = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3.11 -m examiner.remote",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--bucket", required=True, help="the evidence bucket")
    parser.add_argument("--case-id", required=True)
    parser.add_argument("--work-dir", type=Path, required=True, help="the case is downloaded to WORK_DIR/<case id>")
    parser.add_argument("--region", help="the evidence bucket's region")
    parser.add_argument("--incident-start", type=_moment, help="ISO 8601 start of the incident window (UTC)")
    parser.add_argument("--incident-end", type=_moment, help="ISO 8601 end of the incident window (UTC)")
    parser.add_argument("--symbols", type=Path, help="directory holding the kernel's Volatility ISF")
    args = parser.parse_args(argv)
    if (args.incident_start is None) != (args.incident_end is None):
        parser.error("give both --incident-start and --incident-end, or neither")
    window = (args.incident_start, args.incident_end) if args.incident_start else None
    if s3 is None:
        from handlers.common.sessions import BOTO_CONFIG, lambda_session

        s3 = lambda_session(args.region).client("s3", config=BOTO_CONFIG)
    try:
        done = examine_from_bucket(
            s3, args.bucket, args.case_id, args.work_dir, incident_window=window, symbols_dir=args.symbols
        )
    except (ExaminationFailed, EvidenceConflict, ValueError) as exc:
        print(f"examination failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(done.to_dict(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
