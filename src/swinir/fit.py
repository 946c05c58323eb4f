"""Tiles that fit: pick the tile side from the memory actually free, halve it when a tile still runs out.

On CUDA the model's cost per input pixel is measured once (peak allocation of two probe forwards, 64x64 and
128x128, whose difference removes the weights and workspace) and divided into ``torch.cuda.mem_get_info``'s
free bytes. On CPU the cost is the estimate below and the budget is ``MemAvailable``; a CPU run rarely fails
to allocate, it swaps, so the estimate leans large. Whatever the estimate, ``engine.restore`` halves the tile
and retries the image when a forward raises out-of-memory, so a wrong guess costs time, never the image.

On CPU the bar moves within a forward, after each transformer block and residual group
(``swinir.model.progress``), so the tile is bounded in time per stretch between two reports rather than per
tile: the longest (one block, or the upsampler after the last group) should take at most about
``SECONDS_PER_STEP`` (a 1024 px tile of builtin-x4 used to sit at 0% for 9 s, then jump to 100%). The
model's rate is measured once by probe forwards on a small tile (``measured_rate``, in the FLOPs of
``swinir.model.flops`` per second), and of the tilings whose tiles all meet that bound (and the memory
bound) the one that costs the fewest FLOPs in all is taken (``fastest_tile``), tiles laid as the engine lays
them (``swinir.tiling``): the whole image whenever it qualifies, down to ``MIN_TILE_PER_OVERLAP``
overlaps otherwise.
"""

from __future__ import annotations

import math
import os
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from swinir.tiling import tiles

__all__ = [
    "TileOutOfMemory",
    "is_oom",
    "free_bytes",
    "bytes_per_pixel",
    "auto_tile",
    "fastest_tile",
    "measured_rate",
    "smaller_tile",
]

CUDA_BUDGET = 0.7  # of the free bytes: the allocator's fragmentation and the blend buffers need the rest
CPU_BUDGET = 0.5
# off the CPU the forward runs ahead of the bar, which moves per tile: larger tiles would only lose a little
# less context at borders, for much longer stalls
MAX_AUTO_TILE = 1024
# CPU: the bar should move at least this often: each block of a forward (of a batch of tiles; a group's
# closing convolution counted in with its blocks), and the upsampler after the last group, at most this long
SECONDS_PER_STEP = 3.0
# ... but never below this many overlaps for it: with 32 px overlaps a 128 px tile does ~1.8x the work of the
# image itself, a 256 px one ~1.3x (builtin-x4, 512x384 photo, loaded 2-core EPYC: 37.4 CPU s with 128 px
# tiles against 17.5 s whole); past that the bar moves more slowly instead (heavy models, slow or busy CPUs)
MIN_TILE_PER_OVERLAP = 8
# the rate probe's tile: the largest side up to PROBE_MAX_SIDE under this many FLOPs. Small forwards run far
# below a large tile's rate (builtin-x4 bf16, 2 loaded cores, CPU time: 40 px 2.3, 96 px 15, 128 px 38,
# 256 px 56 GFLOP/s), which rejected tiles that would have been quick; 128 px errs short by less
PROBE_FLOPS = 20e9
PROBE_MAX_SIDE = 128
# ... or up to this share of the image's FLOPs (two probe forwards: at most ~2% of the run), so that a heavy
# model is not probed on a 16-24 px tile (real-world M x4: ~100 GFLOP/s there against ~210 at 128 px, which
# chose 30 tiles of ~290 px for a 1600x1200 photo instead of 12 of 424)
PROBE_SHARE = 0.01
_measured: dict[tuple[int, str, str], float] = {}
# model -> probe key -> (rate, whether both probe forwards ran: else a lower bound from the first alone)
_rates: weakref.WeakKeyDictionary[nn.Module, dict[str, tuple[float, bool]]] = weakref.WeakKeyDictionary()
FlopsOf = Callable[[int, int], int]  # FLOPs of one forward on an h x w input


class TileOutOfMemory(Exception):
    """A forward ran out of memory with this tile; the caller retries with a smaller one."""

    def __init__(self, tile_hw: tuple[int, int], batch: int, device: torch.device) -> None:
        super().__init__(f"out of memory on {device} for a {tile_hw[0]}x{tile_hw[1]} tile (batch {batch})")
        self.tile_hw, self.batch, self.device = tile_hw, batch, device


def is_oom(exc: BaseException) -> bool:
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        return True
    text = str(exc)
    return "out of memory" in text or "can't allocate memory" in text or "not enough memory" in text


def free_bytes(device: torch.device) -> int:
    """Bytes the process can still use on ``device``: CUDA's free memory, else the OS's available RAM."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free) + int(torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:
        pages = os.sysconf("SC_AVPHYS_PAGES") if hasattr(os, "sysconf") else 0
        return int(pages * os.sysconf("SC_PAGE_SIZE")) if pages else 4 << 30


@dataclass(frozen=True)
class _Arch:
    scale: int
    embed_dim: int
    heads: int
    window: int
    mlp_ratio: float
    out_ch: int
    upsampler: str = "pixelshuffle"


def _arch(model: nn.Module) -> _Arch:
    spec = getattr(model, "spec", None)
    if spec is not None:
        return _Arch(
            spec.upscale, spec.embed_dim, max(spec.num_heads), spec.window_size, spec.mlp_ratio, spec.out_chans,
            spec.upsampler,
        )  # fmt: skip
    scale = int(getattr(model, "upscale", 1) or 1)
    return _Arch(scale, int(getattr(model, "embed_dim", 64) or 64), 6, int(getattr(model, "window_size", 8)), 2.0, 3)


def estimate_bytes_per_pixel(model: nn.Module, element_bytes: int = 4) -> float:
    """Peak inference bytes per input pixel, from the architecture: about a dozen feature maps of
    ``embed_dim`` (input, shortcut, norm, qkv, projection), the MLP's hidden layer, one window's attention
    scores and their softmax per head, and the upsampler's maps at ``scale**2`` the pixels (64 channels
    through pixelshuffle/nearest+conv, the output channels alone for pixelshuffledirect; Swin2SR's
    pixelshuffle_aux adds its bicubic branch, the input and 64 channels at the output size). It leans
    large: builtin-x4 is estimated at 5.1 KB and measured at 1.9-2.3 KB (ru_maxrss growth, 128-256 px, CPU);
    the released HAT x4 (window 16; its channel-attention branch and overlapping cross-attention run chunk by
    chunk on CPU) at 31.6 KB, measured at 16-22 KB (resident-set growth, 128 vs 64 px, with and without the
    C kernels, AVX2 too), HAT-S x4 at 29.6 KB against 12.2 KB (192 vs 64 px)."""
    a = _arch(model)
    features = a.embed_dim * (12 + a.mlp_ratio)
    attention = 2 * a.heads * a.window * a.window
    pixels_out = a.scale * a.scale
    upsample = 3 * a.out_ch * pixels_out
    if a.upsampler in ("pixelshuffle", "nearest+conv", "pixelshuffle_aux"):
        upsample += 64 * (pixels_out + 1) * 2
    if a.upsampler == "pixelshuffle_aux":
        upsample += (64 + a.out_ch) * pixels_out
    return float(element_bytes * (features + attention + upsample))


def _probe_cuda(model: nn.Module, device: torch.device, amp: torch.dtype | None) -> float:
    in_ch = int(getattr(model, "in_chans", 3))
    peaks = []
    for side in (64, 128):
        x = torch.rand(1, in_ch, side, side, device=device)
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        with torch.inference_mode(), torch.autocast("cuda", dtype=amp or torch.float32, enabled=amp is not None):
            model(x)
        torch.cuda.synchronize(device)
        peaks.append(torch.cuda.max_memory_allocated(device) - base)
        del x
    return max(1.0, (peaks[1] - peaks[0]) / (128 * 128 - 64 * 64))


def bytes_per_pixel(model: nn.Module, device: torch.device, amp: torch.dtype | None = None) -> float:
    """Measured on CUDA (once per model, device and precision), estimated elsewhere."""
    if device.type != "cuda":
        return estimate_bytes_per_pixel(model, 2 if amp is not None else 4) * 1.25
    key = (id(model), str(device), str(amp))
    if key not in _measured:
        _measured[key] = _probe_cuda(model, device, amp)
    return _measured[key]


def auto_tile(
    model: nn.Module,
    device: torch.device,
    height: int,
    width: int,
    amp: torch.dtype | None = None,
    batch_size: int = 1,
    free: int | None = None,
    *,
    overlap: int = 32,
    rate: float | None = None,
) -> int | None:
    """The tile side (a window multiple) that fits the free memory, or None when the whole image fits.

    On CPU also the fastest tiling whose stretches between progress reports (blocks of a forward of
    ``batch_size`` tiles, and the upsampler) each take at most ``SECONDS_PER_STEP`` at ``rate`` FLOP/s (None:
    ``measured_rate``; ``math.inf``: memory alone), with no upper limit on the tile but memory. Ensemble passes
    do not change it: each pass reports its own blocks."""
    window = int(getattr(model, "window_size", 8) or 8)
    budget = (CUDA_BUDGET if device.type == "cuda" else CPU_BUDGET) * (free_bytes(device) if free is None else free)
    pixels = budget / (bytes_per_pixel(model, device, amp) * max(1, batch_size))
    padded = (math.ceil(height / window) * window) * (math.ceil(width / window) * window)
    cap = MAX_AUTO_TILE if device.type != "cpu" else math.inf
    by_memory: int | None = None
    if not (padded <= pixels and max(height, width) <= cap):
        side = int(math.sqrt(max(pixels, 0.0))) // window * window
        by_memory = int(max(2 * window, min(side, cap)))
    flops_of, longest_of = _flops_counter(model), _longest_wait(model)
    if device.type != "cpu" or flops_of is None or longest_of is None:
        return by_memory
    if by_memory is None and rate is None and flops_of(height, width) <= PROBE_FLOPS:
        return None  # the whole image costs about what the probe would: no need to measure
    if rate is None:
        # the whole image fits in memory: any rate from this one up lets it run whole
        whole = longest_of(height, width) * max(1, batch_size) / SECONDS_PER_STEP if by_memory is None else None
        rate = measured_rate(model, amp, max(PROBE_FLOPS, PROBE_SHARE * flops_of(height, width)), enough=whole)
    if not rate > 0 or math.isinf(rate):
        return by_memory
    max_wait = SECONDS_PER_STEP * rate / max(1, batch_size)
    smallest = max(2 * window, math.ceil(MIN_TILE_PER_OVERLAP * overlap / window) * window)
    return fastest_tile(flops_of, longest_of, height, width, window, overlap, by_memory, max_wait, smallest)


def fastest_tile(
    flops_of: FlopsOf,
    longest_of: FlopsOf,
    height: int,
    width: int,
    window: int,
    overlap: int,
    largest: int | None,
    max_wait: float,
    smallest: int = 0,
) -> int | None:
    """Of the window-multiple tile sides from ``smallest`` up to ``largest`` (None: the whole image is
    allowed) whose every tile, as the engine lays them, waits at most ``max_wait`` FLOPs between two
    reports (``longest_of``), the one whose tiling costs the fewest FLOPs in all, the larger on a tie; None
    for the whole image. When none is that quick, ``smallest`` (``largest`` if that is smaller)."""
    if largest is None and longest_of(height, width) <= max_wait:
        return None
    top = largest if largest is not None else math.ceil(max(height, width) / window) * window
    smallest = max(2 * window, smallest)
    best: tuple[float, int] | None = None
    for tile in range(smallest, top + 1, window):
        sizes = tiles(height, width, tile, overlap, window)
        if max(longest_of(h, w) for h, w in set(sizes)) > max_wait:
            continue
        total = sum(flops_of(h, w) for h, w in sizes)
        if best is None or total <= best[0]:
            best = (total, tile)
    if best is None:
        return min(smallest, top)
    return None if largest is None and best[1] >= max(height, width) else best[1]


def _longest_wait(model: nn.Module) -> FlopsOf | None:
    """FLOPs of the longest stretch of an h x w forward between two progress reports: one block (with its
    share of the group's closing convolution and the stem), or a step of the part after the last group (the
    upsampler: one step, or nearest+conv's convolutions one by one); None for a model without a spec."""
    spec, flops_of = getattr(model, "spec", None), _flops_counter(model)
    if spec is None or flops_of is None:
        return None
    from swinir.model.flops import reconstruction_steps

    blocks = max(1, sum(getattr(spec, "depths", ()) or ()))

    def longest(h: int, w: int) -> int:
        tail = reconstruction_steps(spec, h, w)
        return max((flops_of(h, w) - sum(tail)) // blocks, max(tail))

    return longest


def _flops_counter(model: nn.Module) -> FlopsOf | None:
    """FLOPs of a forward of ``model`` by size (``swinir.model.flops``); None for a model without a spec."""
    spec = getattr(model, "spec", None)
    if spec is None:
        return None
    from swinir.model.flops import flops

    try:
        flops(spec, 16, 16)
    except Exception:  # an architecture the counter does not know
        return None
    return lambda h, w: flops(spec, h, w)


def measured_rate(
    model: nn.Module, amp: torch.dtype | None = None, budget: float = PROBE_FLOPS, enough: float | None = None
) -> float:
    """The model's CPU rate in counted FLOPs per second of the process's CPU time over its threads (what the
    bar sees on a machine of its own; CPU time rather than wall time, so that other jobs on a busy machine do
    not shrink the tile and with it the throughput: a loaded 2-core EPYC measured a third of the rate in wall
    time): the faster of two probe forwards on the largest window-multiple square up to ``PROBE_MAX_SIDE``
    under ``budget`` FLOPs (the first forward at a size also pays one-time costs, about 2x on builtin-x4 at
    64 px); once per model, precision and probe size. A small tile runs below the rate of a large one (builtin-x4: 64 px
    at ~70% of 256 px's rate), so the bound errs towards tiles that finish early.

    ``enough``: a rate past which the caller's choice no longer changes (the whole image qualifies). When the
    first forward already reaches it, that rate (a lower bound) is returned without the second forward; it
    is kept as a lower bound, answering later calls that need no more."""
    flops_of = _flops_counter(model)
    if flops_of is None:
        return math.inf
    window = int(getattr(model, "window_size", 8) or 8)
    side = 2 * window
    while side + window <= PROBE_MAX_SIDE and flops_of(side + window, side + window) <= budget:
        side += window
    known, key = _rates.setdefault(model, {}), f"{amp} {side}"
    if key in known:
        rate, exact = known[key]
        if exact or (enough is not None and rate >= enough):
            return rate
    p = next(iter(model.parameters()), None)
    dtype = p.dtype if p is not None and amp is None else torch.float32
    x = torch.rand(1, int(getattr(model, "in_chans", 3)), side, side).to(dtype)
    with torch.inference_mode(), torch.autocast("cpu", dtype=amp or torch.bfloat16, enabled=amp is not None):
        seconds = math.inf
        for attempt in range(2):
            start = time.process_time()
            model(x)
            seconds = min(seconds, (time.process_time() - start) / max(1, torch.get_num_threads()))
            rate = flops_of(side, side) / max(seconds, 1e-9)
            if attempt == 0 and enough is not None and rate >= enough:
                known[key] = (rate, False)
                return rate
    known[key] = (rate, True)
    return rate


def smaller_tile(tile: int | None, height: int, width: int, window: int) -> int | None:
    """Half the tile (or half the image's long side when it ran whole); None when it cannot shrink."""
    current = tile or max(height, width)
    half = (current // 2) // window * window
    if half < 2 * window:
        return None
    return half
