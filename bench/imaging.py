"""Imaging throughput: our pipelined imager vs `sha256sum` and vs a sequential dd-hash-upload baseline.

    .venv/bin/python -m bench.imaging [--size-mib 512] [--workers 8] [--repeat 3]

A sparse local volume (random data in most blocks, holes elsewhere, like a snapshot's
unlisted blocks) is imaged three ways in the same run, from a warm page cache:
- ours: FileBlockSource -> parallel reads -> one ordered stream -> resumable SHA-256 ->
  parts written to a FileSink (the same code path as the Lambda, with a local sink);
- `sha256sum` of the volume file: the floor for "read the bytes and hash them once";
- baseline: what the AWS samples do: `dd` the volume to a file, `sha256sum` it, then
  "upload" it (copy into the sink directory), one step after another.
The three digests must agree. Target: ours / sha256sum >= 0.9.
"""

from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from handlers.acquisition.block_source import FileBlockSource
from handlers.acquisition.imaging import MIB, FileSink, ImagingState, image_snapshot


def make_volume(path: Path, size: int, block_size: int, fill: float, seed: int) -> int:
    """Random data in about `fill` of the blocks, holes elsewhere; returns the number of data blocks."""
    rng = random.Random(seed)
    written = 0
    with open(path, "wb") as handle:
        handle.truncate(size)
        for index in range(size // block_size):
            if rng.random() < fill:
                handle.seek(index * block_size)
                handle.write(rng.randbytes(block_size))
                written += 1
    return written


def warm(path: Path) -> None:
    with open(path, "rb") as handle:
        while handle.read(64 * MIB):
            pass


def timed(run: Callable[[], str]) -> tuple[float, str]:
    started = time.perf_counter()
    digest = run()
    return time.perf_counter() - started, digest


def tool_digest(command: list[str]) -> str:
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return out.split()[0] if "=" not in out.split("\n")[0] else out.strip().rsplit("= ", 1)[1]


def run_ours(volume: Path, sink_dir: Path, workers: int, attempt: int) -> str:
    source = FileBlockSource(volume)
    sink = FileSink(sink_dir / f"ours-{attempt}.img")
    state: ImagingState | None = None
    while state is None or not state.done:
        state = image_snapshot(source, sink, state, workers=workers)
    source.close()
    return state.sha256


def run_baseline(volume: Path, work_dir: Path, sink_dir: Path, attempt: int) -> str:
    copy = work_dir / f"dd-{attempt}.img"
    subprocess.run(["dd", f"if={volume}", f"of={copy}", "bs=1M", "status=none"], check=True)
    digest = tool_digest(["sha256sum", str(copy)])
    shutil.copyfile(copy, sink_dir / f"baseline-{attempt}.img")
    return digest


def best_of(repeat: int, run: Callable[[int], str], cleanup: Callable[[], None]) -> tuple[float, set[str]]:
    times, digests = [], set()
    for attempt in range(repeat):
        seconds, digest = timed(lambda attempt=attempt: run(attempt))  # type: ignore[misc]
        times.append(seconds)
        digests.add(digest)
        cleanup()
    return min(times), digests


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--block-kib", type=int, default=512)
    parser.add_argument("--fill", type=float, default=0.85, help="share of blocks holding data")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs per method")
    parser.add_argument("--dir", type=Path, default=None, help="where to put the volume (default: a temp dir)")
    args = parser.parse_args(argv)

    size, block = args.size_mib * MIB, args.block_kib * 1024
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="irf-bench-") as tmp:
        root = Path(tmp)
        volume, work, sink = root / "volume.raw", root / "work", root / "sink"
        work.mkdir()
        sink.mkdir()
        data_blocks = make_volume(volume, size, block, args.fill, seed=1)
        warm(volume)

        def clear() -> None:
            for folder in (work, sink):
                for item in folder.iterdir():
                    item.unlink()

        results: dict[str, tuple[float, set[str]]] = {
            "sha256sum": best_of(args.repeat, lambda _: tool_digest(["sha256sum", str(volume)]), clear),
            "ours": best_of(args.repeat, lambda attempt: run_ours(volume, sink, args.workers, attempt), clear),
            "baseline": best_of(args.repeat, lambda attempt: run_baseline(volume, work, sink, attempt), clear),
        }
        if shutil.which("openssl"):
            results["openssl dgst"] = best_of(
                args.repeat, lambda _: tool_digest(["openssl", "dgst", "-sha256", "-r", str(volume)]), clear
            )

    version = subprocess.run(["sha256sum", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    print(
        f"volume: {args.size_mib} MiB, {block // 1024} KiB blocks, {data_blocks} of {size // block} "
        f"blocks hold data; best of {args.repeat}; {args.workers} read workers"
    )
    print(f"{'method':<14} {'seconds':>8} {'MiB/s':>9}")
    for name, (seconds, _) in results.items():
        print(f"{name:<14} {seconds:8.3f} {args.size_mib / seconds:9.1f}")
    ours, reference, baseline = (results[k][0] for k in ("ours", "sha256sum", "baseline"))
    print(f"ours / sha256sum: {reference / ours:.2f}  (target >= 0.90; sha256sum is {version})")
    print(f"ours / baseline (dd, then sha256sum, then copy): {baseline / ours:.2f}")
    if "openssl dgst" in results:
        print(
            f"ours / openssl dgst -sha256 (hash only, SHA-NI where the CPU has it): "
            f"{results['openssl dgst'][0] / ours:.2f}"
        )
    digests = set().union(*(d for _, d in results.values()))
    if len(digests) != 1:
        print(f"DIGESTS DISAGREE: {sorted(digests)}")
        return 1
    print(f"all digests agree: {digests.pop()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
