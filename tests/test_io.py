"""Image I/O: formats, bit depths, alpha, EXIF orientation, clear errors, atomic writes."""

from __future__ import annotations

import io as _io
import os
import struct
import warnings
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image as PILImage
from PIL import ImageOps

from swinir.errors import ImageReadError, ImageWriteError
from swinir.io import (
    SwinIRNotice,
    adapt_channels,
    apply_orientation,
    check_not_input,
    encode_image,
    from_float,
    gray_to_rgb,
    image_size,
    read_image,
    read_like_release,
    resize,
    rgb_to_gray,
    to_float,
    write_image,
)

RNG = np.random.default_rng(0)


def _img(h: int, w: int, c: int | None, dtype: type) -> np.ndarray:
    hi = 65536 if dtype == np.uint16 else 256
    shape = (h, w) if c is None else (h, w, c)
    return RNG.integers(0, hi, size=shape).astype(dtype)


@pytest.mark.parametrize("ext", [".png", ".tif", ".bmp", ".webp"])
@pytest.mark.parametrize("gray", [False, True])
def test_lossless_roundtrip_8bit(tmp_path: Path, ext: str, gray: bool) -> None:
    a = _img(17, 23, None if gray else 3, np.uint8)
    p = write_image(tmp_path / f"x{ext}", a, quality=101)  # WebP quality > 100 is lossless
    r = read_image(p)
    assert r.bit_depth == 8 and r.alpha is None and r.path == p
    if gray and ext == ".webp":  # WebP stores color only; the gray planes come back as equal RGB
        assert np.array_equal(r.array, gray_to_rgb(a))
    else:
        assert np.array_equal(r.array, a)


@pytest.mark.parametrize("ext", [".png", ".tif"])
@pytest.mark.parametrize("gray", [False, True])
def test_16bit_roundtrip_keeps_all_bits(tmp_path: Path, ext: str, gray: bool) -> None:
    a = _img(19, 21, None if gray else 3, np.uint16)
    assert (a & 0xFF).any()  # low byte matters: an 8-bit decode would lose it
    r = read_image(write_image(tmp_path / f"x{ext}", a))
    assert r.bit_depth == 16 and r.array.dtype == np.uint16
    assert np.array_equal(r.array, a)


def test_16bit_png_is_rgb_order(tmp_path: Path) -> None:
    a = np.zeros((4, 5, 3), np.uint16)
    a[..., 0] = 60000  # pure red
    p = tmp_path / "red.png"
    write_image(p, a)
    bgr = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
    assert bgr[0, 0].tolist() == [0, 0, 60000]  # on disk as any PNG: red
    assert read_image(p).array[0, 0].tolist() == [60000, 0, 0]


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_rgba_roundtrip(tmp_path: Path, dtype: type) -> None:
    a, al = _img(9, 13, 3, dtype), _img(9, 13, None, dtype)
    r = read_image(write_image(tmp_path / "x.png", a, alpha=al))
    assert np.array_equal(r.array, a) and np.array_equal(r.alpha, al)
    assert r.mode == f"RGBA {8 if dtype == np.uint8 else 16}-bit"


def test_gray_alpha_roundtrip(tmp_path: Path) -> None:
    g, al = _img(9, 13, None, np.uint8), _img(9, 13, None, np.uint8)
    p = write_image(tmp_path / "la.png", g, alpha=al)
    assert PILImage.open(p).mode == "LA"
    r = read_image(p)
    assert r.is_gray and np.array_equal(r.array, g) and np.array_equal(r.alpha, al)


def test_palette_with_transparency_reads_as_rgba(tmp_path: Path) -> None:
    im = PILImage.new("P", (6, 4))
    im.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    im.putpixel((1, 1), 1)
    im.info["transparency"] = 0
    p = tmp_path / "pal.png"
    im.save(p, transparency=0)
    r = read_image(p)
    assert r.array.shape == (4, 6, 3) and r.alpha is not None
    assert r.array[1, 1].tolist() == [255, 0, 0] and r.alpha[1, 1] == 255 and r.alpha[0, 0] == 0


def test_jpeg_quality_and_cmyk(tmp_path: Path) -> None:
    a = cv2.GaussianBlur(_img(64, 64, 3, np.uint8), (0, 0), 3)
    hi = read_image(write_image(tmp_path / "hi.jpg", a, quality=95)).array
    lo = read_image(write_image(tmp_path / "lo.jpg", a, quality=10)).array
    err = lambda b: np.abs(b.astype(float) - a).mean()
    assert err(hi) < err(lo)
    PILImage.fromarray(a).convert("CMYK").save(tmp_path / "cmyk.jpg")
    r = read_image(tmp_path / "cmyk.jpg")
    assert r.array.shape == (64, 64, 3) and r.array.dtype == np.uint8


def test_jpeg_flattens_alpha_onto_white_with_notice(tmp_path: Path) -> None:
    a = np.zeros((8, 8, 3), np.uint8)
    al = np.zeros((8, 8), np.uint8)
    al[:4] = 255
    with pytest.warns(SwinIRNotice, match="no alpha"):
        p = write_image(tmp_path / "x.jpg", a, alpha=al)
    r = read_image(p).array
    assert r[:3].max() < 10 and r[5:].min() > 245  # opaque black stays, transparent becomes white


def test_16bit_to_8bit_format_notice_and_rounding(tmp_path: Path) -> None:
    a = np.array([[0, 257 * 100 + 100, 65535]], np.uint16)
    with pytest.warns(SwinIRNotice, match="8 bits"):
        p = write_image(tmp_path / "x.bmp", a)
    assert read_image(p).array.tolist() == [[0, 100, 255]]


def _png_with_orientation(png: bytes, orientation: int) -> bytes:
    """Insert an eXIf chunk (TIFF header + one IFD entry) right after IHDR."""
    exif = PILImage.Exif()
    exif[0x0112] = orientation
    data = exif.tobytes()
    data = data[6:] if data.startswith(b"Exif\x00\x00") else data
    chunk = struct.pack(">I", len(data)) + b"eXIf" + data + struct.pack(">I", zlib.crc32(b"eXIf" + data))
    end_ihdr = 8 + 4 + 4 + 13 + 4
    return png[:end_ihdr] + chunk + png[end_ihdr:]


@pytest.mark.parametrize("ext", [".png", ".jpg"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow(tmp_path: Path, orientation: int, ext: str) -> None:
    a = _img(6, 10, 3, np.uint8)
    exif = PILImage.Exif()
    exif[0x0112] = orientation
    p = tmp_path / f"o{ext}"
    PILImage.fromarray(a).save(p, exif=exif)
    expected = np.asarray(ImageOps.exif_transpose(PILImage.open(p)))
    got = read_image(p).array
    assert got.shape == expected.shape and np.array_equal(got, expected)
    if orientation in (5, 6, 7, 8):
        assert got.shape[:2] == (10, 6)


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_on_16bit_png(tmp_path: Path, orientation: int) -> None:
    a = _img(6, 10, 3, np.uint16)
    al = _img(6, 10, None, np.uint16)
    p = tmp_path / "o16.png"
    p.write_bytes(_png_with_orientation(encode_image(a, ".png", alpha=al), orientation))
    r = read_image(p)
    assert r.bit_depth == 16
    assert np.array_equal(r.array, apply_orientation(a, orientation))
    assert np.array_equal(r.alpha, apply_orientation(al, orientation))
    assert r.array.shape[:2] == ((6, 10) if orientation == 3 else (10, 6))


@pytest.mark.parametrize(
    "content,expect",
    [
        (b"", "empty file"),
        (b"hello, this is a text file\n", "text, not an image"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 10, "PNG header"),
    ],
)
def test_non_image_error_names_file_and_content(tmp_path: Path, content: bytes, expect: str) -> None:
    p = tmp_path / "broken.png"
    p.write_bytes(content)
    with pytest.raises(ImageReadError) as ei:
        read_image(p)
    msg = str(ei.value)
    assert str(p) in msg and expect in msg and "\n" not in msg


@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_truncated_file_is_an_error(tmp_path: Path, ext: str) -> None:
    a = cv2.GaussianBlur(_img(64, 64, 3, np.uint8), (0, 0), 2)
    data = encode_image(a, ext)
    p = tmp_path / f"cut{ext}"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match="truncated"):
        read_image(p)


def test_truncated_16bit_png_is_an_error(tmp_path: Path) -> None:
    data = encode_image(_img(64, 64, 3, np.uint16), ".png")
    p = tmp_path / "cut16.png"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match=str(p.name)):
        read_image(p)


def test_missing_and_folder(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError, match="no such file"):
        read_image(tmp_path / "nope.png")
    with pytest.raises(ImageReadError, match="folder"):
        read_image(tmp_path)


def test_write_is_atomic_and_leaves_no_temp(tmp_path: Path) -> None:
    p = tmp_path / "sub" / "x.png"
    write_image(p, _img(5, 5, 3, np.uint8))
    old = p.read_bytes()
    with pytest.raises(ImageWriteError):
        write_image(p, np.zeros((5, 5, 7), np.uint8))  # unencodable: the existing file is untouched
    assert p.read_bytes() == old
    assert sorted(os.listdir(p.parent)) == ["x.png"]


def test_unknown_extension(tmp_path: Path) -> None:
    with pytest.raises(ImageWriteError, match="cannot write '.gif'"):
        write_image(tmp_path / "x.gif", _img(5, 5, 3, np.uint8))


def test_check_not_input(tmp_path: Path) -> None:
    src = tmp_path / "a.png"
    write_image(src, _img(4, 4, 3, np.uint8))
    link = tmp_path / "link.png"
    link.symlink_to(src)
    with pytest.raises(ImageWriteError, match="refusing to overwrite"):
        check_not_input(tmp_path / "." / "a.png", [src])
    with pytest.raises(ImageWriteError, match="refusing to overwrite"):
        check_not_input(link, [src])
    check_not_input(tmp_path / "b.png", [src])  # a different file is fine


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_float_conversions_roundtrip(dtype: type) -> None:
    a = _img(300, 7, 3, dtype)  # more rows than one conversion chunk
    f = to_float(a)
    assert f.dtype == np.float32 and f.min() >= 0.0 and f.max() <= 1.0
    assert np.array_equal(from_float(f, dtype), a)
    assert to_float(f) is f  # float32 passes through without a copy
    clipped = from_float(np.array([[-0.2, 0.5, 1.7]], np.float32), np.uint8)
    assert clipped.tolist() == [[0, 128, 255]]


def test_gray_color_helpers_and_notices() -> None:
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255]]], np.uint8)
    assert rgb_to_gray(rgb).tolist() == [[76, 150, 29]]  # BT.601
    assert np.array_equal(rgb_to_gray(rgb), cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
    g = np.array([[10, 20]], np.uint16)
    assert gray_to_rgb(g).shape == (1, 2, 3)
    with pytest.warns(SwinIRNotice, match="gray image given to a color model"):
        assert adapt_channels(g, 3).shape == (1, 2, 3)
    with pytest.warns(SwinIRNotice, match="color image given to a gray model"):
        assert adapt_channels(rgb, 1).shape == (1, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert adapt_channels(rgb, 3) is rgb  # nothing to do, no notice


def test_resize_keeps_dtype_and_picks_filter() -> None:
    a = _img(40, 30, 3, np.uint16)
    up = resize(a, 100, 75)
    assert up.shape == (100, 75, 3) and up.dtype == np.uint16
    down = resize(a, 20, 15)
    expected = cv2.resize(a, (15, 20), interpolation=cv2.INTER_AREA)
    assert np.array_equal(down, expected)
    assert resize(a, 40, 30) is a


def test_encode_bytes_decode_identically() -> None:
    a = _img(8, 8, 3, np.uint8)
    data = encode_image(a, "png")
    assert np.array_equal(np.asarray(PILImage.open(_io.BytesIO(data))), a)


def _damaged_png(path: Path, fix_crc: bool) -> Path:
    """A PNG with one byte of its pixel data flipped (issue 23, item 4): the chunk checksum left stale,
    or recomputed so only the decoder can tell."""
    data = bytearray(encode_image(cv2.GaussianBlur(_img(64, 64, 3, np.uint8), (0, 0), 1), ".png"))
    at = data.find(b"IDAT")
    length = struct.unpack(">I", data[at - 4 : at])[0]
    data[at + 4 + length // 3] ^= 0xFF
    if fix_crc:
        crc = zlib.crc32(bytes(data[at : at + 4 + length])) & 0xFFFFFFFF
        data[at + 4 + length : at + 8 + length] = struct.pack(">I", crc)
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("fix_crc", [False, True])
def test_a_png_with_one_flipped_byte_is_refused_not_restored_as_garbage(tmp_path: Path, fix_crc: bool) -> None:
    p = _damaged_png(tmp_path / "c.png", fix_crc)
    with pytest.raises(ImageReadError) as ei:
        read_image(p)  # getexif() loaded the stream, swallowed its error, and the second load passed
    msg = str(ei.value)
    assert msg.startswith(f"{p}: cannot decode it (a PNG header") and "\n" not in msg


def test_write_image_refuses_nan_and_infinity(tmp_path: Path) -> None:
    a = np.full((300, 5, 3), 0.5, np.float32)  # more rows than one conversion chunk
    a[290, 2, 1] = np.nan
    a[3, 0, 0] = -np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy "invalid value" warning either
        for bits in (8, 16):
            with pytest.raises(ImageWriteError, match="2 NaN or infinite sample"):
                write_image(tmp_path / "nan.png", a, bit_depth=bits)
        with pytest.raises(ImageWriteError, match="NaN or infinite"):
            write_image(tmp_path / "nan.png", a[..., 0], alpha=np.zeros((300, 5), np.uint8))
    assert not list(tmp_path.iterdir())
    a[290, 2, 1] = a[3, 0, 0] = 0.25
    assert read_image(write_image(tmp_path / "ok.png", a)).array.max() == 128


def test_only_regular_files_are_read(tmp_path: Path) -> None:
    import threading

    from swinir.io import file_kind

    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    errors: list[str] = []

    def attempt() -> None:
        for read in (read_image, image_size, read_like_release):
            try:
                read(fifo)
            except ImageReadError as exc:
                errors.append(str(exc))

    reader = threading.Thread(target=attempt, daemon=True)
    reader.start()
    reader.join(20)
    if reader.is_alive():  # opening a FIFO blocks until a writer comes: unblock the thread, then fail
        with open(fifo, "wb"):
            pass
        pytest.fail("reading a FIFO blocked")
    assert errors == [f"{fifo}: a FIFO (named pipe), not a regular file; only regular files are read"] * 3
    assert file_kind(fifo) == "a FIFO (named pipe)" and file_kind(tmp_path) == "a folder"
    (tmp_path / "dangling.png").symlink_to(tmp_path / "nowhere.png")
    assert file_kind(tmp_path / "dangling.png") == "a broken link" and file_kind(tmp_path / "x.png") == "missing"
    assert file_kind(write_image(tmp_path / "ok.png", _img(2, 2, 3, np.uint8))) is None


@pytest.mark.parametrize("links", [True, False])
def test_publishing_without_replacing_leaves_an_existing_name_alone(
    tmp_path: Path, links: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from swinir.errors import OutputExistsError

    if not links:  # a file system without hard links (FAT, some shares): the exclusive-create path

        def no_link(src: object, dst: object) -> None:
            raise OSError(errno.EPERM, "Operation not permitted")

        monkeypatch.setattr(os, "link", no_link)
    a = _img(4, 4, 3, np.uint8)
    new = write_image(tmp_path / "new.png", a, replace=False)
    assert np.array_equal(read_image(new).array, a) and new.stat().st_nlink == 1
    (tmp_path / "taken.png").write_bytes(b"someone else's")
    (tmp_path / "dangling.png").symlink_to(tmp_path / "nowhere")
    for name in ("taken.png", "dangling.png", "new.png"):
        with pytest.raises(OutputExistsError, match=f"{name}: exists; not replaced"):
            write_image(tmp_path / name, a[::-1], replace=False)
    assert (tmp_path / "taken.png").read_bytes() == b"someone else's" and not (tmp_path / "nowhere").exists()
    assert np.array_equal(read_image(new).array, a)
    assert sorted(os.listdir(tmp_path)) == ["dangling.png", "new.png", "taken.png"]  # no temporary left
    write_image(tmp_path / "taken.png", a)  # replace=True (the default) still replaces
    assert np.array_equal(read_image(tmp_path / "taken.png").array, a)
