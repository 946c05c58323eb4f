"""One image-file layer (swinir.io): every command lists, reads and writes images the same guarded way.

Regression tests for issue 12 (items 4 and 6) and issue 14 (item 2).
"""

from __future__ import annotations

import shutil
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from swinir import io
from swinir.cli import main
from swinir.errors import ImageReadError, ImageWriteError, SwinIRError
from swinir.evaluate import Protocol, comparison_sheet, evaluate
from swinir.evaluate import list_images as eval_list_images
from swinir.train.data import list_images as train_list_images

SECRET = "api_key=SECRET-0123456789"


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _bomb(path: Path, side: int = 40000) -> Path:
    """A 200-byte PNG whose header claims side x side pixels (1.6 G pixels at 40000)."""
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")
    )
    return path


def _ok_png(path: Path, size: int = 32) -> Path:
    rng = np.random.default_rng(0)
    assert cv2.imwrite(str(path), rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
    return path


def _one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_compare_refuses_a_decompression_bomb_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ok, bomb = _ok_png(tmp_path / "ok.png"), _bomb(tmp_path / "bomb.png")
    err = _one_line_error(capsys, ["compare", str(ok), str(bomb), "-o", str(tmp_path / "s.png")])
    assert "bomb.png" in err and "too many pixels" in err
    assert not (tmp_path / "s.png").exists()


def test_eval_refuses_a_decompression_bomb_in_the_hr_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hr = tmp_path / "hr"
    hr.mkdir()
    _ok_png(hr / "a.png")
    _bomb(hr / "b.png")
    err = _one_line_error(capsys, ["eval", "--model", "bicubic", "--scale", "2", "--hr", str(hr), "--quiet"])
    assert "b.png" in err and "too many pixels" in err
    with pytest.raises(ImageReadError, match="too many pixels"):
        evaluate("bicubic", hr, Protocol("classical_sr", scale=2), progress=False)


def test_eval_reader_refuses_a_bomb_before_opencv_decodes_it(tmp_path: Path) -> None:
    bomb = _bomb(tmp_path / "bomb.png")
    for mode in ("color", "gray", "unchanged"):
        with pytest.raises(ImageReadError, match="too many pixels"):
            io.read_like_release(bomb, mode)  # type: ignore[arg-type]
    with pytest.raises(ImageReadError, match="too many pixels"):
        io.read_uint8(bomb)


def test_symlinked_png_to_a_text_file_does_not_echo_its_bytes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = tmp_path / "notes.txt"
    secret.write_text(SECRET + "\n" * 3)
    link = tmp_path / "photo.png"
    link.symlink_to(secret)
    readers = [io.read_image, io.read_like_release, io.read_uint8, io.image_size]
    for read in readers:
        with pytest.raises(ImageReadError) as exc:
            read(link)
        assert "SECRET" not in str(exc.value) and "api_key" not in str(exc.value), str(exc.value)
        assert "text, not an image" in str(exc.value)
    err = _one_line_error(capsys, ["compare", str(link), "-o", str(tmp_path / "s.png")])
    assert "SECRET" not in err and "api_key" not in err
    binary = tmp_path / "blob.png"
    binary.write_bytes(bytes(range(200, 256)) * 4)
    with pytest.raises(ImageReadError) as exc:
        io.read_image(binary)
    assert bytes(range(200, 208)).hex() not in str(exc.value)


def test_write_image_of_an_empty_array_is_a_clear_error(tmp_path: Path) -> None:
    for shape in ((0, 0), (0, 0, 3), (5, 0, 3), (0, 7)):
        with pytest.raises(ImageWriteError, match="empty .* no pixels"):
            io.write_image(tmp_path / "e.png", np.zeros(shape, np.uint8))
    assert not list(tmp_path.iterdir())


def test_compare_crop_outside_the_image_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ok = _ok_png(tmp_path / "ok.png", 64)
    err = _one_line_error(capsys, ["compare", str(ok), "--crop", "9999,9999,10", "-o", str(tmp_path / "s.png")])
    assert "does not fit in the 64x64 image" in err
    assert not (tmp_path / "s.png").exists()
    img = np.zeros((64, 64, 3), np.uint8)
    with pytest.raises(SwinIRError, match="does not fit"):
        comparison_sheet([("a", img)], crop=(60, 0, 10))
    assert comparison_sheet([("a", img)], crop=(54, 54, 10)).shape[1] == 10  # a crop that fits still works


def test_compare_refuses_to_write_over_an_input_through_a_link(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ok = _ok_png(tmp_path / "ok.png")
    before = ok.read_bytes()
    (tmp_path / "alias.png").symlink_to(ok)
    err = _one_line_error(capsys, ["compare", str(ok), "-o", str(tmp_path / "alias.png")])
    assert "refusing to overwrite the input" in err
    assert ok.read_bytes() == before


def test_degrade_input_guard_names_no_flag_degrade_lacks(
    tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copy(data_dir / "Set5" / "HR" / "bird.png", tmp_path / "x.png")
    shutil.copy(data_dir / "Set5" / "HR" / "bird.png", tmp_path / "x_jpeg_0.png")
    err = _one_line_error(
        capsys,
        ["degrade", "--pipeline", "jpeg", str(tmp_path / "x.png"), str(tmp_path / "x_jpeg_0.png"), "-o", str(tmp_path)],
    )
    assert "refusing to overwrite the input" in err and "--suffix" not in err


def test_every_command_lists_the_same_image_files(tmp_path: Path) -> None:
    names = ["a.png", "b.ppm", "c.JPE", "d.tif", "e.webp", "f.pgm"]
    for n in names:
        (tmp_path / n).write_bytes(b"x")
    (tmp_path / ".hidden.png").write_bytes(b"x")
    (tmp_path / "notes.txt").write_bytes(b"x")
    (tmp_path / "sub.png").mkdir()
    expected = [tmp_path / n for n in names]
    assert io.list_images(tmp_path) == expected
    assert eval_list_images(tmp_path) == expected
    assert train_list_images(tmp_path, "data.train[0].hr") == expected
    with pytest.raises(ImageReadError, match="data.train.0..hr .*: no images"):
        train_list_images(tmp_path / "sub.png", "data.train[0].hr")


def test_eval_reader_is_bit_exact_with_the_release_imread(data_dir: Path) -> None:
    for f in sorted((data_dir / "Set5" / "HR").glob("*.png"))[:2] + sorted((data_dir / "classic5").glob("*"))[:1]:
        for mode, flag in (
            ("color", cv2.IMREAD_COLOR),
            ("gray", cv2.IMREAD_GRAYSCALE),
            ("unchanged", cv2.IMREAD_UNCHANGED),
        ):
            assert np.array_equal(io.read_like_release(f, mode), cv2.imread(str(f), flag)), (f, mode)  # type: ignore[arg-type]


def test_training_reader_scales_16_bit_to_8_by_rounding(tmp_path: Path) -> None:
    a = np.array([[[0, 128, 65535], [385, 386, 257]]], np.uint16)
    assert cv2.imwrite(str(tmp_path / "a.png"), a[..., ::-1])
    got = io.read_uint8(tmp_path / "a.png", 3)
    assert got.dtype == np.uint8 and got.tolist() == [[[0, 0, 255], [1, 2, 1]]]
    assert io.read_uint8(tmp_path / "a.png", 1).shape == (1, 2, 1)


def test_eval_refuses_to_save_into_the_ground_truth_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hr = tmp_path / "hr"
    hr.mkdir()
    _ok_png(hr / "a.png")
    before = sorted(p.name for p in hr.iterdir())
    err = _one_line_error(capsys, ["eval", "--model", "bicubic", "--scale", "2", "--hr", str(hr), "--save", str(hr)])
    assert "holds the test images" in err
    assert sorted(p.name for p in hr.iterdir()) == before
    assert (
        main(["eval", "--model", "bicubic", "--scale", "2", "--hr", str(hr), "--save", str(tmp_path / "o"), "--quiet"])
        == 0
    )
    assert (tmp_path / "o" / "a_SwinIR.png").is_file()


def test_eval_and_compare_refuse_a_damaged_png_without_a_raw_libpng_line(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Issue 23, item 12: OpenCV's libpng printed ``libpng error: ...`` to the process's stderr before the
    one-line error; the reading path checks a PNG's chunks before OpenCV sees it."""
    (tmp_path / "hr").mkdir()
    ok = _ok_png(tmp_path / "hr" / "a.png")
    data = bytearray(ok.read_bytes())
    at = data.find(b"IDAT")
    data[at + 200] ^= 0xFF  # one byte of pixel data flipped, as a bad disk or a cut download leaves it
    bad = tmp_path / "hr" / "b.png"
    bad.write_bytes(bytes(data))
    for argv in (
        ["compare", str(ok), str(bad), "-o", str(tmp_path / "s.png")],
        ["eval", "--model", "bicubic", "--scale", "2", "--hr", str(tmp_path / "hr"), "--quiet"],
    ):
        assert main(argv) == 1
        err = capfd.readouterr().err  # what the process wrote to file descriptor 2, libpng included
        assert err.startswith("error: ") and err.count("\n") == 1 and "libpng" not in err, err
        assert f"{bad}: cannot decode it (a PNG header" in err
    assert not (tmp_path / "s.png").exists()
