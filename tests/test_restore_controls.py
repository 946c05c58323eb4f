"""Strength, exact output size and tiles that fit, through swinir.restore (RestoreOptions) and the CLI."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import swinir
from swinir.io import SwinIRNotice, from_float, read_image, resize, to_float, write_image
from swinir.options import RestoreOptions


@pytest.fixture(scope="module")
def x4() -> nn.Module:
    return swinir.load("builtin-x4", device="cpu")


def image(h: int = 20, w: int = 28, seed: int = 0) -> np.ndarray:
    base = np.random.default_rng(seed).integers(0, 256, (h // 4 + 1, w // 4 + 1, 3)).astype(np.float32)
    return np.clip(resize(base, h, w), 0, 255).round().astype(np.uint8)


def test_sizes_and_strength_are_done_in_float_before_one_rounding(x4: nn.Module) -> None:
    img = image()
    raw = swinir.restore(x4, to_float(img))  # float in, float out: the model's own values
    for opts, (h, w) in (
        ({"outscale": 1}, (20, 28)),  # enhance only: back to the input size by area averaging
        ({"width": 50}, (36, 50)),
        ({"height": 30, "width": 30}, (30, 30)),
        ({"long_side": 70}, (50, 70)),
        ({"max_megapixels": 0.005}, (59, 83)),
    ):
        out = swinir.restore(x4, img, **opts)
        assert out.shape == (h, w, 3) and out.dtype == np.uint8, opts
        np.testing.assert_array_equal(out, from_float(resize(raw, h, w)), err_msg=str(opts))
    half = swinir.restore(x4, img, strength=0.5)
    bicubic = resize(to_float(img), 80, 112)
    np.testing.assert_array_equal(half, from_float(bicubic + 0.5 * (raw - bicubic)))
    np.testing.assert_array_equal(swinir.restore(x4, img, strength=0.0), from_float(bicubic))
    np.testing.assert_array_equal(swinir.restore(x4, img, strength=1.0), swinir.restore(x4, img))


def test_strength_and_size_on_tensors(x4: nn.Module) -> None:
    img = image()
    t = torch.from_numpy(img).permute(2, 0, 1)
    out = swinir.restore(x4, t, strength=0.5, width=56)
    assert out.shape == (3, 40, 56) and out.dtype == torch.uint8
    ref = swinir.restore(x4, img, strength=0.5, width=56)
    assert np.abs(out.permute(1, 2, 0).numpy().astype(int) - ref).max() <= 2  # torch vs OpenCV resampling


def test_bad_values_are_refused_in_one_place() -> None:
    with pytest.raises(swinir.SwinIRError, match="strength must be in"):
        RestoreOptions(strength=1.5)
    with pytest.raises(swinir.SwinIRError, match="only one of"):
        RestoreOptions(outscale=2, long_side=100).output_size(10, 10, 4)
    with pytest.raises(swinir.SwinIRError, match="tile"):
        RestoreOptions(tile="big")


class OOMAbove(nn.Module):
    """A model whose forward raises a real torch.OutOfMemoryError for inputs above ``limit`` pixels."""

    def __init__(self, inner: nn.Module, limit: int) -> None:
        super().__init__()
        self.inner, self.limit = inner, limit
        self.upscale, self.window_size, self.in_chans = inner.upscale, inner.window_size, inner.in_chans
        self.sizes: list[tuple[int, int]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.sizes.append((x.shape[-2], x.shape[-1]))
        if x.shape[-2] * x.shape[-1] > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB (injected)")
        return self.inner(x)


def test_out_of_memory_halves_the_tile_and_retries_the_image(x4: nn.Module) -> None:
    img = image(64, 64)
    model = OOMAbove(x4, limit=32 * 32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SwinIRNotice)
        out = swinir.restore(model, img, tile=None)
    said = [str(w.message) for w in caught if "out of memory" in str(w.message)]
    assert said == ["out of memory on cpu with a 64x64 tile: halved until tile 32 fitted"]
    assert max(h * w for h, w in model.sizes[1:]) <= 32 * 32
    np.testing.assert_array_equal(out, swinir.restore(x4, img, tile=32, overlap=8))  # overlap kept under a quarter
    with pytest.raises(swinir.SwinIRError, match="out of memory.*smallest tile"):
        swinir.restore(OOMAbove(x4, limit=8 * 8), img, tile=64)


def test_auto_tile_is_whole_for_small_images_and_runs(x4: nn.Module) -> None:
    img = image()
    np.testing.assert_array_equal(swinir.restore(x4, img, tile="auto"), swinir.restore(x4, img))


def test_cli_strength_size_and_blend(tmp_path: Path, x4: nn.Module) -> None:
    from swinir.checkpoint import save
    from swinir.cli import main

    src = tmp_path / "in.png"
    write_image(src, image())
    assert main(["restore", str(src), "-o", str(tmp_path / "a"), "--strength", "0.5", "--width", "50"]) == 0
    out = read_image(tmp_path / "a" / "in.png").array
    np.testing.assert_array_equal(out, swinir.restore(x4, image(), strength=0.5, width=50, precision="auto"))

    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    save(x4, a)
    other = swinir.load("builtin-x4")
    with torch.no_grad():
        for p in other.parameters():
            p.mul_(0.9)
    save(other, b)
    args = ["restore", str(src), "-o", str(tmp_path / "b"), "--model", str(a), "--blend-with", str(b), "--alpha", "0.3"]
    assert main(args) == 0
    blended = swinir.interpolate(a, b, 0.3)
    restored = swinir.restore(blended, image(), precision="auto")  # the CLI's default precision
    np.testing.assert_array_equal(read_image(tmp_path / "b" / "in.png").array, restored)
