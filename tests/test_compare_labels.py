"""`swinir compare` labels: an input and a restored output of the same name were both labelled by that name."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from swinir.cli import main
from swinir.cli.compare import default_labels
from swinir.io import write_image


def test_an_input_and_its_output_are_labelled_input_and_by_folder(tmp_path: Path, capsys) -> None:
    rng = np.random.default_rng(0)
    (tmp_path / "out").mkdir()
    src, restored = tmp_path / "photo.png", tmp_path / "out" / "photo.png"
    write_image(src, rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    write_image(restored, rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    default, named, stems = tmp_path / "default.png", tmp_path / "named.png", tmp_path / "stems.png"
    assert main(["compare", str(src), str(restored), "-o", str(default), "--full"]) == 0
    assert main(["compare", str(src), str(restored), "-o", str(named), "--full", "--labels", "input", "out"]) == 0
    assert main(["compare", str(src), str(restored), "-o", str(stems), "--full", "--labels", "photo", "photo"]) == 0
    capsys.readouterr()
    sheet = cv2.imread(str(default))
    assert np.array_equal(sheet, cv2.imread(str(named)))  # the captions drawn are "input" and "out"
    assert not np.array_equal(sheet, cv2.imread(str(stems)))


@pytest.mark.parametrize(
    "images, labels",
    [
        (["lr.png", "sr.png", "hr.png"], ["lr", "sr", "hr"]),  # distinct names: as before
        (["photo.png", "out/photo.png"], ["input", "out"]),
        (["photo.png", "realsr/photo.png", "classical/photo.png"], ["input", "realsr", "classical"]),
        (["photo.png", "photo.jpg"], ["input", "photo.jpg"]),  # beside it: the file name
        (["a/photo.png", "b/x/photo.png", "c/x/photo.png"], ["input", "b/x/photo.png", "c/x/photo.png"]),
        (["x.png", "in/photo.png", "out/photo.png"], ["x", "input", "out"]),
    ],
)
def test_default_labels(images: list[str], labels: list[str]) -> None:
    assert default_labels(images) == labels
