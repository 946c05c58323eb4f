"""The hand-written CPU window-attention kernel (swinir.kernels) and the fp32 CPU path that uses it."""

from __future__ import annotations

import copy
import io
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

import swinir.model as swinir_model
import swinir.model.cpu as swinir_cpu
from swinir import kernels
from swinir.model import SwinIR
from swinir.reference import ReferenceSwinIR

needs_kernel = pytest.mark.skipif(not kernels.available(), reason=f"CPU kernel not used here: {kernels.status()}")


def _sdpa(qkv: torch.Tensor, bias: torch.Tensor, counts: list[int], heads: int, scale: float) -> torch.Tensor:
    bn, n, c3 = qkv.shape
    d = c3 // 3 // heads
    q, k, v = qkv.view(bn, n, 3, heads, d).permute(2, 0, 3, 1, 4).unbind(0)
    outs, s = [], 0
    for g, cnt in enumerate(counts):
        o = F.scaled_dot_product_attention(
            q[s : s + cnt], k[s : s + cnt], v[s : s + cnt], attn_mask=bias[g][None], scale=scale
        )
        outs.append(o.transpose(1, 2))
        s += cnt
    return torch.cat(outs).reshape(bn, n, heads * d)


@needs_kernel
@pytest.mark.parametrize("threads", (1, 2))
@pytest.mark.parametrize(
    "n,heads,d,counts",
    [
        (64, 6, 30, [9, 3, 3, 1]),  # window 8, the M models' heads, four shift-mask groups
        (49, 6, 30, [4, 2, 2, 1]),  # window 7 (JPEG models): partial 16-lane tiles
        (64, 6, 10, [5]),  # lightweight models' head dim: one masked value tile
        (36, 3, 32, [2, 1, 1, 1]),  # head dim at the limit, n below 48
        (64, 8, 16, [3, 1]),
    ],
)
def test_kernel_equals_sdpa(n: int, heads: int, d: int, counts: list[int], threads: int) -> None:
    g = torch.Generator().manual_seed(n * d + heads)
    bn = sum(counts)
    qkv = torch.randn(bn, n, 3 * heads * d, generator=g)
    bias = torch.randn(len(counts), heads, n, n, generator=g)
    if len(counts) > 1:
        bias[1:, :, : n // 2, n // 2 :] = -100.0  # the original's mask value
    group_end = torch.tensor(counts).cumsum(0)
    scale = d**-0.5
    ref = _sdpa(qkv, bias, counts, heads, scale)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        out = torch.full((bn, n, heads * d), float("nan"))
        kernels.window_attention(qkv, bias, group_end, 0, out, heads, scale)
        # a chunk that starts inside the second group: windows are looked up by their absolute index
        first = counts[0] - 1
        part = torch.full((bn - first, n, heads * d), float("nan"))
        kernels.window_attention(qkv[first:].contiguous(), bias, group_end, first, part, heads, scale)
    finally:
        torch.set_num_threads(before)
    assert torch.isfinite(out).all()
    assert (out - ref).abs().max().item() < 2e-5
    assert torch.equal(part, out[first:])


@needs_kernel
@pytest.mark.parametrize("n,heads,d", [(64, 4, 12), (49, 6, 10), (64, 3, 16), (64, 6, 30), (36, 3, 32)])
def test_transposed_path_and_bf16_io(n: int, heads: int, d: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Head dims <= TRANSPOSED_HEAD_DIM (all, by default) take the transposed path: the same numbers as the
    row-wise path but for the order of the softmax sum. bf16 qkv/out give exactly the fp32 kernel on the widened qkv, rounded to
    bf16 as PyTorch rounds."""
    g = torch.Generator().manual_seed(n + heads * d)
    counts = [3, 2]
    qkv = torch.randn(sum(counts), n, 3 * heads * d, generator=g)
    bias = torch.randn(len(counts), heads, n, n, generator=g)
    bias[1:, :, : n // 2, n // 2 :] = -100.0
    group_end = torch.tensor(counts).cumsum(0)
    out = torch.empty(sum(counts), n, heads * d)
    kernels.window_attention(qkv, bias, group_end, 0, out, heads, d**-0.5)
    monkeypatch.setattr(kernels, "TRANSPOSED_HEAD_DIM", 0)
    rowwise = torch.empty_like(out)
    kernels.window_attention(qkv, bias, group_end, 0, rowwise, heads, d**-0.5)
    monkeypatch.undo()
    assert 0 < (out - rowwise).abs().max().item() < 4e-6  # outputs up to ~3: a few ulp
    half = qkv.bfloat16()
    widened = torch.empty_like(out)
    kernels.window_attention(half.float(), bias, group_end, 0, widened, heads, d**-0.5)
    monkeypatch.setattr(kernels, "BF16_DOT", False)  # the scores by fp32 multiply-adds: exactly as from fp32
    narrow = torch.empty(out.shape, dtype=torch.bfloat16)
    kernels.window_attention(half, bias, group_end, 0, narrow, heads, d**-0.5)
    assert torch.equal(narrow, widened.bfloat16())
    wide = torch.empty_like(out)
    kernels.window_attention(half, bias, group_end, 0, wide, heads, d**-0.5)
    assert torch.equal(wide, widened)
    monkeypatch.setattr(kernels, "BF16_DOT", True)  # AVX512-BF16 dot products where built and present
    dot = torch.empty_like(out)
    kernels.window_attention(half, bias, group_end, 0, dot, heads, d**-0.5)
    assert (dot - widened).abs().max().item() < 4e-6
    if kernels.isa() == "avx512" and "avx512_bf16" in kernels.cpu_flags() and d % 2 == 0:
        assert not torch.equal(dot, widened)  # the dot products ran (they round their pairwise sums)
    dot_bf16 = torch.empty(out.shape, dtype=torch.bfloat16)
    kernels.window_attention(half, bias, group_end, 0, dot_bf16, heads, d**-0.5)
    assert torch.equal(dot_bf16, dot.bfloat16())
    monkeypatch.setattr(kernels, "AMX_SCORES", False)  # the dot products without AMX tiles: as close
    vdp = torch.empty_like(out)
    kernels.window_attention(half, bias, group_end, 0, vdp, heads, d**-0.5)
    assert (vdp - widened).abs().max().item() < 4e-6


@needs_kernel
def test_bf16_linears_feed_the_kernel_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under bf16 autocast with oneDNN's bf16 linears the kernel gets qkv as the linear wrote it (bf16, no
    fp32 copy) and hands bf16 to the output projection; the output stays within bf16 rounding of the path
    before (qkv converted to fp32, the row-wise kernel, an fp32 result cast for the projection)."""
    if not swinir_cpu.ONEDNN_BF16:
        pytest.skip("oneDNN's bf16 linears are not used here")
    cfg = dict(upscale=2, in_chans=3, img_size=32, window_size=8, embed_dim=48, depths=[2], num_heads=[4])
    torch.manual_seed(0)
    model = SwinIR(**cfg, mlp_ratio=2, upsampler="pixelshuffledirect").eval()
    x = torch.rand(1, 3, 32, 48)
    seen: list[tuple[torch.dtype, torch.dtype]] = []
    real = kernels.window_attention

    def spy(
        qkv: torch.Tensor, bias: torch.Tensor, ge: torch.Tensor, first: int, out: torch.Tensor, *rest: object
    ) -> None:
        seen.append((qkv.dtype, out.dtype))
        real(qkv, bias, ge, first, out, *rest)  # type: ignore[arg-type]

    monkeypatch.setattr(kernels, "window_attention", spy)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        new = model(x).float()
        assert seen and set(seen) == {(torch.bfloat16, torch.bfloat16)}
        seen.clear()
        monkeypatch.setattr(swinir_cpu, "KERNEL_BF16_IO", False)
        monkeypatch.setattr(kernels, "TRANSPOSED_HEAD_DIM", 0)
        old = model(x).float()
        assert set(seen) == {(torch.float32, torch.float32)}
    assert (new - old).abs().max().item() < 2e-2
    assert (new - old).abs().mean().item() < 1e-3


@needs_kernel
def test_kernel_rejects_what_it_cannot_do() -> None:
    qkv, out = torch.zeros(2, 64, 3 * 40), torch.zeros(2, 64, 40)
    bias, group_end = torch.zeros(1, 1, 64, 64), torch.tensor([2])
    with pytest.raises(ValueError, match="unsupported"):  # head dim 40 > 32
        kernels.window_attention(qkv, bias, group_end, 0, out, 1, 1.0)
    with pytest.raises(TypeError, match="fp32"):
        kernels.window_attention(qkv.double(), bias, group_end, 0, out, 2, 1.0)
    with pytest.raises(ValueError, match="contiguous"):
        kernels.window_attention(qkv.transpose(0, 1).contiguous().transpose(0, 1), bias, group_end, 0, out, 2, 1.0)


@needs_kernel
@pytest.mark.parametrize("chunk", (64, 4096))
def test_chunked_cpu_path_equals_reference(
    monkeypatch: pytest.MonkeyPatch, chunk: int, small_kernel_config: dict[str, Any]
) -> None:
    """Whole blocks chunk by chunk (chunks crossing shift-mask groups at 64 tokens), batch 2, odd sizes."""
    monkeypatch.setattr(swinir_cpu, "CPU_CHUNK_TOKENS", chunk)
    cfg = small_kernel_config
    torch.manual_seed(0)
    model = SwinIR(**cfg).eval()
    ref = ReferenceSwinIR(**cfg).eval()
    ref.load_state_dict(model.state_dict(), strict=False)
    x = torch.rand(2, 3, 27, 43)
    with torch.no_grad():
        want = ref(x)
        got = model(x)
        with kernels.disabled():
            plain = model(x)
    assert (got - want).abs().max().item() < 1e-5
    assert (got - plain).abs().max().item() < 1e-5
    assert not torch.equal(got, plain)  # the two paths really differ in their arithmetic


@needs_kernel
@pytest.mark.parametrize("threads", (1, 2))
@pytest.mark.parametrize("n", (1, 7, 15, 17, 33, 360, 1000003))
def test_gelu_kernel_equals_exact_gelu(n: int, threads: int) -> None:
    """kernels.gelu_ in place: the exact-erf GELU to a few fp32 ulps of x (float64 reference; x (1 + erf) / 2
    rounds at 1's ulp times x, as PyTorch's does), no worse than PyTorch's own fp32 GELU by more than an ulp,
    for lengths with vector tails and a parallel split."""
    g = torch.Generator().manual_seed(n)
    x = torch.randn(n, generator=g) * 3
    x[: min(n, 5)] = torch.tensor([0.0, -5.7, 5.7, -3.0, 40.0])[: min(n, 5)]
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        got = kernels.gelu_(x.clone())
    finally:
        torch.set_num_threads(before)
    exact = F.gelu(x.double())
    ulp = torch.finfo(torch.float32).eps * x.double().abs().clamp_min(1.0)  # 1 + erf rounds at 1's ulp, times x
    err = (got.double() - exact).abs()
    assert bool((err <= 4 * ulp).all())
    assert err.max().item() <= (F.gelu(x).double() - exact).abs().max().item() + ulp.max().item()


@needs_kernel
def test_gelu_kernel_far_tails_and_specials() -> None:
    """Large negative inputs give exactly 0 (as PyTorch's do), large positive ones themselves; inf and NaN
    as PyTorch's GELU; non-contiguous or non-fp32 input is refused."""
    x = torch.tensor([-6.0, -50.0, -1e30, 6.0, 1e30, float("inf"), float("nan")])
    got = kernels.gelu_(x.clone())
    assert torch.equal(got[:3], torch.zeros(3)) and torch.equal(got[3:6], x[3:6])
    assert bool(got[6].isnan())
    with pytest.raises(ValueError, match="contiguous fp32"):
        kernels.gelu_(torch.randn(4, 6).t())
    with pytest.raises(ValueError, match="contiguous fp32"):
        kernels.gelu_(torch.randn(8).double())


@needs_kernel
@pytest.mark.skipif(not swinir_cpu.ONEDNN_LINEAR, reason="needs oneDNN's fused linear (torch built with mkldnn)")
def test_model_gelu_kernel_matches_pytorch_gelu(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the GELU after the GEMM, the model's fp32 output through the C GELU stays within 1e-5 of the one
    through PyTorch's GELU (and the kernel really runs)."""
    monkeypatch.setattr(swinir_cpu, "FUSE_GELU", False)
    torch.manual_seed(0)
    model = SwinIR(upscale=2, img_size=32, window_size=8, embed_dim=30, depths=[2, 2], num_heads=[3, 3]).eval()
    x = torch.rand(1, 3, 27, 43)
    calls: list[int] = []
    real = kernels.gelu_
    monkeypatch.setattr(kernels, "gelu_", lambda t: calls.append(t.numel()) or real(t))
    with torch.no_grad():
        got = model(x)
        monkeypatch.setattr(swinir_cpu, "GELU_KERNEL", False)
        want = model(x)
    assert len(calls) >= 4
    assert (got - want).abs().max().item() < 1e-5


@needs_kernel
@pytest.mark.parametrize("threads", (1, 2))
@pytest.mark.parametrize("c", (7, 16, 17, 60, 180, 301))
@pytest.mark.parametrize("scattered", (False, True))
def test_add_rows_puts_the_sum_into_place(c: int, threads: int, scattered: bool) -> None:
    """add_rows: dst's rows first.. (or its rows ``index``) become y + residual, bit for bit; the other rows,
    y and the residual are untouched (widths with vector tails, 1031 rows for a parallel split)."""
    torch.manual_seed(c)
    rows, tokens = 1031, 1500
    y, res = torch.randn(rows, c), torch.randn(rows, c)
    dst = torch.randn(tokens, c)
    want, y0, res0 = dst.clone(), y.clone(), res.clone()
    index = torch.randperm(tokens)[:rows] if scattered else None
    if index is None:
        want[300 : 300 + rows] = y + res
    else:
        want[index] = y + res
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        kernels.add_rows(y, res, dst, 300, index)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(dst, want) and torch.equal(y, y0) and torch.equal(res, res0)


@needs_kernel
def test_add_rows_rejects_what_it_cannot_do() -> None:
    y, dst = torch.randn(8, 12), torch.randn(16, 12)
    with pytest.raises(ValueError, match="contiguous fp32"):
        kernels.add_rows(y, y.double(), dst, 0, None)
    with pytest.raises(ValueError, match="contiguous fp32"):
        kernels.add_rows(y, y, torch.randn(16, 13), 0, None)
    with pytest.raises(ValueError, match="inside dst"):
        kernels.add_rows(y, y, dst, 9, None)
    with pytest.raises(ValueError, match="int64 row numbers"):
        kernels.add_rows(y, y, dst, 0, torch.arange(8, dtype=torch.int32))
    for outside in (torch.arange(9, 17), torch.arange(-1, 7)):  # the C loop would write past dst
        with pytest.raises(ValueError, match="outside dst"):
            kernels.add_rows(y, y, dst, 0, outside)


@needs_kernel
@pytest.mark.parametrize("threads", (1, 2))
@pytest.mark.parametrize("dtype", (torch.float32, torch.bfloat16, torch.float16))
@pytest.mark.parametrize("c", (7, 48, 180))
def test_put_rows_scatters_as_index_copy_does(c: int, dtype: torch.dtype, threads: int) -> None:
    """put_rows: dst's rows ``index`` become src's rows, as index_copy_ puts them, bit for bit, in any dtype;
    the other rows and src are untouched (1031 rows of a 1500-row dst, enough for a parallel split)."""
    torch.manual_seed(c)
    src, dst = torch.randn(1031, c).to(dtype), torch.randn(1500, c).to(dtype)
    index = torch.randperm(1500)[:1031]
    want, src0 = dst.clone().index_copy_(0, index, src), src.clone()
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        kernels.put_rows(src, dst, index)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(dst, want) and torch.equal(src, src0)


@needs_kernel
def test_put_rows_rejects_what_it_cannot_do() -> None:
    src, dst = torch.randn(8, 12), torch.randn(16, 12)
    index = torch.arange(8)
    with pytest.raises(ValueError, match="one dtype"):
        kernels.put_rows(src, dst.double(), index)
    with pytest.raises(ValueError, match="one dtype"):
        kernels.put_rows(src, torch.randn(16, 13), index)
    with pytest.raises(ValueError, match="one dtype"):
        kernels.put_rows(src, torch.randn(12, 16).t(), index)  # not contiguous
    with pytest.raises(ValueError, match="int64 row numbers"):
        kernels.put_rows(src, dst, index.int())
    for outside in (torch.arange(9, 17), torch.arange(-1, 7)):  # the C loop would write past dst
        with pytest.raises(ValueError, match="outside dst"):
            kernels.put_rows(src, dst, outside)


@needs_kernel
def test_shifted_chunks_scattered_by_put_rows_give_the_same_output(monkeypatch: pytest.MonkeyPatch) -> None:
    """bf16 weights (where the scatter is not fused into add_rows): the same output with put_rows as with
    index_copy_, and put_rows really runs for the shifted blocks."""
    monkeypatch.setattr(swinir_cpu, "CPU_CHUNK_TOKENS", 64)
    torch.manual_seed(0)
    model = SwinIR(upscale=2, img_size=32, window_size=8, embed_dim=30, depths=[2, 2], num_heads=[3, 3]).eval()
    model = model.bfloat16()
    x = torch.rand(1, 3, 27, 43).bfloat16()
    calls: list[int] = []
    real = kernels.put_rows
    monkeypatch.setattr(kernels, "put_rows", lambda *a: calls.append(1) or real(*a))
    outs = []
    with torch.no_grad():
        for on in (True, False):
            monkeypatch.setattr(swinir_cpu, "PUT_ROWS_KERNEL", on)
            outs.append(model(x))
    assert calls and torch.equal(outs[0], outs[1])


@needs_kernel
@pytest.mark.parametrize("chunk", (64, 4096))
def test_residual_switches_give_the_same_output(monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    """The fp32 residual adds (proj's by the post-op, after the GEMM or inside norm2's kernel; fc2's after
    the GEMM or as the sum is put into the block's output) give the same output to the bit, with shifted
    blocks and chunks crossing their shift-mask groups; the fused kernels really run."""
    monkeypatch.setattr(swinir_cpu, "CPU_CHUNK_TOKENS", chunk)
    torch.manual_seed(0)
    model = SwinIR(upscale=2, img_size=32, window_size=8, embed_dim=30, depths=[2, 2], num_heads=[3, 3]).eval()
    x = torch.rand(2, 3, 27, 43)
    calls: list[str] = []
    for name in ("add_layer_norm", "add_rows"):
        real = getattr(kernels, name)
        monkeypatch.setattr(kernels, name, lambda *a, _f=real, _n=name: calls.append(_n) or _f(*a))
    outs = []
    with torch.no_grad():
        for postop, add_norm, add_rows in ((True, False, False), (False, False, False), (False, True, True)):
            monkeypatch.setattr(swinir_cpu, "RESIDUAL_POSTOP", postop)
            monkeypatch.setattr(swinir_cpu, "ADD_NORM_KERNEL", add_norm)
            monkeypatch.setattr(swinir_cpu, "ADD_ROWS_KERNEL", add_rows)
            calls.clear()
            outs.append(model(x))
    assert set(calls) == {"add_layer_norm", "add_rows"}
    assert all(torch.equal(o, outs[0]) for o in outs[1:])


@pytest.mark.parametrize("channels", (60, 180, 240))
@pytest.mark.parametrize("threads", (1, 2, 3, 16))
def test_chunk_size_fits_the_per_thread_budget(channels: int, threads: int) -> None:
    """Chunks are a power-of-two number of whole windows, the largest whose rows fit the per-thread budget,
    or the largest within the token floor if that is more."""
    budget = swinir_cpu.CPU_CHUNK_BYTES_PER_THREAD * threads
    floor = swinir_cpu.CPU_CHUNK_MIN_TOKENS
    for n, itemsize in ((64, 4), (64, 2), (49, 4)):
        tokens = swinir_cpu.chunk_tokens(n, channels, itemsize, threads)
        windows = tokens // n
        assert tokens % n == 0 and windows & (windows - 1) == 0
        fits_budget = tokens * channels * itemsize <= budget < 2 * tokens * channels * itemsize
        fills_floor = tokens <= floor < 2 * tokens
        assert fits_budget or fills_floor
        assert 2 * tokens > floor  # never under the floor's power of two
    # a window larger than the budget still makes a chunk of one window (without a floor)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(swinir_cpu, "CPU_CHUNK_MIN_TOKENS", 0)
        assert swinir_cpu.chunk_tokens(64, 10**6, 4, threads) == 64


def test_chunk_budget_is_the_l2_of_one_core(tmp_path: Path) -> None:
    """The per-thread chunk budget comes from sysfs' level-2 data or unified cache (within 1-2 MiB); the
    default where there is none (macOS, a container without sysfs) or it cannot be read."""

    def cache(index: int, level: int, kind: str, size: str) -> None:
        d = tmp_path / f"index{index}"
        d.mkdir()
        for name, value in (("level", level), ("type", kind), ("size", size)):
            (d / name).write_text(f"{value}\n")

    assert swinir_cpu.l2_bytes_per_core(123, str(tmp_path)) == 123  # no caches listed
    cache(0, 1, "Data", "48K")
    cache(1, 1, "Instruction", "64K")
    cache(3, 3, "Unified", "491520K")
    assert swinir_cpu.l2_bytes_per_core(123, str(tmp_path)) == 123  # no level 2
    cache(2, 2, "Unified", "2048K")
    assert swinir_cpu.l2_bytes_per_core(123, str(tmp_path)) == 2 << 20
    (tmp_path / "index2" / "size").write_text("32M\n")
    assert swinir_cpu.l2_bytes_per_core(123, str(tmp_path)) == 32 << 20
    (tmp_path / "index2" / "size").write_text("junk\n")
    assert swinir_cpu.l2_bytes_per_core(123, str(tmp_path)) == 123
    assert swinir_cpu.l2_bytes_per_core(123, str(tmp_path / "missing")) == 123
    assert 1 << 20 <= swinir_cpu.CPU_CHUNK_BYTES_PER_THREAD <= 2 << 20


def test_fixed_chunk_tokens_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(swinir_cpu, "CPU_CHUNK_TOKENS", 100)
    assert swinir_cpu.chunk_tokens(64, 180, 4, 2) == 64
    monkeypatch.setattr(swinir_cpu, "CPU_CHUNK_TOKENS", 10)
    assert swinir_cpu.chunk_tokens(64, 180, 4, 2) == 64


@pytest.mark.parametrize(
    "flags,cap,want",
    [({"avx512f", "avx2"}, None, True), ({"avx512f"}, "AVX2", False), ({"avx512f"}, "avx512_core_amx", True),
     ({"avx512f"}, "SSE41", False), ({"avx2", "fma"}, None, False), (set(), None, False)],
)  # fmt: skip
def test_onednn_avx512_reads_the_cpu_and_the_cap(
    flags: set[str], cap: str | None, want: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The GELU post-op is chosen only where oneDNN runs AVX-512 code (it lost on AVX2): CPU flags and cap."""
    monkeypatch.setattr(kernels, "cpu_flags", lambda: flags)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    if cap is None:
        monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    else:
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
    assert swinir_cpu.onednn_avx512() is want


@pytest.mark.skipif(not swinir_cpu.ONEDNN_LINEAR, reason="needs oneDNN's fused linear (torch built with mkldnn)")
@pytest.mark.parametrize("fuse", (True, False))
def test_mlp_gelu_fused_or_after_the_gemm_is_exact_gelu(fuse: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """fc1 + GELU through oneDNN's post-op or PyTorch's GELU afterwards: both the exact-erf GELU."""
    monkeypatch.setattr(swinir_cpu, "FUSE_GELU", fuse)
    torch.manual_seed(0)
    fc1 = torch.nn.Linear(24, 48)
    x = torch.randn(300, 24)
    ex = swinir_cpu.Exec(linear_dtype=torch.float32)
    with torch.no_grad():
        got = swinir_cpu.linear(fc1, x, ex, gelu=True)
        want = F.gelu(F.linear(x.double(), fc1.weight.double(), fc1.bias.double()))
    assert (got.double() - want).abs().max().item() < 1e-5


@pytest.mark.skipif(
    not (swinir_cpu.ONEDNN_LINEAR and swinir_cpu._onednn_prepack_ok()), reason="needs oneDNN's weight reorder"
)
def test_prepacked_weights_give_the_same_linear_and_follow_weight_updates(monkeypatch: pytest.MonkeyPatch) -> None:
    """The reordered weights compute exactly what the plain ones do (plain, GELU, residual), are rebuilt after
    an in-place update, and leave the layer copyable and saveable (they are not stored on it)."""
    torch.manual_seed(0)
    fc = torch.nn.Linear(24, 48)
    x, res = torch.randn(300, 24), torch.randn(300, 48)
    ex = swinir_cpu.Exec(linear_dtype=torch.float32)
    with torch.no_grad():
        runs = {}
        for packed in (False, True):
            monkeypatch.setattr(swinir_cpu, "PREPACK_WEIGHTS", packed)
            runs[packed] = [
                swinir_cpu.linear(fc, x, ex, gelu=g, residual=r) for g, r in ((0, None), (1, None), (0, res))
            ]
        assert all(torch.equal(a, b) for a, b in zip(runs[False], runs[True]))
        assert fc in swinir_cpu._PACKED
        fc.weight.mul_(2)  # in place: same storage, the version counter moves
        assert torch.allclose(swinir_cpu.linear(fc, x, ex), F.linear(x, fc.weight, fc.bias), atol=1e-5)
    copy.deepcopy(fc)
    torch.save(fc, io.BytesIO())


@pytest.mark.parametrize("chunk", (64, 4096))
@pytest.mark.parametrize("window", (8, 7))
def test_chunked_path_without_kernel_equals_reference(monkeypatch: pytest.MonkeyPatch, chunk: int, window: int) -> None:
    """The PyTorch-only chunked path (ARM, macOS, SWINIR_CPU_KERNELS=0): blocks chunk by chunk with
    scaled_dot_product_attention per run of windows sharing a shift mask; chunks cross mask groups at 64."""
    monkeypatch.setattr(swinir_cpu, "CPU_CHUNK_TOKENS", chunk)
    calls: list[int] = []
    inner = swinir_cpu._chunk_attention

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        return inner(*args, **kwargs)

    monkeypatch.setattr(swinir_cpu, "_chunk_attention", counted)
    cfg = dict(
        upscale=1, in_chans=3, img_size=4 * window, window_size=window, embed_dim=24, depths=[2], num_heads=[3],
        mlp_ratio=2, upsampler="", resi_connection="3conv",
    )  # fmt: skip
    torch.manual_seed(0)
    model = SwinIR(**cfg).eval()
    ref = ReferenceSwinIR(**cfg).eval()
    ref.load_state_dict(model.state_dict(), strict=False)
    x = torch.rand(2, 3, 27, 43)
    with torch.no_grad(), kernels.disabled():
        want = ref(x)
        got = model(x)
        used = len(calls)
        monkeypatch.setattr(swinir_cpu, "CHUNKED_WITHOUT_KERNEL", False)
        whole = model(x)
    assert used >= 2 and len(calls) == used  # every block took the chunked path, and only when asked
    assert (got - want).abs().max().item() < 1e-5
    assert (got - whole).abs().max().item() < 1e-5


@needs_kernel
def test_cpu_path_does_not_touch_its_input() -> None:
    torch.manual_seed(1)
    block = swinir_model.SwinTransformerBlock(24, 2, 8, 4, 2.0).eval()
    model_plan = swinir_model.shifted_window_plan(1, 16, 16, 8, 4)
    x = torch.randn(1, 256, 24)
    keep = x.clone()
    with torch.no_grad():
        y = block(x, model_plan, swinir_cpu.Exec(chunked=True))
        y_plain = block(x, model_plan)
    assert torch.equal(x, keep)
    assert (y - y_plain).abs().max().item() < 1e-5


def _python(code: str, cache: Path, **env: str) -> subprocess.CompletedProcess:
    full = {**os.environ, "SWINIR_CACHE": str(cache), **env}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=full, timeout=300
    )


_PROBE = """
    import warnings, torch
    from swinir import kernels
    from swinir.model import SwinIR
    torch.set_num_threads(1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ok = kernels.available()
        m = SwinIR(upscale=1, embed_dim=12, depths=[2], num_heads=[2], window_size=8, mlp_ratio=2).eval()
        with torch.no_grad():
            y = m(torch.rand(1, 3, 16, 16))
    print("AVAILABLE", ok, bool(torch.isfinite(y).all()))
    print("STATUS", kernels.status())
    print("WARNINGS", [str(w.message) for w in caught])
"""


@needs_kernel
def test_build_is_cached_and_reused(tmp_path: Path) -> None:
    first = _python(_PROBE, tmp_path)
    assert "AVAILABLE True True" in first.stdout, first.stderr
    built = list((tmp_path / "kernels").glob("swinir_cpu-*.so"))
    assert len(built) == 1 and str(built[0]) in first.stdout
    stamp = built[0].stat().st_mtime_ns
    second = _python(_PROBE, tmp_path)
    assert "AVAILABLE True True" in second.stdout, second.stderr
    assert built[0].stat().st_mtime_ns == stamp  # loaded, not rebuilt
    assert not list((tmp_path / "kernels").glob("*.tmp"))


def test_falls_back_with_a_clear_warning_when_the_build_fails(tmp_path: Path) -> None:
    if kernels.choose_isa()[0] is None:
        pytest.skip(f"no kernel ISA here ({kernels.choose_isa()[1]}): the kernel is never built")
    res = _python(_PROBE, tmp_path, CC="false")  # a "compiler" that always fails
    assert "AVAILABLE False True" in res.stdout, res.stderr
    assert "build failed" in res.stdout
    assert "could not be built" in res.stdout and "slower attention" in res.stdout
    assert not list((tmp_path / "kernels").glob("*"))  # nothing half-written left behind


@pytest.mark.parametrize("isa", sorted(kernels.ISAS))
def test_each_isa_build_can_be_forced(tmp_path: Path, isa: str) -> None:
    """SWINIR_CPU_ISA builds and loads that ISA's variant (the CI's second pass forces avx2 this way); an
    ISA the CPU lacks, or an unknown name, leaves the kernels off with the reason."""
    res = _python(_PROBE, tmp_path, SWINIR_CPU_ISA=isa)
    if set(kernels.ISAS[isa][0]) <= kernels.cpu_flags():
        assert "AVAILABLE True True" in res.stdout and f"{isa} build loaded" in res.stdout, res.stderr
        assert len(list((tmp_path / "kernels").glob(f"swinir_cpu-{isa}-*.so"))) == 1
    else:
        assert "AVAILABLE False True" in res.stdout and "lacks" in res.stdout, res.stderr
    res = _python(_PROBE, tmp_path, SWINIR_CPU_ISA="sse2")
    assert "AVAILABLE False True" in res.stdout and "'sse2' is not one of avx512, avx2" in res.stdout


def test_can_be_switched_off(tmp_path: Path) -> None:
    res = _python(_PROBE, tmp_path, SWINIR_CPU_KERNELS="0")
    assert "AVAILABLE False True" in res.stdout, res.stderr
    assert "disabled by SWINIR_CPU_KERNELS=0" in res.stdout


def test_restore_cli_says_when_the_kernel_is_not_used(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tiny_x2_checkpoint: Path
) -> None:
    import numpy as np

    from swinir.cli import main
    from swinir.io import write_image

    write_image(tmp_path / "a.png", np.zeros((8, 8, 3), np.uint8))
    args = ["restore", str(tmp_path / "a.png"), "--model", str(tiny_x2_checkpoint)]
    with kernels.disabled():
        assert main([*args, "-o", str(tmp_path / "o0")]) == 0
        assert "CPU kernels" not in capsys.readouterr().err  # the note only with --verbose (issue 13)
        assert main([*args, "-o", str(tmp_path / "o1"), "--verbose"]) == 0
    assert "CPU kernels are not in use (switched off" in capsys.readouterr().err
    assert main([*args, "-o", str(tmp_path / "o2"), "--verbose"]) == 0
    said = capsys.readouterr().err
    assert ("not in use" in said) != kernels.available()  # said exactly when it is not used


@needs_kernel
@pytest.mark.parametrize("tile", (2, 4))
@pytest.mark.parametrize("threads", (1, 2))
@pytest.mark.parametrize(
    "b,cin,cout,h,w,bias",
    [(1, 180, 180, 16, 16, True), (2, 60, 240, 13, 7, True), (1, 64, 48, 5, 9, False), (1, 33, 17, 1, 3, True)],
)
def test_winograd_conv_equals_direct(
    b: int, cin: int, cout: int, h: int, w: int, bias: bool, threads: int, tile: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """F(2x2, 3x3) and F(4x4, 3x3): odd and even sizes, single rows, sizes that are not tile multiples,
    channel counts off the 16-lane grid, tile batches split (12 pixels: 3 tiles of 2x2, 1 of 4x4)."""
    monkeypatch.setattr(kernels, "WINOGRAD_PIXELS", 12)
    g = torch.Generator().manual_seed(cin + h)
    x = torch.randn(b, cin, h, w, generator=g).contiguous(memory_format=torch.channels_last)
    weight = torch.randn(cout, cin, 3, 3, generator=g) * 0.05
    bvec = torch.randn(cout, generator=g) if bias else None
    ref = F.conv2d(x.double(), weight.double(), None if bvec is None else bvec.double(), padding=1)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        u = kernels.winograd_weight(weight, tile)
        got = kernels.conv3x3(x, u, bvec)
    finally:
        torch.set_num_threads(before)
    direct = F.conv2d(x, weight, bvec, padding=1)
    assert u.shape == ((tile + 2) ** 2, cout, cin)
    assert got.shape == ref.shape and got.is_contiguous(memory_format=torch.channels_last)
    err, err_direct = (got.double() - ref).abs().max().item(), (direct.double() - ref).abs().max().item()
    # F(2x2, 3x3) rounds a few times worse than a direct conv, F(4x4, 3x3) (coefficients up to 8) ~5x worse
    assert err < (1e-5 if tile == 2 else 1e-4) and err < (8 if tile == 2 else 16) * err_direct + 1e-6


def test_winograd_weight_rejects_other_tiles() -> None:
    with pytest.raises(ValueError, match="2 or 4"):
        kernels.winograd_weight(torch.zeros(4, 4, 3, 3), 3)


@needs_kernel
def test_model_convs_take_winograd_and_match(golden: Path, golden_index: dict) -> None:
    """Exactly the 3x3 convs with enough channels run through Winograd; outputs stay on the golden data."""
    import swinir

    entry = golden_index["nearestconv_x4_3conv"]
    model = swinir.load(golden / entry["checkpoint"])
    data = torch.load(golden / entry["cases"][0]["file"], weights_only=True)
    calls: list[tuple[int, int]] = []
    original = kernels.conv3x3

    def counting(x: torch.Tensor, u: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        calls.append((u.shape[2], u.shape[1]))
        return original(x, u, bias)

    expected = [
        (m.in_channels, m.out_channels)
        for m in model.modules()
        if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3) and m.in_channels * m.out_channels >= 2000
    ]
    assert {(32, 64), (64, 64)} <= set(expected) and (32, 8) not in expected  # 3conv's bottleneck stays direct
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(kernels, "conv3x3", counting)
        mp.setattr(swinir_cpu, "WINOGRAD_MIN_CHANNEL_PRODUCT", 2000)
        mp.setattr(swinir_cpu, "WINOGRAD_MIN_WORK", 1 << 62)
        with torch.no_grad():
            out = model(data["input"])
    assert sorted(calls) == sorted(expected) and calls
    assert (out - data["output"]).abs().max().item() < 1e-4


@needs_kernel
@pytest.mark.parametrize("cin,cout,side,winograd", [(64, 64, 128, True), (64, 64, 32, False), (180, 180, 8, True)])
def test_winograd_takes_convs_by_channels_or_work(
    cin: int, cout: int, side: int, winograd: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """64->64 convs take Winograd on large images only (they lost at 64x64 on two threads); 180->180 always."""
    calls: list[int] = []
    original = kernels.conv3x3

    def counting(x: torch.Tensor, u: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        calls.append(u.shape[0])
        return original(x, u, bias)

    monkeypatch.setattr(kernels, "conv3x3", counting)
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(cin, cout, 3, 1, 1).eval()
    x = torch.rand(1, cin, side, side).contiguous(memory_format=torch.channels_last)
    ex = swinir_cpu.Exec(linear_dtype=torch.float32, chunked=True, winograd=True, attn_kernel=True)
    with torch.no_grad():
        got, want = (
            swinir_cpu.conv(conv, x, ex),
            F.conv2d(x.double(), conv.weight.double(), conv.bias.double(), padding=1),
        )
    assert calls == ([36] if winograd else [])  # F(4x4, 3x3): 36 points
    assert (got.double() - want).abs().max().item() < 1e-4


@needs_kernel
@pytest.mark.parametrize(
    "name", ("pixelshuffle_x3", "pixelshuffledirect_x4", "nearestconv_x4_3conv", "denoise_color", "jpeg_gray_w7")
)
def test_golden_outputs_with_every_conv_on_winograd(
    golden: Path, golden_index: dict, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The golden networks have 24-32 channels: lower the threshold so that every 3x3 conv takes Winograd."""
    import swinir

    monkeypatch.setattr(swinir_cpu, "WINOGRAD_MIN_CHANNEL_PRODUCT", 1)
    entry = golden_index[name]
    model = swinir.load(golden / entry["checkpoint"])
    for case in entry["cases"]:
        data = torch.load(golden / case["file"], weights_only=True)
        with torch.no_grad():
            out = model(data["input"])
        assert (out - data["output"]).abs().max().item() < 1e-4, case["file"]


@needs_kernel
def test_kernel_leaves_denormals_alone_outside_itself() -> None:
    """The kernel flushes denormals to zero while it runs (shift-mask probabilities of ~1e-38 made Intel
    cores take a microcode assist per product: shifted blocks ran 2.5x slower) and restores every
    thread's floating-point mode afterwards, so the caller's arithmetic is untouched."""
    n, heads, d = 64, 2, 16
    g = torch.Generator().manual_seed(3)
    qkv = torch.randn(8, n, 3 * heads * d, generator=g)
    bias = torch.zeros(1, heads, n, n)
    bias[..., n // 2 :] = -100.0
    out = torch.empty(8, n, heads * d)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        kernels.window_attention(qkv, bias, torch.tensor([8]), 0, out, heads, d**-0.5)
        tiny = torch.full((1 << 16,), 1e-38) / 8  # 1.25e-39: a denormal, unless FTZ leaked out
    finally:
        torch.set_num_threads(before)
    assert (tiny > 0).all()
    assert (out - _sdpa(qkv, bias, [8], heads, d**-0.5)).abs().max().item() < 2e-5
