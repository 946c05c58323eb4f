"""SwinIR (Liang et al., ICCVW 2021): shallow conv -> residual Swin Transformer blocks -> reconstruction.

Parameter names and shapes follow the released checkpoints exactly; the output equals the original
forward's (max abs difference ~1e-7 in fp32 on every golden case). Everything derived from the window or
the input size (relative-position index, shift masks, window orders) is rebuilt on demand, so any input
size works and checkpoints carrying those buffers load regardless of the ``img_size`` they were made at.

What makes it faster and leaner than the original forward, at the same arithmetic:

- Tokens stay in *window order* (window by window, row-major inside each window) for a whole residual
  group. LayerNorm, MLP and residual adds do not care about token order, so plain (W-MSA) blocks need no
  partition or reverse at all, and the image layout is materialised only around the convolutions.
- A shifted (SW-MSA) block gathers its input once through a cached index that fuses roll + partition, and
  scatters back with ``index_add`` fused into the residual add: no ``torch.roll``, no permute copies.
- That gather also sorts windows into the four shift-mask groups (interior, last column, last row,
  corner). Each group shares one (heads, N, N) bias = relative-position bias + its mask, so attention is a
  few fused ``scaled_dot_product_attention`` calls with small broadcast biases, never a
  (windows, heads, N, N) mask. Biases are cached per block (keyed on the table's version counter, so
  in-place weight updates such as EMA invalidate them); window orders are cached per (batch, H, W).
- Convolutions run in channels-last layout, which is the token layout, so no reorders around them.
- CPU inference runs each Swin block chunk by chunk of windows (LayerNorm, qkv, attention, proj, MLP
  while the chunk is in cache) with a hand-written AVX-512 attention kernel, and fp32 3x3 convolutions as
  Winograd F(2x2, 3x3) (``swinir.kernels``, compiled on first use; without it the same blocks run on
  PyTorch's attention and oneDNN's direct convolutions).
- ``fp16_safe`` (on by default): when the model runs in fp16 (``.half()`` or fp16 autocast) the residual
  streams, LayerNorms and the residual-group convolutions run in fp32, because the released M/L models'
  residual stream grows past the fp16 range; matmuls and attention stay in fp16.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from swinir import kernels

if TYPE_CHECKING:
    from swinir.spec import ModelSpec

UPSAMPLERS = ("pixelshuffle", "pixelshuffledirect", "nearest+conv", "")
# the convolution closing each RSTB and the body: the released 3x3 ('1conv') and bottleneck ('3conv'), and the
# paper's ablation variants ('1x1', 'none')
RESI_CONNECTIONS = ("1conv", "3conv", "1x1", "none")
RGB_MEAN = (0.4488, 0.4371, 0.4040)
# Derived buffers that released checkpoints carry but that we rebuild on demand.
DERIVED_SUFFIXES = ("attn_mask", "relative_position_index")
MASK_VALUE = -100.0  # the original's additive mask value (not -inf): kept for identical outputs
_PLAN_CACHE_SIZE = 8
# CPU inference runs each Swin block in chunks of about this many tokens (whole windows), see
# SwinTransformerBlock._forward_chunked.
CPU_CHUNK_TOKENS = 4096


def _values_key(t: Tensor) -> tuple:
    """Identifies a weight's current values for derived caches: its storage, dtype and version counter
    (bumped by any in-place update such as EMA; inference tensors have no counter)."""
    return (t.device, t.dtype, t.data_ptr(), -1 if t.is_inference() else t._version)


def _tracing() -> bool:
    """True under torch.compile / torch.export / ONNX export / jit tracing: no Python-side caches then."""
    return bool(torch.compiler.is_compiling() or torch.jit.is_tracing() or torch.onnx.is_in_onnx_export())


# -- layouts ------------------------------------------------------------------------------------------
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
    return img.permute(0, 2, 3, 1).unflatten(1, (h // ws, ws)).unflatten(3, (w // ws, ws)).permute(0, 1, 3, 2, 4, 5)


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


def _onednn_linear_ok() -> bool:
    try:
        lp = torch.ops.mkldnn._linear_pointwise
        x, w = torch.ones(2, 4), torch.ones(3, 4)
        return bool(torch.equal(lp(x, w, None, "none", [], ""), F.linear(x, w)))
    except Exception:  # an older or non-mkldnn build: plain F.linear everywhere
        return False


_ONEDNN_LINEAR = torch.backends.mkldnn.is_available() and _onednn_linear_ok()


def _linear(layer: nn.Linear, x: Tensor, gelu: bool = False, residual: Tensor | None = None) -> Tensor:
    """``layer(x)``, optionally followed by GELU or ``+ residual``, fused on CPU inference.

    oneDNN's inner product (the op inductor emits) runs these SwinIR shapes (K = 60..360) 1.1-1.5x faster
    than the MKL GEMM behind ``F.linear`` on CPU, and fuses the exact-erf GELU and the residual add.
    Autograd, autocast, fp16 and non-CPU devices take the plain path; both give the same numbers to fp32
    rounding.
    """
    w, b = layer.weight, layer.bias
    fast = _ONEDNN_LINEAR and x.device.type == "cpu" and not torch.is_grad_enabled() and not _tracing()
    if fast and torch.is_autocast_enabled("cpu"):
        # do autocast's cast ourselves so that the fused kernel still runs (bf16 is the CPU autocast dtype)
        if torch.get_autocast_dtype("cpu") != torch.bfloat16 or x.dtype not in (torch.float32, torch.bfloat16):
            fast = False
        else:
            x, w = x.to(torch.bfloat16), w.to(torch.bfloat16)
            b = None if b is None else b.to(torch.bfloat16)
    if fast and x.dtype == w.dtype and x.dtype in (torch.float32, torch.bfloat16):
        lp = torch.ops.mkldnn._linear_pointwise
        if residual is not None and residual.dtype == x.dtype and residual.shape[:-1] == x.shape[:-1]:
            return lp.binary(x, residual.contiguous(), w, b, "add")
        y = lp(x, w, b, "gelu", [], "none") if gelu else lp(x, w, b, "none", [], "")
    else:
        y = F.linear(x, w, b)
        if gelu:
            y = F.gelu(y)
    return y if residual is None else residual + y


def _cpu_kernel_ok(x: Tensor, weight: Tensor, n: int, head_dim: int) -> bool:
    """Whether a block can take the CPU inference path through ``swinir.kernels``: fp32, bf16 weights, or
    fp32 under bf16 autocast (the attention itself then runs in fp32, the linears in bf16)."""
    if torch.is_autocast_enabled("cpu"):
        dtype_ok = x.dtype == weight.dtype == torch.float32 and torch.get_autocast_dtype("cpu") == torch.bfloat16
    else:
        dtype_ok = x.dtype == weight.dtype and x.dtype in (torch.float32, torch.bfloat16)
    return (
        dtype_ok
        and x.device.type == "cpu"
        and x.is_contiguous()
        and not torch.is_grad_enabled()
        and not _tracing()
        and kernels.supports(n, head_dim)
        and kernels.available()
    )


def _layer_norm(norm: nn.LayerNorm, x: Tensor) -> Tensor:
    """LayerNorm computed in the input's dtype (fp32 islands keep fp32 even when the weights are fp16)."""
    w = norm.weight.to(x.dtype) if norm.weight.dtype != x.dtype else norm.weight
    b = norm.bias.to(x.dtype) if norm.bias.dtype != x.dtype else norm.bias
    return F.layer_norm(x, norm.normalized_shape, w, b, norm.eps)


def _fp32(module: nn.Module, x: Tensor) -> Tensor:
    """Run a conv / conv stack in fp32 whatever the weights' dtype or autocast (fp16-safe islands)."""
    with torch.autocast(x.device.type, enabled=False):
        x = x.float()
        if isinstance(module, nn.Sequential):
            for m in module:
                x = _fp32(m, x)
            return x
        if isinstance(module, nn.Conv2d):
            bias = None if module.bias is None else module.bias.float()
            return F.conv2d(
                x, module.weight.float(), bias, module.stride, module.padding, module.dilation, module.groups
            )
        return module(x)


# Winograd pays when its 16 GEMMs are big enough: measured on one AVX-512 core, 180->180 1.5x, 240->60 and
# 64->256 1.3x, 64->64 and 180->64 ~1.0x (so those stay on oneDNN's direct convolution).
WINOGRAD_MIN_CHANNEL_PRODUCT = 12000


def _winograd_ok(conv: nn.Module, x: Tensor) -> bool:
    return (
        isinstance(conv, nn.Conv2d)
        and conv.kernel_size == (3, 3)
        and conv.stride == (1, 1)
        and conv.padding == (1, 1)
        and conv.dilation == (1, 1)
        and conv.groups == 1
        and conv.padding_mode == "zeros"
        and conv.in_channels * conv.out_channels >= WINOGRAD_MIN_CHANNEL_PRODUCT
        and x.device.type == "cpu"
        and x.dtype == conv.weight.dtype == torch.float32
        and x.dim() == 4
        and not torch.is_grad_enabled()
        and not _tracing()
        and not torch.is_autocast_enabled("cpu")
        and kernels.available()
    )


def _winograd_weight(conv: nn.Conv2d) -> Tensor:
    """The conv's Winograd weight, cached on the module like the attention biases (keyed on the version)."""
    key = _values_key(conv.weight)
    cached = getattr(conv, "_swinir_winograd", None)
    if cached is None or cached[0] != key:
        with torch.inference_mode(False), torch.no_grad():
            cached = (key, kernels.winograd_weight(conv.weight))
        conv._swinir_winograd = cached  # type: ignore[assignment]
    return cached[1]


def _conv(module: nn.Module, x: Tensor) -> Tensor:
    """``module(x)`` for a conv or a Sequential of convs and activations; in fp32 CPU inference the 3x3
    convs run as Winograd F(2x2, 3x3) (``swinir.kernels.conv3x3``: 2.25x fewer multiply-adds)."""
    if isinstance(module, nn.Sequential):
        for m in module:
            x = _conv(m, x)
        return x
    if _winograd_ok(module, x):
        return kernels.conv3x3(x, _winograd_weight(module), module.bias)  # type: ignore[arg-type]
    return module(x)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor, residual: Tensor | None = None) -> Tensor:
        """fc2(GELU(fc1(x))) (+ residual), with the GELU and the add fused where the backend allows."""
        return _linear(self.fc2, _linear(self.fc1, x, gelu=True), residual=residual)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside ws x ws windows with a learned relative-position bias."""

    def __init__(self, dim: int, window_size: int, num_heads: int) -> None:
        super().__init__()
        self.dim = dim
        self.window_size = window_size
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.register_buffer("relative_position_index", relative_position_index(window_size), persistent=False)
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # type: ignore[no-untyped-def]
        state_dict.pop(prefix + "relative_position_index", None)  # derived; rebuilt from window_size
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def position_bias(self) -> Tensor:
        """(heads, N, N) relative-position bias."""
        n = self.window_size**2
        bias = self.relative_position_bias_table[self.relative_position_index.reshape(-1)]
        return bias.view(n, n, self.num_heads).permute(2, 0, 1).contiguous()

    def forward(
        self,
        x: Tensor,
        bias: Tensor,
        groups: Sequence[int] | None = None,
        window_group: Tensor | None = None,
        residual: Tensor | None = None,
    ) -> Tensor:
        """x: (windows, N, C). bias: (1, heads, N, N), or (G, 1, heads, N, N) with either ``groups`` giving
        the number of consecutive windows that use each of the G biases, or ``window_group`` giving each
        window's bias. ``residual`` (windows, N, C) is added to the output (fused where possible)."""
        bn, n, c = x.shape
        h = self.num_heads
        # strided views into one qkv buffer; the CPU/GPU fused kernels take them without copies
        q, k, v = _linear(self.qkv, x).view(bn, n, 3, h, c // h).permute(2, 0, 3, 1, 4).unbind(0)
        if window_group is not None:  # traced plans: one per-window bias looked up from the window's group
            bias = bias[:, 0][window_group]
        if _tracing():
            # exported graphs: plain ops (the fused kernel's output layout does not survive decomposition)
            attn = torch.matmul(q, k.transpose(-2, -1)) * self.scale + bias.to(q.dtype)
            out = torch.matmul(attn.softmax(-1), v).transpose(1, 2)
        elif groups is None:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype), scale=self.scale)
            out = out.transpose(1, 2)  # the fused kernels write (windows, N, heads, d): a free view
        else:
            outs, start = [], 0
            for g, count in enumerate(groups):
                s = slice(start, start + count)
                start += count
                o = F.scaled_dot_product_attention(q[s], k[s], v[s], attn_mask=bias[g].to(q.dtype), scale=self.scale)
                outs.append(o.transpose(1, 2))
            out = torch.cat(outs)
        return _linear(self.proj, out.reshape(bn, n, c), residual=residual)


class SwinTransformerBlock(nn.Module):
    """LayerNorm -> (shifted) window attention -> residual -> LayerNorm -> MLP -> residual.

    Works on tokens in window order; a shifted block reads/writes them through a ``WindowPlan``.
    """

    def __init__(self, dim: int, num_heads: int, window_size: int, shift_size: int, mlp_ratio: float) -> None:
        super().__init__()
        self.window_size = window_size
        self.shift_size = shift_size
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window_size, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self._bias_key: tuple | None = None
        self._bias: Tensor | None = None

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # type: ignore[no-untyped-def]
        state_dict.pop(prefix + "attn_mask", None)  # derived from the input size; rebuilt per size
        self.clear_cache()
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def clear_cache(self) -> None:
        self._bias_key = self._bias = None

    def attn_bias(self, device: torch.device) -> Tensor:
        """(1, heads, N, N) position bias, or (4, 1, heads, N, N) bias + mask per window group if shifted.

        Independent of the input size. Cached while gradients are off, keyed on the table's storage and
        version counter so that any in-place update of the weights rebuilds it.
        """
        if _tracing() or torch.is_grad_enabled():
            return self._make_bias(device)  # traced graphs compute it in-graph; training needs its grad
        key = (device, *_values_key(self.attn.relative_position_bias_table))
        if key != self._bias_key or self._bias is None:
            # a plain tensor without grad (fused attention skips masks that need grad), made outside
            # inference mode so that it stays usable in any later mode
            with torch.inference_mode(False), torch.no_grad():
                self._bias = self._make_bias(device)
            self._bias_key = key
        return self._bias

    def _make_bias(self, device: torch.device) -> Tensor:
        bias = self.attn.position_bias().unsqueeze(0).to(device)
        if self.shift_size > 0:
            masks = group_masks(self.window_size, self.shift_size, device).to(bias.dtype)
            bias = bias.unsqueeze(0) + masks[:, None, None]
        return bias

    def forward(self, x: Tensor, plan: WindowPlan | None, fp16_safe: bool = False, out: Tensor | None = None) -> Tensor:
        """x: (B, H*W, C) in window order -> same. ``plan`` is needed by shifted blocks. ``out``: a buffer
        of x's shape for the result, used by the CPU inference path (which never writes into ``x``)."""
        b, L, c = x.shape
        n = self.window_size**2
        if _cpu_kernel_ok(x, self.attn.qkv.weight, n, c // self.attn.num_heads):
            return self._forward_chunked(x, plan, torch.empty_like(x) if out is None else out)
        wdtype = self.attn.qkv.weight.dtype
        y = _layer_norm(self.norm1, x)
        if fp16_safe and y.dtype != wdtype:
            y = y.to(wdtype)
        bias = self.attn_bias(x.device)
        if self.shift_size == 0:
            x = self.attn(y.view(-1, n, c), bias, residual=x.view(-1, n, c)).view(b, L, c)
        else:
            assert plan is not None, "shifted blocks need a WindowPlan"
            ys = y.reshape(b * L, c).index_select(0, plan.perm)
            ys = self.attn(ys.view(-1, n, c), bias, plan.groups, plan.window_group).view(b * L, c)
            x = x.reshape(b * L, c).index_add(0, plan.perm, ys.to(x.dtype)).view(b, L, c)
        y = _layer_norm(self.norm2, x)
        if fp16_safe and y.dtype != wdtype:
            y = y.to(wdtype)
        return self.mlp(y, residual=x)

    def _forward_chunked(self, x: Tensor, plan: WindowPlan | None, out: Tensor) -> Tensor:
        """CPU inference: the whole block chunk by chunk of windows, written into ``out``.

        Each chunk (~CPU_CHUNK_TOKENS tokens) goes LayerNorm -> qkv -> attention kernel -> proj + residual ->
        LayerNorm -> MLP + residual while it is in the last-level cache. The MLP is token-wise, so a shifted
        block keeps its chunk in shifted-window order and scatters it once, at the end. No temporary is
        larger than a chunk, so the allocator reuses the same few MB instead of page-faulting in fresh
        full-size buffers for every block (that was 5-20% of the CPU time). Attention runs in fp32 also
        when the linears run in bf16 (bf16 weights or autocast): the kernel is fp32-only, and faster than
        PyTorch's bf16 attention on these tiles.
        """
        b, L, c = x.shape
        n = self.window_size**2
        attn = self.attn
        heads = attn.num_heads
        if self.shift_size == 0:
            counts: Sequence[int] = (b * L // n,)
        else:
            assert plan is not None and plan.groups is not None, "shifted blocks need a grouped WindowPlan"
            counts = plan.groups
        group_end = torch.tensor(counts, dtype=torch.int64).cumsum(0)
        bias = self.attn_bias(x.device).reshape(len(counts), heads, n, n).float().contiguous()
        src, dst = x.view(b * L, c), out.view(b * L, c)
        step = max(1, CPU_CHUNK_TOKENS // n) * n
        for t0 in range(0, b * L, step):
            t1 = min(t0 + step, b * L)
            idx = None if self.shift_size == 0 else plan.perm[t0:t1]  # type: ignore[union-attr]
            xs = src[t0:t1] if idx is None else src.index_select(0, idx)
            qkv = _linear(attn.qkv, _layer_norm(self.norm1, xs)).float()  # a no-op in fp32
            a = torch.empty(xs.shape, dtype=torch.float32)
            kernels.window_attention(
                qkv.view(-1, n, 3 * c), bias, group_end, t0 // n, a.view(-1, n, c), heads, attn.scale
            )
            xs = _linear(attn.proj, a.to(attn.proj.weight.dtype), residual=xs)
            xs = self.mlp(_layer_norm(self.norm2, xs), residual=xs)
            if idx is None:
                dst[t0:t1].copy_(xs)
            else:
                dst.index_copy_(0, idx, xs)
        return out


class BasicLayer(nn.Module):
    """A stack of Swin blocks alternating plain (W-MSA) and shifted (SW-MSA) windows."""

    def __init__(
        self, dim: int, depth: int, num_heads: int, window_size: int, mlp_ratio: float, shift: bool = True
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            SwinTransformerBlock(dim, num_heads, window_size, window_size // 2 if shift and i % 2 else 0, mlp_ratio)
            for i in range(depth)
        )
        self.use_checkpoint = False

    def forward(self, x: Tensor, plan: WindowPlan | None, fp16_safe: bool = False) -> Tensor:
        first = self.blocks[0].attn if len(self.blocks) else None
        if first is not None and _cpu_kernel_ok(
            x, first.qkv.weight, first.window_size**2, x.shape[-1] // first.num_heads
        ):
            # two buffers, alternated, for the CPU path's block outputs (x itself is never written)
            buffers = (torch.empty_like(x), torch.empty_like(x))
            for i, blk in enumerate(self.blocks):
                x = blk(x, plan, fp16_safe, out=buffers[i % 2])
            return x
        for blk in self.blocks:
            if self.use_checkpoint and self.training and torch.is_grad_enabled():
                x = torch.utils.checkpoint.checkpoint(blk, x, plan, fp16_safe, use_reentrant=False)
            else:
                x = blk(x, plan, fp16_safe)
        return x


def _resi_conv(dim: int, kind: str) -> nn.Module:
    if kind == "1conv":
        return nn.Conv2d(dim, dim, 3, 1, 1)
    if kind == "3conv":  # cheaper bottleneck used by the real-world L model
        return nn.Sequential(
            nn.Conv2d(dim, dim // 4, 3, 1, 1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(dim // 4, dim // 4, 1, 1, 0),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(dim // 4, dim, 3, 1, 1),
        )
    if kind == "1x1":  # ablation: no spatial mixing by the convolution
        return nn.Conv2d(dim, dim, 1, 1, 0)
    if kind == "none":  # ablation: no convolution
        return nn.Identity()
    raise ValueError(f"resi_connection must be one of {RESI_CONNECTIONS}, got {kind!r}")


class RSTB(nn.Module):
    """Residual Swin Transformer Block: Swin layers, then a conv, then a residual connection (``residual``
    False drops it, the paper's ablation)."""

    def __init__(
        self,
        dim: int,
        depth: int,
        num_heads: int,
        window_size: int,
        mlp_ratio: float,
        resi_connection: str,
        residual: bool = True,
        shift: bool = True,
    ) -> None:
        super().__init__()
        self.window_size = window_size
        self.residual = residual
        self.residual_group = BasicLayer(dim, depth, num_heads, window_size, mlp_ratio, shift)
        self.conv = _resi_conv(dim, resi_connection)

    def forward(self, x: Tensor, size: tuple[int, int], plan: WindowPlan | None, fp16_safe: bool = False) -> Tensor:
        """x: (B, H*W, C) tokens in window order -> same."""
        h, w = size
        y = tokens_to_image(self.residual_group(x, plan, fp16_safe), h, w, self.window_size)
        y = _fp32(self.conv, y) if fp16_safe else _conv(self.conv, y)
        if not self.residual:
            return image_to_tokens(y, self.window_size)
        return add_image_to_tokens(x, y, self.window_size)


class Upsample(nn.Sequential):
    """Conv + PixelShuffle stages: log2(scale) x2 stages, or one x3 stage."""

    def __init__(self, scale: int, num_feat: int) -> None:
        layers: list[nn.Module] = []
        if scale & (scale - 1) == 0:
            for _ in range(int(math.log2(scale))):
                layers += [nn.Conv2d(num_feat, 4 * num_feat, 3, 1, 1), nn.PixelShuffle(2)]
        elif scale == 3:
            layers += [nn.Conv2d(num_feat, 9 * num_feat, 3, 1, 1), nn.PixelShuffle(3)]
        else:
            raise ValueError(f"pixelshuffle supports scales 2^n and 3, got {scale}")
        super().__init__(*layers)


class UpsampleOneStep(nn.Sequential):
    """One conv straight to scale^2 * out_ch channels, then PixelShuffle (lightweight SR)."""

    def __init__(self, scale: int, num_feat: int, num_out_ch: int) -> None:
        super().__init__(nn.Conv2d(num_feat, scale**2 * num_out_ch, 3, 1, 1), nn.PixelShuffle(scale))


class SwinIR(nn.Module):
    """SwinIR with the original constructor arguments and parameter names.

    ``forward`` takes (N, C, H, W) in [0, 1] of any size and returns (N, C, H*upscale, W*upscale); inputs
    are reflect-padded to a window multiple internally, as the original does. It runs in fp32, bf16
    (``.to(torch.bfloat16)`` or autocast) or fp16; ``fp16_safe`` (default True) keeps the overflowing
    parts in fp32 when it runs in fp16.
    """

    def __init__(
        self,
        img_size: int | Sequence[int] = 64,
        patch_size: int = 1,
        in_chans: int = 3,
        embed_dim: int = 96,
        depths: Sequence[int] = (6, 6, 6, 6),
        num_heads: Sequence[int] = (6, 6, 6, 6),
        window_size: int = 7,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.1,
        norm_layer: type[nn.Module] = nn.LayerNorm,
        ape: bool = False,
        patch_norm: bool = True,
        use_checkpoint: bool = False,
        upscale: int = 2,
        img_range: float = 1.0,
        upsampler: str = "",
        resi_connection: str = "1conv",
        num_out_ch: int | None = None,
        rstb_residual: bool = True,
        shift: bool = True,
        **kwargs: object,
    ) -> None:
        super().__init__()
        if upsampler not in UPSAMPLERS:
            raise ValueError(f"upsampler must be one of {UPSAMPLERS}, got {upsampler!r}")
        if resi_connection not in RESI_CONNECTIONS:
            raise ValueError(f"resi_connection must be one of {RESI_CONNECTIONS}, got {resi_connection!r}")
        if len(depths) != len(num_heads):
            raise ValueError(f"depths {list(depths)} and num_heads {list(num_heads)} differ in length")
        if patch_size != 1 or not qkv_bias or qk_scale is not None:
            raise ValueError("only patch_size=1, qkv_bias=True and qk_scale=None are supported (as released)")
        # Dropout and drop-path are accepted for signature compatibility; every released model uses eval
        # mode where they are identities, and training here does not use them.
        del drop_rate, attn_drop_rate, drop_path_rate, norm_layer, kwargs
        self.img_size = img_size
        self.in_chans = in_chans
        self.num_out_ch = num_out_ch or in_chans
        self.embed_dim = embed_dim
        self.depths = list(depths)
        self.num_heads = list(num_heads)
        self.window_size = window_size
        self.mlp_ratio = mlp_ratio
        self.upscale = upscale if upsampler else 1
        self.img_range = float(img_range)
        self.upsampler = upsampler
        self.resi_connection = resi_connection
        # the paper's ablation switches; the defaults are the released architecture
        self.rstb_residual = bool(rstb_residual)
        self.shift = bool(shift)
        self.ape = bool(ape)
        self.patch_norm = bool(patch_norm)
        self.fp16_safe = True
        self._plans: dict[tuple, WindowPlan] = {}
        mean = RGB_MEAN if in_chans == 3 else (0.0,) * in_chans
        self.register_buffer("mean", torch.tensor(mean).view(1, in_chans, 1, 1), persistent=False)

        num_feat = 64
        self.conv_first = nn.Conv2d(in_chans, embed_dim, 3, 1, 1)
        self.patch_embed = _PatchNorm(embed_dim) if patch_norm else nn.Identity()
        if ape:  # learned absolute position embedding at img_size (resized for other sizes)
            side = img_size if isinstance(img_size, int) else int(img_size[0])
            self.absolute_pos_embed = nn.Parameter(torch.zeros(1, side * side, embed_dim))
            nn.init.trunc_normal_(self.absolute_pos_embed, std=0.02)
        self.layers = nn.ModuleList(
            RSTB(embed_dim, d, nh, window_size, mlp_ratio, resi_connection, rstb_residual, shift)
            for d, nh in zip(depths, num_heads)
        )
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = _resi_conv(embed_dim, resi_connection)

        if upsampler == "pixelshuffle":
            self.conv_before_upsample = nn.Sequential(
                nn.Conv2d(embed_dim, num_feat, 3, 1, 1), nn.LeakyReLU(inplace=True)
            )
            self.upsample = Upsample(upscale, num_feat)
            self.conv_last = nn.Conv2d(num_feat, self.num_out_ch, 3, 1, 1)
        elif upsampler == "pixelshuffledirect":
            self.upsample = UpsampleOneStep(upscale, embed_dim, self.num_out_ch)
        elif upsampler == "nearest+conv":
            if upscale not in (2, 4):
                raise ValueError(f"nearest+conv supports upscale 2 or 4, got {upscale}")
            self.conv_before_upsample = nn.Sequential(
                nn.Conv2d(embed_dim, num_feat, 3, 1, 1), nn.LeakyReLU(inplace=True)
            )
            self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
            if upscale == 4:
                self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
            self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
            self.conv_last = nn.Conv2d(num_feat, self.num_out_ch, 3, 1, 1)
            self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)
        else:
            self.conv_last = nn.Conv2d(embed_dim, self.num_out_ch, 3, 1, 1)

        self.apply(_init_weights)
        self.set_grad_checkpointing(use_checkpoint)

    # -- configuration -------------------------------------------------------------------------------
    @property
    def scale(self) -> int:
        return self.upscale

    @property
    def spec(self) -> ModelSpec:
        """Hyperparameters and task description (see ``swinir.spec``)."""
        from swinir.spec import ModelSpec

        return ModelSpec(
            upscale=self.upscale,
            in_chans=self.in_chans,
            embed_dim=self.embed_dim,
            depths=tuple(self.depths),
            num_heads=tuple(self.num_heads),
            window_size=self.window_size,
            mlp_ratio=float(self.mlp_ratio),
            upsampler=self.upsampler,
            resi_connection=self.resi_connection,
            img_range=self.img_range,
            img_size=self.img_size if isinstance(self.img_size, int) else int(self.img_size[0]),
            num_out_ch=self.num_out_ch if self.num_out_ch != self.in_chans else None,
            rstb_residual=self.rstb_residual,
            shift=self.shift,
            ape=self.ape,
            patch_norm=self.patch_norm,
        )

    @property
    def task(self) -> str:
        return self.spec.task

    def extra_repr(self) -> str:
        return self.spec.describe()

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute Swin blocks in the backward pass: less activation memory for slower training."""
        for layer in self.layers:
            layer.residual_group.use_checkpoint = enable

    def clear_cache(self) -> None:
        """Drop cached biases and window orders (they are rebuilt on the next forward)."""
        self._plans.clear()
        for m in self.modules():
            if isinstance(m, SwinTransformerBlock):
                m.clear_cache()

    def _apply(self, fn, recurse=True):  # type: ignore[no-untyped-def]
        self.clear_cache()  # device or dtype changes invalidate cached tensors
        return super()._apply(fn, recurse)

    def window_plan(self, b: int, h: int, w: int, device: torch.device) -> WindowPlan:
        """The shifted-window order for a (b, h, w) feature map; cached per size when not tracing."""
        ws = self.window_size
        if _tracing():
            return shifted_window_plan(b, h, w, ws, ws // 2, device, grouped=False)
        key = (b, h, w, device)
        plan = self._plans.get(key)
        if plan is None:
            with torch.inference_mode(False), torch.no_grad():
                plan = shifted_window_plan(b, h, w, ws, ws // 2, device)
            if len(self._plans) >= _PLAN_CACHE_SIZE:
                self._plans.pop(next(iter(self._plans)))
            self._plans[key] = plan
        return plan

    def fp16_active(self, x: Tensor) -> bool:
        """Whether this forward runs in fp16 (weights, input or autocast) with fp16_safe on."""
        if not self.fp16_safe:
            return False
        if x.dtype == torch.float16 or self.conv_first.weight.dtype == torch.float16:
            return True
        dev = x.device.type
        return torch.is_autocast_enabled(dev) and torch.get_autocast_dtype(dev) == torch.float16

    # -- forward -----------------------------------------------------------------------------------
    def pad_to_window(self, x: Tensor) -> Tensor:
        """Reflect-pad right/bottom to a window multiple, as the original; repeats for tiny inputs."""
        ws = self.window_size
        h, w = x.shape[-2:]
        ph, pw = (ws - h % ws) % ws, (ws - w % ws) % ws
        if _tracing():  # branch-free, so that an exported graph stays generic in H and W (both >= ws)
            return F.pad(x, (0, pw, 0, ph), mode="reflect")
        while ph or pw:
            # reflect padding must be smaller than the side; pad in steps for inputs below one window
            sh = min(ph, x.shape[-2] - 1)
            sw = min(pw, x.shape[-1] - 1)
            if (sh == 0 and ph) or (sw == 0 and pw):
                x = F.pad(x, (0, pw if sw == 0 else 0, 0, ph if sh == 0 else 0), mode="replicate")
                ph, pw = (ph if sh else 0), (pw if sw else 0)
                continue
            x = F.pad(x, (0, sw, 0, sh), mode="reflect")
            ph, pw = ph - sh, pw - sw
        return x

    def forward_features(self, x: Tensor, fp16_safe: bool = False) -> Tensor:
        """(B, C, H, W) shallow features (H, W window multiples) -> deep features, channels-last."""
        b, c, h, w = x.shape
        ws = self.window_size
        plan = self.window_plan(b, h, w, x.device) if self.shift and any(d > 1 for d in self.depths) else None
        t = image_to_tokens(x, ws)
        if isinstance(self.patch_embed, _PatchNorm):  # patch_norm
            t = _layer_norm(self.patch_embed.norm, t)
        if self.ape:
            t = add_image_to_tokens(t, self._position_embedding(b, h, w, t.dtype), ws)
        for layer in self.layers:
            t = layer(t, (h, w), plan, fp16_safe)
        t = _layer_norm(self.norm, t)
        return tokens_to_image(t, h, w, ws)

    def _position_embedding(self, b: int, h: int, w: int, dtype: torch.dtype) -> Tensor:
        """The absolute position embedding as a (b, C, h, w) image: as learned at img_size x img_size,
        bicubically resized for other sizes (the original only runs at img_size)."""
        n, c = self.absolute_pos_embed.shape[1:]
        side = math.isqrt(n)
        pe = self.absolute_pos_embed.reshape(1, side, side, c).permute(0, 3, 1, 2)
        if (h, w) != (side, side):
            pe = F.interpolate(pe.float(), size=(h, w), mode="bicubic", align_corners=False)
        return pe.to(dtype).expand(b, -1, -1, -1).contiguous()

    def _body(self, first: Tensor, fp16_safe: bool) -> Tensor:
        """conv_after_body(forward_features(first)) + first; fp32 throughout when fp16_safe."""
        if not fp16_safe:
            return _conv(self.conv_after_body, self.forward_features(first)) + first
        f32 = first.float()
        res = _fp32(self.conv_after_body, self.forward_features(f32, True)) + f32
        return res.to(first.dtype)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        x = self.pad_to_window(x)
        safe = self.fp16_active(x)
        mean = self.mean.to(x.dtype)
        x = ((x - mean) * self.img_range).contiguous(memory_format=torch.channels_last)

        if self.upsampler == "pixelshuffle":
            x = self._body(self.conv_first(x), safe)
            x = _conv(self.conv_last, _conv(self.upsample, _conv(self.conv_before_upsample, x)))
        elif self.upsampler == "pixelshuffledirect":
            x = _conv(self.upsample, self._body(self.conv_first(x), safe))
        elif self.upsampler == "nearest+conv":
            x = _conv(self.conv_before_upsample, self._body(self.conv_first(x), safe))
            x = self.lrelu(_conv(self.conv_up1, F.interpolate(x, scale_factor=2, mode="nearest")))
            if self.upscale == 4:
                x = self.lrelu(_conv(self.conv_up2, F.interpolate(x, scale_factor=2, mode="nearest")))
            x = self.conv_last(self.lrelu(_conv(self.conv_hr, x)))
        else:
            x = x + self.conv_last(self._body(self.conv_first(x), safe))

        x = x / self.img_range + mean
        s = self.upscale
        return x[..., : h * s, : w * s].contiguous()


class _PatchNorm(nn.Module):
    """The original PatchEmbed with patch_size 1: only a LayerNorm on the flattened tokens."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x)


def _init_weights(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
