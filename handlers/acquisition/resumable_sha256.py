"""SHA-256 whose running state is saved to a short string and resumed in another process.

Imaging a volume spans many Lambda invocations, and the digest must be over the raw bytes of
the whole volume, so the hash state travels in the state machine's payload between them.
`hashlib` cannot export its state, and a compiled extension cannot ride along in a Lambda
package built from this repository, so the state is read and written as OpenSSL's
`SHA256_CTX` (libcrypto through ctypes; libcrypto.so.3 ships with Amazon Linux 2023 and with
Python itself). Where libcrypto cannot be loaded the `rehash` package is used if it works
(it reaches the same `SHA256_CTX` inside hashlib, OpenSSL 1.x only).

The saved form does not depend on the backend or the CPU's byte order:
`sha256-v1:<eight state words, hex>:<message length in bits>:<unprocessed tail, hex>`,
at most about 230 characters.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import re
import struct
from collections.abc import Sequence
from typing import Any, Protocol

STATE_VERSION = "sha256-v1"
_STATE = re.compile(r"^sha256-v1:([0-9a-f]{64}):(\d{1,20}):((?:[0-9a-f]{2}){0,63})$")
_CTX_FORMAT = "=8I2I64s2I"  # SHA_LONG h[8]; SHA_LONG Nl, Nh; SHA_LONG data[16]; unsigned int num, md_len
CTX_SIZE = struct.calcsize(_CTX_FORMAT)  # 112, identical in OpenSSL 1.0, 1.1 and 3.x
LIBCRYPTO_NAMES = ("libcrypto.so.3", "libcrypto.so.1.1", "libcrypto.so", "libcrypto.3.dylib", "libcrypto.dylib")


class ResumableHashUnavailable(RuntimeError):
    """Neither libcrypto nor a working `rehash` is available to carry a SHA-256 state across processes."""


def _pack_ctx(words: Sequence[int], bits: int, tail: bytes) -> bytes:
    if len(words) != 8 or len(tail) >= 64:
        raise ValueError("a SHA-256 state has eight words and a tail shorter than one 64-byte block")
    return struct.pack(_CTX_FORMAT, *words, bits & 0xFFFFFFFF, bits >> 32, tail.ljust(64, b"\0"), len(tail), 32)


def _unpack_ctx(raw: bytes) -> tuple[tuple[int, ...], int, bytes]:
    fields = struct.unpack(_CTX_FORMAT, raw[:CTX_SIZE])
    words, low, high, data, num, md_len = fields[:8], fields[8], fields[9], fields[10], fields[11], fields[12]
    if md_len != 32 or num >= 64:
        raise ValueError(f"not a SHA-256 context (md_len={md_len}, num={num})")
    return tuple(words), (high << 32) | low, bytes(data[:num])


def format_state(words: Sequence[int], bits: int, tail: bytes) -> str:
    return f"{STATE_VERSION}:{''.join(f'{w:08x}' for w in words)}:{bits}:{tail.hex()}"


def parse_state(state: str) -> tuple[tuple[int, ...], int, bytes]:
    match = _STATE.match(state) if isinstance(state, str) else None
    if not match:
        raise ValueError(f"not a saved SHA-256 state: {str(state)[:80]!r}")
    hexwords, bits_text, tail_hex = match.groups()
    words = tuple(int(hexwords[i : i + 8], 16) for i in range(0, 64, 8))
    bits, tail = int(bits_text), bytes.fromhex(tail_hex)
    if bits % 8 or (bits // 8) % 64 != len(tail) or bits >= 1 << 64:
        raise ValueError("saved SHA-256 state is inconsistent: length and unprocessed tail disagree")
    return words, bits, tail


class _Backend(Protocol):
    name: str

    def new(self) -> Any: ...
    def update(self, ctx: Any, data: bytes | bytearray | memoryview) -> None: ...
    def export(self, ctx: Any) -> bytes: ...
    def load(self, raw: bytes) -> Any: ...
    def digest(self, ctx: Any) -> bytes: ...


class _LibcryptoBackend:
    name = "libcrypto"

    def __init__(self, library: ctypes.CDLL) -> None:
        self._init = library.SHA256_Init
        self._update = library.SHA256_Update
        self._final = library.SHA256_Final
        self._init.argtypes = [ctypes.c_void_p]
        self._update.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
        self._final.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
        for fn in (self._init, self._update, self._final):
            fn.restype = ctypes.c_int

    def new(self) -> ctypes.Array[ctypes.c_char]:
        ctx = ctypes.create_string_buffer(CTX_SIZE)
        if self._init(ctx) != 1:
            raise ResumableHashUnavailable("SHA256_Init failed")
        return ctx

    def update(self, ctx: ctypes.Array[ctypes.c_char], data: bytes | bytearray | memoryview) -> None:
        # ctypes drops the GIL during the call, so block reads and uploads run while we hash.
        pointer: Any
        if isinstance(data, bytes):
            pointer, length = data, len(data)
        else:
            view = memoryview(data).cast("B")
            length = view.nbytes
            pointer = bytes(view) if view.readonly else (ctypes.c_char * length).from_buffer(view)
        if self._update(ctx, pointer, length) != 1:
            raise RuntimeError("SHA256_Update failed")

    def export(self, ctx: ctypes.Array[ctypes.c_char]) -> bytes:
        return bytes(ctx.raw)

    def load(self, raw: bytes) -> ctypes.Array[ctypes.c_char]:
        ctx = ctypes.create_string_buffer(CTX_SIZE)
        ctypes.memmove(ctx, raw, CTX_SIZE)
        return ctx

    def digest(self, ctx: ctypes.Array[ctypes.c_char]) -> bytes:
        scratch = self.load(self.export(ctx))
        out = ctypes.create_string_buffer(32)
        if self._final(out, scratch) != 1:
            raise RuntimeError("SHA256_Final failed")
        return out.raw


class _RehashBackend:
    name = "rehash"

    def __init__(self, module: Any) -> None:
        self._module = module
        module.sha256()  # raises NotImplementedError where hashlib is built on OpenSSL 3

    def new(self) -> Any:
        return self._module.sha256()

    def update(self, ctx: Any, data: bytes | bytearray | memoryview) -> None:
        ctx.update(data)

    def export(self, ctx: Any) -> bytes:
        return bytes(ctx.__getstate__()["md_data"])

    def load(self, raw: bytes) -> Any:
        ctx = self._module.sha256()
        ctx.__setstate__({"name": "sha256", "md_data": raw})
        return ctx

    def digest(self, ctx: Any) -> bytes:
        return bytes(ctx.digest())


def load_backend(libcrypto_names: Sequence[str] = LIBCRYPTO_NAMES, try_rehash: bool = True) -> _Backend:
    """libcrypto first, then `rehash`; a clear error when neither can carry the state."""
    reasons: list[str] = []
    candidates = list(libcrypto_names)
    found = ctypes.util.find_library("crypto") if libcrypto_names == LIBCRYPTO_NAMES else None
    if found:
        candidates.append(found)
    for name in candidates:
        try:
            return _LibcryptoBackend(ctypes.CDLL(name))
        except (OSError, AttributeError) as exc:
            reasons.append(f"{name}: {exc}")
    if try_rehash:
        try:
            import rehash

            return _RehashBackend(rehash)
        except (ImportError, NotImplementedError, AttributeError) as exc:
            reasons.append(f"rehash: {exc}")
    raise ResumableHashUnavailable(
        "cannot keep a resumable SHA-256 state: no usable libcrypto (SHA256_Init/Update/Final) and no "
        "working rehash package; imaging needs one of them to resume across invocations. Tried: " + "; ".join(reasons)
    )


_DEFAULT_BACKEND: _Backend | None = None


def default_backend() -> _Backend:
    global _DEFAULT_BACKEND
    if _DEFAULT_BACKEND is None:
        _DEFAULT_BACKEND = load_backend()
    return _DEFAULT_BACKEND


class ResumableSha256:
    """`hashlib.sha256` with `save()` / `ResumableSha256(state)` to continue in another process."""

    def __init__(self, state: str | None = None, *, backend: _Backend | None = None) -> None:
        self._backend = backend or default_backend()
        if state is None:
            self._ctx = self._backend.new()
        else:
            words, bits, tail = parse_state(state)
            self._ctx = self._backend.load(_pack_ctx(words, bits, tail))

    @property
    def backend(self) -> str:
        return self._backend.name

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self._backend.update(self._ctx, data)

    def save(self) -> str:
        return format_state(*_unpack_ctx(self._backend.export(self._ctx)))

    @property
    def bytes_hashed(self) -> int:
        return _unpack_ctx(self._backend.export(self._ctx))[1] // 8

    def digest(self) -> bytes:
        return self._backend.digest(self._ctx)

    def hexdigest(self) -> str:
        return self.digest().hex()
