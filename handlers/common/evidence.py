"""The evidence layout of DESIGN.md (one key builder) and the store that writes it.

Evidence is written once: every put is conditional (`If-None-Match: *`), a repeated write of
the same bytes is accepted (retries are idempotent), different bytes under an existing key
raise `EvidenceConflict`. The bucket adds versioning and Object Lock on top.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from handlers.common.errors import EvidenceConflict

MANIFEST = "manifest.json"
_SAFE_EVENT = re.compile(r"[^a-z0-9-]+")


def containment_key(case_id: str, which: str, *, protected: bool = False) -> str:
    """`containment/before.json`, `after.json`: isolation (what release restores). Analyze mode's
    protection is recorded beside it as `protect-before.json` / `protect-after.json`, so a case that
    was protected and then contained after a failure keeps both records, neither overwritten."""
    if which not in ("before", "after"):
        raise ValueError(f"containment record is 'before' or 'after', not {which!r}")
    return f"{case_id}/containment/{'protect-' if protected else ''}{which}.json"


def disk_image_key(case_id: str, volume_id: str) -> str:
    return f"{case_id}/disk/{volume_id}.img"


def memory_image_key(case_id: str, instance_id: str) -> str:
    return f"{case_id}/memory/{instance_id}.lime"


def digest_key(image_key: str) -> str:
    return image_key + ".sha256"


def analysis_key(case_id: str, name: str) -> str:
    return f"{case_id}/analysis/{name}"


def report_key(case_id: str, name: str) -> str:
    return f"{case_id}/report/{name}"


def custody_key(case_id: str, seq: int, event: str) -> str:
    return f"{case_id}/custody/{seq:06d}-{_SAFE_EVENT.sub('-', event.lower()).strip('-')}.json"


def manifest_key(case_id: str) -> str:
    return f"{case_id}/{MANIFEST}"


def utcnow() -> datetime:
    return datetime.now(UTC)


def isotime(moment: datetime | None = None) -> str:
    return (moment or utcnow()).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def digest_line(sha256: str, key: str) -> bytes:
    """`sha256sum` format, so `sha256sum -c` verifies a downloaded image."""
    return f"{sha256}  {key.rsplit('/', 1)[-1]}\n".encode()


@dataclass(frozen=True)
class Artefact:
    key: str
    size: int
    sha256: str
    source: str
    tool: str
    time: str


class EvidenceStore:
    """Writes one case's evidence into the evidence bucket (an S3 client of the forensic account)."""

    def __init__(self, s3: Any, bucket: str, case_id: str) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.case_id = case_id

    def put_bytes(
        self, key: str, data: bytes, *, source: str, tool: str, content_type: str = "application/octet-stream"
    ) -> Artefact:
        if not key.startswith(self.case_id + "/"):
            raise ValueError(f"evidence key {key!r} is outside case {self.case_id}")
        digest = sha256_hex(data)
        now = isotime()
        try:
            self.s3.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=data,
                ContentType=content_type,
                IfNoneMatch="*",
                ChecksumAlgorithm="SHA256",
                Metadata={"sha256": digest, "source": source[:512], "tool": tool[:256], "acquired-at": now},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise
            existing = self.s3.head_object(Bucket=self.bucket, Key=key)
            if existing.get("Metadata", {}).get("sha256") != digest:
                raise EvidenceConflict(
                    f"s3://{self.bucket}/{key} already holds different evidence; it is never overwritten"
                ) from exc
            now = existing["Metadata"].get("acquired-at", now)
        return Artefact(key=key, size=len(data), sha256=digest, source=source, tool=tool, time=now)

    def put_json(self, key: str, document: Any, *, source: str, tool: str) -> Artefact:
        body = json.dumps(document, indent=2, sort_keys=True, default=str).encode()
        return self.put_bytes(key, body, source=source, tool=tool, content_type="application/json")

    def get_json(self, key: str) -> Any:
        return json.loads(self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())

    def exists(self, key: str) -> bool:
        try:
            self.s3.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def keys(self, under: str = "") -> list[str]:
        prefix = f"{self.case_id}/{under}"
        found: list[str] = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            found.extend(obj["Key"] for obj in page.get("Contents", []))
        return sorted(found)

    def custody(self, event: str, detail: dict[str, Any], *, actor: str) -> str:
        """Append one immutable custody event; the sequence number is claimed by a conditional put."""
        existing = self.keys("custody/")
        seq = 1 + max((int(k.rsplit("/", 1)[-1].split("-", 1)[0]) for k in existing), default=0)
        record = {"case_id": self.case_id, "event": event, "actor": actor, "time": isotime(), "detail": detail}
        for _ in range(20):
            key = custody_key(self.case_id, seq, event)
            try:
                self.s3.put_object(
                    Bucket=self.bucket,
                    Key=key,
                    IfNoneMatch="*",
                    ContentType="application/json",
                    ChecksumAlgorithm="SHA256",
                    Body=json.dumps({**record, "seq": seq}, indent=2, sort_keys=True, default=str).encode(),
                )
                return key
            except ClientError as exc:
                if exc.response["Error"]["Code"] not in ("PreconditionFailed", "ConditionalRequestConflict"):
                    raise
                seq += 1
        raise EvidenceConflict(f"could not claim a custody sequence number for case {self.case_id}")

    def artefact(self, key: str) -> Artefact:
        head = self.s3.head_object(Bucket=self.bucket, Key=key)
        meta = head.get("Metadata", {})
        sha = meta.get("sha256", "")
        if not sha and self.exists(digest_key(key)):
            sha = self.s3.get_object(Bucket=self.bucket, Key=digest_key(key))["Body"].read().decode().split()[0]
        return Artefact(
            key=key,
            size=int(head["ContentLength"]),
            sha256=sha,
            source=meta.get("source", ""),
            tool=meta.get("tool", ""),
            time=meta.get("acquired-at", isotime(head["LastModified"])),
        )

    def write_manifest(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """List every artefact of the case with size and sha256; a new manifest version each call."""
        artefacts = [asdict(self.artefact(k)) for k in self.keys() if k != manifest_key(self.case_id)]
        manifest = {
            "case_id": self.case_id,
            "bucket": self.bucket,
            "written_at": isotime(),
            "artefacts": artefacts,
            **(extra or {}),
        }
        self.s3.put_object(
            Bucket=self.bucket,
            Key=manifest_key(self.case_id),
            ContentType="application/json",
            ChecksumAlgorithm="SHA256",
            Body=json.dumps(manifest, indent=2, sort_keys=True, default=str).encode(),
        )
        return manifest


def report_written(s3: Any, bucket: str, case_id: str) -> bool:
    """Whether the case's report/report.html exists (the examiner's last write)."""
    try:
        s3.head_object(Bucket=bucket, Key=report_key(case_id, "report.html"))
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
            return False
        raise
    return True
