"""Where imaging reads a volume's blocks from: the EBS direct APIs, or a local file.

A `BlockSource` lists the blocks that hold data (a snapshot lists only written blocks; every
other block reads as zeros) and reads one block by index. The imager decides the order and
the parallelism; sources are thread-safe so reads can run concurrently.
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
from collections.abc import Iterator
from typing import Any, Protocol

from handlers.common.errors import AcquisitionFailed

EBS_BLOCK_SIZE = 512 * 1024  # every EBS direct API snapshot block is 512 KiB
GIB = 1024**3


class BlockSource(Protocol):
    @property
    def name(self) -> str:
        """What is being read, for the evidence record and to refuse resuming onto another source."""
        ...

    @property
    def block_size(self) -> int: ...

    @property
    def volume_size_bytes(self) -> int: ...

    def list_blocks(self, start: int = 0) -> Iterator[tuple[int, str]]:
        """(index, token) of every block holding data at or after `start`, in ascending index order."""
        ...

    def read(self, index: int, token: str) -> bytes: ...


class EbsDirectBlockSource:
    """A snapshot read through ListSnapshotBlocks / GetSnapshotBlock, each block checked against its SHA-256."""

    def __init__(self, ebs: Any, snapshot_id: str, page_size: int = 10000) -> None:
        self.ebs = ebs
        self.snapshot_id = snapshot_id
        self.page_size = page_size
        self._geometry: tuple[int, int] | None = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return f"ebs-snapshot:{self.snapshot_id}"

    def _page(self, start: int, token: str | None) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "SnapshotId": self.snapshot_id,
            "MaxResults": self.page_size,
            "StartingBlockIndex": start,
        }
        if token:
            kwargs["NextToken"] = token
        page: dict[str, Any] = self.ebs.list_snapshot_blocks(**kwargs)
        with self._lock:
            if self._geometry is None:
                self._geometry = (int(page["BlockSize"]), int(page["VolumeSize"]) * GIB)
        return page

    def _geometry_or_fetch(self) -> tuple[int, int]:
        if self._geometry is None:
            self._page(0, None)
        assert self._geometry is not None
        return self._geometry

    @property
    def block_size(self) -> int:
        return self._geometry_or_fetch()[0]

    @property
    def volume_size_bytes(self) -> int:
        return self._geometry_or_fetch()[1]

    def list_blocks(self, start: int = 0) -> Iterator[tuple[int, str]]:
        token: str | None = None
        last = start - 1
        while True:
            page = self._page(start, token)
            # Sorted per page and filtered on `start` defensively: pages come back ascending on AWS,
            # and an emulator that ignores StartingBlockIndex must not make us re-read blocks.
            for block in sorted(page.get("Blocks", []), key=lambda b: int(b["BlockIndex"])):
                index = int(block["BlockIndex"])
                if index < start:
                    continue
                if index <= last:
                    raise AcquisitionFailed(
                        f"snapshot {self.snapshot_id}: ListSnapshotBlocks returned block {index} after {last}; "
                        "the listing is not in ascending order, so the image would be wrong"
                    )
                last = index
                yield index, block["BlockToken"]
            token = page.get("NextToken")
            if not token:
                return

    def read(self, index: int, token: str) -> bytes:
        answer = self.ebs.get_snapshot_block(SnapshotId=self.snapshot_id, BlockIndex=index, BlockToken=token)
        data: bytes = answer["BlockData"].read()
        expected_length = int(answer.get("DataLength", len(data)))
        if len(data) != expected_length or len(data) != self.block_size:
            raise AcquisitionFailed(
                f"snapshot {self.snapshot_id} block {index}: read {len(data)} bytes, "
                f"DataLength says {expected_length}, block size is {self.block_size}"
            )
        algorithm = answer.get("ChecksumAlgorithm")
        if algorithm != "SHA256":
            raise AcquisitionFailed(
                f"snapshot {self.snapshot_id} block {index}: checksum algorithm {algorithm!r}, expected SHA256; "
                "the block cannot be verified"
            )
        actual = base64.b64encode(hashlib.sha256(data).digest()).decode()
        if actual != answer.get("Checksum"):
            raise AcquisitionFailed(
                f"snapshot {self.snapshot_id} block {index}: checksum mismatch "
                f"(EBS says {answer.get('Checksum')}, bytes hash to {actual}); the block was corrupted in transit"
            )
        return data


class FileBlockSource:
    """A local file as a volume; holes in a sparse file are unlisted blocks, as in a snapshot."""

    def __init__(self, path: str | os.PathLike[str], block_size: int = EBS_BLOCK_SIZE) -> None:
        if block_size <= 0:
            raise ValueError("block size must be positive")
        self.path = os.fspath(path)
        self._block_size = block_size
        self._size = os.path.getsize(self.path)
        self._fd = os.open(self.path, os.O_RDONLY)

    @property
    def name(self) -> str:
        return f"file:{self.path}"

    @property
    def block_size(self) -> int:
        return self._block_size

    @property
    def volume_size_bytes(self) -> int:
        return self._size

    def close(self) -> None:
        os.close(self._fd)

    def _data_extents(self, offset: int) -> Iterator[tuple[int, int]]:
        if not hasattr(os, "SEEK_DATA"):
            yield offset, self._size
            return
        while offset < self._size:
            try:
                data = os.lseek(self._fd, offset, os.SEEK_DATA)
            except OSError:  # ENXIO: only a hole remains
                return
            hole = os.lseek(self._fd, data, os.SEEK_HOLE)
            yield data, hole
            offset = hole

    def list_blocks(self, start: int = 0) -> Iterator[tuple[int, str]]:
        last = start - 1
        for begin, end in self._data_extents(start * self._block_size):
            first = max(begin // self._block_size, last + 1)
            for index in range(first, -(-end // self._block_size)):
                last = index
                yield index, ""

    def read(self, index: int, token: str) -> bytes:
        offset = index * self._block_size
        length = min(self._block_size, self._size - offset)
        data = os.pread(self._fd, length, offset)
        if len(data) != length:
            raise AcquisitionFailed(f"{self.path}: short read at block {index}")
        return data
