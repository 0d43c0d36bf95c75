"""The guest's initramfs, built from this machine's Debian packages and cached by their versions.

What goes in: busybox-static (every applet), Debian's bash and python3.11 with the shared
libraries they load and the part of the standard library the capture and the control agent
import, the e1000 driver of the kernel package, and the scenario's planted files (the miner,
compiled here, SUID root under /tmp/.X11-unix; root's .bash_history with the reverse shell).
Nothing is downloaded: a fresh machine installs the packages (scripts/bootstrap.sh) and builds.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from simulation import disk_images

FILES = Path(__file__).parent / "files"
KERNEL_RELEASE_DEFAULT = "6.1.0-57-amd64"
PYTHON = "/usr/bin/python3.11"
BASH = "/bin/bash"
BUSYBOX = "/bin/busybox"
# The packages whose files go into the image: their versions key the cache.
PACKAGES = ("busybox-static", "bash", "python3.11-minimal", "libpython3.11-stdlib", "libssl3", "libc6", "gcc")
# What the capture program and the control agent import (the rest of the stdlib stays out).
GUEST_MODULES = (
    "__future__",
    "base64",
    "collections.abc",
    "contextlib",
    "encodings.ascii",
    "encodings.idna",
    "encodings.latin_1",
    "errno",
    "hashlib",
    "http.client",
    "json",
    "os",
    "select",
    "signal",
    "socket",
    "ssl",
    "struct",
    "subprocess",
    "sys",
    "time",
    "tty",
    "typing",
    "urllib.parse",
    "zlib",
)
ATTACKER = "203.0.113.66"  # the scenario's attacker host (disk_images' cron and history lines)
C2_PORT = 4444
POOL_PORT = 3333
MINER_LISTEN_PORT = 45700
MINER_PATH = "/tmp/.X11-unix/kworkerd"
HISTORY_PATH = "/root/.bash_history"
WEB_USER_UID = disk_images.WWW_DATA_UID


class GuestImageUnavailable(RuntimeError):
    """A package the guest is built from is not installed on this machine."""


@dataclass(frozen=True)
class GuestImage:
    kernel: Path
    initramfs: Path
    kernel_release: str
    key: str


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "irforensics" / "guest"


def package_version(name: str) -> str:
    found = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", name], capture_output=True, text=True, check=False)
    if found.returncode != 0 or not found.stdout:
        raise GuestImageUnavailable(f"the Debian package {name} is not installed (scripts/bootstrap.sh installs it)")
    return found.stdout


def kernel_release() -> str:
    """The newest Debian kernel installed under /boot (the guest boots the distribution's own)."""
    releases = sorted(p.name.removeprefix("vmlinuz-") for p in Path("/boot").glob("vmlinuz-*-amd64"))
    if not releases:
        raise GuestImageUnavailable("no Debian kernel in /boot (install linux-image-amd64)")
    return os.environ.get("IRF_GUEST_KERNEL", releases[-1])


def history_text() -> bytes:
    """The scenario's .bash_history with bash's timestamp lines (what linux.bash keys on in memory)."""
    stamp = 1_767_225_600  # 2026-01-01: any fixed moment, so the image is reproducible
    lines = []
    for offset, command in enumerate(disk_images.REVERSE_SHELL_HISTORY.decode().splitlines()):
        lines += [f"#{stamp + 60 * offset}", command]
    return ("\n".join(lines) + "\n").encode()


def reverse_shell_line() -> str:
    lines = [line for line in disk_images.REVERSE_SHELL_HISTORY.decode().splitlines() if "/dev/tcp/" in line]
    return lines[0]


def _init_script() -> bytes:
    text = (FILES / "init").read_text()
    for name, value in {
        "@ATTACKER@": ATTACKER,
        "@C2_PORT@": str(C2_PORT),
        "@POOL_PORT@": str(POOL_PORT),
        "@REVERSE_SHELL@": reverse_shell_line(),
        "@WEB_UID@": str(WEB_USER_UID),
    }.items():
        text = text.replace(name, value)
    return text.encode()


def _build_key(release: str) -> str:
    facts = {
        "kernel": release,
        "kernel-package": package_version(f"linux-image-{release}"),
        "packages": {name: package_version(name) for name in PACKAGES},
        "files": {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(FILES.iterdir())},
        "builder": hashlib.sha256(Path(__file__).read_bytes()).hexdigest(),
        "history": hashlib.sha256(history_text()).hexdigest(),
    }
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:20]


def _shared_libraries(binaries: Iterable[str]) -> set[str]:
    found: set[str] = set()
    for binary in binaries:
        listing = subprocess.run(["ldd", binary], capture_output=True, text=True, check=False).stdout
        for line in listing.splitlines():
            parts = line.split()
            if "=>" in parts and len(parts) >= 3 and parts[2].startswith("/"):
                found.add(parts[2])
            elif parts and parts[0].startswith("/"):
                found.add(parts[0])
    return found


def _python_files() -> list[str]:
    """Every file the guest's python3 loads for GUEST_MODULES (sources, bytecode, extensions)."""
    program = (
        "import sys, importlib\n"
        f"for name in {list(GUEST_MODULES)!r}: importlib.import_module(name)\n"
        "for module in list(sys.modules.values()):\n"
        "    path = getattr(module, '__file__', None)\n"
        "    if path: print(path)\n"
    )
    listing = subprocess.run([PYTHON, "-c", program], capture_output=True, text=True, check=True).stdout
    files: set[str] = set()
    for path in listing.splitlines():
        files.add(path)
        if path.endswith(".py"):
            cached = Path(path).parent / "__pycache__" / (Path(path).stem + ".cpython-311.pyc")
            if cached.exists():
                files.add(str(cached))
    return sorted(files)


# Debian's merged /usr: these top-level names are symlinks into /usr, in the host and the guest.
MERGED = ("bin", "sbin", "lib", "lib64")


def _canonical(name: str) -> str:
    name = name.lstrip("/")
    head = name.split("/", 1)[0]
    return f"usr/{name}" if head in MERGED else name


class _Cpio:
    """A newc ("070701") archive, the format the kernel unpacks into its rootfs."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.inode = 1
        self.seen: set[str] = set()
        for name in MERGED:
            self.directory(f"usr/{name}")
            self._entry(name, stat.S_IFLNK | 0o777, f"usr/{name}".encode())

    def _entry(self, name: str, mode: int, data: bytes = b"", *, uid: int = 0, rdev: tuple[int, int] = (0, 0)) -> None:
        name = name.lstrip("/")
        if name not in MERGED:
            name = _canonical(name)
        if name in self.seen:
            return
        self.seen.add(name)
        encoded = name.encode() + b"\0"
        fields = (self.inode, mode, uid, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(encoded), 0)
        header = b"070701" + b"".join(f"{value:08x}".encode() for value in fields)
        self.inode += 1
        self.chunks.append(header + encoded + b"\0" * (-(len(header) + len(encoded)) % 4))
        self.chunks.append(data + b"\0" * (-len(data) % 4))

    def directory(self, name: str) -> None:
        parts = Path(_canonical(name)).parts
        for depth in range(1, len(parts) + 1):
            self._entry("/".join(parts[:depth]), stat.S_IFDIR | 0o755)

    def file(self, name: str, data: bytes, mode: int = 0o644, *, uid: int = 0) -> None:
        self.directory(str(Path(name).parent))
        self._entry(name, stat.S_IFREG | mode, data, uid=uid)

    def symlink(self, name: str, target: str) -> None:
        self.directory(str(Path(name).parent))
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def device(self, name: str, major: int, minor: int) -> None:
        self.directory(str(Path(name).parent))
        self._entry(name, stat.S_IFCHR | 0o600, rdev=(major, minor))

    def copy(self, path: str) -> None:
        """A host file at the same path (a symlink kept as one, and the file it leads to copied too)."""
        source = Path(path)
        if source.is_symlink():
            self.symlink(path, os.readlink(source))
        real = Path(os.path.realpath(source))
        self.file(str(real), real.read_bytes(), stat.S_IMODE(real.stat().st_mode))

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        return b"".join(self.chunks)


def _compile_miner(work: Path) -> bytes:
    binary = work / "kworkerd"
    subprocess.run(
        [
            "gcc",
            "-static",
            "-O2",
            "-o",
            str(binary),
            f"-DLISTEN_PORT={MINER_LISTEN_PORT}",
            f"-DPOOL_PORT={POOL_PORT}",
            f'-DPOOL_ADDRESS="{ATTACKER}"',
            str(FILES / "kworkerd.c"),
        ],
        check=True,
        capture_output=True,
    )
    return binary.read_bytes()


def _assemble(release: str, work: Path) -> bytes:
    archive = _Cpio()
    for directory in ("/proc", "/sys", "/dev", "/tmp", "/run", "/root", "/etc", "/var/www/html/uploads", "/mnt"):
        archive.directory(directory)
    archive.device("/dev/console", 5, 1)
    archive.file("/init", _init_script(), 0o755)
    archive.file("/bin/busybox", Path(BUSYBOX).read_bytes(), 0o755)
    applets = subprocess.run([BUSYBOX, "--list-full"], capture_output=True, text=True, check=True).stdout.split()
    for applet in applets:
        if applet.rsplit("/", 1)[-1] not in ("bash", "python3"):
            archive.symlink("/" + applet, "/bin/busybox")
    archive.copy(BASH)
    archive.copy(PYTHON)
    archive.symlink("/usr/bin/python3", "python3.11")
    python_files = _python_files()
    extensions = [path for path in python_files if path.endswith(".so")]
    for library in sorted(_shared_libraries([BASH, PYTHON, *extensions])):
        archive.copy(library)
    for path in python_files:
        archive.copy(path)
    # Marks sys.prefix for python's start-up search (the directory holds os.py: found by landmark).
    archive.file("/usr/lib/irforensics/agent.py", (FILES / "agent.py").read_bytes())
    e1000 = Path(f"/lib/modules/{release}/kernel/drivers/net/ethernet/intel/e1000/e1000.ko")
    archive.file("/lib/modules/e1000.ko", e1000.read_bytes())
    archive.file("/etc/passwd", b"root:x:0:0:root:/root:/bin/bash\nwww-data:x:33:33:www-data:/var/www:/bin/sh\n")
    archive.file("/etc/group", b"root:x:0:\nwww-data:x:33:\n")
    archive.file("/etc/hosts", b"127.0.0.1 localhost\n")
    archive.file("/etc/os-release", b'ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n')
    archive.file("/var/www/html/index.html", b"<html><body>payments</body></html>\n")
    archive.directory("/tmp/.X11-unix")
    archive.file(MINER_PATH, _compile_miner(work), 0o4755)
    archive.file(HISTORY_PATH, history_text(), 0o600)
    return archive.finish()


def build_image(*, release: str | None = None, cache: Path | None = None) -> GuestImage:
    """The kernel and initramfs to boot (built once per package versions, then read from the cache)."""
    release = release or kernel_release()
    kernel = Path(f"/boot/vmlinuz-{release}")
    if not kernel.exists():
        raise GuestImageUnavailable(f"{kernel} is missing (install linux-image-{release})")
    if shutil.which("gcc") is None:
        raise GuestImageUnavailable("gcc is needed once to build the guest's planted miner")
    key = _build_key(release)
    directory = (cache or cache_root()) / key
    initramfs = directory / "initramfs.cpio.gz"
    if not initramfs.exists():
        directory.mkdir(parents=True, exist_ok=True)
        work = directory / "build"
        work.mkdir(exist_ok=True)
        data = gzip.compress(_assemble(release, work), compresslevel=1, mtime=0)
        partial = initramfs.with_suffix(".partial")
        partial.write_bytes(data)
        partial.replace(initramfs)
        shutil.rmtree(work, ignore_errors=True)
    return GuestImage(kernel=kernel, initramfs=initramfs, kernel_release=release, key=key)


if __name__ == "__main__":
    print(build_image(), file=sys.stderr)
