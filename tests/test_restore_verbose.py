"""`swinir restore -v` says whether swinir's CPU kernels run for the model, and why not (it said nothing
while they ran)."""

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
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note: ")]
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
