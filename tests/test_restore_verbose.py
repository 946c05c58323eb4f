"""`swinir restore -v` says whether swinir's CPU kernels run for the model, and why not (it said nothing
while they ran), and how each image was tiled (``--tile auto``'s choice was seen only in the bar)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import swinir
from swinir import kernels
from swinir.cli import main
from swinir.io import write_image


def _note(tmp_path: Path, model: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    img = tmp_path / "in.png"
    write_image(img, np.full((12, 12, 3), 100, np.uint8))
    assert main(["restore", str(img), "-o", str(tmp_path / "out"), "--model", str(model), "--overwrite", *extra]) == 0
    err = capsys.readouterr().err.splitlines()
    notes = [line for line in err if line.startswith("note: ") and not line.startswith("note: in.png: ")]
    assert len(notes) <= 1
    return notes[0] if notes else ""


def test_verbose_says_whether_the_kernels_run(tiny_x2_checkpoint: Path, tmp_path: Path, capsys) -> None:
    note = _note(tmp_path, tiny_x2_checkpoint, capsys, "-v")  # window 4, head width 4: the kernels fit
    if kernels.available():
        assert (
            note
            == f"note: swinir's CPU kernels are in use for window attention, LayerNorm and fp32 Winograd 3x3 convolutions: {kernels.status()}"
        )
    else:
        assert note.startswith("note: swinir's CPU kernels are not in use (") and kernels.status() in note
    assert _note(tmp_path, tiny_x2_checkpoint, capsys) == ""  # only with -v
    with kernels.disabled():
        off = _note(tmp_path, tiny_x2_checkpoint, capsys, "-v")
    assert off.startswith("note: swinir's CPU kernels are not in use (switched off by swinir.kernels.disabled()")


def test_verbose_says_when_the_model_does_not_fit_the_kernels(tmp_path: Path, capsys) -> None:
    if not kernels.available():
        pytest.skip(f"swinir's CPU kernels are not available here: {kernels.status()}")
    torch.manual_seed(0)
    wide = swinir.SwinIR(upscale=2, img_size=8, window_size=4, depths=[1], embed_dim=48, num_heads=[1], mlp_ratio=2,
                         upsampler="pixelshuffledirect")  # fmt: skip
    path = swinir.save(wide, tmp_path / "wide.pth")
    note = _note(tmp_path, path, capsys, "-v")
    assert (
        note.startswith("note: swinir's CPU kernels (") and "do not fit this model (window 4, head widths [48]" in note
    )


def test_verbose_says_how_each_image_was_tiled(tiny_x2_checkpoint: Path, tmp_path: Path, capsys) -> None:
    img = tmp_path / "in.png"
    write_image(img, np.full((20, 36, 3), 100, np.uint8))

    def tiling(*extra: str) -> list[str]:
        out = str(tmp_path / "out")
        assert main(["restore", str(img), "-o", out, "--model", str(tiny_x2_checkpoint), "--overwrite", *extra]) == 0
        return [line for line in capsys.readouterr().err.splitlines() if line.startswith("note: in.png: ")]

    assert tiling("-v") == ["note: in.png: the whole image (20x36) in one forward"]
    assert tiling("-v", "--tile", "16", "--overlap", "4") == [
        "note: in.png: 6 tiles (2 rows x 3 columns) of up to 12x16, overlapping by up to 8"
    ]  # laid evenly (swinir.tiling): rows 0-12 and 8-20; columns 0-16, 8-24 and 20-36
    assert tiling("--tile", "16", "--overlap", "4") == []  # only with -v
