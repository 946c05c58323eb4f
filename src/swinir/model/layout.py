"""Token and window layout of SwinIR: window order, shifted-window gathers, shift masks.

Tokens stay in *window order* (window by window, row-major inside each window) for a whole residual group.
LayerNorm, MLP and residual adds do not care about token order, so plain (W-MSA) blocks need no partition
or reverse at all, and the image layout is materialised only around the convolutions. A shifted (SW-MSA)
block gathers its input once through a cached index (``WindowPlan``) that fuses roll + partition, and that
also sorts the windows into the four shift-mask groups, so that each group shares one (heads, N, N) bias.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import NamedTuple, ParamSpec

import torch
import torch.nn.functional as F
from torch import Tensor

P = ParamSpec("P")

MASK_VALUE = -100.0  # the original's additive mask value (not -inf): kept for identical outputs


def window_partition(x: Tensor, ws: int) -> Tensor:
    """(B, H, W, C) -> (B * nW, ws*ws, C)."""
    b, h, w, c = x.shape
    x = x.view(b, h // ws, ws, w // ws, ws, c).transpose(2, 3)
    return x.reshape(-1, ws * ws, c)


def window_reverse(windows: Tensor, ws: int, h: int, w: int) -> Tensor:
    """(B * nW, ws*ws, C) -> (B, H, W, C)."""
    c = windows.shape[-1]
    x = windows.view(-1, h // ws, w // ws, ws, ws, c).transpose(2, 3)
    return x.reshape(-1, h, w, c)


def _windowed_view(img: Tensor, ws: int) -> Tensor:
    """(B, C, H, W) in any memory format -> (B, H/ws, W/ws, ws, ws, C) view, no copy."""
    b, c, h, w = img.shape
    rows = img.permute(0, 2, 3, 1).unflatten(1, (h // ws, ws))  # type: ignore[no-untyped-call]  # unannotated in torch
    windows: Tensor = rows.unflatten(3, (w // ws, ws)).permute(0, 1, 3, 2, 4, 5)
    return windows


def image_to_tokens(img: Tensor, ws: int) -> Tensor:
    """(B, C, H, W) -> (B, H*W, C) tokens in window order (one copy)."""
    b, c, h, w = img.shape
    return _windowed_view(img, ws).reshape(b, h * w, c)


def tokens_to_image(tokens: Tensor, h: int, w: int, ws: int) -> Tensor:
    """(B, H*W, C) tokens in window order -> (B, C, H, W) in channels-last memory (one copy)."""
    b, _, c = tokens.shape
    x = tokens.view(b, h // ws, w // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, c)
    return x.permute(0, 3, 1, 2)


def add_image_to_tokens(tokens: Tensor, img: Tensor, ws: int) -> Tensor:
    """tokens + img, with img (B, C, H, W) read in window order: the partition is fused into the add."""
    b, n, c = tokens.shape
    v = _windowed_view(img, ws)
    return (tokens.view(v.shape) + v).reshape(b, n, c)


# -- windows and masks ----------------------------------------------------------------------------------
def built_on_cpu(fn: Callable[P, Tensor]) -> Callable[P, Tensor]:
    """Run a derived-buffer builder on the CPU and move its result to the current default device.

    On the meta device (models built to check shapes) ``stack``, ``//``, ``%`` and friends run PyTorch's
    Python references, whose first call imports torch._dynamo: 1.5 s of every ``swinir restore``'s start-up."""

    @functools.wraps(fn)
    def on_cpu(*args: P.args, **kwargs: P.kwargs) -> Tensor:
        device = torch.empty(0).device  # the default, or a ``with torch.device(...)`` around the caller
        with torch.device("cpu"):
            out = fn(*args, **kwargs)
        return out.to(device)

    return on_cpu


@built_on_cpu
def relative_position_index(ws: int) -> Tensor:
    """(ws*ws, ws*ws) index into the (2ws-1)^2 bias table, as in Swin."""
    coords = torch.stack(torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (ws - 1)
    return rel[:, :, 0] * (2 * ws - 1) + rel[:, :, 1]


def shift_mask(h: int, w: int, ws: int, shift: int, device: torch.device | None = None) -> Tensor:
    """(nW, N, N) additive mask (0 or -100) of the original, for an H x W feature map (reference use)."""
    img = torch.zeros(1, h, w, 1, device=device)
    cnt = 0
    for hs in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)):
        for wsl in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)):
            img[:, hs, wsl, :] = cnt
            cnt += 1
    mw = window_partition(img, ws).squeeze(-1)  # nW, N
    mask = mw.unsqueeze(1) - mw.unsqueeze(2)
    return mask.masked_fill(mask != 0, MASK_VALUE).masked_fill(mask == 0, 0.0)


def group_masks(ws: int, shift: int, device: torch.device | None = None) -> Tensor:
    """(4, N, N) shift masks of the four window groups: interior, last column, last row, corner.

    After the cyclic shift only windows in the last window row or column mix regions that were not
    neighbours; inside such a window the region depends only on whether the local row/column index is
    ``>= ws - shift``. So every window of one group has the same mask, whatever the image size.
    """
    edge = (torch.arange(ws, device=device) >= ws - shift).long()
    none = torch.zeros_like(edge)
    masks = []
    for rows in (none, edge):
        for cols in (none, edge):
            label = (rows[:, None] * 2 + cols[None, :]).flatten()
            differ = label[:, None] != label[None, :]
            masks.append(torch.zeros(differ.shape, device=device).masked_fill(differ, MASK_VALUE))
    return torch.stack(masks)


class WindowPlan(NamedTuple):
    """How a shifted block reads tokens that are stored in (unshifted) window order.

    ``perm[i]`` is the flat (batch * H*W) position of the token that goes to slot ``i`` of the shifted
    windows. Grouped (eager): windows are sorted by mask group, batch-major inside a group, and ``groups``
    holds the number of windows of each of the four groups (interior, last column, last row, corner).
    Ungrouped (export): windows stay in the original row-major order and ``window_group`` (windows,) holds
    each window's group, computed from the sizes alone so that a traced graph stays shape-generic.
    """

    perm: Tensor
    groups: tuple[int, int, int, int] | None
    window_group: Tensor | None = None


def shifted_window_plan(
    b: int, h: int, w: int, ws: int, shift: int, device: torch.device | None = None, grouped: bool = True
) -> WindowPlan:
    """Fused roll(-shift) + window partition (+ grouping), as one gather index (see ``WindowPlan``)."""
    nh, nw, n = h // ws, w // ws, ws * ws
    r = torch.arange(h, device=device)
    c = torch.arange(w, device=device)
    # position in window order of the pixel at (r, c)
    pos = ((r // ws) * nw * n + (r % ws) * ws)[:, None] + ((c // ws) * n + c % ws)[None, :]
    pos = torch.roll(pos, shifts=(-shift, -shift), dims=(0, 1))  # what the shifted map holds at (r, c)
    win = pos.view(nh, ws, nw, ws).permute(0, 2, 1, 3).reshape(nh, nw, n)
    offsets = (torch.arange(b, device=device) * (h * w)).view(b, 1, 1)
    if not grouped:
        last_row = (torch.arange(nh, device=device) == nh - 1).long()
        last_col = (torch.arange(nw, device=device) == nw - 1).long()
        group = (last_row[:, None] * 2 + last_col[None, :]).reshape(1, -1).expand(b, -1).reshape(-1)
        return WindowPlan((win.reshape(1, -1, n) + offsets).reshape(-1), None, group)
    parts = (win[: nh - 1, : nw - 1], win[: nh - 1, nw - 1 :], win[nh - 1 :, : nw - 1], win[nh - 1 :, nw - 1 :])
    perm = torch.cat([(p.reshape(1, -1, n) + offsets).reshape(-1) for p in parts])
    groups = (b * (nh - 1) * (nw - 1), b * (nh - 1), b * (nw - 1), b)
    return WindowPlan(perm, groups)


def attention_by_group(
    q: Tensor, k: Tensor, v: Tensor, bias: Tensor, counts: Sequence[int], scale: float, first: int = 0
) -> Tensor:
    """Fused attention over windows sorted by shift-mask group: q, k, v (windows, heads, N, d) hold windows
    ``first ..``; ``counts[g]`` consecutive windows (counted from window 0) use ``bias[g]`` (1, heads, N, N).
    The mask stays 4-D: a (heads, N, N) mask sends CPU SDPA to a 4x slower path. Returns (windows, heads, N, d)."""
    outs, start, end = [], 0, first + q.shape[0]
    for g, count in enumerate(counts):
        lo, hi = max(start, first), min(start + count, end)
        start += count
        if lo < hi:
            s = slice(lo - first, hi - first)
            outs.append(F.scaled_dot_product_attention(q[s], k[s], v[s], attn_mask=bias[g].to(q.dtype), scale=scale))
    return outs[0] if len(outs) == 1 else torch.cat(outs)
