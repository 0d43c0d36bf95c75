from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from examiner import ExaminationFailed
from examiner.partitions import WHOLE_IMAGE, detect_filesystem, list_partitions, parse_mmls
from simulation.disk_images import (
    PARTITION_START,
    build_compromised_webserver_tree,
    build_ext4_image,
    build_xfs_image,
    wrap_in_gpt,
    wrap_in_mbr,
)

INCIDENT = datetime(2024, 6, 1, 3, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    work = tmp_path_factory.mktemp("partitions")
    tree = build_compromised_webserver_tree(work / "tree", INCIDENT)
    ext4 = build_ext4_image(tree, work / "ext4.img", size_mib=16)
    return {
        "ext4": ext4,
        "gpt": wrap_in_gpt(ext4, work / "gpt.img"),
        "mbr": wrap_in_mbr(ext4, work / "mbr.img"),
        "xfs": build_xfs_image(tree, work / "xfs.img"),
    }


def test_gpt_image_lists_one_linux_partition_at_one_mebibyte(images: dict[str, Path]) -> None:
    [partition] = list_partitions(images["gpt"])
    assert partition.number == 1
    assert partition.offset_bytes == PARTITION_START
    assert partition.offset_sectors == PARTITION_START // 512
    assert partition.length_bytes == images["ext4"].stat().st_size
    assert "GUID Partition Table" in partition.description
    assert "root" in partition.description


def test_mbr_image_lists_its_primary_partition_as_linux_does(images: dict[str, Path]) -> None:
    [partition] = list_partitions(images["mbr"])
    assert (partition.number, partition.offset_bytes) == (1, PARTITION_START)
    assert partition.length_bytes == images["ext4"].stat().st_size
    assert "Linux (0x83)" in partition.description


def test_image_without_partition_table_is_one_whole_file_system(images: dict[str, Path]) -> None:
    [partition] = list_partitions(images["xfs"])
    assert partition.number == WHOLE_IMAGE
    assert (partition.offset_bytes, partition.length_bytes) == (0, images["xfs"].stat().st_size)


def test_file_system_type_is_read_from_the_superblock(images: dict[str, Path]) -> None:
    assert detect_filesystem(images["ext4"], 0) == "ext4"
    assert detect_filesystem(images["gpt"], PARTITION_START) == "ext4"
    assert detect_filesystem(images["xfs"], 0) == "xfs"
    assert detect_filesystem(images["gpt"], 0) is None


def test_mmls_logical_partitions_are_numbered_from_five() -> None:
    output = """DOS Partition Table
Offset Sector: 0
Units are in 512-byte sectors

      Slot      Start        End          Length       Description
000:  Meta      0000000000   0000000000   0000000001   Primary Table (#0)
001:  -------   0000000000   0000002047   0000002048   Unallocated
002:  000:000   0000002048   0000206847   0000204800   Linux (0x83)
003:  000:001   0000206848   0000411647   0000204800   Linux Swap / Solaris x86 (0x82)
004:  Meta      0000411648   0000819199   0000407552   DOS Extended (0x05)
005:  Meta      0000411648   0000411648   0000000001   Extended Table (#1)
006:  -------   0000411648   0000413695   0000002048   Unallocated
007:  001:000   0000413696   0000819199   0000405504   Linux (0x83)
"""
    partitions = parse_mmls(output)
    assert [(p.number, p.offset_bytes) for p in partitions] == [(1, 2048 * 512), (2, 206848 * 512), (5, 413696 * 512)]
    assert partitions[2].description == "DOS Partition Table: Linux (0x83)"


def test_mmls_sector_size_is_taken_from_its_units_line() -> None:
    output = (
        "GUID Partition Table (EFI)\nOffset Sector: 0\nUnits are in 4096-byte sectors\n\n"
        "      Slot      Start        End          Length       Description\n"
        "004:  000       0000000256   0000002303   0000002048   Linux filesystem\n"
    )
    [partition] = parse_mmls(output)
    assert (partition.sector_size, partition.offset_bytes, partition.offset_sectors) == (4096, 256 * 4096, 256)


def test_a_missing_image_is_an_examination_failure(tmp_path: Path) -> None:
    with pytest.raises(ExaminationFailed, match="does not exist"):
        list_partitions(tmp_path / "vol-missing.img")
