"""The kernel image as distributions ship it: vmlinuz (a bzImage) holding a compressed ELF vmlinux.

Only what symbol building needs: find the compressed vmlinux inside the bzImage, decompress it,
read one ELF section (`.BTF`). No debug package, no extract-vmlinux script, no external tool for
XZ or gzip; ZSTD needs the `zstandard` package or the `zstd` command, whichever is present.
"""

from __future__ import annotations

import gzip
import lzma
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

ELF_MAGIC = b"\x7fELF"
XZ_MAGIC = b"\xfd7zXZ\x00"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
GZIP_MAGIC = b"\x1f\x8b\x08"
SETUP_MAGIC = b"HdrS"


class KernelImageError(ValueError):
    """The file is not a kernel image this module can read; the message says what was tried."""


def _decompress_xz(data: bytes) -> bytes:
    # The stream is followed by the rest of the bzImage: decompress one stream, ignore what follows.
    return lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data)


def _decompress_gzip(data: bytes) -> bytes:
    return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data)


def _decompress_zstd(data: bytes) -> bytes:
    try:
        import zstandard
    except ImportError:
        zstd = shutil.which("zstd")
        if not zstd:
            raise KernelImageError(
                "the kernel is ZSTD-compressed: install the zstandard package or the zstd command"
            ) from None
        done = subprocess.run([zstd, "-dc"], input=data, capture_output=True, check=False)
        # zstd exits non-zero on the trailing bytes after the frame but has written the frame already.
        if not done.stdout.startswith(ELF_MAGIC):
            why = done.stderr.decode(errors="replace").strip()
            raise KernelImageError(f"zstd could not decompress the kernel: {why}") from None
        return done.stdout
    result: bytes = zstandard.ZstdDecompressor().decompressobj().decompress(data)
    return result


_COMPRESSIONS = ((XZ_MAGIC, _decompress_xz), (ZSTD_MAGIC, _decompress_zstd), (GZIP_MAGIC, _decompress_gzip))


def decompress_kernel(image: bytes) -> bytes:
    """The ELF vmlinux inside a bzImage (or the bytes themselves when they already are an ELF)."""
    if image.startswith(ELF_MAGIC):
        return image
    if image[0x202:0x206] != SETUP_MAGIC:
        raise KernelImageError("not a bzImage (no 'HdrS' setup header) and not an ELF vmlinux")
    tried: list[str] = []
    for magic, decompress in _COMPRESSIONS:
        start = image.find(magic)
        while start >= 0:
            try:
                out = decompress(image[start:])
            except (lzma.LZMAError, zlib.error, EOFError, gzip.BadGzipFile) as exc:
                tried.append(f"{magic.hex()} at {start}: {exc}")
            else:
                if out.startswith(ELF_MAGIC):
                    return out
                tried.append(f"{magic.hex()} at {start}: not an ELF inside")
            start = image.find(magic, start + 1)
    detail = f" ({'; '.join(tried)})" if tried else ""
    raise KernelImageError(f"no compressed ELF vmlinux found in the bzImage{detail}")


def elf_section(elf: bytes, wanted: str) -> bytes:
    """One section of a 64-bit little-endian ELF file, by name."""
    if not elf.startswith(ELF_MAGIC) or elf[4] != 2 or elf[5] != 1:
        raise KernelImageError("not a 64-bit little-endian ELF file")
    shoff = struct.unpack_from("<Q", elf, 0x28)[0]
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", elf, 0x3A)
    headers = []
    for index in range(shnum):
        base = shoff + index * shentsize
        name, _type, _flags, _addr, offset, size = struct.unpack_from("<IIQQQQ", elf, base)
        headers.append((name, offset, size))
    _, names_offset, names_size = headers[shstrndx]
    names = elf[names_offset : names_offset + names_size]
    for name, offset, size in headers:
        end = names.find(b"\x00", name)
        if names[name:end].decode(errors="replace") == wanted:
            return elf[offset : offset + size]
    raise KernelImageError(f"the kernel has no {wanted} section (built without CONFIG_DEBUG_INFO_BTF?)")


def btf_from_kernel_image(path: Path) -> bytes:
    """The `.BTF` section of the vmlinux inside vmlinuz (or of a vmlinux given directly)."""
    return elf_section(decompress_kernel(path.read_bytes()), ".BTF")
