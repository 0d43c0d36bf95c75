from __future__ import annotations

import csv
import hashlib
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from examiner.runner import (
    DiskImage,
    ExaminationResult,
    MemoryImage,
    examine_case,
    main,
)
from examiner.timeline import parse_bodyfile
from simulation.disk_images import (
    PlantedTree,
    build_compromised_webserver_tree,
    build_ext4_image,
    build_xfs_image,
    copy_sparse,
    wrap_in_gpt,
    wrap_in_mbr,
)

INCIDENT = datetime(2024, 6, 1, 3, 0, tzinfo=UTC)
FILESYSTEMS = ("/vol-0aaa/p1", "/vol-0bbb/p0")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as image:
        while chunk := image.read(4 * 1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("runner")
    tree = build_compromised_webserver_tree(work / "tree", INCIDENT)
    disk = work / "case" / "disk"
    disk.mkdir(parents=True)
    ext4 = build_ext4_image(tree, work / "ext4.img")
    images = [
        DiskImage(wrap_in_gpt(ext4, disk / "vol-0aaa.img"), "vol-0aaa"),
        DiskImage(build_xfs_image(tree, disk / "vol-0bbb.img"), "vol-0bbb"),
    ]
    before = {image.volume_id: sha256(image.path) for image in images}
    result = examine_case(images, None, work / "case", incident_window=tree.incident_window)
    return {
        "tree": tree,
        "images": images,
        "before": before,
        "result": result,
        "analysis": work / "case" / "analysis",
        "ext4": ext4,
        "work": work,
    }


def test_images_are_byte_identical_after_examination(case: dict[str, Any]) -> None:
    after = {image.volume_id: sha256(image.path) for image in case["images"]}
    assert after == case["before"]


def test_every_file_system_of_every_image_is_examined(case: dict[str, Any]) -> None:
    result: ExaminationResult = case["result"]
    assert [(fs.prefix, fs.fstype, fs.tool, fs.error) for fs in result.filesystems] == [
        ("/vol-0aaa/p1", "ext4", "fls", ""),
        ("/vol-0bbb/p0", "xfs", "libfsxfs", ""),
    ]
    assert all(fs.entries > 30 for fs in result.filesystems)


def test_bodyfile_holds_both_disks_with_volume_and_partition_prefixes(case: dict[str, Any]) -> None:
    entries = parse_bodyfile((case["analysis"] / "bodyfile").read_text())
    tree: PlantedTree = case["tree"]
    by_name = {entry.name: entry for entry in entries}
    for filesystem in FILESYSTEMS:
        for planted in tree.planted:
            entry = by_name[filesystem + planted.path]
            assert (entry.mtime, entry.atime) == (planted.mtime, planted.atime)
    assert {entry.filesystem for entry in entries} == set(FILESYSTEMS)


def test_timeline_csv_lists_the_planted_files_at_their_times(case: dict[str, Any]) -> None:
    rows = list(csv.DictReader(io.StringIO((case["analysis"] / "timeline.csv").read_text())))
    cron = [(row["Date"], row["Type"]) for row in rows if row["File Name"] == "/vol-0bbb/p0/etc/cron.d/sysupdate"]
    assert cron == [("2024-06-01T03:05:00Z", "macb")]
    keys = [(row["Date"], row["Type"]) for row in rows if row["File Name"] == "/vol-0aaa/p1/root/.ssh/authorized_keys"]
    assert ("2024-06-01T03:06:00Z", "mac.") in keys


def test_findings_json_lists_every_planted_file_on_both_disks(case: dict[str, Any]) -> None:
    document = json.loads((case["analysis"] / "findings.json").read_text())
    listed = {(f["filesystem"], f["path"]) for f in document["findings"]}
    tree: PlantedTree = case["tree"]
    for filesystem in FILESYSTEMS:
        for planted in tree.planted:
            assert (filesystem, planted.path) in listed, planted.why
    assert document["skipped_rules"] == []
    assert document["findings"][0]["severity"] == "critical"


def test_clean_files_are_not_findings(case: dict[str, Any]) -> None:
    listed = {f.path for f in case["result"].findings}
    assert not listed & {
        "/etc/passwd",
        "/etc/crontab",
        "/var/www/html/index.html",
        "/home/deploy/.ssh/authorized_keys",
        "/etc/cron.d/e2scrub_all",
        "/usr/sbin/nginx",
    }


def test_yara_json_names_the_rules_and_lists_the_matches(case: dict[str, Any]) -> None:
    document = json.loads((case["analysis"] / "yara.json").read_text())
    assert document["rules"][0]["file"] == "webshells_and_persistence.yar"
    matched = {(m["filesystem"], m["path"], m["rule"]) for m in document["matches"]}
    assert ("/vol-0aaa/p1", "/var/www/html/uploads/.cache.php", "php_webshell_eval_request") in matched
    assert ("/vol-0bbb/p0", "/etc/cron.d/sysupdate", "cron_download_and_execute") in matched


def test_without_a_memory_image_memory_is_recorded_as_not_analysed(case: dict[str, Any]) -> None:
    summary = json.loads((case["analysis"] / "examination.json").read_text())
    assert summary["memory"]["summary"] == "not analysed: no memory image was acquired for this case"
    assert not (case["analysis"] / "volatility").exists()
    assert "The Sleuth Kit" in summary["tools"]["sleuthkit"]


def test_the_command_line_examines_a_case_folder_with_an_mbr_disk(
    case: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    folder = case["work"] / "cli-case"
    (folder / "disk").mkdir(parents=True)
    (folder / "memory").mkdir()
    image = wrap_in_mbr(case["ext4"], folder / "disk" / "vol-0ccc.img")
    (folder / "memory" / "i-0abc.lime").write_bytes(b"EMiL" + b"\x00" * 60)
    digest = sha256(image)
    code = main(
        [
            "--case-dir",
            str(folder),
            "--image",
            "disk/vol-0ccc.img",
            "--memory",
            "memory/i-0abc.lime",
            "--memory-not-analysable",
            "synthetic memory image has no kernel",
            "--incident-start",
            "2024-06-01T02:00:00Z",
            "--incident-end",
            "2024-06-01T09:00:00Z",
        ]
    )
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["memory"] == "not analysed: synthetic memory image has no kernel"
    assert [fs["prefix"] for fs in printed["filesystems"]] == ["/vol-0ccc/p1"]
    findings = json.loads((folder / "analysis" / "findings.json").read_text())
    assert {"/tmp/.X11-unix/kworkerd", "/etc/cron.d/sysupdate"} <= {f["path"] for f in findings["findings"]}
    assert sha256(image) == digest


def test_a_partition_without_a_file_system_is_reported_and_the_rest_examined(case: dict[str, Any]) -> None:
    work: Path = case["work"]
    blank = work / "blank.img"
    with blank.open("wb") as handle:
        handle.truncate(4 * 1024 * 1024)
    swap_like = wrap_in_gpt(blank, work / "vol-0ddd.img")
    data = work / "vol-0eee.img"
    with data.open("wb") as handle:
        handle.truncate(case["ext4"].stat().st_size)
    copy_sparse(case["ext4"], data, 0)
    result = examine_case(
        [DiskImage(swap_like, "vol-0ddd"), DiskImage(data, "vol-0eee")], None, work / "mixed", incident_window=None
    )
    [blank_fs, data_fs] = result.filesystems
    assert blank_fs.prefix == "/vol-0ddd/p1"
    assert "no file system The Sleuth Kit or libfsxfs recognises" in blank_fs.error
    assert (data_fs.prefix, data_fs.error, data_fs.fstype) == ("/vol-0eee/p0", "", "ext4")
    assert json.loads((work / "mixed" / "analysis" / "findings.json").read_text())["skipped_rules"] == [
        "web-root",
        "cron",
        "authorized-keys",
        "setuid",
    ]


def test_two_images_with_the_same_volume_id_are_refused(case: dict[str, Any], tmp_path: Path) -> None:
    image = case["images"][0]
    with pytest.raises(ValueError, match="its own volume id"):
        examine_case([image, image], MemoryImage(tmp_path / "x.lime"), tmp_path, incident_window=None)
