"""The C LayerNorm kernel (swinir.kernels.layer_norm) against F.layer_norm, and the chunked CPU path's
pre-norms that use it (SwinIR's before qkv and fc1, HAT's before fc1), fp32 and under bf16 autocast."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
import torch
import torch.nn.functional as F

import swinir.model.cpu as swinir_cpu
from swinir import kernels
from swinir.model import SwinIR
from swinir.model.hat import HAT

needs_kernel = pytest.mark.skipif(not kernels.available(), reason=f"CPU kernels not used here: {kernels.status()}")
BF16 = torch.bfloat16


def _bf16_ulp(v: torch.Tensor) -> torch.Tensor:
    """The spacing of bf16 numbers (8 significant bits) at |v|."""
    return torch.pow(2.0, torch.floor(torch.log2(v.abs().clamp_min(1e-30))) - 7)


def _rows(rows: int, c: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, c, generator=g) * 3 + 1.5
    return x, torch.randn(c, generator=g), torch.randn(c, generator=g)


@needs_kernel
@pytest.mark.parametrize("threads", (1, 2))
@pytest.mark.parametrize("c", (16, 17, 48, 60, 96, 180, 256, 7, 301))
def test_fp32_equals_f_layer_norm(c: int, threads: int) -> None:
    """fp32 rows, fp32 out: F.layer_norm to a few fp32 ulps, for the models' widths (48, 60, 180), odd ones,
    and 1031 rows (not a multiple of the four rows a step nor of the threads; enough for a parallel split)."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        x, w, b = _rows(1031, c, c)
        got = kernels.layer_norm(x, w, b, 1e-5, torch.float32)
    finally:
        torch.set_num_threads(before)
    want = F.layer_norm(x, (c,), w, b, 1e-5)
    assert got.dtype == torch.float32 and got.shape == x.shape
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    exact = F.layer_norm(x.double(), (c,), w.double(), b.double(), 1e-5)
    assert (got.double() - exact).abs().max().item() < 1e-5


@needs_kernel
@pytest.mark.parametrize("threads", (1, 2))
@pytest.mark.parametrize("c", (16, 48, 60, 180, 256, 33, 1100))  # 1100: bf16 rows too wide to widen first
@pytest.mark.parametrize("x_dtype", (torch.float32, BF16))
def test_bf16_output_is_the_rounded_fp32_result(c: int, x_dtype: torch.dtype, threads: int) -> None:
    """bf16 out is the kernel's own fp32 result rounded as ``.to(torch.bfloat16)`` rounds, bit for bit; against
    PyTorch's LayerNorm then cast it differs only where the two fp32 results straddle a rounding boundary:
    by one bf16 ulp, in a few elements per 100k (or by less than 1e-6 where the output is near zero)."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        x, w, b = _rows(1031, c, c + 1)
        x = x.to(x_dtype)
        got = kernels.layer_norm(x, w, b, 1e-5, BF16)
        own = kernels.layer_norm(x, w, b, 1e-5, torch.float32)
    finally:
        torch.set_num_threads(before)
    assert got.dtype == BF16
    assert torch.equal(got, own.to(BF16))
    ref32 = F.layer_norm(x.float(), (c,), w, b, 1e-5)
    want = ref32.to(BF16)
    diff = (got.float() - want.float()).abs()
    assert bool((diff <= _bf16_ulp(ref32) + 1e-6).all())
    assert (got != want).sum().item() <= max(2, x.numel() // 5000)
    if x_dtype == BF16:  # PyTorch's own bf16 -> bf16 LayerNorm (what the autocast path ran before)
        torch.testing.assert_close(got, F.layer_norm(x, (c,), w, b, 1e-5), atol=1e-6, rtol=2**-7)


@needs_kernel
def test_bf16_rounding_ties_to_even_and_nan() -> None:
    """Rows built so that their normalised values sit exactly on bf16 rounding ties (and a NaN row): the
    ties go to even as in ``.to(torch.bfloat16)``, the NaN stays NaN."""
    c = 16
    # w = 0, b = the value to round: y = b exactly, whatever the row
    ties = torch.tensor([1 + 2**-8, 1 + 3 * 2**-8, -(1 + 2**-8), 2**-8 * (1 + 2**-8)] * 4)
    x = torch.randn(5, c)
    x[4, 3] = float("nan")
    got = kernels.layer_norm(x, torch.zeros(c), ties, 1e-5, BF16)
    assert torch.equal(got[:4], ties.to(BF16).expand(4, c))
    assert bool(got[4].isnan().all())


@needs_kernel
def test_without_affine_and_with_a_large_offset() -> None:
    """No weight and bias (elementwise_affine=False); rows far from zero (mean 1000) still normalise to the
    float64 result about as closely as the fp32 input's own rounding allows (x - mean is rounded at 1000's
    ulp, 6e-5), no worse than PyTorch's (the corrected two-pass algorithm: no E[x^2] - mean^2 cancellation,
    the mean's rounding fixed by the deviations' sum)."""
    torch.manual_seed(0)
    x = torch.randn(257, 60) + 1000.0
    got = kernels.layer_norm(x, None, None, 1e-6, torch.float32)
    exact = F.layer_norm(x.double(), (60,), None, None, 1e-6)
    error = (got.double() - exact).abs().max().item()
    assert error < 6e-5
    assert error <= (F.layer_norm(x, (60,), None, None, 1e-6).double() - exact).abs().max().item()


@needs_kernel
def test_empty_and_single_row() -> None:
    w, b = torch.randn(48), torch.randn(48)
    assert kernels.layer_norm(torch.empty(0, 48), w, b, 1e-5, BF16).shape == (0, 48)
    x = torch.randn(1, 1, 48)
    torch.testing.assert_close(kernels.layer_norm(x, w, b, 1e-5, torch.float32), F.layer_norm(x, (48,), w, b))


@needs_kernel
def test_rejects_what_it_cannot_do() -> None:
    x, w, b = _rows(8, 48, 0)
    with pytest.raises(ValueError, match="fp32 or bf16 x"):
        kernels.layer_norm(x.half(), w, b, 1e-5, torch.float32)
    with pytest.raises(ValueError, match="contiguous"):
        kernels.layer_norm(x.t(), w, b, 1e-5, torch.float32)
    with pytest.raises(ValueError, match="weight"):
        kernels.layer_norm(x, w[:47], b, 1e-5, torch.float32)
    with pytest.raises(ValueError, match="bias"):
        kernels.layer_norm(x, w, b.double(), 1e-5, torch.float32)
    with pytest.raises(ValueError, match="writes fp32 or bf16"):
        kernels.layer_norm(x, w, b, 1e-5, torch.float16)


@contextlib.contextmanager
def _counting() -> contextlib.AbstractContextManager[list[tuple[torch.dtype, torch.dtype]]]:  # type: ignore[misc]
    """Records (input dtype, output dtype) of every call of the LayerNorm kernel, alone or with the residual
    add before it (``add_layer_norm``)."""
    calls: list[tuple[torch.dtype, torch.dtype]] = []
    real, real_add = kernels.layer_norm, kernels.add_layer_norm

    def spy(
        x: torch.Tensor, w: torch.Tensor | None, b: torch.Tensor | None, eps: float, dt: torch.dtype
    ) -> torch.Tensor:
        calls.append((x.dtype, dt))
        return real(x, w, b, eps, dt)

    def spy_add(
        x: torch.Tensor, r: torch.Tensor, w: torch.Tensor | None, b: torch.Tensor | None, eps: float, dt: torch.dtype
    ) -> torch.Tensor:
        calls.append((x.dtype, dt))
        return real_add(x, r, w, b, eps, dt)

    kernels.layer_norm, kernels.add_layer_norm = spy, spy_add  # type: ignore[assignment]
    try:
        yield calls
    finally:
        kernels.layer_norm, kernels.add_layer_norm = real, real_add  # type: ignore[assignment]


@needs_kernel
@pytest.mark.parametrize("threads", (1, 2))
@pytest.mark.parametrize("c", (7, 16, 17, 60, 180, 301))
@pytest.mark.parametrize("out_dtype", (torch.float32, BF16))
def test_add_layer_norm_is_the_add_then_the_norm(c: int, threads: int, out_dtype: torch.dtype) -> None:
    """add_layer_norm: x becomes x + residual (fp32, bit for bit), and the output is the kernel's LayerNorm of
    that sum, bit for bit (1031 rows: a tail of the four-row blocks, enough rows for a parallel split);
    the residual is left alone."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        x, w, b = _rows(1031, c, c + 2)
        res = torch.randn(1031, c) * 2
        res0, want_sum = res.clone(), x + res
        got = kernels.add_layer_norm(x, res, w, b, 1e-5, out_dtype)
        want = kernels.layer_norm(want_sum, w, b, 1e-5, out_dtype)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(x, want_sum) and torch.equal(res, res0)
    assert got.dtype == out_dtype and torch.equal(got, want)
    if out_dtype == torch.float32:
        torch.testing.assert_close(got, F.layer_norm(want_sum, (c,), w, b, 1e-5), atol=1e-5, rtol=1e-5)


@needs_kernel
def test_add_layer_norm_rejects_what_it_cannot_do() -> None:
    x, w, b = _rows(8, 48, 0)
    with pytest.raises(ValueError, match="adds fp32 of one shape"):
        kernels.add_layer_norm(x, x[:4], w, b, 1e-5, torch.float32)
    with pytest.raises(ValueError, match="adds fp32 of one shape"):
        kernels.add_layer_norm(x.to(BF16), x.to(BF16), w, b, 1e-5, torch.float32)
    with pytest.raises(ValueError, match="weight"):
        kernels.add_layer_norm(x, x.clone(), w[:47], b, 1e-5, torch.float32)


@pytest.fixture
def model(small_kernel_config: dict[str, Any]) -> SwinIR:
    torch.manual_seed(0)
    return SwinIR(**small_kernel_config).eval()


@needs_kernel
def test_swinir_fp32_pre_norms_take_the_kernel_and_match(monkeypatch: pytest.MonkeyPatch, model: SwinIR) -> None:
    """fp32: both pre-norms of every block go through the kernel (fp32 in and out), and the output stays
    within 1e-5 of PyTorch's LayerNorm on the same path."""
    x = torch.rand(2, 3, 27, 43)
    with torch.no_grad():
        with _counting() as calls:
            got = model(x)
        monkeypatch.setattr(swinir_cpu, "LAYER_NORM_KERNEL", False)
        with _counting() as off:
            want = model(x)
    blocks = sum(len(layer.residual_group.blocks) for layer in model.layers)
    assert blocks == 4 and len(calls) >= 2 * blocks and set(calls) == {(torch.float32, torch.float32)}
    assert off == []
    assert (got - want).abs().max().item() < 1e-5
    assert not torch.equal(got, want)  # the kernel really ran


@needs_kernel
def test_swinir_bf16_autocast_pre_norms_write_bf16(monkeypatch: pytest.MonkeyPatch, model: SwinIR) -> None:
    """bf16 autocast: the kernel writes the pre-norms in bf16 for the bf16 linears; the output stays close
    to the PyTorch-LayerNorm path (bf16 rounding of a few elements differs by one ulp)."""
    x = torch.rand(1, 3, 40, 32)
    with torch.inference_mode(), torch.autocast("cpu", BF16):
        with _counting() as calls:
            got = model(x)
        monkeypatch.setattr(swinir_cpu, "LAYER_NORM_KERNEL", False)
        want = model(x)
    assert calls and all(out == BF16 for _, out in calls)
    assert (got.float() - want.float()).abs().max().item() < 2e-2


@needs_kernel
def test_fallbacks_never_call_the_kernel(model: SwinIR) -> None:
    """With the kernels switched off, with gradients (training), and in plain fp16-free export-style runs
    the norms are PyTorch's, and gradients flow."""
    x = torch.rand(1, 3, 16, 16)
    with _counting() as calls:
        with torch.no_grad(), kernels.disabled():
            model(x)
        y = model(x)
        y.mean().backward()
    assert calls == []
    assert model.layers[0].residual_group.blocks[0].norm1.weight.grad is not None  # type: ignore[union-attr,index]


@needs_kernel
def test_norm_falls_back_for_what_the_kernel_does_not_take() -> None:
    """cpu.norm: fp16 rows, bf16 norm weights, non-contiguous rows or no kernel in the Exec take PyTorch's
    LayerNorm and give its result."""
    ln = torch.nn.LayerNorm(48)
    ex = swinir_cpu.Exec(norm_dtype=torch.float32)
    x = torch.randn(64, 96)[:, :48]
    with torch.no_grad(), _counting() as calls:
        torch.testing.assert_close(swinir_cpu.norm(ln, x, ex), ln(x))
        torch.testing.assert_close(swinir_cpu.norm(ln, x.contiguous(), swinir_cpu.PLAIN), ln(x))
        xh = x.contiguous().half()
        assert swinir_cpu.norm(ln, xh, ex).dtype == torch.float16
        swinir_cpu.norm(ln, x.contiguous(), ex)
    assert len(calls) == 1


@needs_kernel
def test_hat_pre_norm_before_fc1_takes_the_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    model = HAT(embed_dim=12, depths=[2, 1], num_heads=[2, 3], window_size=4, upscale=2, img_size=16, squeeze_factor=4)
    model = model.eval()
    x = torch.rand(1, 3, 20, 24)
    with torch.no_grad():
        with _counting() as calls:
            got = model(x)
        monkeypatch.setattr(swinir_cpu, "LAYER_NORM_KERNEL", False)
        want = model(x)
    assert len(calls) == 2 * 3  # norm1 (the whole map, before the chunks) and norm2 (per chunk) of 3 blocks
    assert (got - want).abs().max().item() < 1e-5
