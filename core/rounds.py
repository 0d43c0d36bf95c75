"""Calls that do not depend on each other, made at once: one round trip instead of several.

`in_parallel` runs its calls on threads (boto3 clients are thread-safe) and marks each thread
with the batch and the slot it runs in, so a measurement (bench/containment.py) can count
sequential rounds without reading a clock: calls outside any batch are one round each; a batch
counts as many rounds as its busiest slot made calls.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
A = TypeVar("A")
B = TypeVar("B")
MAX_WORKERS = 16
_batches = itertools.count(1)
_slot = threading.local()


def current_slot() -> tuple[int, int] | None:
    """(batch, slot) of the calling thread while it runs inside `in_parallel`; None outside."""
    slot: tuple[int, int] | None = getattr(_slot, "value", None)
    return slot


def in_parallel(calls: Sequence[Callable[[], T]]) -> list[T]:
    """Every call's result, in order; the first exception (after all calls ended) is raised."""
    if not calls:
        return []
    batch = next(_batches)

    def run(index: int, call: Callable[[], T]) -> T:
        outer = current_slot()
        _slot.value = (batch, index)
        try:
            return call()
        finally:
            _slot.value = outer

    if len(calls) == 1:
        return [run(0, calls[0])]
    with ThreadPoolExecutor(max_workers=min(MAX_WORKERS, len(calls))) as pool:
        futures = [pool.submit(run, index, call) for index, call in enumerate(calls)]
    errors = [f.exception() for f in futures if f.exception() is not None]
    if errors:
        raise errors[0]  # type: ignore[misc]
    return [f.result() for f in futures]


def both(first: Callable[[], A], second: Callable[[], B]) -> tuple[A, B]:
    """Two calls of different result types at once."""
    a, b = in_parallel([first, second])
    return a, b  # type: ignore[return-value]


def count_rounds(slots: Sequence[tuple[int, int] | None]) -> int:
    """Sequential rounds of a run of calls, given each call's `current_slot()` in call order."""
    rounds = 0
    for batch, group in itertools.groupby(slots, key=lambda s: None if s is None else s[0]):
        members = list(group)
        if batch is None:
            rounds += len(members)
        else:
            per_slot: dict[int, int] = {}
            for slot in members:
                assert slot is not None
                per_slot[slot[1]] = per_slot.get(slot[1], 0) + 1
            rounds += max(per_slot.values())
    return rounds
