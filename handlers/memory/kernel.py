"""What kernel a suspect instance runs, and whether it lets us load a LiME module (pure parsers).

Everything here parses text that came from the suspect host, so it is untrusted: every value
that later becomes part of an S3 key or a shell command is checked against a strict pattern,
and anything unexpected is refused rather than cleaned up.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import asdict, dataclass
from typing import Any

from handlers.common.errors import IrfError

# The architectures the LimeFactory builds for (uname -m spelling).
ARCHITECTURES = ("x86_64", "aarch64")
# (os-release ID, VERSION_ID) pairs the LimeFactory has a build recipe for.
SUPPORTED_DISTROS = (
    ("amzn", "2"),
    ("amzn", "2023"),
    ("ubuntu", "22.04"),
    ("ubuntu", "24.04"),
    ("debian", "12"),
)
# The capture program's minimum (handlers/memory/acquire.py).
PYTHON_MINIMUM = (3, 7)
_PYTHON_VERSION = re.compile(r"^(\d+)\.(\d+)$")
LOCKDOWN_MODES = ("none", "integrity", "confidentiality")
# Kernel releases end up in S3 keys and shell words: letters, digits and . _ + ~ - only.
_RELEASE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+~-]{0,127}$")
_DISTRO_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,31}$")
_DISTRO_VERSION = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._-]{0,31}$")
_SECTION = re.compile(r"^### irforensics:([a-z0-9-]+)\s*$")
_MEMTOTAL = re.compile(r"^MemTotal:\s+(\d+)\s*kB\s*$", re.MULTILINE)


class DiscoveryUnreadable(IrfError):
    """The discovery output from the instance is missing a part or holds a value we refuse to use."""


@dataclass(frozen=True)
class KernelInfo:
    distro: str  # os-release ID: "amzn", "ubuntu"
    distro_version: str  # os-release VERSION_ID: "2", "2023", "22.04"
    kernel_release: str  # uname -r
    arch: str  # uname -m
    secure_boot: bool | None  # None: not an EFI boot, or the state could not be read
    lockdown: str  # the active mode of /sys/kernel/security/lockdown; "none" when absent
    memory_bytes: int | None = None  # MemTotal
    kcore: bool = False  # /proc/kcore opened and starts with the ELF magic
    python: str = ""  # "3.11"; "" when python3 is absent
    btf: bool = False  # /sys/kernel/btf/vmlinux exists

    def to_event(self) -> dict[str, Any]:
        return {
            "Distro": self.distro,
            "DistroVersion": self.distro_version,
            "KernelRelease": self.kernel_release,
            "Arch": self.arch,
            "SecureBoot": self.secure_boot,
            "Lockdown": self.lockdown,
            "MemoryBytes": self.memory_bytes,
            "Kcore": self.kcore,
            "Python": self.python,
            "Btf": self.btf,
        }

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> KernelInfo:
        memory = event.get("MemoryBytes")
        return cls(
            distro=check_distro(str(event["Distro"])),
            distro_version=check_distro_version(str(event["DistroVersion"])),
            kernel_release=check_release(str(event["KernelRelease"])),
            arch=check_arch(str(event["Arch"])),
            secure_boot=event.get("SecureBoot"),
            lockdown=str(event.get("Lockdown", "none")),
            memory_bytes=int(memory) if memory is not None else None,
            kcore=bool(event.get("Kcore", False)),
            python=check_python(str(event.get("Python", ""))),
            btf=bool(event.get("Btf", False)),
        )

    def describe(self) -> str:
        return f"{self.distro} {self.distro_version} kernel {self.kernel_release} ({self.arch})"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_release(release: str) -> str:
    release = release.strip()
    if not _RELEASE.match(release):
        raise DiscoveryUnreadable(f"kernel release {release[:80]!r} is not a plain release string")
    return release


def check_arch(arch: str) -> str:
    arch = arch.strip()
    if arch == "arm64":  # Debian's name for the same architecture
        arch = "aarch64"
    if arch not in ARCHITECTURES:
        raise DiscoveryUnreadable(
            f"architecture {arch[:40]!r} is not one the LimeFactory builds for ({', '.join(ARCHITECTURES)})"
        )
    return arch


def check_distro(distro: str) -> str:
    if not _DISTRO_ID.match(distro):
        raise DiscoveryUnreadable(f"distribution id {distro[:40]!r} is not a plain os-release ID")
    return distro


def check_distro_version(version: str) -> str:
    if not _DISTRO_VERSION.match(version):
        raise DiscoveryUnreadable(f"distribution version {version[:40]!r} is not a plain os-release VERSION_ID")
    return version


def check_python(version: str) -> str:
    version = version.strip()
    if version and not _PYTHON_VERSION.match(version):
        raise DiscoveryUnreadable(f"python version {version[:20]!r} is not MAJOR.MINOR")
    return version


def parse_python(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return check_python(lines[0]) if len(lines) == 1 and _PYTHON_VERSION.match(lines[0]) else ""


def parse_kcore(text: str) -> bool:
    """`od -An -tx1` of kcore's first four bytes: the ELF magic when the kernel lets root read it."""
    return text.split() == ["7f", "45", "4c", "46"]


def parse_uname_release(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if len(lines) != 1:
        raise DiscoveryUnreadable("uname -r printed no single line")
    return check_release(lines[0])


def parse_uname_machine(text: str) -> str:
    return check_arch(text.strip())


def parse_os_release(text: str) -> dict[str, str]:
    """os-release(5): KEY=value lines, values optionally shell-quoted; comments and blanks ignored."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, raw = line.partition("=")
        try:
            words = shlex.split(raw)
        except ValueError:
            continue
        fields[key.strip()] = words[0] if words else ""
    return fields


def distro_of(os_release: dict[str, str]) -> tuple[str, str]:
    if "ID" not in os_release or "VERSION_ID" not in os_release:
        raise DiscoveryUnreadable("/etc/os-release has no ID or VERSION_ID")
    return check_distro(os_release["ID"]), check_distro_version(os_release["VERSION_ID"])


def parse_mokutil_sb_state(text: str) -> bool | None:
    """`mokutil --sb-state`: "SecureBoot enabled" / "SecureBoot disabled"; anything else is unknown."""
    for line in text.splitlines():
        line = line.strip().lower()
        if line == "secureboot enabled":
            return True
        if line == "secureboot disabled":
            return False
    return None


def parse_efivar_secure_boot(data: bytes | str) -> bool | None:
    """The SecureBoot EFI variable: 4 bytes of attributes, then one byte, 1 when Secure Boot is on.

    Accepts the raw bytes or their `od -An -tx1` rendering (how the discovery script prints them).
    """
    if isinstance(data, str):
        hexes = data.split()
        try:
            data = bytes(int(h, 16) for h in hexes)
        except ValueError:
            return None
    if len(data) < 5:
        return None
    return data[4] == 1


def parse_lockdown(text: str) -> str:
    """/sys/kernel/security/lockdown lists the modes with the active one in brackets; absent means none."""
    text = text.strip()
    if not text:
        return "none"
    active = re.search(r"\[([a-z]+)\]", text)
    if not active or active.group(1) not in LOCKDOWN_MODES:
        raise DiscoveryUnreadable(f"kernel lockdown state {text[:80]!r} is not readable")
    return active.group(1)


def parse_memtotal(text: str) -> int | None:
    found = _MEMTOTAL.search(text)
    return int(found.group(1)) * 1024 if found else None


def split_sections(output: str) -> dict[str, str]:
    """The discovery script's stdout, cut at its `### irforensics:<name>` markers."""
    sections: dict[str, list[str]] = {}
    current: str | None = None
    for line in output.splitlines():
        marker = _SECTION.match(line)
        if marker:
            current = marker.group(1)
            sections.setdefault(current, [])
        elif current is not None:
            sections[current].append(line)
    return {name: "\n".join(lines) for name, lines in sections.items()}


def parse_discovery(output: str) -> KernelInfo:
    """The whole discovery output (see capture.discovery_commands) into a KernelInfo."""
    sections = split_sections(output)
    missing = [name for name in ("uname-r", "uname-m", "os-release", "end") if name not in sections]
    if missing:
        raise DiscoveryUnreadable(f"discovery output lacks {', '.join(missing)} (was it cut short?)")
    distro, version = distro_of(parse_os_release(sections["os-release"]))
    # mokutil is the authority when installed; the EFI variable answers on hosts without it.
    secure_boot = parse_mokutil_sb_state(sections.get("mokutil", ""))
    if secure_boot is None:
        secure_boot = parse_efivar_secure_boot(sections.get("efivar-secureboot", ""))
    return KernelInfo(
        distro=distro,
        distro_version=version,
        kernel_release=parse_uname_release(sections["uname-r"]),
        arch=parse_uname_machine(sections["uname-m"]),
        secure_boot=secure_boot,
        lockdown=parse_lockdown(sections.get("lockdown", "")),
        memory_bytes=parse_memtotal(sections.get("meminfo", "")),
        kcore=parse_kcore(sections.get("kcore", "")),
        python=parse_python(sections.get("python", "")),
        btf=sections.get("btf", "").strip() == "present",
    )


def module_prefix(info: KernelInfo) -> str:
    """Where the LimeFactory keeps this kernel's build: `<distro>-<version>/<kernel-release>/<arch>/`."""
    return f"{info.distro}-{info.distro_version}/{info.kernel_release}/{info.arch}/"


def is_buildable(info: KernelInfo) -> tuple[bool, str]:
    if (info.distro, info.distro_version) not in SUPPORTED_DISTROS:
        supported = ", ".join(f"{d} {v}" for d, v in SUPPORTED_DISTROS)
        return False, f"the LimeFactory has no build recipe for {info.distro} {info.distro_version} ({supported})"
    return True, f"the LimeFactory can build for {info.describe()}"


def has_python(info: KernelInfo) -> bool:
    found = _PYTHON_VERSION.match(info.python)
    if found is None:
        return False
    return (int(found.group(1)), int(found.group(2))) >= PYTHON_MINIMUM


def capture_method(info: KernelInfo) -> tuple[str, str]:
    """("kcore" | "lime" | "none", why): kcore first (no module), LiME where kcore is unavailable."""
    minimum = ".".join(map(str, PYTHON_MINIMUM))
    if not has_python(info):
        return "none", (
            f"the instance has no python3 {minimum} or later (found {info.python or 'none'}): the capture "
            "program needs it; memory was not captured"
        )
    if info.kcore:
        return "kcore", "/proc/kcore is readable: physical memory is read through the kernel's direct map, no module"
    kcore_reason = (
        "/proc/kcore is blocked by kernel lockdown (confidentiality)"
        if info.lockdown == "confidentiality"
        else "/proc/kcore is not available"
    )
    loadable, reason = can_load_module(info)
    if not loadable:
        return "none", f"{kcore_reason}; {reason}"
    return "lime", f"{kcore_reason}: falling back to the LimeFactory's LiME module ({reason})"


def can_load_module(info: KernelInfo) -> tuple[bool, str]:
    """Whether this kernel would load our (unsigned) LiME module; the reason either way."""
    if info.secure_boot:
        return False, (
            "Secure Boot is enabled: the kernel loads only modules signed by an enrolled key, "
            "and LiME modules are not signed; memory was not captured"
        )
    if info.lockdown != "none":
        return False, (
            f"kernel lockdown is in {info.lockdown} mode: it refuses unsigned modules; memory was not captured"
        )
    if info.arch not in ARCHITECTURES:
        return False, f"architecture {info.arch} is not supported"
    return True, f"{info.describe()} allows loading an unsigned module (Secure Boot off, lockdown none)"


# What the LimeFactory writes under module_prefix(info), and what a capture needs to exist there.
MODULE_FILE = "lime.ko"
BUILD_FILE = "build.json"
SYMBOLS_FILE = "symbols.json.xz"  # the Volatility 3 ISF (dwarf2json) of the same kernel
MODULE_FILES = (MODULE_FILE, BUILD_FILE, SYMBOLS_FILE)


def required_module_files(info: KernelInfo) -> tuple[str, ...]:
    """What a capture by module needs prebuilt. Debian publishes no System.map outside its -dbg
    package, so its ISF comes from the host's own BTF, kallsyms and banner uploaded with the image."""
    if info.distro == "debian":
        return (MODULE_FILE, BUILD_FILE)
    return MODULE_FILES
