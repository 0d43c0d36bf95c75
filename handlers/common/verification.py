"""Verify a case as an examiner would defend it: every artefact re-hashed, the custody chain walked,
the manifest's signature checked.

Works on the evidence bucket (`BucketCase`) or on a downloaded case folder (`FolderCase`); the
signature is checked with the public key alone (the `cryptography` package), so a folder verifies
offline. Every failed check names the object that failed it.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from botocore.exceptions import ClientError

from handlers.common import evidence

CHUNK = 8 * 1024 * 1024
# Objects beside the manifest (they describe it, so it cannot list them).
# Written on this machine beside a downloaded case, never by the response (see _check).
LOCAL_LOGS = "logs/"
_BESIDE = (evidence.MANIFEST, evidence.SIGNATURE, evidence.PUBLIC_KEY)


class CaseObjects(Protocol):
    """A case's objects by key relative to the case (`custody/000001-case-opened.json`)."""

    case_id: str

    def names(self) -> list[str]: ...

    def read(self, name: str) -> bytes: ...

    def digest(self, name: str) -> tuple[str, int]:
        """(sha256, size) of the object's bytes as they are now."""
        ...

    def has(self, name: str) -> bool: ...


class FolderCase:
    """A downloaded case: the folder named after the case, holding the evidence layout."""

    def __init__(self, folder: Path, case_id: str = "") -> None:
        self.folder = folder
        self.case_id = case_id or folder.resolve().name

    def names(self) -> list[str]:
        return sorted(p.relative_to(self.folder).as_posix() for p in self.folder.rglob("*") if p.is_file())

    def read(self, name: str) -> bytes:
        return (self.folder / name).read_bytes()

    def digest(self, name: str) -> tuple[str, int]:
        sha = hashlib.sha256()
        size = 0
        with (self.folder / name).open("rb") as handle:
            for chunk in iter(lambda: handle.read(CHUNK), b""):
                sha.update(chunk)
                size += len(chunk)
        return sha.hexdigest(), size

    def has(self, name: str) -> bool:
        return (self.folder / name).is_file()


class BucketCase:
    """A case in the evidence bucket, read with the caller's S3 client (e.g. the investigator role)."""

    def __init__(self, s3: Any, bucket: str, case_id: str) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.case_id = case_id
        self._names: list[str] | None = None

    def names(self) -> list[str]:
        if self._names is None:
            found: list[str] = []
            for page in self.s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.case_id + "/"
            ):
                found.extend(str(o["Key"])[len(self.case_id) + 1 :] for o in page.get("Contents", []))
            self._names = sorted(found)
        return self._names

    def read(self, name: str) -> bytes:
        return bytes(self.s3.get_object(Bucket=self.bucket, Key=f"{self.case_id}/{name}")["Body"].read())

    def digest(self, name: str) -> tuple[str, int]:
        body = self.s3.get_object(Bucket=self.bucket, Key=f"{self.case_id}/{name}")["Body"]
        sha = hashlib.sha256()
        size = 0
        for chunk in iter(lambda: body.read(CHUNK), b""):
            sha.update(chunk)
            size += len(chunk)
        return sha.hexdigest(), size

    def has(self, name: str) -> bool:
        try:
            self.s3.head_object(Bucket=self.bucket, Key=f"{self.case_id}/{name}")
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class Verification:
    case_id: str
    checks: list[Check] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    artefacts_checked: int = 0
    custody_events: int = 0
    signed_by: str = ""

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def add(self, name: str, ok: bool, detail: str) -> None:
        self.checks.append(Check(name, ok, detail))

    def summary(self) -> str:
        if self.ok:
            return (
                f"verified: {self.artefacts_checked} artefacts re-hashed, {self.custody_events} custody events "
                f"chained, manifest signature valid ({self.signed_by})"
            )
        return "FAILED: " + "; ".join(f"{c.name}: {c.detail}" for c in self.failures)

    def to_dict(self) -> dict[str, Any]:
        return {
            "case_id": self.case_id,
            "ok": self.ok,
            "summary": self.summary(),
            "artefacts_checked": self.artefacts_checked,
            "custody_events": self.custody_events,
            "signed_by": self.signed_by,
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in self.checks],
            "warnings": list(self.warnings),
        }


class _Hashes:
    """Each object hashed once, however many records name it."""

    def __init__(self, case: CaseObjects) -> None:
        self.case = case
        self._done: dict[str, tuple[str, int]] = {}

    def seed(self, known: dict[str, tuple[str, int]]) -> None:
        self._done.update(known)

    def __call__(self, name: str) -> tuple[str, int]:
        if name not in self._done:
            self._done[name] = self.case.digest(name)
        return self._done[name]


def _relative(case_id: str, key: str) -> str:
    return key[len(case_id) + 1 :] if key.startswith(case_id + "/") else key


def _check_hash(
    result: Verification, hashes: _Hashes, case: CaseObjects, name: str, sha256: str, size: int | None, where: str
) -> bool:
    if not case.has(name):
        result.add(where, False, f"{name} is missing")
        return False
    actual, actual_size = hashes(name)
    if not sha256:
        result.add(where, False, f"{name} has no recorded sha256")
        return False
    if actual != sha256:
        result.add(where, False, f"{name} has changed: sha256 {actual}, recorded {sha256}")
        return False
    if size is not None and actual_size != size:
        result.add(where, False, f"{name} has changed: {actual_size} bytes, recorded {size}")
        return False
    return True


def _der_sha256(pem: bytes) -> str:
    body = b"".join(line.strip() for line in pem.splitlines() if line.strip() and not line.startswith(b"-----"))
    try:
        return hashlib.sha256(base64.b64decode(body, validate=True)).hexdigest()
    except ValueError:
        return ""


def _public_key(pem: bytes) -> Any:
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    return load_pem_public_key(pem)


def verify_signature(statement: bytes, signature: bytes, algorithm: str, pem: bytes) -> None:
    """Raise `cryptography.exceptions.InvalidSignature` unless `signature` is the key's over `statement`.

    KMS signs RAW messages as the standard algorithms do (ECDSA with the named hash, DER-encoded
    signature; RSA PSS with salt length = digest length, or PKCS #1 v1.5).
    """
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

    family, _, bits = algorithm.rpartition("_SHA_")
    if family not in ("ECDSA", "RSASSA_PSS", "RSASSA_PKCS1_V1_5") or bits not in ("256", "384", "512"):
        raise ValueError(f"unknown signing algorithm {algorithm!r}")
    digest = {"256": hashes.SHA256(), "384": hashes.SHA384(), "512": hashes.SHA512()}[bits]
    key = _public_key(pem)
    if algorithm.startswith("ECDSA_"):
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise ValueError(f"{algorithm} needs an elliptic-curve key")
        key.verify(signature, statement, ec.ECDSA(digest))
    elif algorithm.startswith("RSASSA_PSS_"):
        if not isinstance(key, rsa.RSAPublicKey):
            raise ValueError(f"{algorithm} needs an RSA key")
        key.verify(signature, statement, padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size), digest)
    elif algorithm.startswith("RSASSA_PKCS1_V1_5_"):
        if not isinstance(key, rsa.RSAPublicKey):
            raise ValueError(f"{algorithm} needs an RSA key")
        key.verify(signature, statement, padding.PKCS1v15(), digest)
    else:
        raise ValueError(f"unknown signing algorithm {algorithm!r}")


def _signature(result: Verification, case: CaseObjects, manifest_body: bytes, public_key_pem: bytes | None) -> None:
    if not case.has(evidence.SIGNATURE):
        result.add("signature", False, f"{evidence.SIGNATURE} is missing: the manifest is not signed")
        return
    manifest_sha = hashlib.sha256(manifest_body).hexdigest()
    read = _read_signature(case)
    if isinstance(read, str):
        result.add("signature", False, read)
        return
    document, statement, signature, algorithm = read
    problem = _signature_claims_problem(document, statement, case.case_id, manifest_sha)
    if problem is None:
        problem = _signature_key_problem(document, statement, signature, algorithm, case, public_key_pem)
    if problem is not None:
        result.add("signature", False, problem)
        return
    result.signed_by = str(document.get("key_id", ""))
    result.add("signature", True, f"{algorithm} signature by {result.signed_by} over sha256 {manifest_sha}")


def _read_signature(case: CaseObjects) -> tuple[dict[str, Any], bytes, bytes, str] | str:
    """The signature file's document, signed statement, signature and algorithm, or why it cannot be read."""
    try:
        raw = case.read(evidence.SIGNATURE)
        document = json.loads(raw)
        statement = str(document["statement"]).encode()
        signature = base64.b64decode(document["signature"], validate=True)
        if base64.b64encode(signature).decode() != document["signature"]:
            raise ValueError("the signature is not canonical base64")
        algorithm = str(document["signing_algorithm"])
        json.loads(statement)
    except (ValueError, KeyError, TypeError) as exc:
        return f"{evidence.SIGNATURE} is unreadable: {exc}"
    # Every byte of the signature file counts: it must be exactly as written, name the key it was signed
    # with, and carry the digest of the public key it points to.
    if json.dumps(document, indent=2, sort_keys=True).encode() != raw:
        return f"{evidence.SIGNATURE} is not as it was written (its bytes have changed)"
    return document, statement, signature, algorithm


def _signature_claims_problem(
    document: dict[str, Any], statement: bytes, case_id: str, manifest_sha: str
) -> str | None:
    """Why the signed statement does not speak for this manifest of this case (None when it does)."""
    signed = json.loads(statement)
    if (document.get("key_id"), document.get("message_type"), document.get("public_key")) != (
        signed.get("key_id"),
        "RAW",
        evidence.PUBLIC_KEY,
    ):
        return f"{evidence.SIGNATURE} names a key, message type or key file it did not use"
    if signed.get("case_id") != case_id:
        return f"{evidence.SIGNATURE} signs case {signed.get('case_id')!r}, not this case"
    if signed.get("manifest_sha256") != manifest_sha:
        return (
            f"{evidence.MANIFEST} has changed since it was signed: sha256 {manifest_sha}, "
            f"signed {signed.get('manifest_sha256')}"
        )
    return None


def _signature_key_problem(
    document: dict[str, Any],
    statement: bytes,
    signature: bytes,
    algorithm: str,
    case: CaseObjects,
    public_key_pem: bytes | None,
) -> str | None:
    """Why the public key (given, else the case's own) does not check the signature (None when it does)."""
    from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm

    if public_key_pem is None:
        if not case.has(evidence.PUBLIC_KEY):
            return f"no public key: {evidence.PUBLIC_KEY} is missing and none was given"
        public_key_pem = case.read(evidence.PUBLIC_KEY)
    if document.get("public_key_sha256") != _der_sha256(public_key_pem):
        return f"the public key is not the one {evidence.SIGNATURE} was made with (public_key_sha256)"
    try:
        verify_signature(statement, signature, algorithm, public_key_pem)
    except InvalidSignature:
        return f"{evidence.SIGNATURE}: the signature does not match the manifest's digest"
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        return f"{evidence.SIGNATURE}: the public key cannot check it: {exc}"
    return None


def _custody(result: Verification, case: CaseObjects, hashes: _Hashes, manifest: dict[str, Any]) -> None:
    events = _custody_events(result, case)
    if events is None:
        return
    result.custody_events = len(events)
    if not events:
        result.add("custody chain", False, "no custody events")
        return
    if _custody_chained(result, case, hashes, events):
        result.add("custody chain", True, f"{len(events)} events, each chained to the one before")
    _custody_head(result, case, manifest, events)


_CustodyEvent = tuple[int, str, bytes, dict[str, Any]]


def _custody_events(result: Verification, case: CaseObjects) -> list[_CustodyEvent] | None:
    """The case's custody records in sequence order; None (and the failure noted) when one is unreadable."""
    names = [n for n in case.names() if n.startswith("custody/") and n.endswith(".json")]
    events: list[_CustodyEvent] = []
    for name in names:
        body = case.read(name)
        try:
            record = json.loads(body)
            events.append((int(record["seq"]), name, body, record))
        except (ValueError, KeyError, TypeError) as exc:
            result.add("custody chain", False, f"{name} is not a custody record: {exc}")
            return None
    events.sort(key=lambda e: e[0])
    return events


def _custody_chained(result: Verification, case: CaseObjects, hashes: _Hashes, events: list[_CustodyEvent]) -> bool:
    """Whether every event follows the one before with no gap and names artefacts as they are."""
    broken = False
    previous: tuple[str, bytes] | None = None
    for expected, (seq, name, body, record) in enumerate(events, start=1):
        if seq != expected:
            result.add("custody chain", False, f"{name}: sequence {seq} where {expected} was expected (a gap)")
            return False
        problem = _link_problem(name, record.get("previous"), previous)
        if problem:
            result.add("custody chain", False, problem)
            broken = True
        for artefact in record.get("artefacts") or []:
            concerned = _relative(case.case_id, str(artefact.get("key", "")))
            if not _check_hash(
                result,
                hashes,
                case,
                concerned,
                str(artefact.get("sha256", "")),
                artefact.get("size"),
                "custody artefacts",
            ):
                broken = True
        previous = (name, body)
    return not broken


def _link_problem(name: str, link: Any, previous: tuple[str, bytes] | None) -> str | None:
    """Why event `name`'s link to the event before it is wrong (None when it is right)."""
    if previous is None:
        return f"{name} is first but names a previous event {link.get('key')}" if link else None
    want = hashlib.sha256(previous[1]).hexdigest()
    if isinstance(link, dict) and link.get("sha256") == want:
        return None
    got = link.get("sha256") if isinstance(link, dict) else None
    return (
        f"{name} does not chain to {previous[0]}: records previous sha256 {got}, which is {want} now "
        f"({previous[0]} has changed, or {name} was not written after it)"
    )


def _custody_head(
    result: Verification, case: CaseObjects, manifest: dict[str, Any], events: list[_CustodyEvent]
) -> None:
    """The manifest's last custody event is there, unchanged; later events are a warning."""
    head = manifest.get("custody_head") or {}
    head_name = _relative(case.case_id, str(head.get("key", "")))
    by_name = {name: (seq, body) for seq, name, body, _ in events}
    if head_name not in by_name:
        result.add("custody head", False, f"the manifest's last custody event {head_name or '(none)'} is missing")
        return
    seq, body = by_name[head_name]
    if hashlib.sha256(body).hexdigest() != head.get("sha256"):
        result.add("custody head", False, f"{head_name} has changed since the manifest was written")
        return
    later = [name for s, name, _, _ in events if s > seq]
    if later:
        result.warnings.append(
            f"{len(later)} custody event(s) written after the manifest (chained, not covered by its signature): "
            + ", ".join(later)
        )
    result.add("custody head", True, f"the manifest ends the chain at {head_name}")


def verify_case(
    case: CaseObjects,
    *,
    public_key_pem: bytes | None = None,
    not_yet_listed: Iterable[str] = (),
    already_hashed: dict[str, tuple[str, int]] | None = None,
) -> Verification:
    """Every check on one case. `not_yet_listed`: folders written after the manifest (an examination
    verifying its inputs before uploading analysis/ and report/), not reported as unlisted.
    `already_hashed`: name -> (sha256, size) of objects the caller has just hashed itself (the
    examination's `sha256sum --check` of each image), so gigabytes are not read twice."""
    result = Verification(case_id=case.case_id)
    hashes = _Hashes(case)
    hashes.seed(already_hashed or {})
    if not case.has(evidence.MANIFEST):
        result.add("manifest", False, f"{evidence.MANIFEST} is missing")
        return result
    body = case.read(evidence.MANIFEST)
    try:
        manifest = json.loads(body)
    except ValueError as exc:
        result.add("manifest", False, f"{evidence.MANIFEST} is not JSON: {exc}")
        return result
    if manifest.get("case_id") != case.case_id:
        result.add("manifest", False, f"{evidence.MANIFEST} is of case {manifest.get('case_id')!r}")
        return result
    _signature(result, case, body, public_key_pem)
    listed: set[str] = set()
    bad = 0
    for artefact in manifest.get("artefacts") or []:
        name = _relative(case.case_id, str(artefact.get("key", "")))
        listed.add(name)
        if not _check_hash(
            result, hashes, case, name, str(artefact.get("sha256", "")), artefact.get("size"), "artefacts"
        ):
            bad += 1
    result.artefacts_checked = len(listed)
    if not bad:
        result.add("artefacts", True, f"{len(listed)} artefacts re-hashed, every sha256 and size as recorded")
    _custody(result, case, hashes, manifest)
    skip = tuple(p.rstrip("/") + "/" for p in not_yet_listed)
    unlisted = [
        n
        for n in case.names()
        if n not in listed
        and n not in _BESIDE
        and not n.startswith(skip)
        and not (n.startswith("custody/") and n not in listed and _after_head(n, manifest))
    ]
    # The console's own logs of a local run (`irf simulate` writes logs/lambda.jsonl and
    # logs/progress.jsonl into the case folder after the case closed): not evidence, and said so.
    local_logs = [n for n in unlisted if n.startswith(LOCAL_LOGS)]
    unlisted = [n for n in unlisted if not n.startswith(LOCAL_LOGS)]
    if local_logs:
        result.add("local logs", True, "not evidence, no digest claimed: " + ", ".join(local_logs))
    if unlisted:
        result.add("completeness", False, "not in the manifest: " + ", ".join(unlisted))
    else:
        result.add("completeness", True, "every object of the case is in the manifest")
    return result


def _after_head(name: str, manifest: dict[str, Any]) -> bool:
    head = manifest.get("custody_head") or {}
    try:
        return evidence.custody_seq(name) > int(head.get("seq", 0))
    except ValueError:
        return False
