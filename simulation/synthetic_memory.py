"""SYNTHETIC LiME images for the simulation and tests when no real guest runs (no kernel, no QEMU).

Pseudo-random bytes framed as LiME ranges, labelled inside (lime.SYNTHETIC_MARKER) so nothing
downstream can take them for memory. Kept out of the Lambda package: production never writes one.
"""

from __future__ import annotations

import random
from pathlib import Path

from handlers.memory.lime import SYNTHETIC_MARKER, write_lime


def synthetic_ranges(*, seed: int, size: int) -> list[tuple[int, bytes]]:
    """Two ranges like a small VM's System RAM (below 640 KiB, then from 1 MiB), `size` bytes in all."""
    if size < 2 * len(SYNTHETIC_MARKER):
        raise ValueError(f"a synthetic image needs at least {2 * len(SYNTHETIC_MARKER)} bytes")
    generator = random.Random(seed)
    low = min(size // 4, 0x9F000 - 0x1000)
    high = size - low
    first = SYNTHETIC_MARKER + generator.randbytes(low - len(SYNTHETIC_MARKER))
    return [(0x1000, first), (0x100000, generator.randbytes(high))]


def synthetic_memory_image(path: Path | str, *, seed: int, size: int) -> int:
    """A clearly synthetic LiME image for the local simulation (pseudo-random bytes, labelled)."""
    return write_lime(path, synthetic_ranges(seed=seed, size=size))
