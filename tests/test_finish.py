"""Final size and strength (swinir.finish) and the memory-fitted tile (swinir.fit)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import swinir
import swinir.io
from swinir.finish import apply_strength, apply_strength_tensor, final_size
from swinir.fit import auto_tile, estimate_bytes_per_pixel, smaller_tile


@pytest.mark.parametrize(
    "kwargs, size",
    [
        ({}, (400, 600)),
        ({"outscale": 1}, (100, 150)),
        ({"outscale": 2.5}, (250, 375)),
        ({"out_width": 300}, (200, 300)),
        ({"out_height": 50}, (50, 75)),
        ({"out_width": 64, "out_height": 64}, (64, 64)),
        ({"long_side": 1000}, (667, 1000)),
        ({"max_megapixels": 0.1}, (258, 387)),
        ({"long_side": 1000, "max_megapixels": 0.5}, (577, 865)),
    ],
)
def test_final_size(kwargs: dict, size: tuple[int, int]) -> None:
    got = final_size(100, 150, 4, **kwargs)
    assert got == size
    if "max_megapixels" in kwargs:
        assert got[0] * got[1] <= kwargs["max_megapixels"] * 1e6
    if "out_width" not in kwargs or "out_height" not in kwargs:
        assert got[1] / got[0] == pytest.approx(1.5, rel=0.01)  # aspect kept


def test_final_size_refuses_two_ways_of_saying_it() -> None:
    with pytest.raises(swinir.SwinIRError, match="only one of outscale and long_side"):
        final_size(10, 10, 2, outscale=2, long_side=30)


def test_strength_mixes_with_the_resized_input() -> None:
    rng = np.random.default_rng(0)
    src = rng.integers(0, 256, (8, 12, 3), dtype=np.uint8)
    restored = rng.random((32, 48, 3), dtype=np.float32)
    base = swinir.io.resize(src.astype(np.float32) / 255, 32, 48)
    np.testing.assert_allclose(apply_strength(restored.copy(), src, 0.0), base, atol=1e-6)
    np.testing.assert_array_equal(apply_strength(restored.copy(), src, 1.0), restored)
    np.testing.assert_allclose(apply_strength(restored.copy(), src, 0.3), base + 0.3 * (restored - base), atol=1e-6)
    t = apply_strength_tensor(torch.from_numpy(restored).permute(2, 0, 1), torch.from_numpy(src).permute(2, 0, 1), 0.0)
    np.testing.assert_allclose(t.permute(1, 2, 0).numpy(), base, atol=0.02)  # torch vs OpenCV bicubic


def test_auto_tile_follows_free_memory() -> None:
    model = swinir.load("builtin-x4", device="cpu")
    per_px = estimate_bytes_per_pixel(model) * 1.25
    cpu = torch.device("cpu")
    assert auto_tile(model, cpu, 100, 100, free=10 << 30) is None  # fits whole
    tile = auto_tile(model, cpu, 2048, 2048, free=1 << 30)
    assert tile is not None and tile % 8 == 0 and tile * tile * per_px <= 0.5 * (1 << 30)
    assert auto_tile(model, cpu, 2048, 2048, free=4 << 30) > tile  # more memory, larger tile
    assert auto_tile(model, cpu, 2048, 2048, free=1 << 20) == 16  # never below two windows


def test_smaller_tile_halves_to_window_multiples() -> None:
    assert smaller_tile(256, 1000, 1000, 8) == 128
    assert smaller_tile(None, 300, 200, 8) == 144
    assert smaller_tile(24, 1000, 1000, 8) is None
