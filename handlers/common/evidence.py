"""The evidence layout of DESIGN.md (one key builder) and the store that writes it.

Evidence is written once: every put is conditional (`If-None-Match: *`), a repeated write of
the same bytes is accepted (retries are idempotent), different bytes under an existing key
raise `EvidenceConflict`. The bucket adds versioning and Object Lock on top.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from handlers.common.errors import EvidenceConflict

MANIFEST = "manifest.json"
SIGNATURE = "manifest.json.sig"
PUBLIC_KEY = "manifest-signing-key.pem"
# Zero-byte markers claimed with a conditional put, one per custody sequence number: custody keys
# carry the event name, so two writers racing for the same number would otherwise both succeed.
# They live outside the case prefix: coordination, not evidence (the case holds only its records).
CUSTODY_CLAIMS = ".custody-claims"
# KMS Sign with MessageType=RAW takes at most 4096 bytes: what is signed is a short statement
# naming the manifest's sha256, never the manifest itself.
SIGNING_ALGORITHM = "ECDSA_SHA_256"
# An object written without a recorded digest is hashed when listed, up to this size.
PREDECESSOR_POLLS = 40
HASH_ON_LIST_MAX_BYTES = 256 * 1024 * 1024
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


def signature_key(case_id: str) -> str:
    return f"{case_id}/{SIGNATURE}"


def public_key_key(case_id: str) -> str:
    return f"{case_id}/{PUBLIC_KEY}"


def custody_claim_key(case_id: str, seq: int) -> str:
    return f"{CUSTODY_CLAIMS}/{case_id}/{seq:06d}"


def manifest_signing_key_alias(prefix: str) -> str:
    """The forensic account's asymmetric key that signs each case's manifest (ForensicAccount creates it)."""
    return f"alias/{prefix}-manifest-signing"


def custody_seq(key: str) -> int:
    return int(key.rsplit("/", 1)[-1].split("-", 1)[0])


def signed_statement(case_id: str, manifest_sha256: str, signed_at: str, key_id: str) -> bytes:
    """The exact bytes KMS signs: canonical JSON naming the case, the manifest's digest and the key."""
    document = {
        "case_id": case_id,
        "key_id": key_id,
        "manifest": MANIFEST,
        "manifest_sha256": manifest_sha256,
        "signed_at": signed_at,
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


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

    def put_document(self, key: str, body: bytes, *, source: str, tool: str, **condition: str) -> None:
        """A JSON record of the case's own (custody event, manifest, signature), its sha256 in the metadata.

        Unlike `put_bytes` it is no artefact: `condition` (IfNoneMatch) says whether it may replace one.
        """
        self.s3.put_object(
            Bucket=self.bucket,
            Key=key,
            ContentType="application/json",
            ChecksumAlgorithm="SHA256",
            Body=body,
            Metadata={"sha256": sha256_hex(body), "source": source, "tool": tool},
            **condition,
        )

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

    def _keys_named(self, value: Any) -> set[str]:
        """Evidence keys of this case named anywhere in a custody detail (e.g. "Key", "DigestKey")."""
        if isinstance(value, str):
            return {value} if value.startswith(self.case_id + "/") and "\n" not in value else set()
        if isinstance(value, Mapping):
            return set().union(*(self._keys_named(v) for v in value.values())) if value else set()
        if isinstance(value, (list, tuple)):
            return set().union(*(self._keys_named(v) for v in value)) if value else set()
        return set()

    def _custody_at(self, seq: int) -> tuple[str, bytes] | None:
        if seq < 1:
            return None
        prefix = f"{self.case_id}/custody/{seq:06d}-"
        listed = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=prefix).get("Contents", [])
        if not listed:
            return None
        key = sorted(str(obj["Key"]) for obj in listed)[0]
        return key, self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def _predecessor(self, seq: int) -> tuple[str, bytes] | None:
        """Event seq-1, waiting (bounded) while its writer has claimed the number but not written yet."""
        for attempt in range(PREDECESSOR_POLLS):
            found = self._custody_at(seq - 1)
            if found is not None or seq == 1:
                return found
            time.sleep(min(0.05 * (attempt + 1), 0.5))
        # A writer that claimed seq-1 and died before writing it: the gap stays visible to `irf verify`.
        return None

    def _claim(self, seq: int) -> bool:
        try:
            self.s3.put_object(Bucket=self.bucket, Key=custody_claim_key(self.case_id, seq), Body=b"", IfNoneMatch="*")
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise
            return False
        return True

    def custody(self, event: str, detail: dict[str, Any], *, actor: str, artefacts: Iterable[str] = ()) -> str:
        """Append one immutable custody event, a link of the case's hash chain.

        The record carries the sha256 of the event before it (`previous`) and the key, size and
        sha256 of every artefact it concerns: those given, and every evidence key its detail names.
        The sequence number is claimed first (a conditional put of `custody-seq/<seq>`), so
        concurrent writers (parallel image branches) never share a number or a predecessor.
        """
        concerned = sorted(set(artefacts) | self._keys_named(detail))
        referenced = []
        for key in concerned:
            if key.endswith(".img") or key.endswith(".lime"):
                concerned_digest = digest_key(key)
                if concerned_digest not in concerned and self.exists(concerned_digest):
                    referenced.append(self.artefact(concerned_digest))
            if self.exists(key):
                referenced.append(self.artefact(key))
        refs: list[dict[str, Any]] = [
            {"key": a.key, "size": a.size, "sha256": a.sha256} for a in sorted(referenced, key=lambda a: a.key)
        ]
        existing = self.keys("custody/")
        seq = 1 + max((custody_seq(k) for k in existing), default=0)
        for _ in range(50):
            if not self._claim(seq):
                seq += 1
                continue
            previous = self._predecessor(seq)
            record = {
                "case_id": self.case_id,
                "event": event,
                "actor": actor,
                "time": isotime(),
                "detail": detail,
                "seq": seq,
                "previous": {"key": previous[0], "sha256": sha256_hex(previous[1])} if previous else None,
                "artefacts": refs,
            }
            body = json.dumps(record, indent=2, sort_keys=True, default=str).encode()
            key = custody_key(self.case_id, seq, event)
            self.put_document(key, body, source=f"custody of {self.case_id}", tool=actor[:256], IfNoneMatch="*")
            return key
        raise EvidenceConflict(f"could not claim a custody sequence number for case {self.case_id}")

    def artefact(self, key: str) -> Artefact:
        head = self.s3.head_object(Bucket=self.bucket, Key=key)
        meta = head.get("Metadata", {})
        sha = meta.get("sha256", "")
        if not sha and self.exists(digest_key(key)):
            sha = self.s3.get_object(Bucket=self.bucket, Key=digest_key(key))["Body"].read().decode().split()[0]
        if not sha and int(head["ContentLength"]) <= HASH_ON_LIST_MAX_BYTES:
            # Written without a recorded digest (a claim marker, a log): hashed as it is now.
            sha = self.sha256_of(key)
        return Artefact(
            key=key,
            size=int(head["ContentLength"]),
            sha256=sha,
            source=meta.get("source", ""),
            tool=meta.get("tool", ""),
            time=meta.get("acquired-at", isotime(head["LastModified"])),
        )

    def sha256_of(self, key: str) -> str:
        """sha256 of the object's bytes as they are now, streamed."""
        body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"]
        digest = hashlib.sha256()
        for chunk in iter(lambda: body.read(8 * 1024 * 1024), b""):
            digest.update(chunk)
        return digest.hexdigest()

    def custody_head(self) -> dict[str, Any] | None:
        """The last custody event (key, seq, sha256 of its bytes): what the manifest anchors the chain to."""
        events = self.keys("custody/")
        if not events:
            return None
        last = max(events, key=custody_seq)
        return {"key": last, "seq": custody_seq(last), "sha256": self.sha256_of(last)}

    def write_manifest(
        self, extra: dict[str, Any] | None = None, *, signer: ManifestSigner | None = None
    ) -> dict[str, Any]:
        """List every object of the case with size and sha256 (custody events included); a new manifest
        version each call. With a signer, `manifest.json.sig` is written beside it."""
        beside = {manifest_key(self.case_id), signature_key(self.case_id), public_key_key(self.case_id)}
        artefacts = [asdict(self.artefact(k)) for k in self.keys() if k not in beside]
        manifest = {
            "case_id": self.case_id,
            "bucket": self.bucket,
            "written_at": isotime(),
            "custody_head": self.custody_head(),
            "artefacts": artefacts,
            **(extra or {}),
        }
        body = json.dumps(manifest, indent=2, sort_keys=True, default=str).encode()
        self.put_document(manifest_key(self.case_id), body, source=f"manifest of {self.case_id}", tool="irforensics")
        if signer is not None:
            signer.sign_manifest(self, body)
        return manifest


class ManifestSigner:
    """Signs a manifest's digest with the forensic account's asymmetric KMS key (a KMS client of it).

    Writes `manifest.json.sig` (the signed statement, the signature, key id and algorithm) and,
    once, `manifest-signing-key.pem` (the key's public half) so a downloaded case verifies offline.
    """

    def __init__(self, kms: Any, key_id: str) -> None:
        self.kms = kms
        self.key_id = key_id

    def sign_manifest(self, store: EvidenceStore, manifest_body: bytes) -> dict[str, Any]:
        import base64

        public = self.kms.get_public_key(KeyId=self.key_id)
        key_arn = str(public.get("KeyId") or self.key_id)
        pem = _pem(bytes(public["PublicKey"]))
        statement = signed_statement(store.case_id, sha256_hex(manifest_body), isotime(), key_arn)
        answer = self.kms.sign(KeyId=key_arn, Message=statement, MessageType="RAW", SigningAlgorithm=SIGNING_ALGORITHM)
        document = {
            "statement": statement.decode(),
            "signature": base64.b64encode(bytes(answer["Signature"])).decode(),
            "signing_algorithm": answer.get("SigningAlgorithm", SIGNING_ALGORITHM),
            "message_type": "RAW",
            "key_id": key_arn,
            "public_key": PUBLIC_KEY,
            "public_key_sha256": sha256_hex(bytes(public["PublicKey"])),
        }
        store.put_bytes(
            public_key_key(store.case_id),
            pem,
            source=f"kms:GetPublicKey {document['key_id']}",
            tool="irforensics",
            content_type="application/x-pem-file",
        )
        body = json.dumps(document, indent=2, sort_keys=True).encode()
        store.put_document(
            signature_key(store.case_id), body, source=f"kms:Sign {document['key_id']}", tool="irforensics"
        )
        return document


def _pem(der: bytes) -> bytes:
    import base64

    text = base64.b64encode(der).decode()
    lines = [text[i : i + 64] for i in range(0, len(text), 64)]
    return ("-----BEGIN PUBLIC KEY-----\n" + "\n".join(lines) + "\n-----END PUBLIC KEY-----\n").encode()


def report_written(s3: Any, bucket: str, case_id: str) -> bool:
    """Whether the case's report/report.html exists (the examiner's last write)."""
    try:
        s3.head_object(Bucket=bucket, Key=report_key(case_id, "report.html"))
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
            return False
        raise
    return True
