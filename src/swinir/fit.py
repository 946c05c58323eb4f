"""Tiles that fit: pick the tile side from the memory actually free, halve it when a tile still runs out.

On CUDA the model's cost per input pixel is measured once (peak allocation of two probe forwards, 64x64 and
128x128, whose difference removes the weights and workspace) and divided into ``torch.cuda.mem_get_info``'s
free bytes. On CPU the cost is the estimate below and the budget is ``MemAvailable``; a CPU run rarely fails
to allocate, it swaps, so the estimate leans large. Whatever the estimate, ``engine.restore`` halves the tile
and retries the image when a forward raises out-of-memory, so a wrong guess costs time, never the image.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["TileOutOfMemory", "is_oom", "free_bytes", "bytes_per_pixel", "auto_tile", "smaller_tile"]

CUDA_BUDGET = 0.7  # of the free bytes: the allocator's fragmentation and the blend buffers need the rest
CPU_BUDGET = 0.5
MAX_AUTO_TILE = 1024  # larger tiles only lose a little less context at borders, for much longer stalls
_measured: dict[tuple[int, str, str], float] = {}


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
) -> int | None:
    """The tile side (a window multiple) that fits the free memory, or None when the whole image fits."""
    window = int(getattr(model, "window_size", 8) or 8)
    budget = (CUDA_BUDGET if device.type == "cuda" else CPU_BUDGET) * (free_bytes(device) if free is None else free)
    pixels = budget / (bytes_per_pixel(model, device, amp) * max(1, batch_size))
    padded = (math.ceil(height / window) * window) * (math.ceil(width / window) * window)
    if padded <= pixels and max(height, width) <= MAX_AUTO_TILE:
        return None
    side = int(math.sqrt(max(pixels, 0.0))) // window * window
    return max(2 * window, min(side, MAX_AUTO_TILE))


def smaller_tile(tile: int | None, height: int, width: int, window: int) -> int | None:
    """Half the tile (or half the image's long side when it ran whole); None when it cannot shrink."""
    current = tile or max(height, width)
    half = (current // 2) // window * window
    if half < 2 * window:
        return None
    return half
