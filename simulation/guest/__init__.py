"""A real Linux guest (Debian's kernel under QEMU TCG) for memory acquisition tests and the simulation."""

from simulation.guest.harness import (
    CommandRun,
    Guest,
    GuestUnavailable,
    MemoryRange,
    qemu_available,
    unavailable_reason,
)

__all__ = ["CommandRun", "Guest", "GuestUnavailable", "MemoryRange", "qemu_available", "unavailable_reason"]
