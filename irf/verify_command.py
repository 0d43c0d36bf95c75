"""`irf verify CASE|FOLDER`: re-hash every artefact, walk the custody chain, check the manifest's signature.

A folder (a downloaded case, e.g. from `irf simulate`) is verified offline with the public key
stored in it, or with `--public-key` (a PEM obtained independently: the stored one only proves the
case is consistent with itself). A case id is verified in the evidence bucket; its signature is
checked against the public key KMS returns for the signing key, which must equal the stored one.
Exit 0 when every check passes, 1 naming what failed.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from handlers.common import evidence
from handlers.common.verification import BucketCase, FolderCase, Verification, verify_case
from irf import operator
from irf.cli import (
    EXIT_OK,
    EXIT_RESPONSE_FAILED,
    _exit_codes,
    app,
    console,
    err,
)
from irf.connection import ConnectionOptions, connection_options


def _kms_public_key(kms: Any, case: BucketCase) -> bytes | None:
    """The signing key's public half as KMS has it (None when the case names no key)."""
    if not case.has(evidence.SIGNATURE):
        return None
    key_id = str(json.loads(case.read(evidence.SIGNATURE)).get("key_id", ""))
    if not key_id:
        return None
    der = bytes(kms.get_public_key(KeyId=key_id)["PublicKey"])
    text = base64.b64encode(der).decode()
    lines = [text[i : i + 64] for i in range(0, len(text), 64)]
    return ("-----BEGIN PUBLIC KEY-----\n" + "\n".join(lines) + "\n-----END PUBLIC KEY-----\n").encode()


def _print(result: Verification) -> None:
    table = Table(title=f"Verification of case {result.case_id}")
    for column in ("check", "result", "detail"):
        table.add_column(column, overflow="fold")
    for check in result.checks:
        table.add_row(check.name, "ok" if check.ok else "FAILED", check.detail)
    console.print(table)
    for warning in result.warnings:
        err.print(f"irf: warning: {warning}", markup=False, highlight=False, soft_wrap=True)


@app.command()
@connection_options(evidence=True)
def verify(
    case: Annotated[str, typer.Argument(help="a case id (in the evidence bucket) or a downloaded case folder")],
    public_key: Annotated[
        Path | None, typer.Option("--public-key", help="PEM public key to check the signature with")
    ] = None,
    *,
    conn: ConnectionOptions,
) -> None:
    """Re-hash every artefact, walk the custody chain, check the manifest signature; exit 1 naming what failed."""
    pem = public_key.read_bytes() if public_key is not None else None
    folder = Path(case)
    with _exit_codes():
        if folder.is_dir():
            result = verify_case(FolderCase(folder), public_key_pem=pem)
        else:
            operator.check_case_id(case)
            _, deployment = conn.connect()
            evidence_session = conn.evidence_session(deployment)
            objects = BucketCase(evidence_session.client("s3"), deployment.evidence_bucket, case)
            kms_pem = _kms_public_key(evidence_session.client("kms"), objects)
            result = verify_case(objects, public_key_pem=pem or kms_pem)
            if kms_pem and objects.has(evidence.PUBLIC_KEY) and objects.read(evidence.PUBLIC_KEY) != kms_pem:
                result.add("public key", False, f"{evidence.PUBLIC_KEY} is not the signing key's public key in KMS")
    _print(result)
    if not result.ok:
        err.print(f"irf: {result.summary()}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_RESPONSE_FAILED)
    console.print(result.summary(), markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(EXIT_OK)
