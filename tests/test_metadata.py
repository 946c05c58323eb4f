"""ICC profiles and EXIF (less orientation) travel from the input file to the restored output."""

from __future__ import annotations

import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from PIL import ImageCms

import swinir
from swinir.cli import main
from swinir.io import SwinIRNotice, encode_image, read_image, write_image

RNG = np.random.default_rng(7)
ORIENTATION, MAKE, MODEL, DATETIME = 0x0112, 0x010F, 0x0110, 0x0132
EXIF_IFD, DATETIME_ORIGINAL = 0x8769, 0x9003


def _profile(space: str = "sRGB") -> bytes:
    return bytes(ImageCms.ImageCmsProfile(ImageCms.createProfile(space)).tobytes())


def _exif(orientation: int = 6) -> PILImage.Exif:
    exif = PILImage.Exif()
    exif[ORIENTATION] = orientation
    exif[MAKE] = "SwinIR Test Camera"
    exif[MODEL] = "Model 7"
    exif[DATETIME] = "2024:05:06 07:08:09"
    exif.get_ifd(EXIF_IFD)[DATETIME_ORIGINAL] = "2024:05:06 07:08:00"  # a tag in a sub-IFD
    return exif


def _metadata(path: Path) -> tuple[bytes | None, dict[int, object]]:
    """The file's ICC profile and its EXIF tags, those of the EXIF sub-IFD included."""
    with PILImage.open(path) as im:
        exif = im.getexif()
        tags = {tag: value for tag, value in exif.items() if tag != EXIF_IFD}
        return im.info.get("icc_profile"), tags | dict(exif.get_ifd(EXIF_IFD))


@pytest.mark.parametrize(("ext", "out_ext"), [("jpg", "jpg"), ("png", "png"), ("jpg", "webp")])
def test_restore_keeps_icc_and_exif_and_drops_orientation(
    tmp_path: Path, tiny_x2_checkpoint: Path, ext: str, out_ext: str
) -> None:
    stored = RNG.integers(0, 256, size=(8, 12, 3)).astype(np.uint8)  # stored 12 wide, upright 8 wide
    icc = _profile()
    src = tmp_path / f"photo.{ext}"
    PILImage.fromarray(stored).save(src, icc_profile=icc, exif=_exif(6).tobytes(), quality=95)
    out = tmp_path / "out"
    args = ["restore", str(src), "-o", str(out), "--model", str(tiny_x2_checkpoint), "--tile", "0", "--ext", out_ext]
    assert main(args) == 0
    dst = out / f"photo.{out_ext}"
    got_icc, got_exif = _metadata(dst)
    assert got_icc == icc  # the exact bytes
    assert got_exif.get(ORIENTATION, 1) == 1
    assert got_exif[MAKE] == "SwinIR Test Camera" and got_exif[MODEL] == "Model 7"
    assert got_exif[DATETIME] == "2024:05:06 07:08:09"
    assert got_exif[DATETIME_ORIGINAL] == "2024:05:06 07:08:00"
    restored = read_image(dst)
    upright = read_image(src).array
    assert upright.shape == (12, 8, 3)
    assert restored.array.shape == (24, 16, 3)  # upright, and no second turn from a leftover tag
    if out_ext == "png":  # lossless: the file holds what the API restores from the upright pixels
        expected = swinir.restore(swinir.load(tiny_x2_checkpoint), upright, tile=0, precision="auto")
        np.testing.assert_array_equal(restored.array, expected)


def test_file_without_metadata_gets_none(tmp_path: Path, tiny_x2_checkpoint: Path) -> None:
    for name in ("plain.png", "plain.jpg"):
        write_image(tmp_path / "in" / name, RNG.integers(0, 256, size=(8, 8, 3)).astype(np.uint8))
    out = tmp_path / "out"
    assert (
        main(["restore", str(tmp_path / "in"), "-o", str(out), "--model", str(tiny_x2_checkpoint), "--ext", "same"])
        == 0
    )
    for name in ("plain.png", "plain.jpg"):
        img = read_image(out / name)
        assert img.icc_profile is None and img.exif is None
        assert _metadata(out / name) == (None, {})


def test_pixels_are_unchanged_by_metadata_at_any_depth(tmp_path: Path) -> None:
    icc, exif = _profile(), _exif(1).tobytes()[6:]  # TIFF-structured, as Image.exif holds it
    rgb16 = RNG.integers(0, 65536, size=(9, 7, 3)).astype(np.uint16)
    alpha = RNG.integers(0, 256, size=(9, 7)).astype(np.uint8)
    cases = [("a.png", rgb16, None, 100), ("b.webp", rgb16[..., 0] >> 8, alpha, 101), ("c.jpg", rgb16, None, 90)]
    for name, array, al, quality in cases:
        arr = array.astype(np.uint8) if name != "a.png" else array
        plain = write_image(tmp_path / ("plain_" + name), arr, alpha=al, quality=quality)
        tagged = write_image(tmp_path / name, arr, alpha=al, quality=quality, icc_profile=icc, exif=exif)
        a, b = read_image(plain), read_image(tagged)
        np.testing.assert_array_equal(a.array, b.array)
        assert (a.alpha is None) == (b.alpha is None) and (a.alpha is None or np.array_equal(a.alpha, b.alpha))
        assert b.icc_profile == icc and b.exif is not None and a.icc_profile is None
        assert b.bit_depth == a.bit_depth
        with PILImage.open(tagged) as im:
            assert im.getexif()[MAKE] == "SwinIR Test Camera"


def test_tiff_keeps_the_profile_at_16_bits(tmp_path: Path) -> None:
    rgb16 = RNG.integers(0, 65536, size=(9, 7, 3)).astype(np.uint16)
    alpha16 = RNG.integers(0, 65536, size=(9, 7)).astype(np.uint16)
    plain = read_image(write_image(tmp_path / "plain.tif", rgb16, alpha=alpha16))
    tagged = read_image(write_image(tmp_path / "a.tif", rgb16, alpha=alpha16, icc_profile=_profile(), exif=b"II*\x00"))
    assert tagged.icc_profile == _profile() and plain.icc_profile is None
    assert tagged.bit_depth == 16 and tagged.alpha is not None and plain.alpha is not None
    np.testing.assert_array_equal(tagged.array, rgb16)
    np.testing.assert_array_equal(tagged.alpha, plain.alpha)


def test_profile_that_cannot_be_kept_is_named(tmp_path: Path) -> None:
    rgb = RNG.integers(0, 256, size=(6, 6, 3)).astype(np.uint8)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SwinIRNotice)
        write_image(tmp_path / "a.bmp", rgb, icc_profile=_profile())
        write_image(tmp_path / "g.png", rgb[..., 0], icc_profile=_profile())  # an RGB profile on gray
        big = PILImage.Exif()
        big[MAKE] = "x" * 70000
        write_image(tmp_path / "big.jpg", rgb, exif=big.tobytes()[6:])
    messages = [str(c.message) for c in caught if issubclass(c.category, SwinIRNotice)]
    assert any("not kept in BMP" in m for m in messages)
    assert any("does not fit the gray output" in m for m in messages)
    assert any("exceeds one JPEG segment" in m for m in messages)
    assert len(messages) == 3 and read_image(tmp_path / "big.jpg").exif is None
    assert read_image(tmp_path / "a.bmp").icc_profile is None
    assert read_image(tmp_path / "g.png").icc_profile is None


def test_png_exif_after_the_pixels_is_found(tmp_path: Path) -> None:
    """Some writers put eXIf after IDAT, where Pillow sees it only once the pixels are loaded."""
    data = encode_image(RNG.integers(0, 256, size=(4, 6, 3)).astype(np.uint8), ".png")
    iend = data.rindex(b"IEND") - 4
    exif = _exif(6).tobytes()[6:]
    chunk = struct.pack(">I", len(exif)) + b"eXIf" + exif + struct.pack(">I", zlib.crc32(b"eXIf" + exif))
    (tmp_path / "late.png").write_bytes(data[:iend] + chunk + data[iend:])
    img = read_image(tmp_path / "late.png")
    assert img.array.shape == (6, 4, 3) and img.exif is not None
    tags = PILImage.Exif()
    tags.load(img.exif)
    assert tags[MODEL] == "Model 7" and ORIENTATION not in tags
