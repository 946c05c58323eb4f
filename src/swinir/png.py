"""PNG encoding on every core: rows filtered and deflated in horizontal strips, joined into one zlib stream.

Why not OpenCV's or Pillow's encoder: both filter and deflate on one thread. An x4 restoration of a
1600x1200 photo is 6400x4800 pixels, 92 MB of RGB; OpenCV took 1.5-1.7 s for it (zlib's run-length
strategy, libpng's adaptive filters) while the other core sat idle, about a tenth of builtin-x4's whole
run. Here each strip is filtered and compressed by its own thread (numpy and zlib release the GIL).

The file is plain PNG (ISO/IEC 15948): signature, IHDR, one IDAT, IEND; the caller may splice ancillary
chunks (``swinir.metadata``). Every row uses the "Up" filter (type 2: each byte minus the byte above it),
one vectorised subtraction; with zlib's run-length strategy that is within a few percent of libpng's
per-row adaptive choice on restorations (the photo: 20.5 MB against 19.7), in a third of its time.

Deflate: Intel ISA-L's (the ``isal`` package) where it is installed, else zlib's. On the photo's
restoration (6400x4800, Up-filtered) ISA-L's level 1 took 0.19 s per 92 MB on one thread against zlib's
0.85 s (run-length strategy), for 23.2 MB against 20.6 (OpenCV's libpng defaults: 22.5); a quarter of the
time for about the size of OpenCV's file (benchmarks/results_cpu.md, session 12).

Joining: each strip is raw deflate ending on a full flush (byte-aligned, history reset), the last one on
``Z_FINISH``; their concatenation is one valid deflate stream. The zlib trailer's Adler-32 is combined
from the strips' own checksums (``adler32_combine``), so no pass over the data is serial.
"""

from __future__ import annotations

import os
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType

import numpy as np

_isal: ModuleType | None
try:  # Intel ISA-L's deflate (python-isal): the same zlib format, ~4x faster than zlib at its fastest level
    from isal import isal_zlib as _isal
except ImportError:  # a platform without its wheel: zlib
    _isal = None

__all__ = ["encode_png", "png_chunk", "adler32_combine", "worker_count"]

SIGNATURE = b"\x89PNG\r\n\x1a\n"
# below this many bytes of raw rows one thread is as quick as two (thread start-up, the join)
PARALLEL_MIN_BYTES = 1 << 22
# ISA-L's level (0-3): 1 compressed the restorations best and fastest (0 was larger, 2 and 3 no smaller)
ISAL_LEVEL = 1
# zlib level with the run-length strategy: the same speed and size from 1 to 9 on restorations (matches of
# distance one only); 3 is what the OpenCV path used
LEVEL = 3
# a chunk holds at most 2^31 - 1 bytes; longer streams continue in further IDAT chunks
IDAT_MAX = 2**31 - 1
_ADLER_BASE = 65521
# colour type by channels: gray, gray + alpha, RGB, RGBA
_COLOR_TYPE = {1: 0, 2: 4, 3: 2, 4: 6}
_UP = 2


def worker_count() -> int:
    """The CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def adler32_combine(first: int, second: int, second_length: int) -> int:
    """Adler-32 of A + B from Adler-32(A), Adler-32(B) and len(B) (what zlib's ``adler32_combine`` gives).

    With A's sums s1a, s2a and B's s1b, s2b (each over its own bytes, both starting from s1 = 1, s2 = 0):
    s1 = s1a + s1b - 1 and s2 = s2a + s2b + len(B) * (s1a - 1), modulo 65521."""
    s1a, s2a = first & 0xFFFF, first >> 16
    s1b, s2b = second & 0xFFFF, second >> 16
    s1 = (s1a + s1b - 1) % _ADLER_BASE
    s2 = (s2a + s2b + (second_length % _ADLER_BASE) * (s1a - 1)) % _ADLER_BASE
    return (s2 << 16) | s1


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    """One PNG chunk: length, type, payload, CRC-32 of type and payload."""
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(payload, zlib.crc32(kind)))


def _filtered(rows: np.ndarray, above: np.ndarray | None) -> np.ndarray:
    """Rows (n, bytes per row) filtered with Up, each led by its filter-type byte; ``above``: the row
    before the first (None at the image's top, where Up sees zeros)."""
    out = np.empty((rows.shape[0], rows.shape[1] + 1), np.uint8)
    out[:, 0] = _UP
    np.subtract(rows[1:], rows[:-1], out=out[1:, 1:])  # uint8 arithmetic wraps modulo 256, as PNG's does
    if above is None:
        out[0, 1:] = rows[0]
    else:
        np.subtract(rows[0], above, out=out[0, 1:])
    return out


def _deflated(rows: np.ndarray, above: np.ndarray | None, last: bool) -> tuple[bytes, int, int]:
    data = _filtered(rows, above).data  # contiguous: its bytes as a memoryview
    if _isal is not None:
        z = _isal.compressobj(ISAL_LEVEL, _isal.DEFLATED, -15, 9)
        body = z.compress(data) + z.flush(_isal.Z_FINISH if last else _isal.Z_FULL_FLUSH)
        return body, _isal.adler32(data), data.nbytes
    z = zlib.compressobj(LEVEL, zlib.DEFLATED, -15, 9, zlib.Z_RLE)
    body = z.compress(data) + z.flush(zlib.Z_FINISH if last else zlib.Z_FULL_FLUSH)
    return body, zlib.adler32(data), data.nbytes


def encode_png(pixels: np.ndarray, strips: int | None = None) -> bytes:
    """The PNG file of ``pixels``: (H, W) or (H, W, C) with C = 1 (gray), 2 (gray, alpha), 3 (RGB) or 4
    (RGBA), uint8 or uint16 (8 or 16 bits per sample). ``strips``: how many strips (and threads, at most
    ``worker_count()``); default one per CPU for images of ``PARALLEL_MIN_BYTES`` or more, else one."""
    a = np.asarray(pixels)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[2] not in _COLOR_TYPE or a.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"cannot store a {a.dtype} array of shape {a.shape} as PNG: expected HxW or HxWxC, C 1-4")
    height, width, channels = a.shape
    if height == 0 or width == 0 or height >= 2**31 or width >= 2**31:
        raise ValueError(f"a PNG is 1 to 2^31-1 pixels a side, not {width}x{height}")
    bits = 16 if a.dtype == np.uint16 else 8
    big_endian = a.astype(">u2", copy=False) if bits == 16 else a
    rows = np.ascontiguousarray(big_endian).view(np.uint8).reshape(height, -1)
    if strips is None:
        strips = worker_count() if rows.nbytes >= PARALLEL_MIN_BYTES else 1
    strips = max(1, min(strips, height))
    edges = [height * i // strips for i in range(strips + 1)]
    jobs = [(rows[r0:r1], rows[r0 - 1] if r0 else None, r1 == height) for r0, r1 in zip(edges, edges[1:])]
    if strips == 1:
        parts = [_deflated(*jobs[0])]
    else:
        with ThreadPoolExecutor(min(strips, worker_count()), thread_name_prefix="swinir-png") as pool:
            parts = list(pool.map(lambda job: _deflated(*job), jobs))
    adler = 1  # Adler-32 of nothing
    for _, part_adler, length in parts:
        adler = adler32_combine(adler, part_adler, length)
    # zlib header: deflate with a 32 KiB window, no preset dictionary, "fast" level flag; a multiple of 31
    stream = b"".join([b"\x78\x01", *(body for body, _, _ in parts), struct.pack(">I", adler)])
    header = struct.pack(">IIBBBBB", width, height, bits, _COLOR_TYPE[channels], 0, 0, 0)
    idat = [png_chunk(b"IDAT", stream[i : i + IDAT_MAX]) for i in range(0, len(stream), IDAT_MAX)]
    return b"".join([SIGNATURE, png_chunk(b"IHDR", header), *idat, png_chunk(b"IEND", b"")])
