"""Imaging writes the raw volume bytes and their SHA-256, resuming across invocations at any part boundary."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from handlers.acquisition.block_source import EBS_BLOCK_SIZE, EbsDirectBlockSource, FileBlockSource
from handlers.acquisition.imaging import (
    GIB,
    MIB,
    S3_MAX_PARTS,
    TOOL,
    FileSink,
    ImagingState,
    S3MultipartSink,
    image_snapshot,
    part_size_for,
)
from handlers.common.errors import AcquisitionFailed, EvidenceConflict
from handlers.common.evidence import EvidenceStore, digest_line

BUCKET = "acme-ir-artifacts-222222222222-eu-west-1"
CASE = "333333333333-i-0abc12345def67890-eu-west-1-1700000000"


def use_aws_ebs_block_size(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto reports 512-byte blocks for EBS direct snapshots; AWS's are always 512 KiB."""
    from moto.ebs import models

    original = models.EBSSnapshot.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.block_size = EBS_BLOCK_SIZE

    monkeypatch.setattr(models.EBSSnapshot, "__init__", init)


def put_snapshot(ebs: Any, blocks: dict[int, bytes], *, wrong_checksum_at: int | None = None) -> str:
    """A 1 GiB snapshot (the smallest EBS size) holding `blocks`, made with the EBS direct APIs."""
    snapshot_id: str = ebs.start_snapshot(VolumeSize=1, Description="planted evidence")["SnapshotId"]
    for index in sorted(blocks):
        data = blocks[index]
        digest = hashlib.sha256(data if index != wrong_checksum_at else data + b"!").digest()
        ebs.put_snapshot_block(
            SnapshotId=snapshot_id,
            BlockIndex=index,
            BlockData=data,
            DataLength=len(data),
            Checksum=base64.b64encode(digest).decode(),
            ChecksumAlgorithm="SHA256",
        )
    ebs.complete_snapshot(SnapshotId=snapshot_id, ChangedBlocksCount=len(blocks))
    return snapshot_id


def volume_chunks(blocks: dict[int, bytes], volume_size: int, block_size: int) -> Iterator[bytes]:
    zero = bytes(block_size)
    for index in range(-(-volume_size // block_size)):
        yield blocks.get(index, zero)[: volume_size - index * block_size]


def make_sparse_file(path: Path, size: int, block_size: int, data_blocks: list[int], seed: int) -> bytes:
    rng = random.Random(seed)
    with open(path, "wb") as handle:
        handle.truncate(size)
        for index in data_blocks:
            handle.seek(index * block_size)
            handle.write(rng.randbytes(min(block_size, size - index * block_size)))
    return path.read_bytes()


def run_to_completion(source: Any, sink: Any, **budget: Any) -> tuple[ImagingState, int]:
    state: ImagingState | None = None
    calls = 0
    while state is None or not state.done:
        carried = None if state is None else ImagingState.from_dict(json.loads(json.dumps(state.to_dict())))
        state = image_snapshot(source, sink, carried, **budget)
        calls += 1
        assert calls < 10_000
    return state, calls


@pytest.fixture
def evidence_bucket(aws: None) -> Any:
    s3 = boto3.client("s3", region_name="eu-west-1")
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    return s3


def test_ebs_snapshot_is_imaged_to_s3_byte_for_byte_across_many_invocations(
    evidence_bucket: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_aws_ebs_block_size(monkeypatch)
    # moto spools every S3 object over 5 MiB to disk; a 1 GiB image is quicker kept in memory.
    monkeypatch.setenv("MOTO_S3_DEFAULT_KEY_BUFFER_SIZE", str(2 * GIB))
    ebs = boto3.client("ebs", region_name="eu-west-1")
    rng = random.Random(42)
    blocks = {i: rng.randbytes(EBS_BLOCK_SIZE) for i in (0, 1, 2, 7, 130, 131, 700, 1500, 2047)}
    snapshot_id = put_snapshot(ebs, blocks)
    key = f"{CASE}/disk/vol-0123456789abcdef0.img"
    sink = S3MultipartSink(evidence_bucket, BUCKET, key, source=f"ebs-snapshot:{snapshot_id}")

    state, calls = run_to_completion(
        EbsDirectBlockSource(ebs, snapshot_id), sink, part_size=64 * MIB, max_blocks=3 * 128, workers=4
    )

    expected = hashlib.sha256()
    body = evidence_bucket.get_object(Bucket=BUCKET, Key=key)["Body"]
    written = 0
    for want in volume_chunks(blocks, GIB, EBS_BLOCK_SIZE):
        got = body.read(len(want))
        assert got == want, f"image differs from the volume at byte {written}"
        expected.update(want)
        written += len(got)
    assert body.read(1) == b"" and written == GIB
    assert state.sha256 == expected.hexdigest()
    assert (state.volume_size, state.listed_blocks_read, state.parts_done) == (GIB, len(blocks), 16)
    assert calls >= 5
    digest_file = evidence_bucket.get_object(Bucket=BUCKET, Key=key + ".sha256")["Body"].read()
    assert digest_file == f"{expected.hexdigest()}  vol-0123456789abcdef0.img\n".encode()
    artefact = EvidenceStore(evidence_bucket, BUCKET, CASE).artefact(key)
    assert (artefact.sha256, artefact.size, artefact.tool) == (expected.hexdigest(), GIB, TOOL)


def test_a_block_whose_checksum_does_not_match_stops_the_imaging(
    evidence_bucket: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_aws_ebs_block_size(monkeypatch)
    ebs = boto3.client("ebs", region_name="eu-west-1")
    rng = random.Random(1)
    snapshot_id = put_snapshot(
        ebs, {3: rng.randbytes(EBS_BLOCK_SIZE), 5: rng.randbytes(EBS_BLOCK_SIZE)}, wrong_checksum_at=5
    )
    source = EbsDirectBlockSource(ebs, snapshot_id)
    assert len(source.read(3, "")) == EBS_BLOCK_SIZE
    with pytest.raises(AcquisitionFailed, match="block 5: checksum mismatch"):
        source.read(5, "")
    sink = S3MultipartSink(evidence_bucket, BUCKET, f"{CASE}/disk/vol-1.img")
    with pytest.raises(AcquisitionFailed, match="checksum mismatch"):
        image_snapshot(source, sink, part_size=64 * MIB, workers=2)


def test_ebs_source_lists_from_a_starting_block_and_reports_the_volume_geometry(
    aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_aws_ebs_block_size(monkeypatch)
    ebs = boto3.client("ebs", region_name="eu-west-1")
    snapshot_id = put_snapshot(ebs, {i: bytes([i]) * EBS_BLOCK_SIZE for i in (9, 2, 40)})
    source = EbsDirectBlockSource(ebs, snapshot_id)
    assert (source.block_size, source.volume_size_bytes) == (EBS_BLOCK_SIZE, GIB)
    assert [i for i, _ in source.list_blocks()] == [2, 9, 40]
    assert [i for i, _ in source.list_blocks(start=9)] == [9, 40]


def test_resuming_at_every_part_boundary_gives_the_same_bytes_and_digest(tmp_path: Path) -> None:
    block = 4096
    size = 37 * block + 1000  # a short last block, as a local file may have
    volume = make_sparse_file(tmp_path / "volume.raw", size, block, [0, 1, 5, 6, 7, 20, 36, 37], seed=5)
    reference = hashlib.sha256(volume).hexdigest()
    source = FileBlockSource(tmp_path / "volume.raw", block)
    part = 4 * block
    for stop_after in range(1, 11):
        sink = FileSink(tmp_path / f"run{stop_after}" / "volume.img")
        state, calls = run_to_completion(source, sink, part_size=part, max_blocks=stop_after * 4, workers=3)
        assert state.sha256 == reference
        assert (tmp_path / f"run{stop_after}" / "volume.img").read_bytes() == volume
        assert (tmp_path / f"run{stop_after}" / "volume.img.sha256").read_bytes() == digest_line(
            reference, "volume.img"
        )
        assert calls == -(-10 // stop_after) + 1  # streaming calls, then the finishing call


def test_unlisted_blocks_are_zeros_in_the_image(tmp_path: Path) -> None:
    block = 4096
    volume = make_sparse_file(tmp_path / "holes.raw", 64 * block, block, [10, 50], seed=9)
    source = FileBlockSource(tmp_path / "holes.raw", block)
    assert [i for i, _ in source.list_blocks()] == [10, 50]
    state, _ = run_to_completion(source, FileSink(tmp_path / "out.img"), part_size=16 * block)
    assert (tmp_path / "out.img").read_bytes() == volume
    assert volume[: 10 * block] == bytes(10 * block)
    assert state.listed_blocks_read == 2 and state.sha256 == hashlib.sha256(volume).hexdigest()


def test_time_budget_stops_at_a_part_boundary_and_the_state_stays_small(tmp_path: Path) -> None:
    block = 4096
    make_sparse_file(tmp_path / "v.raw", 40 * block, block, list(range(40)), seed=2)
    ticks = iter(range(0, 10_000, 10))
    state = image_snapshot(
        FileBlockSource(tmp_path / "v.raw", block),
        FileSink(tmp_path / "v.img"),
        part_size=4 * block,
        max_seconds=25,
        clock=lambda: float(next(ticks)),
    )
    assert not state.done
    assert 0 < state.next_block < 40 and state.next_block % 4 == 0
    assert state.bytes_written == state.next_block * block
    assert len(json.dumps(state.to_dict())) < 2048


def test_resuming_with_a_state_for_another_source_is_refused(tmp_path: Path) -> None:
    block = 4096
    make_sparse_file(tmp_path / "a.raw", 16 * block, block, [1], seed=1)
    make_sparse_file(tmp_path / "b.raw", 16 * block, block, [1], seed=2)
    state = image_snapshot(
        FileBlockSource(tmp_path / "a.raw", block), FileSink(tmp_path / "a.img"), part_size=4 * block, max_blocks=1
    )
    with pytest.raises(AcquisitionFailed, match="imaging state is for"):
        image_snapshot(FileBlockSource(tmp_path / "b.raw", block), FileSink(tmp_path / "a.img"), state)


def _small_s3_run(tmp_path: Path, s3: Any, key: str) -> tuple[FileBlockSource, S3MultipartSink, bytes]:
    size = 12 * MIB
    volume = make_sparse_file(tmp_path / "small.raw", size, EBS_BLOCK_SIZE, [0, 3, 11, 23], seed=11)
    return FileBlockSource(tmp_path / "small.raw"), S3MultipartSink(s3, BUCKET, key), volume


def test_repeating_the_final_step_after_it_succeeded_changes_nothing(tmp_path: Path, evidence_bucket: Any) -> None:
    key = f"{CASE}/disk/vol-retry.img"
    source, sink, volume = _small_s3_run(tmp_path, evidence_bucket, key)
    state = None
    while state is None or state.next_block < state.total_blocks:
        state = image_snapshot(source, sink, state, part_size=5 * MIB, max_blocks=1)
    before_finish = ImagingState.from_dict(state.to_dict())
    finished = image_snapshot(source, sink, before_finish)
    again = image_snapshot(source, sink, before_finish)  # the Lambda died after finishing; the retry repeats it
    assert finished.done and again.done and again.sha256 == finished.sha256 == hashlib.sha256(volume).hexdigest()
    assert evidence_bucket.get_object(Bucket=BUCKET, Key=key)["Body"].read() == volume
    versions = evidence_bucket.list_objects_v2(Bucket=BUCKET, Prefix=key)["KeyCount"]
    assert versions == 2  # the image and its .sha256


def test_an_upload_holding_a_part_this_imager_did_not_write_is_not_completed(
    tmp_path: Path, evidence_bucket: Any
) -> None:
    key = f"{CASE}/disk/vol-tampered.img"
    source, sink, _ = _small_s3_run(tmp_path, evidence_bucket, key)
    state = None
    while state is None or state.next_block < state.total_blocks:
        state = image_snapshot(source, sink, state, part_size=5 * MIB)
    evidence_bucket.upload_part(
        Bucket=BUCKET, Key=key, UploadId=state.upload_id, PartNumber=2, Body=b"\x01" * (5 * MIB)
    )
    with pytest.raises(AcquisitionFailed, match="not exactly"):
        image_snapshot(source, sink, state)
    assert "Contents" not in evidence_bucket.list_objects_v2(Bucket=BUCKET, Prefix=key)


def test_an_existing_image_is_never_overwritten(tmp_path: Path, evidence_bucket: Any) -> None:
    key = f"{CASE}/disk/vol-exists.img"
    evidence_bucket.put_object(Bucket=BUCKET, Key=key, Body=b"earlier evidence")
    source, sink, _ = _small_s3_run(tmp_path, evidence_bucket, key)
    with pytest.raises(EvidenceConflict):
        run_to_completion(source, sink, part_size=5 * MIB)
    assert evidence_bucket.get_object(Bucket=BUCKET, Key=key)["Body"].read() == b"earlier evidence"


@pytest.mark.parametrize("volume_gib", [1, 8, 80, 81, 500, 1024, 16 * 1024, 48 * 1024])
def test_part_size_fits_any_volume_up_to_the_largest_s3_object_in_10000_parts(volume_gib: int) -> None:
    size = part_size_for(volume_gib * GIB, EBS_BLOCK_SIZE)
    assert size >= 8 * MIB and size % EBS_BLOCK_SIZE == 0 and size % MIB == 0
    assert -(-volume_gib * GIB // size) <= S3_MAX_PARTS
    assert size <= 5 * GIB


def test_a_volume_larger_than_the_largest_s3_object_is_refused_up_front() -> None:
    with pytest.raises(AcquisitionFailed, match="largest S3 object"):
        part_size_for(64 * 1024 * GIB, EBS_BLOCK_SIZE)


def test_file_source_reads_a_file_without_holes_as_fully_listed(tmp_path: Path) -> None:
    (tmp_path / "dense.raw").write_bytes(os.urandom(3 * 4096))
    assert [i for i, _ in FileBlockSource(tmp_path / "dense.raw", 4096).list_blocks()] == [0, 1, 2]
