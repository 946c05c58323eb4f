"""FLOPs of a SwinIR (Swin2SR, HAT) forward at a given input size: 2 per multiply-add of every convolution
and matmul.

LayerNorm, softmax, GELU and the adds are left out (well under 1% of the total at the released shapes);
so are bias adds, q/k normalisation and Swin2SR's CPB MLP (one 2 -> 512 -> heads MLP over (2w-1)^2
coordinates per block, independent of the input size). The benchmark divides this count by the measured
time to report GFLOP/s.
"""

from __future__ import annotations

import math
from typing import Any


def conv3x3(cin: int, cout: int, h: int, w: int) -> int:
    return 2 * 9 * cin * cout * h * w


def block(dim: int, window_size: int, mlp_ratio: float, tokens: int) -> int:
    """One Swin block over ``tokens`` tokens: qkv, q k^T, attn v, proj and the two MLP layers."""
    hidden = int(dim * mlp_ratio)
    n = window_size * window_size
    linears = 2 * tokens * (3 * dim * dim + dim * dim + 2 * dim * hidden)
    attention = 2 * 2 * tokens * n * dim  # every token against the n of its window, summed over heads
    return linears + attention


def resi_conv(dim: int, kind: str, h: int, w: int) -> int:
    if kind == "3conv":
        q = dim // 4
        return conv3x3(dim, q, h, w) + 2 * q * q * h * w + conv3x3(q, dim, h, w)
    if kind == "1x1":  # the ablation variants
        return 2 * dim * dim * h * w
    if kind == "none":
        return 0
    return conv3x3(dim, dim, h, w)


def _reconstruction(spec: Any, out: int, h: int, w: int) -> int:
    dim, s, kind = spec.embed_dim, spec.upscale, spec.upsampler
    if kind == "pixelshuffle_aux":  # Swin2SR: pixelshuffle from an auxiliary 3-channel image, + a bicubic branch
        aux = conv3x3(64, 3, h, w) + conv3x3(3, 64, h, w) + conv3x3(spec.in_chans, 64, s * h, s * w)
        return aux + _reconstruction(_Pixelshuffle(spec), out, h, w)
    if kind == "pixelshuffle":
        total, hh, ww = conv3x3(dim, 64, h, w), h, w
        if s & (s - 1) == 0:
            for _ in range(int(math.log2(s))):
                total, hh, ww = total + conv3x3(64, 256, hh, ww), 2 * hh, 2 * ww
        else:
            total, hh, ww = total + conv3x3(64, 64 * s * s, hh, ww), s * hh, s * ww
        return total + conv3x3(64, out, hh, ww)
    if kind == "pixelshuffledirect":
        return conv3x3(dim, s * s * out, h, w)
    if kind == "nearest+conv":
        ups = sum(conv3x3(64, 64, h * 2**i, w * 2**i) for i in range(1, int(math.log2(s)) + 1))
        return conv3x3(dim, 64, h, w) + ups + conv3x3(64, 64, s * h, s * w) + conv3x3(64, out, s * h, s * w)
    return conv3x3(dim, out, h, w)


class _Pixelshuffle:
    """A spec's view with the plain pixelshuffle head (what pixelshuffle_aux adds its branches to)."""

    def __init__(self, spec: Any) -> None:
        self.embed_dim, self.upscale, self.upsampler = spec.embed_dim, spec.upscale, "pixelshuffle"


def _hat_conv_branch(spec: Any, dim: int, h: int, w: int) -> int:
    hidden = int(dim // _option(spec, "compress_ratio", 3))
    return conv3x3(dim, hidden, h, w) + conv3x3(hidden, dim, h, w)


def _hat_ocab(spec: Any, dim: int, tokens: int) -> int:
    """qkv, proj and the MLP over every token, and every query against its wse x wse keys."""
    ws = int(spec.window_size)
    wse = ws + int(_option(spec, "overlap_ratio", 0.5) * ws)
    hidden = int(dim * spec.mlp_ratio)
    return 2 * tokens * (4 * dim * dim + 2 * dim * hidden) + 2 * 2 * tokens * wse * wse * dim


def _option(spec: Any, name: str, default: float) -> float:
    """A HAT option of a ``ModelSpec`` or of a model (which holds it as an attribute)."""
    value = spec.option(name, default) if hasattr(spec, "option") else getattr(spec, name, default)
    return float(value)


def flops(spec: Any, h: int, w: int, batch: int = 1) -> int:
    """FLOPs of one forward of ``spec`` (a ``ModelSpec`` or a ``SwinIR``) on ``batch`` h x w inputs, after
    the reflect padding to a window multiple that the forward does."""
    ws = spec.window_size
    h, w = -(-h // ws) * ws, -(-w // ws) * ws
    dim, tokens = spec.embed_dim, h * w
    out = spec.num_out_ch or spec.in_chans
    body = sum(d * block(dim, ws, spec.mlp_ratio, tokens) for d in spec.depths)
    body += (len(spec.depths) + 1) * resi_conv(dim, spec.resi_connection, h, w)
    arch = getattr(spec, "architecture", "swinir")
    if arch == "swin2sr":  # a 1x1 projection after each group and the stem
        body += (len(spec.depths) + 1) * 2 * dim * dim * tokens
    if arch == "hat":  # each block's convolution branch, and each group's overlapping cross-attention
        body += sum(spec.depths) * _hat_conv_branch(spec, dim, h, w) + len(spec.depths) * _hat_ocab(spec, dim, tokens)
    return int(batch * (conv3x3(spec.in_chans, dim, h, w) + body + _reconstruction(spec, out, h, w)))


def reconstruction(spec: Any, h: int, w: int, batch: int = 1) -> int:
    """FLOPs of the part of ``flops`` after the last residual group: the convolution closing the body and the
    upsampler."""
    return sum(reconstruction_steps(spec, h, w, batch))


def reconstruction_steps(spec: Any, h: int, w: int, batch: int = 1) -> list[int]:
    """``reconstruction`` split where the forward reports progress (``swinir.model.progress``): the
    nearest+conv upsampler after each of its convolutions at 2x and 4x, the others in one piece."""
    ws = spec.window_size
    h, w = -(-h // ws) * ws, -(-w // ws) * ws
    out = spec.num_out_ch or spec.in_chans
    closing = resi_conv(spec.embed_dim, spec.resi_connection, h, w)
    if spec.upsampler != "nearest+conv":
        return [batch * (closing + _reconstruction(spec, out, h, w))]
    s = spec.upscale
    steps = [closing + conv3x3(spec.embed_dim, 64, h, w) + conv3x3(64, 64, 2 * h, 2 * w)]
    if s == 4:
        steps.append(conv3x3(64, 64, 4 * h, 4 * w))
    steps += [conv3x3(64, 64, s * h, s * w), conv3x3(64, out, s * h, s * w)]
    return [batch * f for f in steps]
