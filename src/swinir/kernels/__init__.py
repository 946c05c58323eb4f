"""Hand-written CPU kernels, compiled on first use with the system C compiler and cached.

Why: on a CPU, PyTorch's fused attention runs SwinIR's tiny 64-token windows at ~30 GFLOP/s (per-tile
dispatch, online-softmax rescaling, layout copies), which made attention 15-17% of an fp32 forward. The
window-attention kernel in ``window_attention.c`` computes each window and head with the whole score tile
in L1 and reads q, k, v straight from the qkv projection's output (fp32, or bf16 widened inside the kernel,
with a bf16 result: the bf16 path needs no separate casts). ``winograd.c`` holds the transforms of
Winograd F(2x2, 3x3) and F(4x4, 3x3) for the larger 3x3 convolutions. ``layer_norm.c`` normalises the
chunks' rows before qkv and fc1, writing bf16 straight away where a bf16 linear follows (and adds the output
projection's residual on the way); ``rows.c`` writes a chunk's last residual sum straight into its rows of the
block's output (and scatters a shifted chunk's rows there by a memcpy per row); ``gelu.c`` applies the exact GELU to fc1's fp32 output where oneDNN's GELU post-op is not used.

Built per instruction set from one source (``simd.h``): AVX-512 where the CPU has it, else AVX2 + FMA;
``SWINIR_CPU_ISA=avx512|avx2|none`` forces one (CI runs the AVX2 build on AVX-512 machines this way).
Optional by design: on anything but Linux x86-64 with AVX2 or AVX-512, without a C compiler, when the build
fails, or with ``SWINIR_CPU_KERNELS=0``, ``available()`` is False and the model uses
``F.scaled_dot_product_attention`` and oneDNN's direct convolutions (the same numbers to ~1e-6).
``status()`` says which and why. The shared library (both .c files) lives in ``<cache>/kernels/`` under a
name that hashes the sources, the flags and the compiler, so an edit or another compiler rebuilds it; it is
written to a temporary file and renamed into place, so concurrent first uses (pytest-xdist workers,
torchrun ranks) are safe.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from swinir.atomic import atomic_path
from swinir.paths import cache_dir

SOURCES = tuple(
    Path(__file__).with_name(n) for n in ("window_attention.c", "winograd.c", "layer_norm.c", "rows.c", "gelu.c")
)
HEADERS = (Path(__file__).with_name("simd.h"),)
CFLAGS = ("-O3", "-fPIC", "-shared")
# One source, built once per instruction set; chosen from the CPU's flags, or forced with SWINIR_CPU_ISA
# (``avx512``, ``avx2``, ``none``), e.g. to test the AVX2 build on an AVX-512 machine.
ISAS = {
    "avx512": (("avx512f", "avx512dq", "fma"), ("-mavx512f", "-mavx512dq", "-mfma", "-DSWINIR_ISA_AVX512")),
    "avx2": (("avx2", "fma"), ("-mavx2", "-mfma", "-DSWINIR_ISA_AVX2")),
}
ISA_ENV = "SWINIR_CPU_ISA"
# PyTorch's Linux wheels run their CPU threads on libgomp; a kernel built with -fopenmp then shares that very
# pool (the loader reuses the loaded libgomp.so.1), so its threads are the ones already spinning after a GEMM.
OPENMP = "OpenMP" in torch.__config__.parallel_info()
MAX_TOKENS = 64  # window 8
MAX_HEAD_DIM = 32
# Head dims up to this take the kernel's transposed path (queries along the vector lanes, softmax down the
# columns: no horizontal reductions, p v on full vectors whatever the head dim), which needs the bias
# transposed: per call 1.2-1.3x faster at d=10-12 (builtin-x4, lightweight), 1.15-1.2x at d=30 (M models),
# 1.0-1.15x at d=32 (benchmarks/results_cpu.md, session 10). 0 sends every head dim through the row-wise
# path of earlier sessions (for A/B comparisons).
TRANSPOSED_HEAD_DIM = MAX_HEAD_DIM
# bf16 qkv on the AVX-512 build of a CPU with AVX512-BF16: the scores by its bf16 dot products (two products
# per lane and instruction, exact products, the pairwise sums rounded as the instruction rounds: ~1e-7 from
# the fp32 multiply-adds on the same bf16 numbers), 1.1-1.16x per call at d = 10-30 (session 10). Even d.
BF16_DOT = True
# and with them, on a CPU with AMX-BF16 that Linux lets this process use: those scores by AMX tile products
# (whole 64-token windows), where vdpbf16ps was no faster than fp32 FMAs (Xeon, session 12)
AMX_SCORES = True

_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
_tried = False
_status = "not loaded yet"
_enabled = True
_isa: str | None = None


def cpu_flags() -> set[str]:
    """The x86 feature flags of /proc/cpuinfo (empty elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _compiler() -> str | None:
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _flags(isa: str) -> list[str]:
    flags = [*CFLAGS, *ISAS[isa][1]]
    return [*flags, "-fopenmp"] if OPENMP else flags


def choose_isa() -> tuple[str | None, str]:
    """The kernels' instruction set here (or None) and, when None, why: forced by SWINIR_CPU_ISA, else
    the widest that the CPU's flags allow."""
    forced = os.environ.get(ISA_ENV, "").strip().lower()
    flags = cpu_flags()
    if forced in ("none", "off", "0"):
        return None, f"{ISA_ENV}={forced}"
    if forced and forced not in ISAS:
        return None, f"{ISA_ENV}={forced!r} is not one of {', '.join(ISAS)}, none"
    for name in (forced,) if forced else tuple(ISAS):
        needs = ISAS[name][0]
        if set(needs) <= flags:
            return name, ""
        if forced:
            return None, f"{ISA_ENV}={forced} but this CPU lacks {', '.join(sorted(set(needs) - flags))}"
    return None, "this CPU has neither AVX-512 nor AVX2+FMA"


def _build(cc: str, isa: str, target: Path) -> None:
    with atomic_path(target) as tmp:  # a failed build leaves nothing behind; concurrent builds are safe
        res = subprocess.run(
            [cc, *_flags(isa), "-o", str(tmp), *map(str, SOURCES)], capture_output=True, text=True, timeout=120
        )
        if res.returncode != 0:
            raise RuntimeError(f"{cc} failed: {res.stderr.strip()[-800:]}")


def _load() -> ctypes.CDLL | None:
    global _lib, _tried, _status, _isa
    if _tried:
        return _lib
    with _lock:
        if _tried:
            return _lib
        try:
            _lib, _isa, _status = _try_load()
        except Exception as exc:
            _lib, _isa, _status = None, None, f"build failed ({exc}); using PyTorch's attention"
            warnings.warn(
                f"swinir: the CPU window-attention kernel could not be built, so CPU inference uses "
                f"PyTorch's slower attention. Reason: {exc}",
                RuntimeWarning,
                stacklevel=3,
            )
        _tried = True
        return _lib


def _try_load() -> tuple[ctypes.CDLL | None, str | None, str]:
    if os.environ.get("SWINIR_CPU_KERNELS", "1").strip().lower() in ("0", "off", "false", "no"):
        return None, None, "disabled by SWINIR_CPU_KERNELS=0"
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        return None, None, f"not built on {platform.system()} {platform.machine()} (Linux x86-64 only)"
    isa, why = choose_isa()
    if isa is None:
        return None, None, why
    cc = _compiler()
    if cc is None:
        return None, None, "no C compiler found (install gcc or set CC)"
    version = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30).stdout
    sources = b"".join(p.read_bytes() for p in (*SOURCES, *HEADERS))
    key = hashlib.sha256(sources + " ".join(_flags(isa)).encode() + cc.encode() + version.encode())
    target = cache_dir() / "kernels" / f"swinir_cpu-{isa}-{key.hexdigest()[:16]}.so"
    if not target.is_file():
        _build(cc, isa, target)
    lib = ctypes.CDLL(str(target))
    fn = lib.swinir_window_attention
    fn.restype = ctypes.c_int
    ptr, flag, i64 = ctypes.c_void_p, ctypes.c_int, ctypes.c_int64
    attention_args: list[type[ctypes._SimpleCData[Any]]] = [ptr, flag, ptr, ptr, ptr, i64, ptr, flag]
    fn.argtypes = attention_args + [i64] * 5 + [ctypes.c_float, flag]
    lib.swinir_winograd23_input.restype = None
    lib.swinir_winograd23_input.argtypes = [ctypes.c_void_p] + [ctypes.c_int64] * 6 + [ctypes.c_void_p]
    lib.swinir_winograd23_output.restype = None
    lib.swinir_winograd23_output.argtypes = [ctypes.c_void_p] * 2 + [ctypes.c_int64] * 6 + [ctypes.c_void_p]
    lib.swinir_winograd43_input.restype = None
    lib.swinir_winograd43_input.argtypes = [ctypes.c_void_p] + [ctypes.c_int64] * 6 + [ctypes.c_void_p]
    lib.swinir_winograd43_output.restype = None
    lib.swinir_winograd43_output.argtypes = [ctypes.c_void_p] * 2 + [ctypes.c_int64] * 6 + [ctypes.c_void_p]
    return lib, isa, f"{isa} build loaded from {target}"


def available() -> bool:
    """Whether the window-attention kernel can run here (builds it on the first call)."""
    return _enabled and _load() is not None


def isa() -> str | None:
    """The instruction set of the loaded kernels ("avx512", "avx2"), or None when they are not used."""
    return _isa if available() else None


@contextmanager
def disabled() -> Iterator[None]:
    """Within this block the model takes its PyTorch-only path (for comparisons and tests)."""
    global _enabled
    before, _enabled = _enabled, False
    try:
        yield
    finally:
        _enabled = before


def status() -> str:
    """One line: where the kernel was loaded from, or why it is not used."""
    _load()
    return _status if _enabled else "switched off by swinir.kernels.disabled()"


def usage_note(window_size: int, head_dims: list[int]) -> str:
    """One line for a model of this window and these head widths: whether the kernels run for it, and why
    not when they do not (what `swinir restore -v` prints)."""
    if not available():
        return f"swinir's CPU kernels are not in use ({status()}); PyTorch attention and convolutions run instead"
    if not all(supports(window_size * window_size, d) for d in head_dims):
        return (
            f"swinir's CPU kernels ({_isa}) do not fit this model (window {window_size}, head widths {head_dims}; "
            f"they take up to {MAX_TOKENS} tokens per window and head width {MAX_HEAD_DIM}): PyTorch attention runs"
        )
    return f"swinir's CPU kernels are in use for window attention, LayerNorm and fp32 Winograd 3x3 convolutions: {status()}"


def supports(n: int, head_dim: int) -> bool:
    return n <= MAX_TOKENS and head_dim <= MAX_HEAD_DIM


def transposed_bias(bias: Tensor, head_dim: int) -> Tensor | None:
    """The bias as the kernel's transposed path reads it (key-major per head), or None where that path is
    not taken; worth computing once per block rather than per call."""
    return bias.transpose(-1, -2).contiguous() if head_dim <= TRANSPOSED_HEAD_DIM else None


def window_attention(
    qkv: Tensor,
    bias: Tensor,
    group_end: Tensor,
    first_window: int,
    out: Tensor,
    heads: int,
    scale: float,
    bias_t: Tensor | None = None,
) -> None:
    """Write softmax(scale q k^T + bias) v of every window in ``qkv`` into ``out``.

    qkv: (windows, n, 3C) fp32 or bf16, the qkv projection of consecutive windows; out: (windows, n, C) fp32
    or bf16 (rounded to nearest even, as ``.to(torch.bfloat16)``). The math is fp32 either way: bf16 qkv is
    widened per window inside the kernel, which saves the caller a separate ``.float()`` copy.
    bias: (groups, heads, n, n) fp32; group_end: (groups,) int64 cumulative window counts, where window
    ``first_window + i`` uses the first group g with ``first_window + i < group_end[g]``. ``bias_t``:
    ``transposed_bias(bias, d)``, made here when needed and not given.
    Runs on PyTorch's OpenMP threads where PyTorch uses OpenMP, else on one thread.
    """
    lib = _load()
    if lib is None:
        raise RuntimeError(f"the CPU window-attention kernel is not available: {_status}")
    count, n, c3 = qkv.shape
    c = c3 // 3
    d = c // heads
    f32, bf16 = torch.float32, torch.bfloat16
    if not (qkv.dtype in (f32, bf16) and out.dtype in (f32, bf16) and bias.dtype == f32) or (
        group_end.dtype != torch.int64
    ):
        raise TypeError("window_attention takes fp32 or bf16 qkv/out, fp32 bias and int64 group_end")
    if not (qkv.is_contiguous() and out.is_contiguous() and bias.is_contiguous() and group_end.is_contiguous()):
        raise ValueError("window_attention needs contiguous tensors")
    if not supports(n, d) or c * 3 != c3 or d * heads != c or tuple(out.shape) != (count, n, c):
        raise ValueError(f"unsupported shapes: qkv {tuple(qkv.shape)}, out {tuple(out.shape)}, heads {heads}")
    if bias.shape[1:] != (heads, n, n) or group_end.numel() != bias.shape[0]:
        raise ValueError(f"bias {tuple(bias.shape)} / group_end {group_end.numel()} do not match")
    if d > TRANSPOSED_HEAD_DIM:
        bias_t = None
    elif bias_t is None:
        bias_t = transposed_bias(bias, d)
    elif bias_t.shape != bias.shape or bias_t.dtype != f32 or not bias_t.is_contiguous():
        raise ValueError(f"bias_t {tuple(bias_t.shape)} is not the contiguous fp32 transpose of bias")
    fn = lib.swinir_window_attention
    if fn(
        qkv.data_ptr(),
        int(qkv.dtype == bf16),
        bias.data_ptr(),
        None if bias_t is None else bias_t.data_ptr(),
        group_end.data_ptr(),
        group_end.numel(),
        out.data_ptr(),
        int(out.dtype == bf16),
        first_window,
        count,
        n,
        heads,
        d,
        scale,
        int(BF16_DOT) | (2 if AMX_SCORES else 0),
    ):
        raise MemoryError("the CPU window-attention kernel could not allocate its scratch buffers")


_local = threading.local()


def _scratch(numel: int) -> Tensor:
    """A per-thread fp32 buffer reused across calls: a fresh multi-MB tensor per call would be served by
    fresh pages from the OS (page faults cost as much as the transforms)."""
    buf = getattr(_local, "buf", None)
    if buf is None or buf.numel() < numel:
        buf = _local.buf = torch.empty(numel, dtype=torch.float32)
    return buf[:numel]


# U = G g G^T per (out, in) channel pair: F(2x2, 3x3) and F(4x4, 3x3) (Lavin & Gray's points 0, +-1, +-2)
_G = {
    2: ((1.0, 0.0, 0.0), (0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0.0, 0.0, 1.0)),
    4: (
        (1 / 4, 0.0, 0.0),
        (-1 / 6, -1 / 6, -1 / 6),
        (-1 / 6, 1 / 6, -1 / 6),
        (1 / 24, 1 / 12, 1 / 6),
        (1 / 24, -1 / 12, 1 / 6),
        (0.0, 0.0, 1.0),
    ),
}
WINOGRAD_PIXELS = 8192  # output pixels per batch of GEMMs and per thread ...
WINOGRAD_SCRATCH_BYTES = 32 << 20  # ... as long as the transformed input (points x tiles x C floats) fits here


def winograd_weight(weight: Tensor, tile: int = 2) -> Tensor:
    """(out, in, 3, 3) conv weight -> (points, out, in) Winograd F(tile x tile, 3x3) weight, computed in
    float64; points = (tile + 2)^2: 16 for F(2x2, 3x3), 36 for F(4x4, 3x3)."""
    if tile not in _G:
        raise ValueError(f"Winograd tiles are 2 or 4, got {tile}")
    g = torch.tensor(_G[tile], dtype=torch.float64)
    u = torch.einsum("ak,oikl,bl->aboi", g, weight.detach().to(torch.float64, copy=False), g)
    return u.reshape((tile + 2) ** 2, weight.shape[0], weight.shape[1]).to(weight.dtype).contiguous()


def conv3x3(x: Tensor, u: Tensor, bias: Tensor | None) -> Tensor:
    """A 3x3 / stride 1 / zero-pad 1 conv of channels-last fp32 ``x`` (B, C, H, W) by Winograd.

    ``u`` comes from ``winograd_weight``; its first dimension says the variant: 16 points for F(2x2, 3x3)
    (4 instead of 9 multiply-adds per output pixel and channel pair; transforms that only add and subtract),
    36 for F(4x4, 3x3) (2.25; transforms with small integer coefficients, a few times the rounding).
    Returns a channels-last (B, out, H, W) tensor.
    """
    lib = _load()
    if lib is None:
        raise RuntimeError(f"the CPU kernels are not available: {_status}")
    b, c, h, w = x.shape
    o, points = u.shape[1], u.shape[0]
    if (
        x.dtype != torch.float32
        or u.dtype != torch.float32
        or u.dim() != 3
        or points not in (16, 36)
        or u.shape[2] != c
    ):
        raise ValueError(
            f"conv3x3 takes fp32 x (B, C, H, W) and u (16 or 36, out, C); got {tuple(x.shape)}, {tuple(u.shape)}"
        )
    tile = 2 if points == 16 else 4
    transform_in, transform_out = (
        (lib.swinir_winograd23_input, lib.swinir_winograd23_output)
        if tile == 2
        else (lib.swinir_winograd43_input, lib.swinir_winograd43_output)
    )
    if not x.is_contiguous(memory_format=torch.channels_last):
        x = x.contiguous(memory_format=torch.channels_last)
    if bias is not None:
        bias = bias.detach().to(torch.float32).contiguous()
    out = torch.empty((b, o, h, w), dtype=torch.float32, memory_format=torch.channels_last)
    tiles = b * -(-h // tile) * -(-w // tile)
    bias_ptr = None if bias is None else bias.data_ptr()
    onednn = torch.backends.mkldnn.is_available()  # type: ignore[no-untyped-call]  # unannotated in torch
    per_thread = max(1, WINOGRAD_PIXELS // (tile * tile))
    per_batch = max(1, min(per_thread * torch.get_num_threads(), WINOGRAD_SCRATCH_BYTES // (4 * points * c)))
    scratch = _scratch(points * min(per_batch, tiles) * c)
    for first in range(0, tiles, per_batch):
        count = min(per_batch, tiles - first)
        v = scratch[: points * count * c].view(points, count, c)
        transform_in(x.data_ptr(), b, h, w, c, first, count, v.data_ptr())
        # one GEMM (count x in) @ (in x out) per point; oneDNN's inner product runs these ~1.35x faster than bmm
        if onednn:
            m = [torch.ops.mkldnn._linear_pointwise(v[k], u[k], None, "none", [], "") for k in range(points)]
        else:
            m = list(torch.bmm(v, u.transpose(1, 2)).unbind(0))
        ptrs = (ctypes.c_void_p * points)(*(t.data_ptr() for t in m))
        transform_out(ptrs, bias_ptr, b, h, w, o, first, count, out.data_ptr())
    return out


_LAYER_NORM_ARGS: list[Any] = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p]


def _layer_norm_fn(lib: ctypes.CDLL) -> Any:
    fn = lib.swinir_layer_norm
    if fn.argtypes is None:
        fn.restype = None
        fn.argtypes = [*_LAYER_NORM_ARGS, ctypes.c_float, ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
    return fn


def _check_layer_norm(x: Tensor, weight: Tensor | None, bias: Tensor | None, out_dtype: torch.dtype) -> ctypes.CDLL:
    lib = _load()
    if lib is None:
        raise RuntimeError(f"the CPU kernels are not available: {_status}")
    if x.dtype not in (torch.float32, torch.bfloat16) or not x.is_contiguous() or x.dim() == 0:
        raise ValueError(f"layer_norm takes contiguous fp32 or bf16 x, got {x.dtype} {tuple(x.shape)}")
    if out_dtype not in (torch.float32, torch.bfloat16):
        raise ValueError(f"layer_norm writes fp32 or bf16, not {out_dtype}")
    c = x.shape[-1]
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and (t.dtype != torch.float32 or t.shape != (c,) or not t.is_contiguous()):
            raise ValueError(f"layer_norm's {name} must be contiguous fp32 ({c},), got {t.dtype} {tuple(t.shape)}")
    return lib


def _ptr(t: Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def layer_norm(x: Tensor, weight: Tensor | None, bias: Tensor | None, eps: float, out_dtype: torch.dtype) -> Tensor:
    """``F.layer_norm`` over the last dimension of contiguous fp32 or bf16 ``x`` (computed in fp32, as PyTorch
    computes bf16 LayerNorms), returned in ``out_dtype``: fp32, or bf16 rounded to nearest even from the fp32
    result, as ``.to(torch.bfloat16)`` rounds. No autograd: inference only. ``weight`` and ``bias``: fp32
    (C,) or None."""
    lib = _check_layer_norm(x, weight, bias, out_dtype)
    c = x.shape[-1]
    out = torch.empty(x.shape, dtype=out_dtype)
    rows = x.numel() // c if c else 0
    if rows:
        in_bf16, out_bf16 = int(x.dtype == torch.bfloat16), int(out_dtype == torch.bfloat16)
        _layer_norm_fn(lib)(x.data_ptr(), rows, c, _ptr(weight), _ptr(bias), eps, out.data_ptr(), in_bf16, out_bf16)
    return out


def add_layer_norm(
    x: Tensor, residual: Tensor, weight: Tensor | None, bias: Tensor | None, eps: float, out_dtype: torch.dtype
) -> Tensor:
    """``x += residual`` in place, then ``layer_norm`` of the sum, in one pass over the rows (a block's
    residual add and the pre-norm that follows it). ``x`` and ``residual``: contiguous fp32 of one shape."""
    lib = _check_layer_norm(x, weight, bias, out_dtype)
    if x.dtype != torch.float32 or residual.dtype != torch.float32 or residual.shape != x.shape:
        raise ValueError(
            f"add_layer_norm adds fp32 of one shape, got {x.dtype} {tuple(x.shape)} and "
            f"{residual.dtype} {tuple(residual.shape)}"
        )
    residual = residual.contiguous()
    c = x.shape[-1]
    out = torch.empty(x.shape, dtype=out_dtype)
    rows = x.numel() // c if c else 0
    if rows:
        fn = lib.swinir_add_layer_norm
        if fn.argtypes is None:
            fn.restype = None
            fn.argtypes = [ctypes.c_void_p, *_LAYER_NORM_ARGS, ctypes.c_float, ctypes.c_void_p, ctypes.c_int]
        out_bf16 = int(out_dtype == torch.bfloat16)
        fn(x.data_ptr(), residual.data_ptr(), rows, c, _ptr(weight), _ptr(bias), eps, out.data_ptr(), out_bf16)
    return out


def add_rows(y: Tensor, residual: Tensor, dst: Tensor, first: int, index: Tensor | None) -> None:
    """``dst[first + i] = y[i] + residual[i]`` for each row i of the (rows, C) fp32 ``y``, or ``dst[index[i]]``
    with an int64 ``index`` (a shifted block's chunk, in shifted-window order): the add and the copy (or
    scatter) into the block's output in one pass. ``dst``: contiguous fp32 (tokens, C). The caller keeps
    the rows inside ``dst`` (the index is a permutation of its rows, or ``first + rows`` fits)."""
    lib = _load()
    if lib is None:
        raise RuntimeError(f"the CPU kernels are not available: {_status}")
    rows, c = y.shape
    ok = all(t.dtype == torch.float32 and t.is_contiguous() for t in (y, residual, dst))
    if not ok or residual.shape != y.shape or dst.dim() != 2 or dst.shape[1] != c:
        raise ValueError(
            f"add_rows takes contiguous fp32 y, residual (rows, C) and dst (tokens, C); got {tuple(y.shape)}, "
            f"{tuple(residual.shape)}, {tuple(dst.shape)}"
        )
    if index is not None and (index.dtype != torch.int64 or not index.is_contiguous() or index.numel() != rows):
        raise ValueError(f"add_rows' index must be {rows} contiguous int64 row numbers")
    if index is not None and rows and not (int(index.min()) >= 0 and int(index.max()) < dst.shape[0]):
        raise ValueError(f"add_rows' index holds rows outside dst's {dst.shape[0]}")  # the C loop does not check
    if index is None and not 0 <= first <= dst.shape[0] - rows:
        raise ValueError(f"rows {first}..{first + rows} are not inside dst's {dst.shape[0]}")
    fn = lib.swinir_add_rows
    if fn.argtypes is None:
        fn.restype = None
        p, i64 = ctypes.c_void_p, ctypes.c_int64
        fn.argtypes = [p, p, i64, i64, p, i64, p]
    if rows:
        fn(y.data_ptr(), residual.data_ptr(), rows, c, _ptr(index), first, dst.data_ptr())


def put_rows(src: Tensor, dst: Tensor, index: Tensor) -> None:
    """``dst[index[i]] = src[i]`` for each row i of the (rows, C) ``src``: ``dst.index_copy_(0, index, src)``
    for contiguous tensors of one dtype, by a copy per row (PyTorch's scatter of narrow bf16 rows is several
    times slower). The index must hold row numbers of ``dst`` (checked: the C loop does not)."""
    lib = _load()
    if lib is None:
        raise RuntimeError(f"the CPU kernels are not available: {_status}")
    rows = src.shape[0] if src.dim() == 2 else -1
    if (
        rows < 0
        or dst.dim() != 2
        or dst.shape[1] != src.shape[1]
        or dst.dtype != src.dtype
        or not (src.is_contiguous() and dst.is_contiguous())
    ):
        raise ValueError(
            f"put_rows takes contiguous (rows, C) src and (tokens, C) dst of one dtype; got {src.dtype} "
            f"{tuple(src.shape)}, {dst.dtype} {tuple(dst.shape)}"
        )
    if index.dtype != torch.int64 or not index.is_contiguous() or index.numel() != rows:
        raise ValueError(f"put_rows' index must be {rows} contiguous int64 row numbers")
    if rows and not (int(index.min()) >= 0 and int(index.max()) < dst.shape[0]):
        raise ValueError(f"put_rows' index holds rows outside dst's {dst.shape[0]}")
    fn = lib.swinir_put_rows
    if fn.argtypes is None:
        fn.restype = None
        p, i64 = ctypes.c_void_p, ctypes.c_int64
        fn.argtypes = [p, i64, i64, p, p]
    if rows:
        fn(src.data_ptr(), rows, src.shape[1] * src.element_size(), index.data_ptr(), dst.data_ptr())


def gelu_(x: Tensor) -> Tensor:
    """The exact (erf) GELU of contiguous fp32 ``x`` in place (``F.gelu`` to ~1e-6 relative; erf by a rational
    approximation, see gelu.c); returns ``x``. No autograd: inference only."""
    lib = _load()
    if lib is None:
        raise RuntimeError(f"the CPU kernels are not available: {_status}")
    if x.dtype != torch.float32 or not x.is_contiguous():
        raise ValueError(f"gelu_ takes a contiguous fp32 tensor, got {x.dtype} {tuple(x.shape)}")
    fn = lib.swinir_gelu
    if fn.argtypes is None:
        fn.restype = None
        fn.argtypes = [ctypes.c_void_p, ctypes.c_int64]
    if x.numel():
        fn(x.data_ptr(), x.numel())
    return x
