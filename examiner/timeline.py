"""File-system timelines: a bodyfile per file system, then `mactime` over all of them.

The Sleuth Kit (`fls -r -m`) writes the bodyfile where it can read the file system. TSK 4.11
cannot open XFS, Amazon Linux's root file system, so XFS is walked with libfsxfs (`pyfsxfs`)
and written in the same bodyfile 3.x format, so `mactime` and every later step treat both alike.

Path convention: every path in a case's bodyfile starts with `/<VolumeId>/p<N>`, the volume
the image was taken from and the partition number (Linux numbering; `p0` is a whole image
without a partition table), e.g. `/vol-0abc/p1/etc/crontab`. Paths stay unambiguous when a
case has several disks and partitions, and `split_filesystem_path` recovers both halves.
"""

from __future__ import annotations

import io
import os
import re
import stat
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from examiner import ExaminationFailed, run_tool
from examiner.partitions import Partition
from examiner.superblock import xfs_inode_sizes

_PREFIX = re.compile(r"^(/[^/]+/p\d+)(/.*)?$")
# fls prints control characters in names as '^'; the XFS walker does the same so both read alike.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_TYPE_CHAR = {
    stat.S_IFREG: "r",
    stat.S_IFDIR: "d",
    stat.S_IFLNK: "l",
    stat.S_IFCHR: "c",
    stat.S_IFBLK: "b",
    stat.S_IFIFO: "p",
    stat.S_IFSOCK: "s",
}
BODYFILE_FIELDS = 11


def filesystem_prefix(volume_id: str, partition_number: int) -> str:
    if not volume_id or "/" in volume_id or "|" in volume_id:
        raise ValueError(f"volume id {volume_id!r} cannot be part of a bodyfile path")
    return f"/{volume_id}/p{partition_number}"


def split_filesystem_path(path: str) -> tuple[str, str]:
    """('/vol-0abc/p1', '/etc/crontab') from '/vol-0abc/p1/etc/crontab'; ('', path) for unprefixed paths."""
    match = _PREFIX.match(path)
    if not match:
        return "", path
    return match.group(1), match.group(2) or "/"


def _when(epoch: int) -> datetime | None:
    return datetime.fromtimestamp(epoch, UTC) if epoch > 0 else None


@dataclass(frozen=True)
class BodyfileEntry:
    """One line of a bodyfile 3.x: `MD5|name|inode|mode_as_string|UID|GID|size|atime|mtime|ctime|crtime`."""

    md5: str
    name: str
    inode: str
    mode: str
    uid: int
    gid: int
    size: int
    atime: int
    mtime: int
    ctime: int
    crtime: int

    @property
    def filesystem(self) -> str:
        return split_filesystem_path(self.name)[0]

    @property
    def path(self) -> str:
        """Path inside its file system, without the `(deleted)` marker fls appends."""
        inner = split_filesystem_path(self.name)[1]
        return inner.removesuffix(" (deleted)").removesuffix(" (deleted-realloc)")

    @property
    def deleted(self) -> bool:
        return self.name.endswith((" (deleted)", " (deleted-realloc)"))

    @property
    def is_regular_file(self) -> bool:
        return self.mode.startswith("r/r")

    @property
    def is_directory(self) -> bool:
        return self.mode.startswith("d/d")

    @property
    def permissions(self) -> str:
        """'rwsr-xr-x' part of the mode string."""
        return self.mode[3:] if len(self.mode) >= 12 else ""

    @property
    def is_setuid_or_setgid(self) -> bool:
        perms = self.permissions
        return len(perms) == 9 and (perms[2] in "sS" or perms[5] in "sS")

    @property
    def is_executable(self) -> bool:
        perms = self.permissions
        return len(perms) == 9 and any(perms[i] in "xsSt" and perms[i] not in "ST" for i in (2, 5, 8))

    @property
    def times(self) -> dict[str, datetime | None]:
        return {"m": _when(self.mtime), "a": _when(self.atime), "c": _when(self.ctime), "b": _when(self.crtime)}

    def line(self) -> str:
        return "|".join(
            str(v)
            for v in (
                self.md5,
                self.name,
                self.inode,
                self.mode,
                self.uid,
                self.gid,
                self.size,
                self.atime,
                self.mtime,
                self.ctime,
                self.crtime,
            )
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "filesystem": self.filesystem,
            "path": self.path,
            "deleted": self.deleted,
            "inode": self.inode,
            "mode": self.mode,
            "uid": self.uid,
            "gid": self.gid,
            "size": self.size,
            **{f"{k}time": (t.isoformat() if t else None) for k, t in self.times.items()},
        }


def parse_bodyfile_line(line: str) -> BodyfileEntry:
    md5, _, rest = line.partition("|")
    # A file name may itself hold '|' (TSK does not escape it), so count fields from the right.
    fields = rest.rsplit("|", BODYFILE_FIELDS - 2)
    if not _ or len(fields) != BODYFILE_FIELDS - 1:
        raise ValueError(f"not a bodyfile 3.x line: {line[:200]!r}")
    name, inode, mode, uid, gid, size, atime, mtime, ctime, crtime = fields
    try:
        return BodyfileEntry(
            md5=md5,
            name=name,
            inode=inode,
            mode=mode,
            uid=int(uid),
            gid=int(gid),
            size=int(size),
            atime=int(atime),
            mtime=int(mtime),
            ctime=int(ctime),
            crtime=int(crtime),
        )
    except ValueError as exc:
        raise ValueError(f"not a bodyfile 3.x line: {line[:200]!r}") from exc


def parse_bodyfile(text: str) -> list[BodyfileEntry]:
    return [parse_bodyfile_line(line) for line in text.splitlines() if line.strip()]


def format_bodyfile(entries: Iterable[BodyfileEntry]) -> str:
    return "".join(entry.line() + "\n" for entry in entries)


def tsk_bodyfile(image: Path, partition: Partition, fstype: str | None, prefix: str) -> list[BodyfileEntry]:
    """`fls -r -m <prefix>/ -o <sector offset> [-f <fstype>] image`: TSK reads the image file, never mounts it."""
    args = ["fls", "-r", "-m", prefix + "/", "-o", str(partition.offset_sectors)]
    if partition.sector_size != 512:
        args += ["-b", str(partition.sector_size)]
    if fstype:
        args += ["-f", fstype]
    done = run_tool([*args, str(image)], what=f"file listing of {prefix}")
    return parse_bodyfile(done.stdout.decode("utf-8", errors="surrogateescape"))


class ImageSlice(io.RawIOBase):
    """A read-only window on one partition of an image file, for libyal's file-object interface."""

    def __init__(self, image: Path, offset: int, length: int) -> None:
        super().__init__()
        self._file = image.open("rb")
        self._offset = offset
        self._length = length
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def writable(self) -> bool:
        return False

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._length}[whence]
        self._position = max(0, base + offset)
        return self._position

    def tell(self) -> int:
        return self._position

    def get_size(self) -> int:
        return self._length

    def read(self, size: int = -1) -> bytes:
        remaining = max(0, self._length - self._position)
        size = remaining if size is None or size < 0 else min(size, remaining)
        self._file.seek(self._offset + self._position)
        data = self._file.read(size)
        self._position += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._file.close()
        super().close()


@contextmanager
def open_xfs(image: Path, partition: Partition) -> Iterator[Any]:
    """A pyfsxfs volume over one partition of the image, opened from a read-only file object."""
    import pyfsxfs  # the forensic extra; only the examination needs it

    window = ImageSlice(image, partition.offset_bytes, partition.length_bytes)
    volume = pyfsxfs.volume()
    try:
        volume.open_file_object(window)
    except OSError as exc:
        window.close()
        raise ExaminationFailed(
            f"libfsxfs cannot open XFS in partition {partition.number} of {image.name}: {exc}"
        ) from exc
    try:
        yield volume
    finally:
        volume.close()
        window.close()


def tsk_mode_string(file_mode: int) -> str:
    """Mode as TSK writes it in a bodyfile: '<name type>/<meta type><permissions>', e.g. 'r/rrwsr-xr-x'."""
    kind = _TYPE_CHAR.get(stat.S_IFMT(file_mode), "-")
    return f"{kind}/{kind}{stat.filemode(file_mode)[1:]}"


def _seconds(file_entry: Any, getter: str) -> int:
    nanoseconds = getattr(file_entry, getter)()
    return int(nanoseconds) // 1_000_000_000 if nanoseconds else 0


def walk_xfs(volume: Any) -> Iterator[tuple[str, Any]]:
    """(path, file entry) for every entry below the root, depth first in name order (as fls lists)."""
    root = volume.get_root_directory()
    seen = {root.inode_number}

    def children(parent_path: str, directory: Any) -> list[tuple[str, Any]]:
        named = sorted(((entry.name or "", entry) for entry in directory.sub_file_entries), key=lambda p: p[0])
        return [(f"{parent_path}/{_CONTROL.sub('^', name)}", entry) for name, entry in reversed(named)]

    pending = children("", root)
    while pending:
        path, entry = pending.pop()
        yield path, entry
        # A directory reached twice means a corrupt (or hostile) directory graph: list it, do not loop.
        if stat.S_ISDIR(entry.file_mode) and entry.inode_number not in seen:
            seen.add(entry.inode_number)
            pending.extend(children(path, entry))


def xfs_bodyfile(image: Path, partition: Partition, prefix: str) -> list[BodyfileEntry]:
    entries = []
    with open_xfs(image, partition) as volume:
        walked = list(walk_xfs(volume))
        # libfsxfs reports 0 for every directory; the inode core's di_size is what XFS (and xfs_db) says.
        directory_sizes = xfs_inode_sizes(
            image, partition.offset_bytes, [e.inode_number for _, e in walked if stat.S_ISDIR(e.file_mode)]
        )
        for path, entry in walked:
            entries.append(
                BodyfileEntry(
                    md5="0",
                    name=prefix + path,
                    inode=str(entry.inode_number),
                    mode=tsk_mode_string(entry.file_mode),
                    uid=int(entry.owner_identifier),
                    gid=int(entry.group_identifier),
                    size=directory_sizes.get(entry.inode_number, int(entry.size)),
                    atime=_seconds(entry, "get_access_time_as_integer"),
                    mtime=_seconds(entry, "get_modification_time_as_integer"),
                    ctime=_seconds(entry, "get_inode_change_time_as_integer"),
                    crtime=_seconds(entry, "get_creation_time_as_integer"),
                )
            )
    return entries


def filesystem_bodyfile(image: Path, partition: Partition, fstype: str | None, prefix: str) -> list[BodyfileEntry]:
    """The bodyfile of one file system: libfsxfs for XFS, The Sleuth Kit for everything TSK knows."""
    if fstype == "xfs":
        return xfs_bodyfile(image, partition, prefix)
    return tsk_bodyfile(image, partition, fstype, prefix)


def write_timeline(bodyfile: Path, timeline_csv: Path) -> None:
    """`mactime -d -y -b bodyfile` in UTC: a CSV with ISO 8601 times, one row per (time, file)."""
    env = {**os.environ, "TZ": "UTC"}
    done = run_tool(["mactime", "-d", "-y", "-b", str(bodyfile)], what="timeline", env=env)
    timeline_csv.write_bytes(done.stdout)


@dataclass(frozen=True)
class TimelineEvent:
    """What `mactime` prints per row: one moment and which of m/a/c/b happened to one file then."""

    time: datetime
    macb: str
    entry: BodyfileEntry

    def to_dict(self) -> dict[str, Any]:
        return {"time": self.time.isoformat(), "macb": self.macb, **self.entry.to_dict()}


def timeline_events(entries: Iterable[BodyfileEntry]) -> list[TimelineEvent]:
    """The same events as mactime's CSV (times folded per file, 'macb' flags), oldest first."""
    events = []
    for entry in entries:
        by_time: dict[int, set[str]] = {}
        for flag, epoch in (("m", entry.mtime), ("a", entry.atime), ("c", entry.ctime), ("b", entry.crtime)):
            if epoch > 0:
                by_time.setdefault(epoch, set()).add(flag)
        for epoch, flags in by_time.items():
            macb = "".join(f if f in flags else "." for f in "macb")
            events.append(TimelineEvent(time=datetime.fromtimestamp(epoch, UTC), macb=macb, entry=entry))
    return sorted(events, key=lambda e: (e.time, e.entry.name))
