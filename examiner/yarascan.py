"""YARA over every regular file of every file system, read out of the image (never mounted).

File contents come from The Sleuth Kit's `icat` for file systems TSK reads, and from libfsxfs
for XFS. Which files exist comes from the bodyfile the timeline already made, so the scan and
the timeline always describe the same set of files.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from examiner import ExaminationFailed, run_tool
from examiner.partitions import Partition
from examiner.timeline import BodyfileEntry, open_xfs

SHIPPED_RULES = Path(__file__).parent / "rules" / "webshells_and_persistence.yar"
# Large files are rarely web shells or cron jobs; cap what one file may cost (recorded as skipped).
DEFAULT_MAX_FILE_BYTES = 64 * 1024 * 1024
ICAT_TIMEOUT_SECONDS = 300.0


@dataclass(frozen=True)
class StringMatch:
    offset: int
    identifier: str


@dataclass(frozen=True)
class YaraHit:
    rule: str
    path: str
    filesystem: str
    tags: list[str]
    meta: dict[str, Any]
    strings: list[StringMatch]

    @property
    def severity(self) -> str:
        return str(self.meta.get("severity", "high")).lower()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> YaraHit:
        return cls(
            rule=data["rule"],
            path=data["path"],
            filesystem=data["filesystem"],
            tags=list(data.get("tags", [])),
            meta=dict(data.get("meta", {})),
            strings=[StringMatch(**s) for s in data.get("strings", [])],
        )


@dataclass
class YaraScan:
    """What yara.json holds: the rules used (with their digest, for the record), the hits, what was skipped."""

    rules: list[dict[str, str]]
    hits: list[YaraHit] = field(default_factory=list)
    files_scanned: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rules": self.rules,
            "files_scanned": self.files_scanned,
            "skipped": self.skipped,
            "matches": [hit.to_dict() for hit in self.hits],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> YaraScan:
        return cls(
            rules=list(data.get("rules", [])),
            hits=[YaraHit.from_dict(h) for h in data.get("matches", [])],
            files_scanned=int(data.get("files_scanned", 0)),
            skipped=list(data.get("skipped", [])),
        )


def compile_rules(rule_files: Iterable[Path]) -> tuple[Any, list[dict[str, str]]]:
    import yara

    files = list(rule_files)
    if not files:
        raise ExaminationFailed("no YARA rule files given")
    sources = {}
    described = []
    for number, rule_file in enumerate(files):
        if not rule_file.is_file():
            raise ExaminationFailed(f"YARA rule file {rule_file} does not exist")
        sources[f"r{number}_{rule_file.stem}"] = str(rule_file)
        described.append({"file": rule_file.name, "sha256": hashlib.sha256(rule_file.read_bytes()).hexdigest()})
    try:
        return yara.compile(filepaths=sources), described
    except yara.Error as exc:
        raise ExaminationFailed(f"YARA rules do not compile: {exc}") from exc


def _hits(matches: Iterable[Any], path: str, filesystem: str) -> Iterator[YaraHit]:
    for match in matches:
        strings = [
            StringMatch(offset=int(instance.offset), identifier=str(found.identifier))
            for found in match.strings
            for instance in found.instances
        ]
        yield YaraHit(
            rule=str(match.rule),
            path=path,
            filesystem=filesystem,
            tags=[str(t) for t in match.tags],
            meta={str(k): v for k, v in match.meta.items()},
            strings=sorted(strings, key=lambda s: (s.offset, s.identifier)),
        )


@contextmanager
def _file_reader(image: Path, partition: Partition, fstype: str | None) -> Iterator[Any]:
    """A function inode -> bytes for one file system."""
    if fstype == "xfs":
        with open_xfs(image, partition) as volume:

            def read_xfs(inode: str) -> bytes:
                entry = volume.get_file_entry_by_inode(int(inode))
                return bytes(entry.read_buffer_at_offset(int(entry.size), 0)) if entry.size else b""

            yield read_xfs
        return

    def read_tsk(inode: str) -> bytes:
        args = ["icat", "-o", str(partition.offset_sectors)]
        if fstype:
            args += ["-f", fstype]
        return run_tool(
            [*args, str(image), inode], what=f"contents of inode {inode}", timeout=ICAT_TIMEOUT_SECONDS
        ).stdout

    yield read_tsk


def scan_filesystem(
    rules: Any,
    image: Path,
    partition: Partition,
    fstype: str | None,
    entries: Iterable[BodyfileEntry],
    scan: YaraScan,
    *,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
) -> None:
    """Add one file system's hits to `scan`: allocated regular files of its bodyfile entries."""
    import yara

    with _file_reader(image, partition, fstype) as read:
        for entry in entries:
            if not entry.is_regular_file or entry.deleted:
                continue
            if entry.size > max_file_bytes:
                scan.skipped.append(
                    {
                        "filesystem": entry.filesystem,
                        "path": entry.path,
                        "reason": f"larger than {max_file_bytes} bytes ({entry.size})",
                    }
                )
                continue
            try:
                data = read(entry.inode)
            except (ExaminationFailed, OSError) as exc:
                scan.skipped.append(
                    {"filesystem": entry.filesystem, "path": entry.path, "reason": f"could not be read: {exc}"}
                )
                continue
            try:
                matches = rules.match(data=data, timeout=60)
            except yara.Error as exc:
                scan.skipped.append(
                    {"filesystem": entry.filesystem, "path": entry.path, "reason": f"YARA could not scan it: {exc}"}
                )
                continue
            scan.files_scanned += 1
            scan.hits.extend(_hits(matches, entry.path, entry.filesystem))
