"""The LiME method's host side: insmod's parameters from the module's own .modinfo (no modinfo on the
host), and the module's stream followed header by header (its ranges, and whether it stopped early)."""

from __future__ import annotations

import pytest

from handlers.memory import acquire

MODINFO = (
    b"\x7fELF...\0license=GPL\0parm=timeout:Timeout in ms\0parmtype=timeout:long\0parmtype=path:charp\0"
    b"parmtype=format:charp\0parmtype=localhostonly:int\0vermagic=6.1.0-57-amd64 SMP preempt mod_unload\0"
)


def test_a_module_with_lime_s_timeout_is_told_never_to_skip_a_slow_range() -> None:
    assert acquire.module_parameters(MODINFO) == {"timeout", "path", "format", "localhostonly"}
    assert acquire.lime_arguments(MODINFO, 4444) == ["path=tcp:4444", "localhostonly=1", "format=lime", "timeout=0"]


def test_a_module_without_the_parameter_is_not_given_it() -> None:
    # insmod refuses a parameter the module does not declare; such a LiME has no timeout to turn off.
    older = MODINFO.replace(b"parmtype=timeout:long\0", b"")
    assert "timeout" not in acquire.module_parameters(older)
    assert acquire.lime_arguments(older, 4444) == ["path=tcp:4444", "localhostonly=1", "format=lime"]


def _stream(*ranges: tuple[int, int]) -> bytes:
    return b"".join(
        acquire.lime_header(start, end) + bytes([n]) * (end - start + 1) for n, (start, end) in enumerate(ranges)
    )


@pytest.mark.parametrize("chunk", [1, 7, 32, 33, 4096, 1 << 20])
def test_the_stream_s_ranges_are_read_whatever_the_chunks(chunk: int) -> None:
    stream, framing = _stream((0x1000, 0x9FBFF), (0x100000, 0x10FFFF)), acquire.LimeFraming()
    for offset in range(0, len(stream), chunk):
        framing.feed(stream[offset : offset + chunk])
    assert framing.problem() == ""
    assert framing.ranges == [[0x1000, 0x9FBFF], [0x100000, 0x10FFFF]]


@pytest.mark.parametrize(
    ("stream", "problem"),
    [
        (_stream((0x1000, 0x1FFF), (0x3000, 0x3FFF))[:-100], "ended inside range 2 (100 bytes missing)"),
        (_stream((0x1000, 0x1FFF))[:20], "ended inside the header of range 1"),
        (b"", "sent no memory range"),
        (_stream((0x1000, 0x1FFF)) + b"\0" * 32, "no valid header after range 1"),
    ],
)
def test_a_stream_that_stops_early_or_loses_its_framing_is_refused(stream: bytes, problem: str) -> None:
    framing = acquire.LimeFraming()
    framing.feed(stream)
    assert problem in framing.problem()
