"""The examination runner: a case's disk and memory images in, `analysis/` out.

A case may hold no disk image (an instance-store instance has no EBS volume to snapshot): then its
memory alone is examined, and every output below is still written (empty where it comes from disk).

Runs the same way in the local simulation and on the analysis instance in the forensic
account (`python -m examiner.runner --case-dir DIR --image disk/vol-0abc.img`).
Writes, under `<out_dir>/analysis/`:

    bodyfile            every file system of every image, paths `/<VolumeId>/p<N>/...` (see timeline.py)
    timeline.csv        mactime -d -y over that bodyfile, UTC
    yara.json           rules used (with sha256), matches, files skipped
    findings.json       suspicious findings, most severe first
    notes.json          the examiner's notes: parsed logs, anti-forensics, timestamp anomalies, indicators, narrative
    volatility/*.json   Volatility 3 output per plugin, only when the memory image was analysed
    memory-findings.json  what the memory shows, tied to the disk findings (examiner/memory_findings.py)
    examination.json    what was examined with which tools, and memory status (or why not analysed)

Images are only read: file systems are parsed out of the image file by The Sleuth Kit and
libfsxfs, never mounted, so no journal is replayed and no byte of evidence changes.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from examiner import ExaminationFailed, run_tool
from examiner.findings import Finding, Window, find_suspicious, order_findings, skipped_rules
from examiner.memory import MemoryAnalysis, analyse_memory, plugin_rows
from examiner.memory_findings import MemoryFinding, find_in_memory
from examiner.narrative import with_memory
from examiner.notes import ExaminerNotes, read_texts, take_notes
from examiner.partitions import Partition, detect_filesystem, list_partitions
from examiner.superblock import FileSystemFacts, filesystem_facts
from examiner.timeline import (
    BodyfileEntry,
    filesystem_bodyfile,
    filesystem_prefix,
    format_bodyfile,
    write_timeline,
)
from examiner.yarascan import SHIPPED_RULES, YaraScan, compile_rules, scan_filesystem


@dataclass(frozen=True)
class DiskImage:
    """A raw image of one EBS volume (`disk/<VolumeId>.img`)."""

    path: Path
    volume_id: str


@dataclass(frozen=True)
class MemoryImage:
    """A LiME memory image; `not_analysable` is the caller's reason when it knows analysis cannot work."""

    path: Path
    symbols_dir: Path | None = None
    not_analysable: str = ""


@dataclass(frozen=True)
class FileSystemExamined:
    volume_id: str
    partition: int
    offset_bytes: int
    length_bytes: int
    description: str
    fstype: str  # "" when The Sleuth Kit recognised the file system itself
    prefix: str
    tool: str
    entries: int = 0
    error: str = ""


@dataclass
class ExaminationResult:
    filesystems: list[FileSystemExamined]
    entries: list[BodyfileEntry]
    yara: YaraScan
    findings: list[Finding]
    memory: MemoryAnalysis
    incident_window: Window | None
    outputs: dict[str, Path] = field(default_factory=dict)
    tools: dict[str, str] = field(default_factory=dict)
    notes: ExaminerNotes = field(default_factory=ExaminerNotes)
    memory_findings: list[MemoryFinding] = field(default_factory=list)


def tool_versions() -> dict[str, str]:
    """Versions recorded with the results: a finding is only as good as the tool that made it."""
    versions: dict[str, str] = {}
    for name, args in (("sleuthkit", ["fls", "-V"]), ("mactime", ["mactime", "-V"])):
        try:
            versions[name] = run_tool(args, what="version", check=False).stdout.decode().strip()
        except ExaminationFailed as exc:
            versions[name] = str(exc)
    for name, module, attribute in (
        ("yara-python", "yara", "__version__"),
        ("libfsxfs", "pyfsxfs", "get_version"),
        ("volatility3", "volatility3.framework", "constants"),
    ):
        try:
            imported = __import__(module, fromlist=["_"])
            value = getattr(imported, attribute)
            versions[name] = str(value() if callable(value) else getattr(value, "PACKAGE_VERSION", value))
        except ImportError:
            versions[name] = "not installed"
    return versions


def _examine_partition(image: DiskImage, partition: Partition) -> tuple[FileSystemExamined, list[BodyfileEntry]]:
    fstype = detect_filesystem(image.path, partition.offset_bytes)
    prefix = filesystem_prefix(image.volume_id, partition.number)
    tool = "libfsxfs" if fstype == "xfs" else "fls"
    record = FileSystemExamined(
        volume_id=image.volume_id,
        partition=partition.number,
        offset_bytes=partition.offset_bytes,
        length_bytes=partition.length_bytes,
        description=partition.description,
        fstype=fstype or "",
        prefix=prefix,
        tool=tool,
    )
    try:
        entries = filesystem_bodyfile(image.path, partition, fstype, prefix)
    except ExaminationFailed as exc:
        # A partition with no file system (BIOS boot, swap, LVM) is normal; say so instead of failing the case.
        why = str(exc) if fstype else f"no file system The Sleuth Kit or libfsxfs recognises ({exc})"
        return FileSystemExamined(**{**asdict(record), "error": why}), []
    return FileSystemExamined(**{**asdict(record), "entries": len(entries)}), entries


def _write_json(path: Path, document: Any) -> Path:
    path.write_text(json.dumps(document, indent=2, sort_keys=True, default=str) + "\n")
    return path


def examine_case(
    images: Sequence[DiskImage],
    memory: MemoryImage | None,
    out_dir: Path,
    *,
    incident_window: Window | None,
    rule_files: Sequence[Path] = (SHIPPED_RULES,),
    memory_timeout_seconds: float = 1800.0,
) -> ExaminationResult:
    """Timeline, YARA, memory and findings for one case, written to `out_dir/analysis/`."""
    if incident_window and incident_window[0] > incident_window[1]:
        raise ValueError("the incident window ends before it starts")
    volume_ids = [image.volume_id for image in images]
    if len(set(volume_ids)) != len(volume_ids):
        raise ValueError(f"each disk image needs its own volume id, got {volume_ids}")
    started_at = datetime.now(UTC).isoformat()
    analysis = out_dir / "analysis"
    analysis.mkdir(parents=True, exist_ok=True)
    rules, rules_used = compile_rules(rule_files)
    scan = YaraScan(rules=rules_used)

    filesystems: list[FileSystemExamined] = []
    all_entries: list[BodyfileEntry] = []
    texts: dict[tuple[str, str], bytes] = {}
    facts: dict[str, FileSystemFacts | None] = {}
    for image in images:
        for partition in list_partitions(image.path):
            examined, entries = _examine_partition(image, partition)
            filesystems.append(examined)
            if examined.error:
                continue
            all_entries.extend(entries)
            scan_filesystem(rules, image.path, partition, examined.fstype or None, entries, scan)
            texts.update(read_texts(image.path, partition, examined.fstype or None, entries))
            facts[examined.prefix] = filesystem_facts(image.path, partition.offset_bytes, examined.fstype or None)

    outputs = {"bodyfile": analysis / "bodyfile", "timeline.csv": analysis / "timeline.csv"}
    outputs["bodyfile"].write_text(format_bodyfile(all_entries), encoding="utf-8", errors="surrogateescape")
    write_timeline(outputs["bodyfile"], outputs["timeline.csv"])

    if memory is None:
        memory_result = MemoryAnalysis.not_analysed("no memory image was acquired for this case")
    elif memory.not_analysable:
        memory_result = MemoryAnalysis.not_analysed(memory.not_analysable, image=memory.path.name)
    else:
        memory_result = analyse_memory(
            memory.path, memory.symbols_dir, analysis / "volatility", timeout_seconds=memory_timeout_seconds
        )
        for run in memory_result.plugins:
            if run.succeeded:
                outputs[f"volatility/{run.output}"] = analysis / "volatility" / run.output

    findings = find_suspicious(all_entries, scan.hits, incident_window)
    notes = take_notes(all_entries, texts, facts, findings, incident_window)
    findings = order_findings([*findings, *notes.findings()])
    memory_findings = find_in_memory(plugin_rows(analysis / "volatility", memory_result), findings, yara_rules=rules)
    # The story is told from disk and memory alike: memory's steps follow the disk's (or say why there are none).
    notes.narrative = with_memory(notes.narrative, memory_result, memory_findings)
    outputs["notes.json"] = notes.write(analysis / "notes.json")
    outputs["memory-findings.json"] = _write_json(
        analysis / "memory-findings.json",
        {"memory": memory_result.to_dict(), "findings": [finding.to_dict() for finding in memory_findings]},
    )
    window = [moment.isoformat() for moment in incident_window] if incident_window else None
    outputs["yara.json"] = _write_json(analysis / "yara.json", scan.to_dict())
    outputs["findings.json"] = _write_json(
        analysis / "findings.json",
        {
            "incident_window": window,
            "skipped_rules": skipped_rules(incident_window),
            "findings": [finding.to_dict() for finding in findings],
        },
    )
    tools = tool_versions()
    outputs["examination.json"] = _write_json(
        analysis / "examination.json",
        {
            "started_at": started_at,
            "examined_at": datetime.now(UTC).isoformat(),
            "incident_window": window,
            "tools": tools,
            "images": [
                {"volume_id": image.volume_id, "file": image.path.name, "size": image.path.stat().st_size}
                for image in images
            ],
            "filesystems": [asdict(fs) for fs in filesystems],
            "memory": memory_result.to_dict(),
            "path_convention": "/<VolumeId>/p<N>/<path in file system>; p0 = whole image without partition table",
        },
    )
    return ExaminationResult(
        filesystems=filesystems,
        entries=all_entries,
        yara=scan,
        findings=findings,
        memory=memory_result,
        incident_window=incident_window,
        outputs=outputs,
        tools=tools,
        notes=notes,
        memory_findings=memory_findings,
    )


def _disk_image(argument: str, case_dir: Path) -> DiskImage:
    volume_id, separator, location = argument.partition("=")
    if not separator:
        location, volume_id = argument, ""
    path = Path(location) if Path(location).is_absolute() else case_dir / location
    return DiskImage(path=path, volume_id=volume_id or path.name.removesuffix(".img"))


def _moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m examiner.runner",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--case-dir", type=Path, required=True, help="case folder; analysis/ is written here")
    parser.add_argument(
        "--image",
        action="append",
        default=[],
        metavar="[VOLUMEID=]PATH",
        help="raw disk image (relative to the case folder); volume id defaults to the file name; "
        "none for an instance without EBS volumes (memory only)",
    )
    parser.add_argument("--memory", help="LiME memory image (relative to the case folder)")
    parser.add_argument("--symbols", type=Path, help="directory holding the kernel's Volatility ISF")
    parser.add_argument(
        "--memory-not-analysable",
        default="",
        metavar="REASON",
        help="record the memory image as not analysed, for this reason",
    )
    parser.add_argument("--incident-start", type=_moment, help="ISO 8601 start of the incident window (UTC)")
    parser.add_argument("--incident-end", type=_moment, help="ISO 8601 end of the incident window (UTC)")
    parser.add_argument(
        "--rules",
        type=Path,
        action="append",
        default=[],
        help="extra YARA rule file (the shipped rules are always used)",
    )
    args = parser.parse_args(argv)
    case_dir: Path = args.case_dir
    if (args.incident_start is None) != (args.incident_end is None):
        parser.error("give both --incident-start and --incident-end, or neither")
    if not args.image and not args.memory:
        parser.error("give at least one --image or a --memory image")
    window = (args.incident_start, args.incident_end) if args.incident_start else None
    memory = None
    if args.memory:
        memory_path = Path(args.memory) if Path(args.memory).is_absolute() else case_dir / args.memory
        memory = MemoryImage(path=memory_path, symbols_dir=args.symbols, not_analysable=args.memory_not_analysable)
    try:
        result = examine_case(
            [_disk_image(a, case_dir) for a in args.image],
            memory,
            case_dir,
            incident_window=window,
            rule_files=[SHIPPED_RULES, *args.rules],
        )
    except (ExaminationFailed, ValueError) as exc:
        print(f"examination failed: {exc}", file=sys.stderr)
        return 2
    print(
        json.dumps(
            {
                "filesystems": [asdict(fs) for fs in result.filesystems],
                "memory": result.memory.summary,
                "yara_matches": len(result.yara.hits),
                "findings": len(result.findings),
                "memory_findings": len(result.memory_findings),
                "outputs": {name: str(path) for name, path in result.outputs.items()},
            },
            indent=2,
            default=str,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
