"""swinir.png: every PNG it writes decodes to the same samples in Pillow and OpenCV, whatever the strips."""

from __future__ import annotations

import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from swinir import png
from swinir.png import adler32_combine, encode_png


@pytest.fixture(autouse=True, params=["isal", "zlib"])
def deflate(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test with each deflate: ISA-L's where installed (the default then), and zlib's (the fallback)."""
    if request.param == "isal":
        if png._isal is None:
            pytest.skip("isal is not installed (pip install isal): only the zlib fallback is tested here")
    else:
        monkeypatch.setattr(png, "_isal", None)
    return str(request.param)


def _chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    out, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, payload = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + payload), kind
        out.append((kind, payload))
        pos += 12 + length
    return out


def _opencv(data: bytes) -> np.ndarray:
    a = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if a.ndim == 3 and a.shape[2] == 3:
        a = cv2.cvtColor(a, cv2.COLOR_BGR2RGB)
    elif a.ndim == 3 and a.shape[2] == 4:
        a = cv2.cvtColor(a, cv2.COLOR_BGRA2RGBA)
    return a


def _random(shape: tuple[int, ...], dtype: type, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    smooth = np.cumsum(rng.integers(-3, 4, size=shape), axis=1)  # runs and gradients, like a restoration
    top = np.iinfo(dtype).max
    return (np.abs(smooth) % (top + 1)).astype(dtype)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("channels", [None, 3, 4])
@pytest.mark.parametrize("strips", [1, 2, 5])
def test_samples_survive_pillow_and_opencv_for_any_strips(dtype: type, channels: int | None, strips: int) -> None:
    shape = (37, 29) if channels is None else (37, 29, channels)
    a = _random(shape, dtype, seed=strips)
    data = encode_png(a, strips=strips)
    kinds = [k for k, _ in _chunks(data)]
    assert kinds == [b"IHDR", b"IDAT", b"IEND"]
    assert np.array_equal(_opencv(data), a)
    if not (dtype == np.uint16 and channels):  # Pillow reduces 16-bit colour to 8 bits
        back = np.asarray(Image.open(io.BytesIO(data)))
        assert np.array_equal(back.astype(dtype), a)


def test_gray_alpha_is_colour_type_4_and_pillow_reads_it_as_LA() -> None:
    a = _random((16, 40, 2), np.uint8, seed=3)
    data = encode_png(a, strips=3)
    ihdr = _chunks(data)[0][1]
    assert struct.unpack(">IIBBBBB", ihdr) == (40, 16, 8, 4, 0, 0, 0)
    im = Image.open(io.BytesIO(data))
    assert im.mode == "LA"
    assert np.array_equal(np.asarray(im), a)


@pytest.mark.parametrize("shape", [(1, 1, 3), (1, 300, 3), (300, 1), (2, 2, 4)])
def test_degenerate_sizes_and_more_strips_than_rows(shape: tuple[int, ...]) -> None:
    a = _random(shape, np.uint8, seed=1)
    data = encode_png(a, strips=8)
    assert np.array_equal(_opencv(data).reshape(a.shape), a)


def test_the_zlib_stream_checks_out_and_strips_do_not_change_the_pixels() -> None:
    a = _random((120, 64, 3), np.uint8, seed=7)
    one, many = encode_png(a, strips=1), encode_png(a, strips=6)
    streams = [b"".join(p for k, p in _chunks(d) if k == b"IDAT") for d in (one, many)]
    raw = [zlib.decompress(s) for s in streams]  # zlib checks the combined Adler-32 trailer
    assert raw[0] == raw[1]
    assert len(raw[0]) == 120 * (1 + 64 * 3)
    rows = np.frombuffer(raw[0], np.uint8).reshape(120, -1)
    assert set(rows[:, 0].tolist()) == {2}  # the Up filter on every row


def test_adler32_combine_matches_zlib_on_any_split() -> None:
    data = np.random.default_rng(0).integers(0, 256, 200_000, dtype=np.uint8).tobytes()
    for cut in (0, 1, 65520, 65521, 65522, 123_457, len(data)):
        a, b = data[:cut], data[cut:]
        assert adler32_combine(zlib.adler32(a), zlib.adler32(b), len(b)) == zlib.adler32(data)


def test_smooth_content_compresses_about_as_well_as_libpng_adaptive_filters() -> None:
    y, x = np.mgrid[0:512, 0:1024]
    a = np.stack([(x // 4) % 256, (y // 2) % 256, (x + y) // 8 % 256], axis=-1).astype(np.uint8)
    data = encode_png(a, strips=2)
    assert np.array_equal(_opencv(data), a)
    ok, libpng = cv2.imencode(".png", a)  # OpenCV's defaults: libpng's per-row filter choice, zlib's default
    assert ok and len(data) < 1.1 * libpng.size


@pytest.mark.parametrize(
    "bad",
    [np.zeros((4, 4, 5), np.uint8), np.zeros((4, 4), np.float32), np.zeros((0, 4, 3), np.uint8)],
)
def test_unstorable_arrays_are_refused(bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match="PNG"):
        encode_png(bad)
