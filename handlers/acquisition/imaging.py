"""Image a snapshot into the evidence bucket: raw volume bytes, one SHA-256, resumable.

Blocks are read in parallel (a bounded window of reads ahead) and fed, in index order, into
one stream: blocks the snapshot does not list are zeros, so the image is the full raw volume
and its digest is what `sha256sum` gives for the volume's device. The stream goes into an S3
multipart upload and through a SHA-256 whose state is carried between invocations, so a
volume of any size is imaged by as many Lambda invocations as it takes.

An invocation stops only at a part boundary: the state then holds no buffered bytes (a part
is up to hundreds of MiB, far beyond the 256 KiB Step Functions payload), only the next
block index, the hash state and a digest chain over the part ETags. Streaming and finishing
happen in separate invocations, so a retried finish never re-streams into an upload that
was already completed.
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
import time
import uuid
import zlib
from collections import deque
from collections.abc import Callable, Generator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Protocol

from botocore.exceptions import ClientError

from handlers.acquisition.block_source import BlockSource
from handlers.acquisition.resumable_sha256 import ResumableSha256
from handlers.common.errors import AcquisitionFailed, EvidenceConflict
from handlers.common.evidence import EvidenceStore, digest_key, digest_line, isotime

TOOL = "irforensics-ebs-direct-imager"
MIB = 1024**2
GIB = 1024**3
MIN_PART_SIZE = 8 * MIB
S3_MAX_PARTS = 10_000
S3_MIN_PART_SIZE = 5 * MIB
S3_MAX_PART_SIZE = 5 * GIB
# 10,000 parts of 5 GiB: S3's largest object (48.8 TiB). EBS volumes go up to 64 TiB; larger ones
# cannot become one object and are refused up front rather than failing after hours of reading.
S3_MAX_OBJECT_SIZE = S3_MAX_PARTS * S3_MAX_PART_SIZE
_ZEROS = bytes(4 * MIB)


def part_size_for(volume_size: int, block_size: int, minimum: int = MIN_PART_SIZE) -> int:
    """Smallest part size (a whole number of blocks and MiB) that fits the volume in 10,000 parts."""
    if volume_size > S3_MAX_OBJECT_SIZE:
        raise AcquisitionFailed(
            f"volume of {volume_size} bytes exceeds the largest S3 object ({S3_MAX_OBJECT_SIZE} bytes, "
            "10,000 parts of 5 GiB); it cannot be imaged into one evidence object"
        )
    size = max(minimum, -(-volume_size // S3_MAX_PARTS))
    unit = MIB if MIB % block_size == 0 else block_size
    unit = max(unit, block_size)
    size = -(-size // unit) * unit
    return min(size, S3_MAX_PART_SIZE // unit * unit)


@dataclass(frozen=True)
class UploadedPart:
    number: int
    etag: str
    size: int
    checksum: str = ""  # the part's CRC32 as the sink recorded it, passed back when completing


@dataclass(frozen=True)
class CompletedObject:
    size: int
    parts: int | None  # part count when the store can tell (an S3 multipart ETag ends in "-<parts>")


class MultipartSink(Protocol):
    """Where the image goes: an S3 multipart upload, or a local file with the same shape."""

    @property
    def location(self) -> str: ...

    def start(self) -> str: ...

    def upload_part(self, upload_id: str, number: int, offset: int, data: bytes) -> UploadedPart:
        """`offset` is the part's place in the object (S3 derives it from the part number)."""
        ...

    def list_parts(self, upload_id: str) -> list[UploadedPart] | None:
        """Parts the store holds for the upload, or None when the upload no longer exists."""
        ...

    def complete(self, upload_id: str, parts: list[UploadedPart], size: int) -> None: ...

    def completed_object(self) -> CompletedObject | None: ...

    def write_digest(self, sha256: str, size: int) -> str:
        """Write the sha256sum-format digest next to the image; return where it went."""
        ...


def _etag_link(chain: str, part: UploadedPart) -> str:
    return hashlib.sha256(f"{chain}|{part.number}|{part.etag.strip(chr(34))}|{part.size}".encode()).hexdigest()


def etag_chain(parts: list[UploadedPart]) -> str:
    chain = ""
    for part in parts:
        chain = _etag_link(chain, part)
    return chain


@dataclass
class ImagingState:
    """Everything the next invocation needs; small and JSON-able (no part ETag list, no buffered bytes).

    S3 allows 10,000 parts and their ETags alone would exceed the Step Functions payload, so
    the state keeps a SHA-256 chain over (part number, ETag, size) instead, and the final
    step checks S3's ListParts against it before completing: the upload is completed only
    with exactly the parts this imager uploaded.
    """

    source: str
    location: str
    upload_id: str
    volume_size: int
    block_size: int
    part_size: int
    hash_state: str
    next_block: int = 0
    parts_done: int = 0
    etag_chain: str = ""
    bytes_written: int = 0
    listed_blocks_read: int = 0
    invocations: int = 0
    done: bool = False
    sha256: str = ""
    digest_location: str = ""
    started_at: str = ""
    finished_at: str = ""

    @property
    def total_blocks(self) -> int:
        return -(-self.volume_size // self.block_size)

    def to_dict(self) -> dict[str, Any]:
        return {"".join(w.capitalize() for w in k.split("_")): v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImagingState:
        names = {"".join(w.capitalize() for w in f.name.split("_")): f.name for f in fields(cls)}
        unknown = set(data) - set(names)
        if unknown:
            raise AcquisitionFailed(f"imaging state has unknown fields {sorted(unknown)}; refusing to resume")
        return cls(**{names[k]: v for k, v in data.items()})


def _ordered_stream(
    source: BlockSource, start: int, total_blocks: int, readers: ThreadPoolExecutor, window: int
) -> Generator[tuple[int, bytes | int], None, None]:
    """(index, block bytes) for listed blocks and (index, count) for runs of unlisted blocks, in index order."""
    listing = source.list_blocks(start)
    ahead: deque[tuple[int, Future[bytes]]] = deque()
    exhausted = False

    def fill() -> None:
        nonlocal exhausted
        while not exhausted and len(ahead) < window:
            item = next(listing, None)
            if item is None:
                exhausted = True
                return
            index, token = item
            if index >= total_blocks or (ahead and index <= ahead[-1][0]):
                raise AcquisitionFailed(
                    f"{source.name}: listed block {index} is out of order or beyond the volume's {total_blocks} blocks"
                )
            ahead.append((index, readers.submit(source.read, index, token)))

    position = start
    try:
        fill()
        while position < total_blocks:
            if ahead and ahead[0][0] == position:
                _, future = ahead.popleft()
                fill()
                yield position, future.result()
                position += 1
            else:
                next_listed = ahead[0][0] if ahead else total_blocks
                if next_listed < position:
                    raise AcquisitionFailed(f"{source.name}: listed block {next_listed} went backwards")
                yield position, next_listed - position
                position = next_listed
    finally:
        for _, future in ahead:
            future.cancel()


class _Streamer:
    """One invocation's worth of streaming: ordered blocks -> hash -> parts -> sink."""

    def __init__(
        self,
        state: ImagingState,
        source: BlockSource,
        sink: MultipartSink,
        hasher: ResumableSha256,
        uploaders: ThreadPoolExecutor,
        max_in_flight: int,
    ) -> None:
        self.state = state
        self.source = source
        self.sink = sink
        self.hasher = hasher
        self.uploaders = uploaders
        self.max_in_flight = max_in_flight
        self.in_flight: deque[Future[UploadedPart]] = deque()
        self.chunks: list[bytes] = []
        self.filled = 0
        self.position = state.next_block
        self.part_start_block = state.next_block
        self.next_part = state.parts_done + 1
        self.listed = 0

    def add(self, data: bytes, blocks: int) -> None:
        self.hasher.update(data)
        self.chunks.append(data)
        self.filled += len(data)
        self.position += blocks

    def add_zeros(self, blocks: int) -> None:
        begin = self.position * self.state.block_size
        end = min(self.state.volume_size, (self.position + blocks) * self.state.block_size)
        remaining = end - begin
        while remaining:
            piece = _ZEROS if remaining >= len(_ZEROS) else _ZEROS[:remaining]
            self.hasher.update(piece)
            self.chunks.append(piece)
            self.filled += len(piece)
            remaining -= len(piece)
        self.position += blocks

    def part_is_full(self) -> bool:
        return self.filled >= self.state.part_size or self.position >= self.state.total_blocks

    def flush(self) -> None:
        data = self.chunks[0] if len(self.chunks) == 1 else b"".join(self.chunks)
        offset = self.part_start_block * self.state.block_size
        while len(self.in_flight) >= self.max_in_flight:
            self._collect_oldest()
        self.in_flight.append(
            self.uploaders.submit(self.sink.upload_part, self.state.upload_id, self.next_part, offset, data)
        )
        self.next_part += 1
        self.chunks, self.filled = [], 0
        self.part_start_block = self.position

    def _collect_oldest(self) -> None:
        part = self.in_flight.popleft().result()
        if part.number != self.state.parts_done + 1:
            raise AcquisitionFailed(f"part {part.number} finished out of order (expected {self.state.parts_done + 1})")
        self.state.etag_chain = _etag_link(self.state.etag_chain, part)
        self.state.parts_done = part.number

    def drain(self) -> None:
        while self.in_flight:
            self._collect_oldest()


def _stream(
    state: ImagingState,
    source: BlockSource,
    sink: MultipartSink,
    *,
    max_seconds: float | None,
    max_blocks: int | None,
    workers: int,
    upload_workers: int,
    part_memory: int,
    clock: Callable[[], float],
) -> None:
    hasher = ResumableSha256(state.hash_state)
    started = clock()
    slowest_part = 0.0
    part_clock = started
    max_in_flight = max(1, min(upload_workers, part_memory // state.part_size))
    with (
        ThreadPoolExecutor(max_workers=workers, thread_name_prefix="block-read") as readers,
        ThreadPoolExecutor(max_workers=max_in_flight, thread_name_prefix="part-upload") as uploaders,
    ):
        streamer = _Streamer(state, source, sink, hasher, uploaders, max_in_flight)
        stream = _ordered_stream(source, state.next_block, state.total_blocks, readers, window=2 * workers)
        try:
            for index, item in stream:
                if index != streamer.position:
                    raise AcquisitionFailed(f"{source.name}: stream jumped to block {index} at {streamer.position}")
                count = item if isinstance(item, int) else 1
                while count:
                    room = (state.part_size - streamer.filled) // state.block_size
                    take = min(count, max(room, 1))
                    if isinstance(item, int):
                        streamer.add_zeros(take)
                    else:
                        streamer.add(item, 1)
                        streamer.listed += 1
                    count -= take
                    if not streamer.part_is_full():
                        continue
                    streamer.flush()
                    now = clock()
                    slowest_part = max(slowest_part, now - part_clock)
                    part_clock = now
                    done_blocks = streamer.position - state.next_block
                    out_of_blocks = max_blocks is not None and done_blocks >= max_blocks
                    # Stop while one more part (at the slowest pace seen) still fits the budget.
                    out_of_time = max_seconds is not None and now - started + 1.5 * slowest_part >= max_seconds
                    if streamer.position < state.total_blocks and (out_of_blocks or out_of_time):
                        raise _BudgetSpent
        except _BudgetSpent:
            pass
        finally:
            stream.close()
        streamer.drain()
    state.next_block = streamer.position
    state.hash_state = hasher.save()
    state.bytes_written = min(state.volume_size, streamer.position * state.block_size)
    state.listed_blocks_read += streamer.listed
    if hasher.bytes_hashed != state.bytes_written:
        raise AcquisitionFailed(f"hashed {hasher.bytes_hashed} bytes but wrote {state.bytes_written}")


class _BudgetSpent(Exception):
    pass


def _finish(state: ImagingState, sink: MultipartSink, clock_now: Callable[[], str]) -> None:
    hasher = ResumableSha256(state.hash_state)
    if hasher.bytes_hashed != state.volume_size:
        raise AcquisitionFailed(
            f"cannot finish {state.location}: hashed {hasher.bytes_hashed} of {state.volume_size} bytes"
        )
    parts = sink.list_parts(state.upload_id)
    if parts is None:
        # The upload is gone: a previous attempt completed it and failed before returning.
        existing = sink.completed_object()
        if existing is None or existing.size != state.volume_size or existing.parts not in (None, state.parts_done):
            raise AcquisitionFailed(
                f"upload {state.upload_id} for {state.location} no longer exists and no complete image of "
                f"{state.volume_size} bytes in {state.parts_done} parts is there; image the snapshot again"
            )
    else:
        parts = sorted(parts, key=lambda p: p.number)
        numbers = [p.number for p in parts]
        if numbers != list(range(1, state.parts_done + 1)) or etag_chain(parts) != state.etag_chain:
            raise AcquisitionFailed(
                f"upload {state.upload_id} for {state.location} holds parts {numbers[:5]}... that are not exactly "
                f"the {state.parts_done} parts this imager uploaded; refusing to complete it"
            )
        if sum(p.size for p in parts) != state.volume_size:
            raise AcquisitionFailed(
                f"parts of {state.location} add up to {sum(p.size for p in parts)} bytes, "
                f"not the volume's {state.volume_size}"
            )
        sink.complete(state.upload_id, parts, state.volume_size)
    state.sha256 = hasher.hexdigest()
    state.digest_location = sink.write_digest(state.sha256, state.volume_size)
    state.finished_at = clock_now()
    state.done = True


def image_snapshot(
    source: BlockSource,
    sink: MultipartSink,
    state: ImagingState | None = None,
    *,
    max_seconds: float | None = None,
    max_blocks: int | None = None,
    workers: int = 16,
    upload_workers: int = 2,
    part_size: int | None = None,
    part_memory: int = GIB,
    clock: Callable[[], float] = time.monotonic,
    clock_now: Callable[[], str] = isotime,
) -> ImagingState:
    """Advance the imaging of `source` into `sink` by one invocation's budget and return the new state.

    Call again with the returned state until `done`. Each call streams at least one part (or
    finishes); the finishing call completes the upload and writes the `.sha256` next to it.
    `part_size` and the budget matter only on the first call; later calls take them from the state.
    """
    if state is None:
        block_size, volume_size = source.block_size, source.volume_size_bytes
        size = part_size or part_size_for(volume_size, block_size)
        if size % block_size or size <= 0:
            raise ValueError(f"part size {size} is not a whole number of {block_size}-byte blocks")
        if -(-volume_size // size) > S3_MAX_PARTS:
            raise AcquisitionFailed(f"part size {size} needs more than {S3_MAX_PARTS} parts for {volume_size} bytes")
        state = ImagingState(
            source=source.name,
            location=sink.location,
            upload_id=sink.start(),
            volume_size=volume_size,
            block_size=block_size,
            part_size=size,
            hash_state=ResumableSha256().save(),
            started_at=clock_now(),
        )
    else:
        state = replace(state)
        if state.done:
            return state
        if state.source != source.name or state.location != sink.location:
            raise AcquisitionFailed(
                f"imaging state is for {state.source} -> {state.location}, not {source.name} -> {sink.location}"
            )
        if (state.block_size, state.volume_size) != (source.block_size, source.volume_size_bytes):
            raise AcquisitionFailed(f"{source.name} changed geometry since imaging started; refusing to resume")
    state.invocations += 1
    if state.next_block < state.total_blocks:
        _stream(
            state,
            source,
            sink,
            max_seconds=max_seconds,
            max_blocks=max_blocks,
            workers=workers,
            upload_workers=upload_workers,
            part_memory=part_memory,
            clock=clock,
        )
    else:
        _finish(state, sink, clock_now)
    return state


class S3MultipartSink:
    """The image object in the evidence bucket, written by multipart upload and never overwritten."""

    def __init__(self, s3: Any, bucket: str, key: str, *, source: str = "", tool: str = TOOL) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.key = key
        self.source = source
        self.tool = tool

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def start(self) -> str:
        # CRC32 part checksums: S3 verifies every part on arrival, and a checksum is what an
        # Object-Locked bucket requires on writes. The evidence digest is our own SHA-256.
        answer = self.s3.create_multipart_upload(
            Bucket=self.bucket,
            Key=self.key,
            ContentType="application/octet-stream",
            ChecksumAlgorithm="CRC32",
            Metadata={"source": self.source[:512], "tool": self.tool[:256], "acquired-at": isotime()},
        )
        return str(answer["UploadId"])

    def upload_part(self, upload_id: str, number: int, offset: int, data: bytes) -> UploadedPart:
        # The checksum goes in a header, computed here: left to botocore it becomes an aws-chunked
        # trailer whose wrapper copies the body over and over (tens of MB/s for large parts).
        checksum = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
        answer = self.s3.upload_part(
            Bucket=self.bucket, Key=self.key, UploadId=upload_id, PartNumber=number, Body=data, ChecksumCRC32=checksum
        )
        return UploadedPart(number, str(answer["ETag"]).strip('"'), len(data), str(answer.get("ChecksumCRC32", "")))

    def list_parts(self, upload_id: str) -> list[UploadedPart] | None:
        parts: list[UploadedPart] = []
        try:
            for page in self.s3.get_paginator("list_parts").paginate(
                Bucket=self.bucket, Key=self.key, UploadId=upload_id
            ):
                parts.extend(
                    UploadedPart(
                        int(p["PartNumber"]), str(p["ETag"]).strip('"'), int(p["Size"]), str(p.get("ChecksumCRC32", ""))
                    )
                    for p in page.get("Parts", [])
                )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "NoSuchUpload":
                return None
            raise
        return parts

    def complete(self, upload_id: str, parts: list[UploadedPart], size: int) -> None:
        listing = [
            {"PartNumber": p.number, "ETag": p.etag, **({"ChecksumCRC32": p.checksum} if p.checksum else {})}
            for p in parts
        ]
        try:
            self.s3.complete_multipart_upload(
                Bucket=self.bucket,
                Key=self.key,
                UploadId=upload_id,
                MultipartUpload={"Parts": listing},
                IfNoneMatch="*",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in (
                "PreconditionFailed",
                "NoSuchUpload",
                "ConditionalRequestConflict",
            ):
                raise
            existing = self.completed_object()
            if existing is None or existing.size != size or existing.parts not in (None, len(parts)):
                raise EvidenceConflict(
                    f"{self.location} already holds a different object; evidence is never overwritten"
                ) from exc

    def completed_object(self) -> CompletedObject | None:
        try:
            head = self.s3.head_object(Bucket=self.bucket, Key=self.key)
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        etag = str(head.get("ETag", "")).strip('"')
        parts = int(etag.rsplit("-", 1)[1]) if "-" in etag and etag.rsplit("-", 1)[1].isdigit() else None
        return CompletedObject(size=int(head["ContentLength"]), parts=parts)

    def write_digest(self, sha256: str, size: int) -> str:
        case_id = self.key.split("/", 1)[0]
        store = EvidenceStore(self.s3, self.bucket, case_id)
        store.put_bytes(
            digest_key(self.key),
            digest_line(sha256, self.key),
            source=self.location,
            tool=self.tool,
            content_type="text/plain",
        )
        return f"s3://{self.bucket}/{digest_key(self.key)}"


class FileSink:
    """A local file shaped like a multipart upload: for the benchmark and local runs.

    Parts are written in place at their offsets into `<path>.<upload>.partial` and journalled,
    so a run can resume in another process; completing renames the file into place.
    A local file has no server ETag: a part is identified by its offset and length.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    @property
    def location(self) -> str:
        return str(self.path)

    def _partial(self, upload_id: str) -> Path:
        return self.path.with_name(f"{self.path.name}.{upload_id}.partial")

    def _journal(self, upload_id: str) -> Path:
        return self.path.with_name(f"{self.path.name}.{upload_id}.parts")

    def start(self) -> str:
        upload_id = uuid.uuid4().hex
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._partial(upload_id).touch(exist_ok=False)
        self._journal(upload_id).touch(exist_ok=False)
        return upload_id

    def upload_part(self, upload_id: str, number: int, offset: int, data: bytes) -> UploadedPart:
        fd = os.open(self._partial(upload_id), os.O_WRONLY)
        try:
            written = os.pwrite(fd, data, offset)
        finally:
            os.close(fd)
        if written != len(data):
            raise AcquisitionFailed(f"{self.path}: short write of part {number}")
        part = UploadedPart(number, f"{offset:x}-{len(data):x}", len(data))
        with self._lock, open(self._journal(upload_id), "a") as journal:
            journal.write(f"{part.number} {part.etag} {part.size}\n")
        return part

    def list_parts(self, upload_id: str) -> list[UploadedPart] | None:
        journal = self._journal(upload_id)
        if not journal.exists():
            return None
        latest: dict[int, UploadedPart] = {}
        for line in journal.read_text().splitlines():
            number, etag, size = line.split()
            latest[int(number)] = UploadedPart(int(number), etag, int(size))
        return [latest[n] for n in sorted(latest)]

    def complete(self, upload_id: str, parts: list[UploadedPart], size: int) -> None:
        partial = self._partial(upload_id)
        if self.path.exists():
            raise EvidenceConflict(f"{self.path} already exists; evidence is never overwritten")
        os.truncate(partial, size)
        os.replace(partial, self.path)
        self._journal(upload_id).unlink()

    def completed_object(self) -> CompletedObject | None:
        return CompletedObject(self.path.stat().st_size, None) if self.path.exists() else None

    def write_digest(self, sha256: str, size: int) -> str:
        target = self.path.with_name(self.path.name + ".sha256")
        line = digest_line(sha256, self.path.name)
        if target.exists() and target.read_bytes() != line:
            raise EvidenceConflict(f"{target} already holds a different digest")
        target.write_bytes(line)
        return str(target)
