"""The guest's only way out: a loopback TLS endpoint that hands each HTTPS request to the simulation.

QEMU's user network runs with `restrict=on` (the guest reaches nothing) plus one `guestfwd`:
connections to GUEST_ENDPOINT start `relay.py`, which joins them to this server on 127.0.0.1.
The server terminates TLS with a certificate, issued on the fly for the name the guest asked
for (SNI), by a certificate authority made for this boot and trusted only inside the guest;
each request is then replayed by `send` (by default `requests`, which moto intercepts), so a
pre-signed S3 URL works from the guest exactly as it does from the simulation itself.
"""

from __future__ import annotations

import datetime
import ssl
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

GUEST_ENDPOINT = ("10.0.2.100", 443)
# Headers the replay must not copy: hop-by-hop, or recomputed by the HTTP client.
_DROP = {"host", "connection", "keep-alive", "transfer-encoding", "content-length", "accept-encoding"}


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


Send = Callable[[str, str, dict[str, str], bytes], Reply]


def send_with_requests(method: str, url: str, headers: dict[str, str], body: bytes) -> Reply:
    import requests

    answer = requests.request(method, url, headers=headers, data=body, timeout=300)
    return Reply(answer.status_code, dict(answer.headers), answer.content)


class CertificateAuthority:
    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "irforensics test guest CA (simulation only)")])
        now = datetime.datetime.now(datetime.UTC)
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .sign(self.key, hashes.SHA256())
        )

    @property
    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def issue(self, host: str, directory: Path) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.chain(host, directory))
        return context

    def chain(self, host: str, directory: Path) -> Path:
        """A leaf certificate and key for `host`, in one PEM file."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        leaf = (
            x509.CertificateBuilder()
            # Common names stop at 64 characters (S3 host names do not): the SAN carries the name.
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host[:64])]))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        chain = directory / f"{host}.pem"
        chain.write_bytes(
            leaf.public_bytes(serialization.Encoding.PEM)
            + key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        return chain


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def _relay(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        host = self.headers.get("Host", "")
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _DROP}
        reply = self.server.send(self.command, f"https://{host}{self.path}", headers, body)
        self.server.requests.append((self.command, host, self.path.split("?", 1)[0], len(body), reply.status))
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            if name.lower() not in _DROP:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _relay

    def log_message(self, format: str, *args: object) -> None:
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    send: Send
    requests: list[tuple[str, str, str, int, int]]


@dataclass
class Forwarder:
    port: int
    authority: CertificateAuthority
    server: _Server

    @property
    def requests(self) -> list[tuple[str, str, str, int, int]]:
        """(method, host, path, body bytes, status) of every request the guest made."""
        return self.server.requests


@contextmanager
def forwarding(send: Send = send_with_requests) -> Iterator[Forwarder]:
    authority = CertificateAuthority()
    with tempfile.TemporaryDirectory(prefix="irf-guest-tls-") as work:
        contexts: dict[str, ssl.SSLContext] = {}
        lock = threading.Lock()

        def choose(connection: ssl.SSLObject, name: str | None, _: ssl.SSLContext) -> None:
            with lock:
                if name and name not in contexts:
                    contexts[name] = authority.issue(name, Path(work))
            if name:
                connection.context = contexts[name]

        base = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        base.load_cert_chain(authority.chain("localhost", Path(work)))
        base.sni_callback = choose
        server = _Server(("127.0.0.1", 0), _Handler)
        server.send = send
        server.requests = []
        # The handshake happens in the request's thread, not in the accepting loop.
        server.socket = base.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
        thread = threading.Thread(target=server.serve_forever, name="irf-guest-forwarder", daemon=True)
        thread.start()
        try:
            yield Forwarder(port=server.server_address[1], authority=authority, server=server)
        finally:
            server.shutdown()
            server.server_close()
