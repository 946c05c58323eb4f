"""The CPU inference backend: the one module that touches private torch ops (oneDNN) and ``swinir.kernels``.

What it adds over plain PyTorch, at the same arithmetic (measured on one Zen 4 core, classical x2 M):

- ``linear``: oneDNN's inner product (the op inductor emits) runs SwinIR's shapes (K = 60..360) 1.1-1.5x
  faster than the MKL GEMM behind ``F.linear``; where oneDNN runs AVX-512 code it fuses the exact-erf GELU
  (elsewhere ``kernels.gelu_`` follows the GEMM), and in bf16 the residual add (fp32 adds it after the GEMM,
  or inside the next C kernel: ``linear_residual_norm``, ``ChunkRows.put_sum``). Its bf16 form needs native
  bf16 (AVX512-BF16/AMX); elsewhere oneDNN cannot create the primitive, so bf16 then takes ``F.linear``.
  Where oneDNN runs AVX-512 code fp32 weights are reordered into its blocked layout once per layer
  (``PREPACK_WEIGHTS``).
- ``forward_chunked``: each Swin block chunk by chunk (``chunk_tokens``: about one L2 of tokens per thread;
  LayerNorm, qkv, the C attention kernel, proj, residual + LayerNorm in one C pass, MLP, residual added as
  the result is written into the block's output) while the chunk is in cache; no block allocates more than
  a few MB (240k page faults, 0.45 s of system time per 128x128 forward before).
- ``conv``: fp32 3x3 convolutions with enough channels as Winograd F(4x4, 3x3) (C transforms, 36 GEMMs).

The path is chosen once, as timm chooses ``fused_attn`` once: ``Placement`` when the model is built or
placed (``.to()``, ``.float()``, ``.bfloat16()``), ``choose`` once per forward for the mode (gradients,
tracing, autocast). The network modules only read the resulting ``Exec``.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from swinir import kernels
from swinir.model.layout import WindowPlan, attention_by_group


def l2_bytes_per_core(default: int = 1 << 20, root: str = "/sys/devices/system/cpu/cpu0/cache") -> int:
    """The L2 cache one core has to itself (Linux sysfs: the level-2 data or unified cache of CPU 0), else
    ``default``."""
    try:
        for entry in sorted(os.listdir(root)):
            d = os.path.join(root, entry)
            with open(os.path.join(d, "level")) as f:
                if f.read().strip() != "2":
                    continue
            with open(os.path.join(d, "type")) as f:
                if f.read().strip() not in ("Data", "Unified"):
                    continue
            with open(os.path.join(d, "size")) as f:
                text = f.read().strip().upper()
            scale = {"K": 1 << 10, "M": 1 << 20}.get(text[-1:], 1)
            return int(text.rstrip("KM")) * scale
    except (OSError, ValueError):
        pass
    return default


# Swin blocks run in chunks whose tokens take at most this many bytes per thread (see ``chunk_tokens``): the
# core's own L2, within 1-2 MiB. Measured: 1 MiB on AMD Zen 4 (1 MiB L2; larger chunks did not pay there,
# session 9) and on the AVX2-only Zen 3 (512 KiB L2; smaller was not tried, so 1 MiB stays the floor); 2 MiB
# on an Intel Xeon with 2 MiB L2 (against 1 MiB: one thread, builtin-x4 384x384 1.11x fp32 and 1.02-1.05x
# bf16, lightweight x4 1.05x fp32; two threads, 1.02-1.06x on five of six fp32 M/L/lightweight cases and
# 1.03x builtin-x4 bf16; 4 MiB no better; benchmarks/results_cpu.md, session 12).
CPU_CHUNK_BYTES_PER_THREAD = min(max(l2_bytes_per_core(), 1 << 20), 2 << 20)
# a fixed number of tokens per chunk instead (rounded to whole windows): tests and experiments
CPU_CHUNK_TOKENS: int | None = None
# Winograd F(4x4, 3x3) pays for a 3x3 conv whose GEMMs are big enough: enough channels, or enough channels
# times pixels. Measured against oneDNN's direct convolution (benchmarks/results_cpu.md, session 6): 180->180,
# 240->60, 64->256 at 64x64 1.2-2.5x at 1 and 2 threads, AVX-512 and AVX2; 64->64 and 60->60 at 128x128 and
# up 1.2-1.8x; 60->60 at 64x64 1.07-1.45x at one thread but 0.69x at two; 60->48 and 64->12 lose.
WINOGRAD_MIN_CHANNEL_PRODUCT = 12000  # in x out channels
WINOGRAD_MIN_WORK = 1 << 25  # in x out channels x output pixels
# Winograd F(TILE x TILE, 3x3): 4 (2.25 multiply-adds per output, 1.1-1.6x faster than F(2x2, 3x3) on every
# shape above) or 2 (4 multiply-adds, transforms that only add and subtract: less rounding)
WINOGRAD_TILE = 4
# Without the C kernel (ARM, macOS, SWINIR_CPU_KERNELS=0) blocks still run chunk by chunk, attention through
# scaled_dot_product_attention per chunk; see benchmarks/inference.py --without-kernels for the figures.
CHUNKED_WITHOUT_KERNEL = True
# the C kernel for the chunks' attention, else scaled_dot_product_attention (see benchmarks/levers.py)
ATTENTION_KERNEL = True
# the kernel reads bf16 qkv and writes bf16 under bf16 linears, else qkv is converted to fp32 first and the
# fp32 output cast for the projection (the path before session 10; for A/B comparisons)
KERNEL_BF16_IO = True
# the C kernel for the chunks' pre-norms (before qkv and fc1), writing bf16 straight away where a bf16 linear
# follows; else F.layer_norm (and the linear's cast). See ``norm`` and benchmarks/results_cpu.md, session 10.
LAYER_NORM_KERNEL = True


def onednn_avx512() -> bool:
    """Whether oneDNN runs AVX-512 code here: the CPU has it and ``ONEDNN_MAX_CPU_ISA`` does not cap it."""
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA", os.environ.get("DNNL_MAX_CPU_ISA", "")).upper()
    capped = cap.startswith(("SSE", "AVX2")) or cap == "AVX"  # oneDNN's names below AVX512_CORE
    return "avx512f" in kernels.cpu_flags() and not capped


# oneDNN's GELU post-op on the fc1 output, or a GELU in place after it (``GELU_KERNEL``; benchmarks/levers.py). The
# post-op pays only in oneDNN's AVX-512 code: its AVX2 GELU made fc1 25% slower than the GEMM plus
# PyTorch's GELU (AMD Zen 3, 1024x240 -> 480: 5.07 vs 3.81 ms), whole forwards 2-8% slower on Zen 3 and
# 1-3% on an AVX2-capped Xeon (benchmarks/results_cpu.md, sessions 5 and 7).
FUSE_GELU = onednn_avx512()
# Chunks of at least about this many tokens (``chunk_tokens``). With oneDNN's AVX-512 code, 2048-token fp32
# chunks of the 180- and 240-channel models beat the 1 MiB budget's 1024 at one thread by 2-9% (AMD Zen 4);
# with its AVX2 code they did not (0.93-1.01x), so there 0. Larger chunks than the budget's did not pay
# (lightweight 8192 against 4096: 0.95-1.01x; bf16 4096 against 2048: 0.94-0.98x; benchmarks/results_cpu.md,
# session 9), so this is a floor in tokens, not a larger budget in bytes.
CPU_CHUNK_MIN_TOKENS = 2048 if onednn_avx512() else 0
# Where the GELU runs after fc1's GEMM (``FUSE_GELU`` off), the C kernel (``kernels.gelu_``: erf by a rational
# approximation, about half the multiply-adds of PyTorch's) instead of PyTorch's in-place GELU: fc1 + GELU
# 1.07x per call in the model capped at AVX2 (~20 ms of a 1.3 s classical x2 64x64 forward; AMD Zen 4, one
# thread). With oneDNN's AVX-512 code the GEMM plus this kernel and the post-op were within 2% (session 11).
GELU_KERNEL = True
# fp32 linears with a residual (proj, fc2) through oneDNN's binary post-op, else the inner product alone and
# the residual added in place after it. The add after measured faster with oneDNN's AVX2 and AVX-512 code
# alike: per call inside the model, proj 180 -> 180 1.13x (AVX2) and 1.06x (AVX-512), fc2 1.06x and 1.02-1.03x
# (AMD Zen 4, one thread; benchmarks/results_cpu.md, session 11). bf16 keeps the post-op: the add after it
# would round the product to bf16 before adding.
RESIDUAL_POSTOP = False
# the output projection's residual added by the LayerNorm kernel of norm2 as it normalises the sum
# (``linear_residual_norm``; fp32 chunked path), else added after the GEMM and normalised in a second pass:
# proj + add + norm2 1.02-1.04x per call in the model (AVX2 and AVX-512; session 11)
ADD_NORM_KERNEL = True
# a chunk's last residual (fc2's) added as the sum is written into the block's output (``ChunkRows.put_sum``;
# fp32 chunked path), else added in place and then copied or scattered there: fc2 + add + put 1.04-1.05x per
# call in the model (session 11)
ADD_ROWS_KERNEL = True
# a shifted block's chunk scattered into the block's output by ``kernels.put_rows`` (a memcpy per row), else by
# index_copy_: 8192 bf16 rows of 48 channels 94 against 296 us, 2048 fp32 rows of 180 200 against 330-360 us
# (Xeon, one thread). The gather (index_select) measured as fast as a memcpy per row, so it stays.
PUT_ROWS_KERNEL = True


def values_key(t: Tensor) -> tuple[Any, ...]:
    """Identifies a weight's current values for derived caches: its storage, dtype and version counter
    (bumped by any in-place update such as EMA; inference tensors have no counter)."""
    return (t.device, t.dtype, t.data_ptr(), -1 if t.is_inference() else t._version)


def tracing() -> bool:
    """True under torch.compile / torch.export / ONNX export / jit tracing: no Python-side caches then."""
    jit_tracing = torch.jit.is_tracing()  # type: ignore[attr-defined,no-untyped-call]  # not re-exported, unannotated
    return bool(torch.compiler.is_compiling() or jit_tracing or torch.onnx.is_in_onnx_export())


def _onednn_linear_ok() -> bool:
    try:
        lp = torch.ops.mkldnn._linear_pointwise
        x, w = torch.ones(2, 4), torch.ones(3, 4)
        return bool(torch.equal(lp(x, w, None, "none", [], ""), F.linear(x, w)))
    except Exception:  # an older or non-mkldnn build: plain F.linear everywhere
        return False


def _onednn_bf16_ok() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:
        return False


def _onednn_prepack_ok() -> bool:
    try:
        x, w = torch.ones(2, 4), torch.ones(3, 4)
        packed = torch.ops.mkldnn._reorder_linear_weight(w, 2)
        return bool(torch.equal(torch.ops.mkldnn._linear_pointwise(x, packed, None, "none", [], ""), F.linear(x, w)))
    except Exception:  # a build without the reorder op: the plain weights
        return False


ONEDNN_LINEAR = torch.backends.mkldnn.is_available() and _onednn_linear_ok()  # type: ignore[no-untyped-call]
ONEDNN_BF16 = ONEDNN_LINEAR and _onednn_bf16_ok()
# oneDNN's inner product on weights reordered once into its blocked layout (kept per layer in ``_PACKED``):
# 1-9% faster whole forwards with oneDNN's AVX-512 code, 0.96-1.0x with its AVX2 code (AMD Zen 4, one
# thread; benchmarks/results_cpu.md, session 9), so only there; fp32 only (bf16 weights: 0.99-1.00x, for a copy)
PREPACK_WEIGHTS = ONEDNN_LINEAR and onednn_avx512() and _onednn_prepack_ok()
# layer -> (its weight's values_key and dtype, the reordered weight). Not an attribute of the layer: a
# reordered weight is an opaque oneDNN tensor, which neither deepcopy nor torch.save can handle.
_PACKED: weakref.WeakKeyDictionary[nn.Module, tuple[tuple[Any, ...], Tensor]] = weakref.WeakKeyDictionary()


def native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX, as oneDNN reports it). Without it, bf16
    matmuls are emulated: a classical x2 M 64x64 forward took 10.6 s in bf16 against 2.2 s in fp32 (one
    core, oneDNN capped at AVX2), so callers choosing a precision should prefer fp32 there."""
    return ONEDNN_BF16


@dataclass(frozen=True)
class Placement:
    """What the model's device and weight dtype allow; computed when the model is built or placed."""

    cpu: bool = False
    dtype: torch.dtype = torch.float32
    kernel_shapes: bool = False  # every layer's window and head dim fit the C attention kernel


@dataclass(frozen=True)
class Exec:
    """How one forward runs; the modules read it instead of checking devices, modes and dtypes per call.

    ``linear_dtype``: the dtype oneDNN's fused inner product runs in (inputs and weights are cast to it),
    or None for ``F.linear``. ``chunked``: Swin blocks through ``forward_chunked``; ``attn_kernel``: their
    attention through the C kernel, else through ``scaled_dot_product_attention`` per chunk (ARM, macOS,
    ``SWINIR_CPU_KERNELS=0``). ``winograd``: large fp32 3x3 convs through ``kernels.conv3x3``.
    ``norm_dtype``: the dtype the C LayerNorm kernel writes for the chunks' pre-norms (``norm``), or None
    for ``F.layer_norm``. ``gelu_kernel``: fp32 GELUs after the GEMM may take ``kernels.gelu_``.
    """

    fp16_safe: bool = False
    linear_dtype: torch.dtype | None = None
    chunked: bool = False
    winograd: bool = False
    attn_kernel: bool = False
    norm_dtype: torch.dtype | None = None
    gelu_kernel: bool = False


PLAIN = Exec()


def placement(weight: Tensor, windows: Sequence[int], head_dims: Sequence[int]) -> Placement:
    shapes = all(kernels.supports(ws * ws, d) for ws, d in zip(windows, head_dims))
    return Placement(weight.device.type == "cpu", weight.dtype, shapes)


def choose(place: Placement, x: Tensor, fp16_safe: bool) -> Exec:
    """The path of one forward: fused CPU inference only without gradients, outside tracing, on CPU, in
    fp32, bf16 weights, or fp32 under bf16 autocast (the linears then run in bf16; attention computes in fp32,
    reading and writing bf16)."""
    if not place.cpu or x.device.type != "cpu" or torch.is_grad_enabled() or tracing():
        return Exec(fp16_safe)
    built = kernels.available()  # the C kernels: Winograd convolutions for any network
    kern = place.kernel_shapes and built  # and window attention where every window and head fits it
    chunked = kern or CHUNKED_WITHOUT_KERNEL
    attn = kern and ATTENTION_KERNEL
    ln = built and chunked and LAYER_NORM_KERNEL  # fp32 rows in; under autocast the linears take bf16
    f32, bf16 = torch.float32, torch.bfloat16
    if torch.is_autocast_enabled("cpu"):
        if torch.get_autocast_dtype("cpu") != bf16 or x.dtype != f32 or place.dtype != f32:
            return Exec(fp16_safe)
        norm_bf16 = bf16 if ln else None  # the pre-norms written in what the bf16 linears take
        return Exec(fp16_safe, bf16 if ONEDNN_BF16 else None, chunked, attn_kernel=attn, norm_dtype=norm_bf16)
    if x.dtype != place.dtype:
        return Exec(fp16_safe)
    if x.dtype == f32:
        return Exec(fp16_safe, f32 if ONEDNN_LINEAR else None, chunked, built, attn, f32 if ln else None, built)
    if x.dtype == bf16:
        return Exec(fp16_safe, bf16 if ONEDNN_BF16 else None, chunked, attn_kernel=attn)
    return Exec(fp16_safe)


def linear(
    layer: nn.Linear,
    x: Tensor,
    ex: Exec,
    gelu: bool = False,
    residual: Tensor | None = None,
    bias: Tensor | None = None,
) -> Tensor:
    """``layer(x)``, optionally followed by GELU or ``+ residual``; fused by oneDNN when ``ex`` says so.
    ``bias`` replaces the layer's own (Swin2SR's qkv takes its bias from separate q and v vectors)."""
    w: Tensor = layer.weight
    b: Tensor | None = layer.bias if bias is None else bias
    dt = ex.linear_dtype
    if dt is None or x.dtype not in (torch.float32, torch.bfloat16):
        y = F.linear(x, w, b)
        y = F.gelu(y) if gelu else y
        return y if residual is None else residual + y
    if x.dtype != dt:  # bf16 autocast: do its cast ourselves so that the fused kernel still runs
        x = x.to(dt)
    if w.dtype != dt and b is not None:
        b = b.to(dt)
    if PREPACK_WEIGHTS and dt == torch.float32:
        w = _packed_weight(layer, dt, x.numel() // x.shape[-1])
    elif w.dtype != dt:
        w = w.to(dt)
    lp = torch.ops.mkldnn._linear_pointwise
    if residual is not None and residual.dtype == dt and residual.shape[:-1] == x.shape[:-1]:
        if RESIDUAL_POSTOP or dt != torch.float32:
            fused: Tensor = lp.binary(x, residual.contiguous(), w, b, "add")
            return fused
        return lp(x, w, b, "none", [], "").add_(residual)  # type: ignore[no-any-return]
    if gelu and not FUSE_GELU:
        y = lp(x, w, b, "none", [], "")
        if GELU_KERNEL and ex.gelu_kernel and y.dtype == torch.float32 and y.is_contiguous():
            return kernels.gelu_(y)
        return torch.ops.aten.gelu_(y)  # type: ignore[no-any-return]
    act: Tensor = lp(x, w, b, "gelu", [], "none") if gelu else lp(x, w, b, "none", [], "")
    return act if residual is None else residual + act


def norm(module: nn.LayerNorm, x: Tensor, ex: Exec) -> Tensor:
    """``module(x)`` for a pre-norm whose output only feeds linears (``linear``; and HAT's conv branch, which
    autocast runs in bf16 too). With ``ex.norm_dtype`` (set only on the chunked path) the C
    kernel reads fp32 or bf16 rows (under bf16 autocast the residual stream is bf16 from ``conv_first`` on)
    and writes that dtype: bf16 under bf16 autocast, what the bf16 linear takes (rounded as
    ``.to(torch.bfloat16)`` rounds), fp32 otherwise. Else PyTorch's LayerNorm (any dtype, autograd, export)."""
    if ex.norm_dtype is None or not _norm_kernel_takes(module, x):
        out: Tensor = module(x)
        return out
    return kernels.layer_norm(x, module.weight, module.bias, module.eps, ex.norm_dtype)


def _norm_kernel_takes(module: nn.LayerNorm, x: Tensor) -> bool:
    w, b = module.weight, module.bias
    return not (
        torch.is_grad_enabled()
        or x.dtype not in (torch.float32, torch.bfloat16)
        or not x.is_contiguous()
        or len(module.normalized_shape) != 1
        or (w is not None and w.dtype != torch.float32)
        or (b is not None and b.dtype != torch.float32)
    )


def _residual_in_kernel(ex: Exec, x: Tensor, residual: Tensor) -> bool:
    """Whether a linear's fp32 residual may be added by one of the C kernels that follow the GEMM: the
    fp32 chunked path with the kernels built (``ex.norm_dtype`` set), fp32 oneDNN linears, and residuals
    not fused into oneDNN's post-op (``RESIDUAL_POSTOP``)."""
    f32 = torch.float32
    return not RESIDUAL_POSTOP and ex.norm_dtype == f32 and ex.linear_dtype == f32 and x.dtype == residual.dtype == f32


def linear_residual_norm(
    layer: nn.Linear, x: Tensor, residual: Tensor, module: nn.LayerNorm, ex: Exec
) -> tuple[Tensor, Tensor]:
    """``s = linear(layer, x) + residual`` and ``norm(module, s)``: a block's output projection, its residual
    and the MLP's pre-norm. In fp32 on the chunked path (``ADD_NORM_KERNEL``) the residual is added by the
    LayerNorm kernel while it normalises the rows (``kernels.add_layer_norm``), a pass over the chunk fewer
    than the add after the GEMM and the norm apart."""
    if ADD_NORM_KERNEL and _residual_in_kernel(ex, x, residual) and _norm_kernel_takes(module, residual):
        s = linear(layer, x, ex)
        if s.shape == residual.shape and s.is_contiguous():
            return s, kernels.add_layer_norm(s, residual, module.weight, module.bias, module.eps, torch.float32)
        s.add_(residual)
    else:
        s = linear(layer, x, ex, residual=residual)
    return s, norm(module, s, ex)


def _packed_weight(layer: nn.Linear, dt: torch.dtype, rows: int) -> Tensor:
    """The layer's weight in ``dt``, reordered by oneDNN for inputs of about ``rows`` rows; cached until
    the weight's values change (``values_key``)."""
    key = (*values_key(layer.weight), dt)
    cached = _PACKED.get(layer)
    if cached is None or cached[0] != key:
        with torch.inference_mode(False), torch.no_grad():
            packed = torch.ops.mkldnn._reorder_linear_weight(layer.weight.detach().to(dt), rows)
        cached = _PACKED[layer] = (key, packed)
    return cached[1]


def _winograd_shape_ok(conv: nn.Module, x: Tensor) -> bool:
    return (
        isinstance(conv, nn.Conv2d)
        and conv.kernel_size == (3, 3)
        and conv.stride == (1, 1)
        and conv.padding == (1, 1)
        and conv.dilation == (1, 1)
        and conv.groups == 1
        and conv.padding_mode == "zeros"
        and x.dim() == 4
        and _winograd_pays(conv.in_channels * conv.out_channels, x.shape[-2] * x.shape[-1])
        and x.dtype == conv.weight.dtype == torch.float32
    )


def _winograd_pays(channel_product: int, pixels: int) -> bool:
    return channel_product >= WINOGRAD_MIN_CHANNEL_PRODUCT or channel_product * pixels >= WINOGRAD_MIN_WORK


def _winograd_weight(conv: nn.Conv2d, tile: int) -> Tensor:
    """The conv's Winograd weight, cached on the module like the attention biases (keyed on the version)."""
    key = (*values_key(conv.weight), tile)
    cached = getattr(conv, "_swinir_winograd", None)
    if cached is None or cached[0] != key:
        with torch.inference_mode(False), torch.no_grad():
            cached = (key, kernels.winograd_weight(conv.weight, tile))
        conv._swinir_winograd = cached  # type: ignore[assignment]
    return cached[1]


def conv(module: nn.Module, x: Tensor, ex: Exec, tile: int | None = None) -> Tensor:
    """``module(x)`` for a conv or a Sequential of convs and activations; with ``ex.winograd`` the large 3x3
    convs run as Winograd F(tile x tile, 3x3) (``swinir.kernels.conv3x3``; default ``WINOGRAD_TILE``: F(4x4)
    does 4x fewer multiply-adds, F(2x2) 2.25x fewer with a quarter of F(4x4)'s rounding, for deep chains of
    convs whose rounding would add up)."""
    if isinstance(module, nn.Sequential):
        for m in module:
            x = conv(m, x, ex, tile)
        return x
    if ex.winograd and _winograd_shape_ok(module, x):
        u = _winograd_weight(module, WINOGRAD_TILE if tile is None else tile)  # type: ignore[arg-type]
        return kernels.conv3x3(x, u, module.bias)  # type: ignore[arg-type]
    out: Tensor = module(x)
    return out


def chunk_tokens(n: int, channels: int, itemsize: int, threads: int) -> int:
    """Tokens per chunk: the largest power-of-two number of ``n``-token windows whose ``channels``-wide rows
    fit in ``CPU_CHUNK_BYTES_PER_THREAD`` per thread (at least one window), and at least the largest
    power-of-two number of windows within ``CPU_CHUNK_MIN_TOKENS``.

    Why this size: the chunk's temporaries (qkv is 3x the rows, the MLP hidden 2x) then stay a few MB, which
    glibc keeps in its heap; 4096-token chunks of the 180- and 240-channel models allocated 8-12 MB each and
    page-faulted them back in for every block (26k-64k faults, 5-10% of a one-thread 64x64 forward). A power
    of two splits power-of-two window counts (a 64x64 input has 64 windows) without a small tail chunk, which
    measured slower (1088-token chunks of 64 windows: 3-5%). At 2 threads the chunk doubles: each thread
    then works on about as many rows as one thread does alone. Where oneDNN runs AVX-512 code one thread
    gets 2048 tokens too (``CPU_CHUNK_MIN_TOKENS``): half the calls per block, and measured faster.
    """
    if CPU_CHUNK_TOKENS is not None:
        return max(1, CPU_CHUNK_TOKENS // n) * n
    fit = CPU_CHUNK_BYTES_PER_THREAD * max(1, threads) // max(1, n * channels * itemsize)
    fit = max(fit, CPU_CHUNK_MIN_TOKENS // n)
    return (1 << max(0, fit.bit_length() - 1)) * n


class ChunkAttention:
    """Window attention for the windows of one chunk, given their qkv rows: the C kernel or PyTorch's fused
    attention per shift-mask group. Called as ``attend(qkv, scale)`` with qkv (tokens, 3C) in window order
    (q, k, v each head-major, as the releases' qkv projections lay them out); returns (tokens, C) of
    softmax(scale q k^T + bias) v, computed in fp32. qkv may be bf16 (the linears' output under bf16): the
    kernel then reads it as it is and returns bf16 (what the output projection casts to anyway), which saves
    two full-size casts per block; PyTorch's attention gets ``qkv.float()`` and returns fp32."""

    def __init__(
        self,
        bias: Tensor,
        counts: Sequence[int],
        group_end: Tensor,
        first: int,
        n: int,
        heads: int,
        kernel: bool,
        bias_t: Tensor | None = None,
    ) -> None:
        self.bias, self.counts, self.group_end = bias, counts, group_end
        self.first, self.n, self.heads, self.kernel = first, n, heads, kernel
        self.bias_t = bias_t

    def __call__(self, qkv: Tensor, scale: float) -> Tensor:
        tokens, c = qkv.shape[0], qkv.shape[1] // 3
        if self.kernel:
            if not KERNEL_BF16_IO or qkv.dtype not in (torch.float32, torch.bfloat16):
                qkv = qkv.float()
            qkv = qkv.contiguous()
            a = torch.empty(tokens, c, dtype=qkv.dtype)
            qkv3 = qkv.view(-1, self.n, 3 * c)
            kernels.window_attention(
                qkv3, self.bias, self.group_end, self.first, a.view(-1, self.n, c), self.heads, scale, self.bias_t
            )
            return a
        qkv5 = qkv.float().view(-1, self.n, 3, self.heads, c // self.heads)
        return _chunk_attention(qkv5, self.bias, self.counts, self.first, scale)


class ChunkRows:
    """Where a chunk's result goes: rows ``first:first + count`` of the block's (tokens, C) output ``dst``,
    or its rows ``index`` (a shifted block's chunk, which stays in shifted-window order until here)."""

    def __init__(self, dst: Tensor, first: int, count: int, index: Tensor | None) -> None:
        self.dst, self.first, self.count, self.index = dst, first, count, index

    def put(self, xs: Tensor) -> None:
        """The chunk's result ``xs`` (count, C) copied (or scattered) into place; the scatter by
        ``kernels.put_rows`` where the kernels are built (``PUT_ROWS_KERNEL``)."""
        if self.index is None:
            self.dst[self.first : self.first + self.count].copy_(xs)
        elif (
            PUT_ROWS_KERNEL
            and kernels.available()
            and xs.dtype == self.dst.dtype
            and xs.is_contiguous()
            and self.dst.is_contiguous()
        ):
            kernels.put_rows(xs, self.dst, self.index)
        else:
            self.dst.index_copy_(0, self.index, xs)

    def put_sum(self, layer: nn.Linear, x: Tensor, residual: Tensor, ex: Exec) -> None:
        """``linear(layer, x, residual=residual)`` put into place; in fp32 with the kernels
        (``ADD_ROWS_KERNEL``) the residual is added as the sum is written into place
        (``kernels.add_rows``): one pass over the chunk instead of the add and the copy."""
        if (
            ADD_ROWS_KERNEL
            and _residual_in_kernel(ex, x, residual)
            and self.dst.dtype == torch.float32
            and residual.is_contiguous()
            and self.dst.is_contiguous()
        ):
            y = linear(layer, x, ex)
            if y.shape == residual.shape and y.is_contiguous():
                kernels.add_rows(y, residual, self.dst, self.first, self.index)
                return
            self.put(y.add_(residual))
            return
        self.put(linear(layer, x, ex, residual=residual))


def projection_input(a: Tensor, layer: nn.Linear, ex: Exec) -> Tensor:
    """The attention output ``a`` as the output projection takes it: as it is when it already has the
    dtype that ``linear`` runs in (bf16 from the kernel), else in the layer's weight dtype."""
    return a if a.dtype == ex.linear_dtype else a.to(layer.weight.dtype)


class ChunkedBlock(Protocol):
    """A transformer block that the chunked CPU path can run: windows of ``window_size``, shifted by
    ``shift_size``, ``num_heads`` heads, a (groups, 1, heads, N, N) or (1, heads, N, N) attention bias
    from ``attn_bias``, and ``forward_chunk``, the whole block on a chunk of tokens in window order that
    calls ``attend`` for its attention."""

    window_size: int
    shift_size: int
    num_heads: int

    def attn_bias(self, device: torch.device) -> Tensor: ...

    def forward_chunk(self, xs: Tensor, attend: ChunkAttention, ex: Exec, out: ChunkRows) -> None: ...


class ChunkedBlockWithSide(Protocol):
    """A ``ChunkedBlock`` whose chunks need the same rows of a second (tokens, C) tensor beside their own
    (HAT's hybrid block: the normalised tokens go to the attention, the residual plus its convolution
    branch is what the attention output is added to)."""

    window_size: int
    shift_size: int
    num_heads: int

    def attn_bias(self, device: torch.device) -> Tensor: ...

    def forward_chunk_side(
        self, xs: Tensor, side: Tensor, attend: ChunkAttention, ex: Exec, out: ChunkRows
    ) -> None: ...


def forward_chunked(
    block: ChunkedBlock | ChunkedBlockWithSide,
    x: Tensor,
    plan: WindowPlan | None,
    out: Tensor,
    ex: Exec,
    side: Tensor | None = None,
) -> Tensor:
    """A whole transformer block chunk by chunk of windows, written into ``out`` (``x`` is never written).

    Each chunk (``chunk_tokens``) goes through ``block.forward_chunk`` (for SwinIR: LayerNorm -> qkv ->
    attention kernel -> proj -> residual + LayerNorm -> MLP -> residual) while it is in the last-level
    cache, and the block puts its result into place through a ``ChunkRows``. The MLP is token-wise, so a
    shifted block keeps its chunk in shifted-window order and scatters it once, at the end (in fp32 as
    the last residual is added: ``ChunkRows.put_sum``). No temporary is larger than a chunk, so the allocator reuses the same few MB
    instead of page-faulting in fresh full-size buffers for every block (that was 5-20% of the CPU time).
    Attention runs in fp32 also when the linears run in bf16 (bf16 weights or autocast): the kernel reads
    bf16 qkv and writes bf16 but computes in fp32, and is faster than PyTorch's bf16 attention on these tiles. With ``side`` (x's shape), each
    chunk also gets side's rows in the same order (``ChunkedBlockWithSide.forward_chunk_side``).
    """
    b, length, c = x.shape
    n = block.window_size**2
    heads = block.num_heads
    if block.shift_size == 0:
        counts: Sequence[int] = (b * length // n,)
    else:
        assert plan is not None and plan.groups is not None, "shifted blocks need a grouped WindowPlan"
        counts = plan.groups
    group_end = torch.tensor(counts, dtype=torch.int64).cumsum(0)
    bias = block.attn_bias(x.device).reshape(len(counts), heads, n, n).float().contiguous()
    bias_t = kernels.transposed_bias(bias, c // heads) if ex.attn_kernel else None
    src, dst = x.view(b * length, c), out.view(b * length, c)
    beside = None if side is None else side.reshape(b * length, c)
    step = chunk_tokens(n, c, x.element_size(), torch.get_num_threads())
    for t0 in range(0, b * length, step):
        t1 = min(t0 + step, b * length)
        idx = None if plan is None or block.shift_size == 0 else plan.perm[t0:t1]
        xs = src[t0:t1] if idx is None else src.index_select(0, idx)
        attend = ChunkAttention(bias, counts, group_end, t0 // n, n, heads, ex.attn_kernel, bias_t)
        rows_out = ChunkRows(dst, t0, t1 - t0, idx)
        if beside is None:
            block.forward_chunk(xs, attend, ex, rows_out)  # type: ignore[union-attr]
        else:
            rows = beside[t0:t1] if idx is None else beside.index_select(0, idx)
            block.forward_chunk_side(xs, rows, attend, ex, rows_out)  # type: ignore[union-attr]
    return out


def _chunk_attention(qkv: Tensor, bias: Tensor, counts: Sequence[int], first: int, scale: float) -> Tensor:
    """PyTorch's fused attention on one chunk's windows (qkv: (windows, n, 3, heads, d); bias: (groups,
    heads, n, n)); returns (windows * n, C)."""
    q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
    out = attention_by_group(q, k, v, bias.unsqueeze(1), counts, scale, first)
    return out.transpose(1, 2).reshape(-1, out.shape[1] * out.shape[3])
