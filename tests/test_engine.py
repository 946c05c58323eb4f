"""Restore engine: types, channel adaptation, tiling and blending, ensemble, precision.

Models are the golden checkpoints made with the original release code (random weights, small). The
denoising one has the residual path ``x + body(x)``, so its output carries the image and its error maps
show where tiling loses context; the x2 one checks the scale bookkeeping.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import swinir
from swinir import engine
from swinir.engine import ENSEMBLE_TRANSFORMS, axis_weights, restore
from swinir.errors import SwinIRError
from swinir.io import SwinIRNotice, read_image
from swinir.model import cpu as swinir_cpu
from swinir.model import native_bf16
from swinir.tiling import plan_axis, round_tile


@pytest.fixture(scope="module")
def sr2(golden: Path) -> nn.Module:
    return swinir.load(golden / "models" / "pixelshuffle_x2.pth", device="cpu")


@pytest.fixture(scope="module")
def dn(golden: Path) -> nn.Module:
    return swinir.load(golden / "models" / "denoise_color.pth", device="cpu")


@pytest.fixture(scope="module")
def dn_gray(golden: Path) -> nn.Module:
    return swinir.load(golden / "models" / "denoise_gray.pth", device="cpu")


@pytest.fixture(scope="module")
def crop(data_dir: Path) -> np.ndarray:
    """A 96x96 crop of a natural image (Set5 baby: face and textured cloth), uint8 RGB."""
    return read_image(data_dir / "Set5" / "HR" / "baby.png").array[200:296, 150:246].copy()


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 1.0) -> float:
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(peak**2 / mse)


def quiet(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SwinIRNotice)
        return restore(*args, **kwargs)


# ---------------------------------------------------------------------------------------------------
# types and layouts
# ---------------------------------------------------------------------------------------------------
def test_numpy_types_follow_the_input(sr2: nn.Module, crop: np.ndarray) -> None:
    img8 = crop[:24, :40]
    f = img8.astype(np.float32) / 255
    out_f = restore(sr2, f)
    assert out_f.shape == (48, 80, 3) and out_f.dtype == np.float32
    ref = sr2(torch.from_numpy(f).permute(2, 0, 1)[None]).detach()[0].permute(1, 2, 0).numpy()
    assert np.abs(out_f - ref).max() < 1e-5  # untiled: exactly the model

    out8 = restore(sr2, img8)
    assert out8.shape == (48, 80, 3) and out8.dtype == np.uint8
    expect8 = np.clip(np.rint(out_f * 255), 0, 255)
    assert np.abs(out8.astype(int) - expect8).max() <= 1

    img16 = img8.astype(np.uint16) * 257
    out16 = restore(sr2, img16)
    assert out16.dtype == np.uint16 and out16.shape == (48, 80, 3)
    assert np.abs(out16.astype(float) / 65535 - out_f).max() < 2e-5

    out64 = restore(sr2, f.astype(np.float64))
    assert out64.dtype == np.float64 and np.abs(out64 - out_f).max() < 1e-5


def test_narrowing_row_by_row_gives_the_bits_of_one_piece(
    sr2: nn.Module, crop: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    img8, img16 = crop[:24, :40], crop[:24, :40].astype(np.uint16) * 257
    whole8, whole16 = restore(sr2, img8), restore(sr2, img16)
    monkeypatch.setattr(engine, "FLUSH_CHUNK_BYTES", 3 * 80 * 4 * 5)  # 5 rows at a time: 10 pieces
    assert np.array_equal(restore(sr2, img8), whole8)
    assert np.array_equal(restore(sr2, img16), whole16)


def test_the_finite_check_sees_nan_and_infinity_and_keeps_huge_finite_values() -> None:
    y = torch.rand(2, 3, 50, 70)
    assert engine._finite(y)
    for bad in (float("nan"), float("inf"), -float("inf")):
        z = y.clone()
        z[1, 2, 49, 69] = bad
        assert not engine._finite(z)
    assert engine._finite(torch.full((4, 4), 3e38))  # the sum overflows; every value is finite
    both = torch.full((4,), 3e38)
    both[0] = -float("inf")
    assert not engine._finite(both)


def test_tensor_types_follow_the_input(sr2: nn.Module, crop: np.ndarray) -> None:
    chw = torch.from_numpy(crop[:16, :24]).permute(2, 0, 1).contiguous()
    f = chw.float() / 255
    out = restore(sr2, f)
    assert isinstance(out, torch.Tensor) and out.shape == (3, 32, 48) and out.dtype == torch.float32
    assert torch.allclose(out, sr2(f[None]).detach()[0], atol=1e-5)
    out.add_(1)  # a normal tensor, not an inference-mode one
    nchw = torch.stack([f, f.flip(-1)])
    outn = restore(sr2, nchw)
    assert outn.shape == (2, 3, 32, 48)
    assert torch.allclose(outn[0], sr2(f[None]).detach()[0], atol=1e-5)
    out8 = restore(sr2, chw)
    assert out8.dtype == torch.uint8 and out8.shape == (3, 32, 48)
    assert (out8.float() - (sr2(f[None]).detach()[0] * 255).round().clamp(0, 255)).abs().max() <= 1


def test_gray_image_on_color_model(sr2: nn.Module, crop: np.ndarray) -> None:
    g = crop[:16, :16, 1]
    with pytest.warns(SwinIRNotice, match="gray image given to a color model"):
        out = restore(sr2, g)
    assert out.shape == (32, 32) and out.dtype == np.uint8
    rgb = np.repeat(g[..., None], 3, axis=2)
    y = quiet(sr2, rgb.astype(np.float32) / 255)
    luma = y @ np.array([0.299, 0.587, 0.114], np.float32)
    assert np.abs(out.astype(float) - np.clip(np.rint(luma * 255), 0, 255)).max() <= 1
    with pytest.warns(SwinIRNotice):
        assert restore(sr2, g[..., None]).shape == (32, 32, 1)  # HxWx1 stays HxWx1


def test_color_image_on_gray_model(dn_gray: nn.Module, crop: np.ndarray) -> None:
    rgb = crop[:16, :16]
    with pytest.warns(SwinIRNotice, match="color image given to a gray model"):
        out = restore(dn_gray, rgb)
    assert out.shape == (16, 16) and out.dtype == np.uint8
    luma = (rgb.astype(np.float32) / 255) @ np.array([0.299, 0.587, 0.114], np.float32)
    ref = dn_gray(torch.from_numpy(luma)[None, None]).detach()[0, 0].numpy()
    assert np.abs(out.astype(float) - np.clip(np.rint(ref * 255), 0, 255)).max() <= 1


def test_alpha_channel_is_upscaled_separately(sr2: nn.Module, crop: np.ndarray) -> None:
    rgb = crop[:16, :20]
    alpha = np.zeros((16, 20), np.uint8)
    alpha[:, 10:] = 255
    out = restore(sr2, np.dstack([rgb, alpha]))
    assert out.shape == (32, 40, 4)
    assert np.array_equal(out[..., :3], restore(sr2, rgb))
    assert out[:, :18, 3].max() == 0 and out[:, 22:, 3].min() == 255  # edge stays sharp, ends intact


def test_bad_inputs_give_clear_errors(sr2: nn.Module) -> None:
    with pytest.raises(SwinIRError, match="NaN"):
        restore(sr2, np.full((8, 8, 3), np.nan, np.float32))
    with pytest.raises(SwinIRError, match="5 channels"):
        restore(sr2, np.zeros((8, 8, 5), np.uint8))
    with pytest.raises(SwinIRError, match="dtype"):
        restore(sr2, np.zeros((8, 8, 3), np.int32))
    with pytest.raises(SwinIRError, match="precision"):
        restore(sr2, np.zeros((8, 8, 3), np.uint8), precision="fp8")
    with pytest.raises(SwinIRError, match="tile"):
        restore(sr2, np.zeros((8, 8, 3), np.uint8), tile=-4)


def test_tiny_and_odd_sizes(sr2: nn.Module, crop: np.ndarray) -> None:
    for h, w in [(1, 1), (5, 7), (9, 33)]:
        img = crop[:h, :w].astype(np.float32) / 255
        untiled = restore(sr2, img)
        tiled = restore(sr2, img, tile=8, overlap=4)
        assert untiled.shape == tiled.shape == (2 * h, 2 * w, 3)
        assert np.isfinite(tiled).all()


def test_training_mode_is_restored(golden: Path, crop: np.ndarray) -> None:
    m = swinir.load(golden / "models" / "pixelshuffle_x2.pth", device="cpu")
    m.train()
    restore(m, crop[:8, :8])
    assert m.training


# ---------------------------------------------------------------------------------------------------
# tiling
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("multiple", [1, 7, 8])
def test_plan_axis_covers_and_aligns(multiple: int) -> None:
    for tile_req, ov_req in [(16, 4), (48, 16), (64, 32), (32, 31)]:
        t, o = round_tile(tile_req, ov_req, multiple)
        assert t % multiple == 0 and o % multiple == 0 and 0 <= o < t
        for length in range(1, 300, 7):
            spans = plan_axis(length, t, o, multiple)
            assert spans[0][0] == 0 and spans[-1][1] == length
            starts = [a for a, _ in spans]
            assert starts == sorted(set(starts))
            assert all(a % multiple == 0 for a in starts)
            assert all(b - a <= t + multiple - 1 for a, b in spans)
            for (_a0, b0), (a1, _) in zip(spans, spans[1:]):
                assert b0 - a1 >= o  # overlap at least as asked (no gaps)
            w = axis_weights(spans, scale=3)
            total = np.zeros(length * 3)
            for (a, _), wi in zip(spans, w):
                assert (wi >= 0).all()
                total[a * 3 : a * 3 + len(wi)] += wi
            assert np.allclose(total, 1.0, atol=1e-6)


def test_weights_are_feathered_not_boxed() -> None:
    spans = [(0, 48), (24, 72)]
    w0, w1 = axis_weights(spans)
    ov = w1[:24]
    assert ov[0] < 1e-5 and ov[-1] > 1 - 1e-5  # the new tile takes over across the overlap
    assert np.all(np.diff(ov) >= 0) and np.abs(np.diff(ov)).max() < 0.15  # smoothly, no step
    assert np.allclose(w0[24:] + w1[:24], 1.0)


class NearestUpscaler(nn.Module):
    """A translation-equivariant network (nearest-neighbour x``scale``): any correct tiling and blending
    must reproduce its untiled output exactly, so it checks the bookkeeping independently of context."""

    def __init__(self, scale: int, window: int) -> None:
        super().__init__()
        self.upscale, self.in_chans, self.window_size = scale, 3, window
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.interpolate(x, scale_factor=self.upscale, mode="nearest") + self.dummy


@pytest.mark.parametrize("scale,window", [(1, 8), (2, 7), (3, 4)])
def test_tiling_bookkeeping_is_exact(scale: int, window: int) -> None:
    model = NearestUpscaler(scale, window)
    img = RNG_IMG.integers(0, 256, size=(53, 71, 3)).astype(np.uint8)
    expected = np.repeat(np.repeat(img, scale, 0), scale, 1)
    for tile, overlap, batch in [(16, 4, 1), (16, 12, 3), (24, 8, 2), (8, 0, 1), (64, 32, 1), (1000, 32, 1)]:
        out = restore(model, img, tile=tile, overlap=overlap, batch_size=batch)
        assert np.array_equal(out, expected), (tile, overlap, batch)
    f = restore(model, img.astype(np.float32) / 255, tile=16, overlap=12)
    assert np.abs(f - expected / 255.0).max() < 1e-6


RNG_IMG = np.random.default_rng(5)


def _seam_mask(size: int, spans: list[tuple[int, int]], scale: int, radius: int = 2) -> np.ndarray:
    """Pixels within ``radius`` (output px) of a line where a tile starts or ends inside the image."""
    cuts = {a * scale for a, _ in spans if a > 0} | {b * scale for _, b in spans if b * scale < size}
    pos = np.arange(size) + 0.5
    near = np.zeros(size, bool)
    for c in cuts:
        near |= np.abs(pos - c) < radius
    return near[:, None] | near[None, :]


def _box_blend(model: nn.Module, img: np.ndarray, spans: list[tuple[int, int]], scale: int) -> np.ndarray:
    """Each tile run alone and averaged with equal weight where they overlap: the naive blend."""
    acc = np.zeros((img.shape[0] * scale, img.shape[1] * scale, 3), np.float64)
    cnt = np.zeros(acc.shape[:2] + (1,))
    for y0, y1 in spans:
        for x0, x1 in spans:
            acc[y0 * scale : y1 * scale, x0 * scale : x1 * scale] += restore(model, img[y0:y1, x0:x1])
            cnt[y0 * scale : y1 * scale, x0 * scale : x1 * scale] += 1
    return acc / cnt


@pytest.mark.parametrize("which", ["dn", "sr2"])
def test_tiled_matches_untiled_without_seams(which: str, request: pytest.FixtureRequest, crop: np.ndarray) -> None:
    model = request.getfixturevalue(which)
    s = model.upscale
    img = crop[16:80, 16:80].astype(np.float32) / 255
    full = restore(model, img)
    tiled = restore(model, img, tile=32, overlap=8)
    t, o = round_tile(32, 8, model.window_size)
    spans = plan_axis(64, t, o, model.window_size)
    assert len(spans) == 3  # a 3x3 grid: the test exercises real seams

    p_tiled = psnr(tiled, full)
    assert p_tiled >= 40.0
    near = _seam_mask(64 * s, spans, s)
    err = np.abs(tiled - full).mean(2)
    seam_ratio = err[near].mean() / err[~near].mean()
    assert seam_ratio < 1.5, f"error concentrated on tile borders: seam/elsewhere = {seam_ratio:.2f}"

    print(f"{which}: tiled vs untiled {p_tiled:.1f} dB, seam/elsewhere error {seam_ratio:.2f}")
    if which == "dn":  # the model whose output carries the image
        box = _box_blend(model, img, spans, s)
        err_box = np.abs(box - full).mean(2)
        box_ratio = err_box[near].mean() / err_box[~near].mean()
        assert box_ratio > 3.0  # the naive blend does show seams
        assert psnr(box, full) < p_tiled - 10.0
        print(f"{which}: box blend {psnr(box, full):.1f} dB, seam/elsewhere {box_ratio:.2f}")


def test_tiles_bound_what_reaches_the_model(golden: Path, crop: np.ndarray) -> None:
    model = swinir.load(golden / "models" / "denoise_color.pth", device="cpu")
    seen: list[tuple[int, ...]] = []
    model.register_forward_pre_hook(lambda m, args: seen.append(tuple(args[0].shape)))
    out = restore(model, crop[:64, :64], tile=32, overlap=8, batch_size=2)
    assert out.shape == (64, 64, 3)
    assert seen and max(s[-1] for s in seen) <= 32 + 7 and max(s[-2] for s in seen) <= 32 + 7
    assert max(s[0] for s in seen) == 2  # tiles of equal size were batched


def test_batching_does_not_change_the_result(dn: nn.Module, crop: np.ndarray) -> None:
    img = crop[:32, :48].astype(np.float32) / 255
    one = restore(dn, img, tile=16, overlap=8, batch_size=1)
    many = restore(dn, img, tile=16, overlap=8, batch_size=4)
    assert np.abs(one - many).max() < 1e-5


def test_progress_bar_over_tiles(dn: nn.Module, crop: np.ndarray, capsys: pytest.CaptureFixture[str]) -> None:
    restore(dn, crop[:32, :32], tile=16, overlap=8, progress=True)
    err = capsys.readouterr().err
    assert "tiles:" in err and "/9 [" in err and "tile/s" in err  # a bar over the 9 tiles


# ---------------------------------------------------------------------------------------------------
# self-ensemble and precision
# ---------------------------------------------------------------------------------------------------
def test_ensemble_is_the_average_of_eight_transformed_runs(sr2: nn.Module, crop: np.ndarray) -> None:
    img = crop[:24, :32].astype(np.float32) / 255
    runs = []
    for k, flip in ENSEMBLE_TRANSFORMS:
        x = np.rot90(img, k)
        x = x[:, ::-1] if flip else x
        y = restore(sr2, np.ascontiguousarray(x))
        y = y[:, ::-1] if flip else y
        runs.append(np.rot90(y, -k))
    manual = np.mean(runs, axis=0)
    ens = restore(sr2, img, ensemble=True)
    assert ens.shape == (48, 64, 3)
    assert np.abs(ens - manual).max() < 1e-5
    assert np.abs(ens - restore(sr2, img)).max() > 1e-3  # the transforms do change the output


def test_bf16_is_close_to_fp32(dn: nn.Module, crop: np.ndarray) -> None:
    img = crop[:48, :48].astype(np.float32) / 255
    fp32 = restore(dn, img)
    if not native_bf16():  # emulated bf16 is ~5x slower than fp32: the engine says so and runs fp32
        with pytest.warns(SwinIRNotice, match=r"this CPU has no native bf16 \(AVX512-BF16 or AMX\).*: using fp32$"):
            assert np.array_equal(restore(dn, img, precision="bf16"), fp32)
        return
    bf16 = restore(dn, img, precision="bf16")
    assert bf16.dtype == np.float32 and np.isfinite(bf16).all()
    assert 40.0 < psnr(bf16, fp32) < 200.0  # close, and really computed in reduced precision


def test_fp16_on_cpu_warns_and_stays_finite(dn: nn.Module, crop: np.ndarray) -> None:
    with pytest.warns(SwinIRNotice, match="fp16 is not supported on CPU"):
        out = restore(dn, crop[:24, :24], precision="fp16", device="cpu")
    assert out.dtype == np.uint8 and out.shape == (24, 24, 3)


class OverflowsInReducedPrecision(nn.Module):
    """A real SwinIR whose output overflows in one corner whenever it runs under autocast, as a model with
    large activations does in fp16."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.upscale, self.in_chans, self.window_size = inner.upscale, inner.in_chans, inner.window_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.inner(x)
        if torch.is_autocast_enabled(x.device.type):
            y = y.clone()
            y[..., :2, :2] = float("inf")
        return y


def test_non_finite_tiles_are_recomputed_in_fp32(
    dn: nn.Module, crop: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(swinir_cpu, "native_bf16", lambda: True)  # bf16 runs (emulated) also without it
    model = OverflowsInReducedPrecision(dn)
    img = crop[:24, :24].astype(np.float32) / 255
    with pytest.warns(SwinIRNotice, match=r"4 of 4 tile\(s\) overflowed in bfloat16 and were recomputed in fp32"):
        out = restore(model, img, tile=16, overlap=8, precision="bf16")
    assert np.isfinite(out).all()
    assert np.abs(out - restore(dn, img, tile=16, overlap=8)).max() < 1e-6


# ---------------------------------------------------------------------------------------------------
# RestoreOptions, input range, progress callback, outscale (issues 12 and 14)
# ---------------------------------------------------------------------------------------------------
def test_options_object_and_keywords_give_the_same_result() -> None:
    model = NearestUpscaler(2, 4)
    img = RNG_IMG.integers(0, 256, size=(21, 30, 3)).astype(np.uint8)
    opts = swinir.RestoreOptions(tile=8, overlap=4, batch_size=2)
    assert np.array_equal(restore(model, img, opts), restore(model, img, tile=8, overlap=4, batch_size=2))
    calls: list[tuple[int, int]] = []
    restore(model, img, opts, tile=16, on_tile=lambda done, total: calls.append((done, total)))  # keyword wins
    assert calls[-1] == (calls[-1][1], calls[-1][1]) and calls[-1][1] == 2 * 3  # 16-pixel tiles: 2 rows, 3 columns
    assert [d for d, _ in calls] == sorted({d for d, _ in calls})  # advances per batch of tiles


def test_api_rejects_overlap_not_smaller_than_tile_like_the_cli() -> None:
    from swinir.options import OptionsError

    model = NearestUpscaler(2, 4)
    with pytest.raises(OptionsError, match=r"overlap \(16\) must be smaller than the tile \(16\)") as ei:
        restore(model, np.zeros((8, 8, 3), np.uint8), tile=16, overlap=16)
    assert ei.value.field == "overlap" and "--" not in str(ei.value)
    with pytest.raises(TypeError, match="unknown restore option.*tiles"):
        restore(model, np.zeros((8, 8, 3), np.uint8), tiles=16)
    for bad in (dict(batch_size=0), dict(precision="fp8"), dict(outscale=0.0), dict(outscale=float("nan"))):
        with pytest.raises(OptionsError):
            swinir.RestoreOptions(**bad)  # type: ignore[arg-type]


def test_float_input_outside_unit_range_raises_naming_the_range() -> None:
    model = NearestUpscaler(1, 4)
    img = RNG_IMG.integers(0, 256, size=(8, 8, 3)).astype(np.float32)  # 0..255 floats: a common mistake
    img[0, 0, 0] = 255  # the top the message names, whatever the shared generator drew before this test
    with pytest.raises(SwinIRError, match=r"float images must hold values in \[0, 1\]; this one spans \[\d+, 255\]"):
        restore(model, img)
    with pytest.raises(SwinIRError, match=r"\[0, 1\]"):
        restore(model, torch.from_numpy(img).permute(2, 0, 1) / 127.5 - 1)  # [-1, 1] tensors too
    slightly = np.clip(img / 255, 0, 1) * 1.02 - 0.01  # resampling overshoot stays accepted
    assert restore(model, slightly).shape == (8, 8, 3)
    assert restore(model, img, allow_out_of_range=True).max() > 1  # the denoising protocol's unclipped input


def test_library_errors_name_no_cli_flags() -> None:
    import re

    import swinir.device
    import swinir.engine
    import swinir.evaluate
    import swinir.options
    import swinir.restore_plan

    for module in (swinir.engine, swinir.options, swinir.restore_plan, swinir.device, swinir.evaluate):
        source = Path(module.__file__).read_text()
        flags = re.findall(r"""["'][^"'\n]*\s--[a-z][^"'\n]*["']""", source)
        assert not flags, (module.__name__, flags)


def test_outscale_in_the_api_numpy_alpha_and_tensor() -> None:
    model = NearestUpscaler(2, 4)
    rgba = RNG_IMG.integers(0, 256, size=(10, 14, 4)).astype(np.uint8)
    rgba[..., 3] = 77
    out = restore(model, rgba, outscale=0.5)
    assert out.shape == (5, 7, 4) and np.all(out[..., 3] == 77)
    t = torch.from_numpy(rgba[..., :3]).permute(2, 0, 1).contiguous()
    assert tuple(restore(model, t, outscale=3).shape) == (3, 30, 42)
    assert torch.equal(restore(model, t, outscale=2), restore(model, t))  # the model's own size: no resampling
    with pytest.raises(SwinIRError, match="at least 1 pixel per side"):
        restore(model, rgba, outscale=0.01)


def test_nonfinite_output_raises_instead_of_a_notice() -> None:
    model = NearestUpscaler(1, 4)
    with torch.no_grad():
        model.dummy.fill_(float("nan"))
    with pytest.raises(SwinIRError, match="NaN or infinite even in fp32"):
        restore(model, np.zeros((8, 8, 3), np.uint8))
