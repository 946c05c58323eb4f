"""MATLAB-compatible bicubic ``imresize``.

The SR benchmarks' LR inputs were made with MATLAB's ``imresize(img, 1/s, 'bicubic')``; any other
resampler (PIL, OpenCV) gives different pixels and shifts PSNR by tenths of a dB, so training and
evaluation use this re-implementation of MATLAB's rule:

* Keys cubic kernel (a = -0.5), support 4; on downscaling with antialiasing the kernel is stretched
  by 1/scale (and its height scaled by ``scale``), so it integrates over the whole source footprint.
* Output pixel ``x`` (1-based) maps to source coordinate ``u = x/scale + 0.5*(1 - 1/scale)``; the
  ``ceil(width) + 2`` taps start at ``floor(u - width/2)``; weights are normalised to sum 1; indices
  outside the image are mirrored symmetrically (edge pixel repeated); tap columns whose weights are
  all zero are dropped.
* Two 1-D passes, the dimension with the smallest scale first (height first on ties). In ``uint8``
  mode the result of each pass is rounded (half away from zero) and saturated to uint8, as MATLAB
  does for uint8 images; in ``float`` mode nothing is rounded.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["imresize", "cubic", "contributions"]


def cubic(x: np.ndarray) -> np.ndarray:
    """Keys cubic convolution kernel with a = -0.5 (MATLAB's ``cubic``)."""
    ax = np.abs(x)
    ax2 = ax * ax
    ax3 = ax2 * ax
    weights: np.ndarray = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1) + (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * (
        (ax > 1) & (ax <= 2)
    )
    return weights


def contributions(
    in_length: int, out_length: int, scale: float, antialias: bool = True, kernel_width: float = 4.0
) -> tuple[np.ndarray, np.ndarray]:
    """Weights (out, taps) float64 and 0-based source indices (out, taps) for one 1-D pass."""
    if scale < 1 and antialias:
        width = kernel_width / scale

        def kernel(x: np.ndarray) -> np.ndarray:
            return scale * cubic(scale * x)
    else:
        width = kernel_width
        kernel = cubic
    x = np.arange(1, out_length + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - width / 2.0)
    taps = int(math.ceil(width)) + 2
    idx = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]  # 1-based
    weights = kernel(u[:, None] - idx)
    weights = weights / weights.sum(axis=1, keepdims=True)
    # symmetric padding: 1..n, n..1 repeated
    mirror = np.concatenate([np.arange(in_length), np.arange(in_length - 1, -1, -1)])
    idx0 = mirror[np.mod(idx.astype(np.int64) - 1, 2 * in_length)]
    keep = np.any(weights != 0, axis=0)
    return weights[:, keep], idx0[:, keep]


def _resize_axis(x: Any, axis: int, weights: np.ndarray, indices: np.ndarray) -> Any:
    """One 1-D pass along ``axis``: accumulate taps in order, as MATLAB's mex does."""
    if _is_torch(x):
        import torch

        w = torch.as_tensor(weights, dtype=x.dtype, device=x.device)
        idx = torch.as_tensor(indices, device=x.device)
        shape = [1] * x.ndim
        shape[axis] = -1
        out = None
        for k in range(indices.shape[1]):
            term = torch.index_select(x, axis, idx[:, k]) * w[:, k].reshape(shape)
            out = term if out is None else out + term
        return out
    shape = [1] * x.ndim
    shape[axis] = -1
    acc = np.zeros(x.shape[:axis] + (indices.shape[0],) + x.shape[axis + 1 :], dtype=np.float64)
    for k in range(indices.shape[1]):
        acc += np.take(x, indices[:, k], axis=axis) * weights[:, k].reshape(shape)
    return acc


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


def _round_uint8(x: np.ndarray) -> np.ndarray:
    """MATLAB double -> uint8: round half away from zero, saturate."""
    return np.clip(np.floor(x + 0.5), 0, 255)


def imresize(
    img: Any,
    scale: float | None = None,
    output_shape: tuple[int, int] | None = None,
    mode: str | None = None,
    antialias: bool = True,
) -> Any:
    """Resize like MATLAB's ``imresize(img, scale, 'bicubic')``.

    ``img``: numpy HxW or HxWxC (uint8 or float), or a torch tensor (..., H, W) resized in float mode.
    Give ``scale`` (output = ceil(scale * size)) or ``output_shape`` (H, W). ``mode``: ``"uint8"``
    rounds between the two passes and returns uint8 (the default for uint8 input); ``"float"`` returns
    float64 unrounded (the default for float input; a uint8 input keeps its 0..255 range).
    """
    if (scale is None) == (output_shape is None):
        raise ValueError("imresize: give exactly one of scale or output_shape")
    torch_in = _is_torch(img)
    if torch_in:
        if img.ndim < 2:
            raise ValueError("imresize: a tensor needs at least 2 dims (..., H, W)")
        ax_h, ax_w = img.ndim - 2, img.ndim - 1
        x = img if img.is_floating_point() else img.double()
        mode = "float"
    else:
        x = np.asarray(img)
        if x.ndim not in (2, 3):
            raise ValueError(f"imresize: expected HxW or HxWxC, got shape {x.shape}")
        ax_h, ax_w = 0, 1
        if mode is None:
            mode = "uint8" if x.dtype == np.uint8 else "float"
        x = x.astype(np.float64)
    if mode not in ("uint8", "float"):
        raise ValueError(f"imresize: mode must be 'uint8' or 'float', got {mode!r}")
    in_h, in_w = x.shape[ax_h], x.shape[ax_w]
    if scale is not None:
        scales = (float(scale), float(scale))
        out_h, out_w = math.ceil(scale * in_h), math.ceil(scale * in_w)
    else:
        assert output_shape is not None  # exactly one of scale / output_shape, checked above
        out_h, out_w = int(output_shape[0]), int(output_shape[1])
        scales = (out_h / in_h, out_w / in_w)
    if out_h < 1 or out_w < 1:
        raise ValueError(f"imresize: output size {out_h}x{out_w} is empty")
    # MATLAB resizes along the dimension with the smallest scale first (stable: height on ties)
    order = sorted(range(2), key=lambda d: scales[d])
    sizes_in = (in_h, in_w)
    sizes_out = (out_h, out_w)
    axes = (ax_h, ax_w)
    for d in order:
        if sizes_in[d] == sizes_out[d] and scales[d] == 1.0:
            continue
        w, idx = contributions(sizes_in[d], sizes_out[d], scales[d], antialias)
        x = _resize_axis(x, axes[d], w, idx)
        if mode == "uint8":
            x = _round_uint8(x)
    if torch_in:
        return x
    if mode == "uint8":
        return x.astype(np.uint8)
    return x
