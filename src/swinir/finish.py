"""After the model: the final size and the strength of the effect, both in float before the one rounding.

``final_size`` turns ``outscale`` / ``width`` / ``height`` / ``long_side`` / ``max_megapixels`` into pixels.
``apply_strength`` mixes the restoration with the input brought to the same size (bicubic when enlarging,
area when shrinking): ``input + strength * (restored - input)``, so 1 is the model's result and 0 the
input, as Real-ESRGAN#29 and vs-swinir#2 ask for a denoiser that goes too far.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from swinir.errors import SwinIRError

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["final_size", "apply_strength", "apply_strength_tensor", "resize_tensor"]


def _scaled(height: int, width: int, factor: float) -> tuple[int, int]:
    return max(1, round(height * factor)), max(1, round(width * factor))


def final_size(
    height: int,
    width: int,
    model_scale: int,
    *,
    outscale: float | None = None,
    out_width: int | None = None,
    out_height: int | None = None,
    long_side: int | None = None,
    max_megapixels: float | None = None,
) -> tuple[int, int]:
    """(height, width) of the result for a ``height`` x ``width`` input.

    One of ``outscale`` (factor of the input size), ``out_width``/``out_height`` (one keeps the aspect
    ratio, both set it), ``long_side``; default the model's scale. ``max_megapixels`` then caps the area,
    aspect kept, rounding down so the cap holds.
    """
    given = [
        n for n, v in (("outscale", outscale), ("width/height", out_width or out_height), ("long_side", long_side)) if v
    ]
    if len(given) > 1:
        raise SwinIRError(f"give only one of {' and '.join(given)} for the output size")
    if out_width and out_height:
        h, w = int(out_height), int(out_width)
    elif out_width:
        h, w = max(1, round(height * out_width / width)), int(out_width)
    elif out_height:
        h, w = int(out_height), max(1, round(width * out_height / height))
    elif long_side:
        h, w = _scaled(height, width, long_side / max(height, width))
    elif outscale:
        h, w = round(height * outscale), round(width * outscale)
        if h < 1 or w < 1:
            raise SwinIRError(
                f"outscale {outscale:g} turns a {width}x{height} image into {w}x{h} pixels; "
                "the result needs at least 1 pixel per side"
            )
    else:
        h, w = height * model_scale, width * model_scale
    if max_megapixels and h * w > max_megapixels * 1e6:
        f = math.sqrt(max_megapixels * 1e6 / (h * w))
        h, w = max(1, math.floor(h * f)), max(1, math.floor(w * f))
    if h < 1 or w < 1:
        raise SwinIRError(f"the output size {w}x{h} has no pixels")
    return h, w


def resize_tensor(t: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """NCHW float: area averaging when shrinking, bicubic when enlarging (as ``io.resize``)."""
    import torch.nn.functional as F

    if tuple(t.shape[-2:]) == (height, width):
        return t
    shrink = height <= t.shape[-2] and width <= t.shape[-1]
    if shrink:
        return F.interpolate(t, size=(height, width), mode="area")
    return F.interpolate(t, size=(height, width), mode="bicubic", align_corners=False)


def _match_channels(base: np.ndarray, channels: int) -> np.ndarray:
    from swinir.io import BT601

    if base.shape[2] == channels:
        return base
    if base.shape[2] == 1:
        return np.repeat(base, channels, axis=2)
    luma = base[..., 0] * BT601[0] + base[..., 1] * BT601[1] + base[..., 2] * BT601[2]
    return luma[..., None].astype(np.float32)


def apply_strength(restored: np.ndarray, source: np.ndarray, strength: float) -> np.ndarray:
    """``restored`` (float32 HxWxC at the final size) mixed with ``source`` (the input, any dtype, [0, 1]
    as float) resized to match: in place, returned."""
    from swinir.io import resize, to_float

    if strength >= 1.0:
        return restored
    src = to_float(source[..., None] if source.ndim == 2 else source)
    base = resize(src, restored.shape[0], restored.shape[1])
    base = _match_channels(base[..., None] if base.ndim == 2 else base, restored.shape[2])
    restored -= base
    restored *= np.float32(strength)
    restored += base
    return restored


def apply_strength_tensor(restored: torch.Tensor, source: torch.Tensor, strength: float) -> torch.Tensor:
    """As ``apply_strength`` for one CHW float image and its CHW source (uint8 or float)."""
    import torch

    if strength >= 1.0:
        return restored
    src = source.to(torch.float32) / (255.0 if source.dtype == torch.uint8 else 1.0)
    base = resize_tensor(src[None], restored.shape[-2], restored.shape[-1])[0]
    if base.shape[0] == 1 and restored.shape[0] == 3:
        base = base.expand(3, -1, -1)
    elif base.shape[0] == 3 and restored.shape[0] == 1:
        from swinir.io import BT601

        base = (base * torch.tensor(BT601).view(3, 1, 1)).sum(0, keepdim=True)
    return base + strength * (restored - base)
