from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path

import pytest

from examiner.partitions import list_partitions
from examiner.timeline import (
    BodyfileEntry,
    filesystem_bodyfile,
    filesystem_prefix,
    format_bodyfile,
    parse_bodyfile,
    parse_bodyfile_line,
    split_filesystem_path,
    timeline_events,
    tsk_mode_string,
    write_timeline,
)
from simulation.disk_images import (
    PlantedTree,
    build_compromised_webserver_tree,
    build_ext4_image,
    build_xfs_image,
    wrap_in_gpt,
)

INCIDENT = datetime(2024, 6, 1, 3, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> PlantedTree:
    return build_compromised_webserver_tree(tmp_path_factory.mktemp("timeline") / "tree", INCIDENT)


@pytest.fixture(scope="module")
def bodyfiles(tree: PlantedTree, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[BodyfileEntry]]:
    work = tmp_path_factory.mktemp("timeline-images")
    ext4 = build_ext4_image(tree, work / "vol-ext4.img")
    images = {
        "ext4": (ext4, "ext4"),
        "gpt": (wrap_in_gpt(ext4, work / "vol-gpt.img"), "ext4"),
        "xfs": (build_xfs_image(tree, work / "vol-xfs.img"), "xfs"),
    }
    found = {}
    for name, (image, fstype) in images.items():
        [partition] = list_partitions(image)
        found[name] = filesystem_bodyfile(image, partition, fstype, filesystem_prefix(f"vol-{name}", partition.number))
    return found


@pytest.mark.parametrize("image", ["ext4", "gpt", "xfs"])
def test_timeline_has_every_planted_file_with_its_mac_times(
    image: str, tree: PlantedTree, bodyfiles: dict[str, list[BodyfileEntry]]
) -> None:
    by_path = {entry.path: entry for entry in bodyfiles[image]}
    for planted in tree.planted:
        entry = by_path[planted.path]
        assert (entry.mtime, entry.atime, entry.ctime, entry.crtime) == (
            planted.mtime,
            planted.atime,
            planted.ctime,
            planted.crtime,
        ), planted.path
        assert (entry.uid, entry.gid, entry.size) == (
            planted.uid,
            planted.gid,
            (tree.root / planted.path.lstrip("/")).stat().st_size,
        )


@pytest.mark.parametrize("image", ["ext4", "gpt", "xfs"])
def test_old_files_keep_their_old_times(
    image: str, tree: PlantedTree, bodyfiles: dict[str, list[BodyfileEntry]]
) -> None:
    passwd = next(entry for entry in bodyfiles[image] if entry.path == "/etc/passwd")
    assert passwd.mtime == tree.entries["/etc/passwd"].mtime
    assert passwd.atime == tree.entries["/etc/passwd"].atime
    assert datetime.fromtimestamp(passwd.mtime, UTC) < INCIDENT.replace(year=2023, month=12)


def test_paths_carry_the_volume_and_partition_prefix(bodyfiles: dict[str, list[BodyfileEntry]]) -> None:
    assert {entry.filesystem for entry in bodyfiles["gpt"]} == {"/vol-gpt/p1"}
    assert {entry.filesystem for entry in bodyfiles["xfs"]} == {"/vol-xfs/p0"}
    assert "/vol-gpt/p1/etc/cron.d/sysupdate" in {entry.name for entry in bodyfiles["gpt"]}


def test_xfs_walker_writes_what_the_sleuth_kit_writes_for_the_same_tree(
    bodyfiles: dict[str, list[BodyfileEntry]],
) -> None:
    def comparable(entries: list[BodyfileEntry]) -> dict[str, tuple[object, ...]]:
        # Inode numbers and directory sizes are the file system's own; lost+found and TSK's virtual
        # $OrphanFiles exist only in ext4.
        return {
            e.path: (e.mode, e.uid, e.gid, None if e.is_directory else e.size, e.atime, e.mtime, e.ctime, e.crtime)
            for e in entries
            if e.path not in ("/lost+found", "/$OrphanFiles")
        }

    assert comparable(bodyfiles["xfs"]) == comparable(bodyfiles["ext4"])


def test_suid_and_sticky_bits_appear_in_the_mode_string(bodyfiles: dict[str, list[BodyfileEntry]]) -> None:
    for image in ("ext4", "xfs"):
        by_path = {entry.path: entry for entry in bodyfiles[image]}
        assert by_path["/tmp/.X11-unix/kworkerd"].mode == "r/rrwsr-xr-x"
        assert by_path["/tmp"].mode == "d/drwxrwxrwt"
        assert by_path["/tmp/.X11-unix/kworkerd"].is_setuid_or_setgid


def test_mactime_csv_lists_the_web_shell_at_its_creation_time(
    bodyfiles: dict[str, list[BodyfileEntry]], tmp_path: Path
) -> None:
    bodyfile = tmp_path / "bodyfile"
    bodyfile.write_text(format_bodyfile(bodyfiles["gpt"] + bodyfiles["xfs"]))
    write_timeline(bodyfile, tmp_path / "timeline.csv")
    rows = list(csv.DictReader(io.StringIO((tmp_path / "timeline.csv").read_text())))
    shell_rows = {
        (row["File Name"], row["Date"], row["Type"]) for row in rows if row["File Name"].endswith(".cache.php")
    }
    assert shell_rows == {
        ("/vol-gpt/p1/var/www/html/uploads/.cache.php", "2024-06-01T03:02:00Z", "macb"),
        ("/vol-xfs/p0/var/www/html/uploads/.cache.php", "2024-06-01T03:02:00Z", "macb"),
    }


def test_bodyfile_lines_round_trip_even_with_a_pipe_in_the_name() -> None:
    line = "0|/vol-1/p1/tmp/a|b.sh|77|r/rrwxr-xr-x|0|0|12|1717210000|1717210001|1717210002|1717210003"
    entry = parse_bodyfile_line(line)
    assert entry.path == "/tmp/a|b.sh"
    assert (entry.inode, entry.size, entry.crtime) == ("77", 12, 1717210003)
    assert entry.line() == line
    assert parse_bodyfile(line + "\n\n") == [entry]


def test_a_line_that_is_not_a_bodyfile_line_is_refused() -> None:
    with pytest.raises(ValueError, match="not a bodyfile"):
        parse_bodyfile_line("0|/etc/passwd|13|r/rrw-r--r--|0|0")


def test_deleted_entries_keep_their_path_and_say_deleted() -> None:
    entry = parse_bodyfile_line("0|/vol-1/p1/tmp/x (deleted)|20|r/rrwxr-xr-x|0|0|9|0|1717210000|0|0")
    assert (entry.path, entry.deleted, entry.is_executable) == ("/tmp/x", True, True)


def test_split_filesystem_path_separates_volume_partition_and_path() -> None:
    assert split_filesystem_path("/vol-0abc/p1/etc/crontab") == ("/vol-0abc/p1", "/etc/crontab")
    assert split_filesystem_path("/vol-0abc/p0") == ("/vol-0abc/p0", "/")
    assert split_filesystem_path("/etc/crontab") == ("", "/etc/crontab")


def test_timeline_events_fold_equal_times_into_one_macb_row() -> None:
    entry = parse_bodyfile_line("0|/vol-1/p1/etc/x|5|r/rrw-r--r--|0|0|1|200|100|100|50")
    events = timeline_events([entry])
    assert [(int(e.time.timestamp()), e.macb) for e in events] == [(50, "...b"), (100, "m.c."), (200, ".a..")]


def test_mode_strings_follow_the_sleuth_kit() -> None:
    assert tsk_mode_string(0o102755) == "r/rrwxr-sr-x"
    assert tsk_mode_string(0o041777) == "d/drwxrwxrwt"
    assert tsk_mode_string(0o120777) == "l/lrwxrwxrwx"


def _xfs_db_size(image: Path, inode: str) -> int:
    import subprocess

    done = subprocess.run(
        ["xfs_db", "-r", "-c", f"inode {inode}", "-c", "print core.size core.format", str(image)],
        capture_output=True,
        text=True,
        check=True,
    )
    fields = dict(line.split(" = ", 1) for line in done.stdout.splitlines() if " = " in line)
    return int(fields["core.size"])


def test_xfs_directory_sizes_are_what_xfs_db_reads_for_short_form_and_block_directories(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "short").mkdir(parents=True)
    (tree / "short" / "a.csv").write_bytes(b"x\n")
    (tree / "block").mkdir()
    for number in range(150):  # too many entries for the inode: a block (or leaf) directory
        (tree / "block" / f"entry-with-a-long-name-{number:04d}").write_bytes(b"")
    image = build_xfs_image(tree, tmp_path / "vol-dirs.img")
    [partition] = list_partitions(image)
    entries = filesystem_bodyfile(image, partition, "xfs", filesystem_prefix("vol-dirs", partition.number))
    directories = {e.path: e for e in entries if e.is_directory}
    assert set(directories) == {"/short", "/block"}
    for entry in directories.values():
        assert entry.size == _xfs_db_size(image, entry.inode) > 0, entry.path
    assert directories["/block"].size >= 4096 > directories["/short"].size
