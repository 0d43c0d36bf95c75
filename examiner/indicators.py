"""Indicators of compromise gathered across the files that matter, into one table with where each was seen.

IPv4 addresses, domains, URLs (http, https, ftp, stratum mining pools), `/dev/tcp/HOST/PORT`
reverse-shell targets, and SSH public keys (SHA256 fingerprint as `ssh-keygen -l` prints it, and
the key's comment). Domains are only names under a short list of top-level domains, so file names
such as `k.sh` or `index.php` are not taken for hosts.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

_URL = re.compile(r"\b(?:https?|ftp|stratum\+tcp|stratum\+ssl|tcp)://[^\s\"'<>()|;`]+", re.IGNORECASE)
_IPV4 = re.compile(r"(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?![\d.])")
_DEV_TCP = re.compile(r"/dev/(?:tcp|udp)/([A-Za-z0-9.-]+)/(\d+)")
_TLDS = "com|net|org|io|info|biz|xyz|top|ru|cn|su|tk|pw|cc|ws|onion|me|co|us|uk|de|nl|fr|online|site|club|live"
_DOMAIN = re.compile(rf"(?<![\w.-])((?:[a-z0-9](?:[a-z0-9-]{{0,61}}[a-z0-9])?\.)+(?:{_TLDS}))(?![\w-])", re.IGNORECASE)
_SSH_KEY = re.compile(
    r"(?:^|\s)(ssh-(?:rsa|ed25519|dss)|ecdsa-sha2-nistp(?:256|384|521)|sk-ssh-ed25519@openssh\.com)\s+"
    r"([A-Za-z0-9+/]{16,}={0,2})(?:\s+(\S.*))?$"
)


@dataclass(frozen=True)
class Sighting:
    filesystem: str
    path: str
    line: int
    context: str

    @property
    def where(self) -> str:
        return f"{self.filesystem}{self.path} line {self.line}"


@dataclass
class Indicator:
    kind: str  # "ipv4", "domain", "url", "reverse-shell", "ssh-key"
    value: str
    note: str = ""
    seen: list[Sighting] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "value": self.value,
            "note": self.note,
            "seen": [asdict(s) for s in self.seen],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Indicator:
        return cls(
            kind=data["kind"],
            value=data["value"],
            note=data.get("note", ""),
            seen=[Sighting(**s) for s in data.get("seen", [])],
        )


def ssh_fingerprint(blob_base64: str) -> str:
    """SHA256:... as `ssh-keygen -l -E sha256` prints it; '' when the blob is not base64."""
    try:
        blob = base64.b64decode(blob_base64 + "=" * (-len(blob_base64) % 4), validate=True)
    except ValueError:
        return ""
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def _is_public_address(text: str) -> bool:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    # Documentation ranges (198.51.100.0/24, 203.0.113.0/24) are what attackers are in examples and tests.
    documentation = any(
        address in ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")
    )
    return documentation or not (address.is_private or address.is_loopback or address.is_unspecified)


class IndicatorTable:
    """Indicators by (kind, value), each with every place it was seen."""

    def __init__(self) -> None:
        self._by_key: dict[tuple[str, str], Indicator] = {}

    def add(self, kind: str, value: str, sighting: Sighting, note: str = "") -> None:
        indicator = self._by_key.setdefault((kind, value), Indicator(kind, value, note))
        if note and not indicator.note:
            indicator.note = note
        if sighting not in indicator.seen:
            indicator.seen.append(sighting)

    def get(self, kind: str, value: str) -> Indicator | None:
        return self._by_key.get((kind, value))

    def scan_text(self, filesystem: str, path: str, text: str, *, ssh_keys: bool = False) -> None:
        for number, line in enumerate(text.splitlines(), start=1):
            context = line.strip()[:200]
            if not context:
                continue
            sighting = Sighting(filesystem, path, number, context)
            for url in _URL.findall(line):
                self.add("url", url.rstrip(".,"), sighting)
            for host, port in _DEV_TCP.findall(line):
                self.add("reverse-shell", f"{host}:{port}", sighting, "bash /dev/tcp connection (reverse shell)")
            for address in _IPV4.findall(line):
                if _is_public_address(address):
                    self.add("ipv4", address, sighting)
            for domain in _DOMAIN.findall(line):
                self.add("domain", domain.lower(), sighting)
            if ssh_keys and (key := _SSH_KEY.search(line)):
                fingerprint = ssh_fingerprint(key.group(2))
                comment = (key.group(3) or "").strip()
                self.add(
                    "ssh-key",
                    fingerprint or key.group(2)[:32],
                    sighting,
                    f"{key.group(1)} key" + (f", comment {comment!r}" if comment else ", no comment"),
                )

    def indicators(self) -> list[Indicator]:
        order = {"reverse-shell": 0, "ipv4": 1, "url": 2, "domain": 3, "ssh-key": 4}
        return sorted(self._by_key.values(), key=lambda i: (order.get(i.kind, 9), i.value))


def binary_strings(data: bytes, minimum: int = 6) -> str:
    """Printable runs of a binary, one per line (what `strings` shows), for indicator extraction."""
    return "\n".join(m.decode("ascii") for m in re.findall(rb"[\x20-\x7e]{%d,}" % minimum, data))


def text_of(data: bytes) -> str:
    if b"\0" in data[:4096]:
        return binary_strings(data)
    return data.decode("utf-8", errors="replace")


def all_values(indicators: Iterable[Indicator], kind: str) -> set[str]:
    return {i.value for i in indicators if i.kind == kind}
