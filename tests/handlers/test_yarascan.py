from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from examiner import ExaminationFailed
from examiner.partitions import list_partitions
from examiner.timeline import filesystem_bodyfile, filesystem_prefix
from examiner.yarascan import SHIPPED_RULES, YaraHit, YaraScan, compile_rules, scan_filesystem
from simulation.disk_images import (
    HOSTILE_NAME,
    WEB_SHELL,
    PlantedTree,
    build_compromised_webserver_tree,
    build_ext4_image,
    build_xfs_image,
    wrap_in_gpt,
)

INCIDENT = datetime(2024, 6, 1, 3, 0, tzinfo=UTC)
EXPECTED_HITS = {
    ("php_webshell_eval_request", "/var/www/html/uploads/.cache.php"),
    ("php_webshell_command_exec", "/var/www/html/uploads/.cache.php"),
    ("php_webshell_command_exec", f"/var/www/html/uploads/{HOSTILE_NAME}"),
    ("cron_download_and_execute", "/etc/cron.d/sysupdate"),
    ("crypto_miner_indicators", "/tmp/.X11-unix/kworkerd"),
    ("reverse_shell_command", "/root/.bash_history"),
}


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> tuple[PlantedTree, dict[str, tuple[Path, str]]]:
    work = tmp_path_factory.mktemp("yara")
    tree = build_compromised_webserver_tree(work / "tree", INCIDENT)
    ext4 = build_ext4_image(tree, work / "ext4.img")
    return tree, {
        "gpt": (wrap_in_gpt(ext4, work / "vol-gpt.img"), "ext4"),
        "xfs": (build_xfs_image(tree, work / "vol-xfs.img"), "xfs"),
    }


def scan(image: Path, fstype: str, **options: Any) -> YaraScan:
    rules, described = compile_rules([SHIPPED_RULES])
    result = YaraScan(rules=described)
    [partition] = list_partitions(image)
    entries = filesystem_bodyfile(image, partition, fstype, filesystem_prefix(image.stem, partition.number))
    scan_filesystem(rules, image, partition, fstype, entries, result, **options)
    return result


@pytest.fixture(scope="module")
def scans(images: tuple[PlantedTree, dict[str, tuple[Path, str]]]) -> dict[str, YaraScan]:
    return {name: scan(image, fstype) for name, (image, fstype) in images[1].items()}


def test_yara_finds_the_web_shells_cron_downloader_miner_and_reverse_shell_in_ext4(scans: dict[str, YaraScan]) -> None:
    assert {(hit.rule, hit.path) for hit in scans["gpt"].hits} == EXPECTED_HITS
    assert {hit.filesystem for hit in scans["gpt"].hits} == {"/vol-gpt/p1"}


def test_yara_reads_xfs_files_through_libfsxfs_and_finds_the_same(scans: dict[str, YaraScan]) -> None:
    assert {(hit.rule, hit.path) for hit in scans["xfs"].hits} == EXPECTED_HITS
    assert {hit.filesystem for hit in scans["xfs"].hits} == {"/vol-xfs/p0"}


def test_every_regular_file_is_scanned(
    images: tuple[PlantedTree, dict[str, tuple[Path, str]]], scans: dict[str, YaraScan]
) -> None:
    tree = images[0]
    regular_files = [p for p in tree.root.rglob("*") if p.is_file()]
    assert scans["gpt"].files_scanned == scans["xfs"].files_scanned == len(regular_files)
    assert scans["gpt"].skipped == []


def test_a_hit_records_the_offset_of_each_matched_string(scans: dict[str, YaraScan]) -> None:
    hit = next(h for h in scans["xfs"].hits if h.rule == "php_webshell_command_exec" and h.path.endswith(".cache.php"))
    assert hit.tags == ["webshell", "php"]
    assert hit.meta["severity"] == "critical"
    exec_offsets = [s.offset for s in hit.strings if s.identifier == "$exec"]
    # YARA reports every place the regex matches: 'shell_exec(' and the 'exec(' inside it.
    assert exec_offsets == [WEB_SHELL.index(b"shell_exec("), WEB_SHELL.index(b"exec(")]


def test_files_above_the_size_cap_are_recorded_as_skipped(
    images: tuple[PlantedTree, dict[str, tuple[Path, str]]],
) -> None:
    image, fstype = images[1]["gpt"]
    result = scan(image, fstype, max_file_bytes=100)
    skipped = {s["path"] for s in result.skipped}
    assert "/var/www/html/uploads/.cache.php" in skipped  # 151 bytes
    assert all("larger than 100 bytes" in s["reason"] for s in result.skipped)
    assert "/var/www/html/uploads/.cache.php" not in {hit.path for hit in result.hits}


def test_yara_json_document_round_trips(scans: dict[str, YaraScan]) -> None:
    document = scans["gpt"].to_dict()
    assert document["rules"][0]["file"] == SHIPPED_RULES.name
    assert len(document["rules"][0]["sha256"]) == 64
    again = YaraScan.from_dict(document)
    assert again.hits == scans["gpt"].hits
    assert isinstance(again.hits[0], YaraHit)


def test_a_rule_file_that_does_not_compile_is_an_examination_failure(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yar"
    broken.write_text("rule broken { condition: $missing }")
    with pytest.raises(ExaminationFailed, match="do not compile"):
        compile_rules([broken])
