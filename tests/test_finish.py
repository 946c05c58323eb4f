"""Final size and strength (swinir.finish) and the tile fitted to memory and time (swinir.fit)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import swinir
import swinir.io
from swinir.finish import apply_strength, apply_strength_tensor, final_size
from swinir.fit import (
    SECONDS_PER_STEP,
    auto_tile,
    estimate_bytes_per_pixel,
    measured_rate,
    smaller_tile,
)
from swinir.model.flops import flops, reconstruction_steps
from swinir.paths import released_configurations
from swinir.tiling import plan_axis, tiles


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
    fast = math.inf  # no time bound: memory alone
    assert auto_tile(model, cpu, 100, 100, free=10 << 30, rate=fast) is None  # fits whole
    tile = auto_tile(model, cpu, 2048, 2048, free=1 << 30, rate=fast)
    assert tile is not None and tile % 8 == 0 and tile * tile * per_px <= 0.5 * (1 << 30)
    assert auto_tile(model, cpu, 2048, 2048, free=4 << 30, rate=fast) > tile  # more memory, larger tile
    assert auto_tile(model, cpu, 2048, 2048, free=1 << 20, rate=fast) == 16  # never below two windows
    assert auto_tile(model, cpu, 2048, 2048, free=1 << 20, rate=1e9) == 16  # the time bound never grows it


def _seconds(model: torch.nn.Module, h: int, w: int, rate: float) -> float:
    """Seconds of the longest wait between two progress reports of an h x w forward at ``rate``: one block
    (the bar moves per block and group), or a step of the upsampler after the last group."""
    tail = reconstruction_steps(model.spec, h, w)
    return max((flops(model.spec, h, w) - sum(tail)) / sum(model.spec.depths), max(tail)) / rate


@pytest.mark.parametrize("rate", (1e9, 3e9, 10e9, 30e9, 80e9))
@pytest.mark.parametrize("name", ("builtin-x4", "real_M_x4"))
def test_auto_tile_bounds_the_time_per_step_on_cpu(rate: float, name: str) -> None:
    """Issue 26: the bar moves at least every SECONDS_PER_STEP, as each block and residual group finishes; of
    the tilings under that bound (and the memory bound), the one that costs least, tiles laid as the engine
    lays them; the whole image when it is under the bound. The rate is injected: the choice, not the clock,
    is tested."""
    if name.startswith("builtin"):
        model = swinir.load(name, device="cpu")
    else:
        model = swinir.SwinIR(**released_configurations()[name]["config"])
    cpu = torch.device("cpu")
    h, w, window, bound = 1200, 1600, 8, SECONDS_PER_STEP
    tile = auto_tile(model, cpu, h, w, free=64 << 30, rate=rate, overlap=32)
    if tile is None:  # the whole image, one forward: only when each of its steps is quick enough
        assert _seconds(model, h, w, rate) <= bound
        return
    assert tile % window == 0
    laid = tiles(h, w, tile, 32, window)
    assert len(laid) > 1
    assert all(_seconds(model, th, tw, rate) <= bound for th, tw in laid) or tile == 8 * 32

    def total(t: int) -> int:  # the engine's own layout
        return sum(flops(model.spec, th, tw) for th, tw in tiles(h, w, t, 32, window))

    fitting = [
        t
        for t in range(256, 1600 + 1, 8)
        if all(_seconds(model, th, tw, rate) <= bound for th, tw in tiles(h, w, t, 32, 8))
    ]
    if fitting:
        assert total(tile) == min(total(t) for t in fitting)
    else:
        assert tile == 8 * 32  # nothing that quick: the smallest tile the overlaps allow
    # a batch of 4 tiles runs each block over all 4: a tile 4x cheaper; the ensemble's passes report each
    # their own blocks, so they do not shrink it
    smaller = auto_tile(model, cpu, h, w, free=64 << 30, rate=rate, overlap=32, batch_size=4)
    assert smaller is not None and smaller <= tile
    assert all(_seconds(model, th, tw, rate) * 4 <= bound for th, tw in tiles(h, w, smaller, 32, 8)) or smaller == 256


def test_tiles_are_only_as_long_as_they_need_to_be() -> None:
    """1200 px in tiles of up to 1024 with 32 px overlaps: two of 616, overlapping by 32, not two of 1024
    that compute 848 px twice; the limit still holds and the overlap is still at least what was asked."""
    assert plan_axis(1200, 1024, 32, 8) == [(0, 616), (584, 1200)]
    for length in range(100, 2000, 37):
        for tile in (64, 256, 424, 1024):
            spans = plan_axis(length, tile, 32, 8)
            assert all(b - a <= tile + 7 for a, b in spans)
            assert all(b0 - a1 >= 32 for (_, b0), (a1, _) in zip(spans, spans[1:]))
            if len(spans) > 1:  # no shorter tile would do with as many tiles
                laid = spans[0][1] - spans[0][0]  # the last may be up to 7 px longer, to end at the border
                assert len(spans) * (laid - 8) - (len(spans) - 1) * 32 < length


def test_auto_tile_on_a_photo_is_the_whole_photo_when_its_groups_are_quick() -> None:
    """The 512x384 photo of benchmarks/photo.py at a 2-core CPU's rate (about 30 GFLOP/s of counted FLOPs):
    one forward, which computes each pixel once, instead of 256 px tiles that computed it about twice."""
    model = swinir.load("builtin-x4", device="cpu")
    cpu = torch.device("cpu")
    assert _seconds(model, 384, 512, 30e9) <= SECONDS_PER_STEP
    assert auto_tile(model, cpu, 384, 512, free=64 << 30, rate=30e9, overlap=32) is None
    tile = auto_tile(model, cpu, 384, 512, free=64 << 30, rate=1e9, overlap=32)  # a slow CPU: tiles again
    assert tile is not None and tile < 512


def test_auto_tile_time_bound_edges() -> None:
    model = swinir.load("builtin-x4", device="cpu")
    cpu = torch.device("cpu")
    assert auto_tile(model, cpu, 64, 48, free=64 << 30, rate=1e12) is None  # quick and small: whole
    # nothing that quick: the smallest tile whose overlaps do not swamp it (8 overlaps), or two windows
    assert auto_tile(model, cpu, 1000, 1000, free=64 << 30, rate=1e3, overlap=32) == 256
    assert auto_tile(model, cpu, 1000, 1000, free=64 << 30, rate=1e3, overlap=0) == 16
    # a memory bound tighter than the time bound wins
    assert auto_tile(model, cpu, 2048, 2048, free=1 << 20, rate=1e15) == 16
    # the rate the engine uses when none is given: one probe forward, kept per model and precision
    rate = measured_rate(model)
    assert 0 < rate < math.inf and measured_rate(model) == rate


def test_smaller_tile_halves_to_window_multiples() -> None:
    assert smaller_tile(256, 1000, 1000, 8) == 128
    assert smaller_tile(None, 300, 200, 8) == 144
    assert smaller_tile(24, 1000, 1000, 8) is None


def test_the_probe_stops_after_one_forward_when_that_already_settles_the_choice() -> None:
    model = swinir.load("builtin-x4", device="cpu")
    calls: list[int] = []
    model.register_forward_hook(lambda *_: calls.append(1))
    first = measured_rate(model, budget=1e9, enough=1.0)  # any real rate passes 1 FLOP/s: one forward
    assert len(calls) == 1 and first > 1.0
    assert measured_rate(model, budget=1e9, enough=2.0) == first and len(calls) == 1  # the lower bound answers
    exact = measured_rate(model, budget=1e9)  # a caller that needs the rate itself: both forwards
    assert len(calls) == 3 and exact >= first * 0.5
    assert measured_rate(model, budget=1e9, enough=math.inf) == exact and len(calls) == 3
    unreachable = swinir.load("builtin-x4", device="cpu")
    unreachable.register_forward_hook(lambda *_: calls.append(2))
    measured_rate(unreachable, budget=1e9, enough=math.inf)  # never reached: both forwards
    assert calls.count(2) == 2
