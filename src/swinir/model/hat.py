"""HAT (Chen et al., "Activating More Pixels in Image Super-Resolution Transformer", CVPR 2023): SwinIR's
shallow conv -> residual groups -> pixelshuffle reconstruction, with two more kinds of attention.

What differs from SwinIR, as the released ``hat/archs/hat_arch.py`` computes it:

- each block is a *hybrid attention block* (HAB): beside the (shifted) window attention of the
  normalised tokens runs a channel-attention branch on the same normalised tokens seen as an image
  (``conv_block``: 3x3 conv to ``dim / compress_ratio`` channels, GELU, 3x3 conv back, then a squeeze-excite
  scaling with ``dim / squeeze_factor`` hidden channels), added to the attention output times
  ``conv_scale`` (0.01);
- each residual group (RHAG) ends its blocks with an *overlapping cross-attention block* (OCAB,
  ``overlap_attn``): queries from the ws x ws windows, keys and values from larger overlapping windows
  (``ws + int(overlap_ratio * ws)`` wide, zero-padded at the borders, as ``nn.Unfold`` takes them), with
  its own relative position table and index;
- windows are 16 in every release, and the network itself does not pad: the authors' test code reflect-pads
  the input right and bottom to a window multiple and crops the output (``forward`` here does the same).

Parameter names and shapes are the release's. The two relative position indices the original registers
(``relative_position_index_SA``, ``relative_position_index_OCA``) are rebuilt and ignored on load;
``with_derived`` writes them back for strict loaders. ``detect`` reads every hyperparameter from a state dict.

Speed (CPU inference): tokens stay in window order for a whole group, as in SwinIR. A HAB's window
attention, projection, residual and MLP run chunk by chunk through ``swinir.model.cpu.forward_chunked``
(the window-attention kernel where the window fits it, else PyTorch's fused attention per chunk); its
convolution branch runs on the whole image (Winograd where it pays), since its squeeze-excite pools over
the whole image. The OCAB gathers its overlapping key/value windows with one strided view and runs
PyTorch's fused attention with its position bias as the mask, a chunk of windows at a time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from swinir.model import cpu
from swinir.model.cpu import PLAIN, ChunkAttention, ChunkRows, Exec
from swinir.model.layout import (
    WindowPlan,
    add_image_to_tokens,
    built_on_cpu,
    image_to_tokens,
    relative_position_index,
    tokens_to_image,
)
from swinir.model.shared import (
    RGB_MEAN,
    BiasCached,
    Mlp,
    Restorer,
    WindowAttention,
    check_heads,
    fp32,
    init_weights,
    layer_norm,
    norm_mlp_residual,
    resi_conv,
    run_blocks,
    run_groups,
    window_bias,
)
from swinir.spec import ModelSpec, SpecError, block_depths, heads_and_window, pixelshuffle_scale, shape_of

__all__ = [
    "DERIVED_SUFFIXES",
    "HAB",
    "HAT",
    "OCAB",
    "detect",
    "overlap_position_index",
    "overlap_window",
    "with_derived",
]

UPSAMPLERS = ("pixelshuffle",)  # the only head the original's forward computes
RESI_CONNECTIONS = {"1conv": "1conv", "identity": "none"}  # HAT's names -> ``shared.resi_conv``'s
# the buffers the original registers (top level), and those SwinIR-style converters may add per block
DERIVED_SUFFIXES = ("relative_position_index_SA", "relative_position_index_OCA", "attn_mask", "relative_position_index")
# HAT's defaults for what its weights do not show (every release uses these)
CONV_SCALE = 0.01
IMG_SIZE = 64
# key/value rows of the overlapping windows per OCAB chunk on the CPU path (bounds its score matrices)
OCAB_CHUNK_ROWS = 1 << 16


def overlap_window(window_size: int, overlap_ratio: float) -> int:
    """Side of the OCAB's key/value windows, as the original computes it."""
    return window_size + int(overlap_ratio * window_size)


@built_on_cpu
def overlap_position_index(ws: int, wse: int) -> Tensor:
    """(ws*ws, wse*wse) index into the OCAB's (ws + wse - 1)^2 bias table, with the original's values.

    The original offsets the (key - query) coordinates by ``ws - wse + 1``, which leaves some entries
    negative; its table lookup wraps those around (Python indexing), and so does ``OCAB.position_bias``."""
    grid = torch.arange(ws)
    ori = torch.stack(torch.meshgrid(grid, grid, indexing="ij")).flatten(1)  # 2, ws*ws
    grid = torch.arange(wse)
    ext = torch.stack(torch.meshgrid(grid, grid, indexing="ij")).flatten(1)  # 2, wse*wse
    rel = (ext[:, None, :] - ori[:, :, None]).permute(1, 2, 0) + (ws - wse + 1)
    return rel[:, :, 0] * (ws + wse - 1) + rel[:, :, 1]


@built_on_cpu
def wrapped_overlap_position_index(ws: int, wse: int) -> Tensor:
    """``overlap_position_index`` with its negative entries wrapped into the table, as Python indexing does."""
    side = ws + wse - 1
    return overlap_position_index(ws, wse) % (side * side)


def _number(value: float) -> int | float:
    """An integral ratio as an int (as the releases' configs write it), else the float."""
    return int(value) if float(value).is_integer() else float(value)


def _cast(bias: Tensor | None, like: Tensor) -> Tensor | None:
    return None if bias is None else bias.to(like.dtype)


# -- the hybrid attention block ------------------------------------------------------------------------
class ChannelAttention(nn.Module):
    """Squeeze-excite over channels (RCAN's): global average pool, 1x1 conv down, ReLU, 1x1 conv up,
    sigmoid, times the input. Released names ``attention.1``, ``attention.3``."""

    def __init__(self, dim: int, squeeze_factor: int | float) -> None:
        super().__init__()
        hidden = int(dim // squeeze_factor)
        self.attention = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(dim, hidden, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, dim, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: Tensor) -> Tensor:
        """x times its channels' weights, computed in x's dtype whatever the weights' (fp32 islands)."""
        down = cast(nn.Conv2d, self.attention[1])
        up = cast(nn.Conv2d, self.attention[3])
        s = x.mean((2, 3), keepdim=True)
        s = F.relu(F.conv2d(s, down.weight.to(s.dtype), _cast(down.bias, s)))
        return x * torch.sigmoid(F.conv2d(s, up.weight.to(s.dtype), _cast(up.bias, s)))


class CAB(nn.Module):
    """The HAB's convolution branch: 3x3 conv to dim / compress_ratio, GELU, 3x3 conv back, channel
    attention (released name ``cab``)."""

    def __init__(self, dim: int, compress_ratio: int | float, squeeze_factor: int | float) -> None:
        super().__init__()
        hidden = int(dim // compress_ratio)
        self.cab = nn.Sequential(
            nn.Conv2d(dim, hidden, 3, 1, 1),
            nn.GELU(),
            nn.Conv2d(hidden, dim, 3, 1, 1),
            ChannelAttention(dim, squeeze_factor),
        )

    def forward(self, x: Tensor, ex: Exec = PLAIN) -> Tensor:
        """(B, C, H, W) -> same; in fp32 when ``ex.fp16_safe`` (its sums over whole images overflow fp16)."""
        down, _, up, channel = self.cab
        if ex.fp16_safe:
            y = fp32(up, F.gelu(fp32(down, x)))
        else:
            y = cpu.conv(up, F.gelu(cpu.conv(down, x, ex)), ex)
        out: Tensor = channel(y)
        return out


class HAB(BiasCached):
    """Hybrid attention block: x + (S)W-MSA(norm1(x)) + conv_scale * CAB(norm1(x)), then x + MLP(norm2(x)).

    Works on tokens in window order; a shifted block reads and writes them through a ``WindowPlan``."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        window_size: int,
        shift_size: int,
        compress_ratio: int | float,
        squeeze_factor: int | float,
        conv_scale: float,
        mlp_ratio: float,
    ) -> None:
        super().__init__()
        self.window_size = window_size
        self.shift_size = shift_size
        self.num_heads = num_heads
        self.conv_scale = conv_scale
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window_size, num_heads)
        self.conv_block = CAB(dim, compress_ratio, squeeze_factor)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def attn_bias(self, device: torch.device) -> Tensor:
        """(1, heads, N, N) position bias, or (4, 1, heads, N, N) bias + mask per window group if shifted.

        Only the position bias is cached (``BiasCache``, on the bias table's values): at HAT's window of 16
        the four masked copies take 6 MB per shifted block (113 MB for HAT's 18, kept for good; the first
        64x64 forward's peak went from 460 to 398 MB), while adding the masks again costs about 2 ms of a
        block's 90."""
        table = self.attn.relative_position_bias_table
        position = self._bias_cache.get(device, (table,), lambda d: self.attn.position_bias().to(d))
        return window_bias(position, self.window_size, self.shift_size, device)

    def forward_chunk_side(self, ys: Tensor, base: Tensor, attend: ChunkAttention, ex: Exec, out: ChunkRows) -> None:
        """The attention and the MLP on a chunk (tokens, C) of normalised tokens ``ys`` (the chunked CPU
        path), its result put into ``out``; ``base``: the same rows of the residual plus the scaled convolution
        branch."""
        attn, mlp = self.attn, self.mlp
        a = attend(cpu.linear(attn.qkv, ys, ex), attn.scale)  # bf16 or fp32 in, the same out
        xs, y = cpu.linear_residual_norm(attn.proj, cpu.projection_input(a, attn.proj, ex), base, self.norm2, ex)
        out.put_sum(mlp.fc2, cpu.linear(mlp.fc1, y, ex, gelu=True), xs, ex)

    def forward(
        self, x: Tensor, plan: WindowPlan | None, ex: Exec = PLAIN, out: Tensor | None = None, *, size: tuple[int, int]
    ) -> Tensor:
        """x: (B, H*W, C) in window order of an H x W map (``size``) -> same. ``plan`` is needed by shifted
        blocks. ``out``: a buffer of x's shape for the result of the chunked CPU path (which never writes
        into ``x``)."""
        h, w = size
        ws = self.window_size
        wdtype = self.attn.qkv.weight.dtype
        # feeds qkv and the conv branch; on the chunked path both run in ex.norm_dtype (bf16 under autocast)
        y = cpu.norm(self.norm1, x, ex) if ex.norm_dtype else layer_norm(self.norm1, x)
        if ex.fp16_safe and y.dtype != wdtype:
            y = y.to(wdtype)
        conv = self.conv_block(tokens_to_image(y, h, w, ws), ex) * self.conv_scale
        base = add_image_to_tokens(x, conv.to(x.dtype), ws)  # the residual plus the convolution branch
        if ex.chunked:
            buffer = torch.empty_like(x) if out is None else out
            return cpu.forward_chunked(self, y, plan, buffer, ex, side=base)
        x = self.attn.with_residual(y, base, self.attn_bias(x.device), self.shift_size > 0, plan, ex)
        return norm_mlp_residual(self.norm2, self.mlp, x, wdtype, ex)


# -- the overlapping cross-attention block -------------------------------------------------------------
class OCAB(BiasCached):
    """Overlapping cross-attention: each ws x ws window's queries attend to the keys and values of the
    wse x wse window centred on it (zero rows past the image border), with a learned relative position
    bias; then proj + residual, and x + MLP(norm2(x)). Released names ``norm1``, ``qkv``, ``proj``,
    ``relative_position_bias_table``, ``norm2``, ``mlp``."""

    DERIVED = "relative_position_index"  # rebuilt from the window sizes

    relative_position_index: Tensor

    def __init__(self, dim: int, window_size: int, overlap_ratio: float, num_heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.dim = dim
        self.window_size = window_size
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.overlap_size = overlap_window(window_size, overlap_ratio)
        if (self.overlap_size - window_size) % 2:
            raise ValueError(
                f"overlap_ratio {overlap_ratio} gives {self.overlap_size}-wide windows around {window_size}-wide "
                "ones: the overlap must be even (the original's unfold assumes it)"
            )
        side = window_size + self.overlap_size - 1
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, dim * 3)
        self.relative_position_bias_table = nn.Parameter(torch.zeros(side * side, num_heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        index = wrapped_overlap_position_index(window_size, self.overlap_size)
        self.register_buffer("relative_position_index", index, persistent=False)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def position_bias(self) -> Tensor:
        """(1, heads, ws*ws, wse*wse) relative position bias."""
        n, m = self.window_size**2, self.overlap_size**2
        bias = self.relative_position_bias_table[self.relative_position_index.reshape(-1)]
        return bias.view(n, m, self.num_heads).permute(2, 0, 1).unsqueeze(0).contiguous()

    def attn_bias(self, device: torch.device) -> Tensor:
        table = self.relative_position_bias_table
        return self._bias_cache.get(device, (table,), lambda d: self.position_bias().to(d))

    def key_value_windows(self, kv: Tensor, h: int, w: int) -> Tensor:
        """(B, H*W, 2C) keys and values in window order -> (B * windows, wse*wse, 2C): each window's
        overlapping neighbourhood, zeros past the border (``nn.Unfold``'s padding in the original)."""
        b, _, c2 = kv.shape
        ws, wse = self.window_size, self.overlap_size
        pad = (wse - ws) // 2
        img = tokens_to_image(kv, h, w, ws).permute(0, 2, 3, 1)  # (B, H, W, 2C) view
        padded = F.pad(img, (0, 0, pad, pad, pad, pad))
        windows = padded.unfold(1, wse, ws).unfold(2, wse, ws)  # (B, H/ws, W/ws, 2C, wse, wse) view
        return windows.permute(0, 1, 2, 4, 5, 3).reshape(-1, wse * wse, c2)

    def forward(self, x: Tensor, size: tuple[int, int], ex: Exec = PLAIN) -> Tensor:
        """x: (B, H*W, C) tokens in window order -> same."""
        b, length, c = x.shape
        h, w = size
        heads, d, n = self.num_heads, c // self.num_heads, self.window_size**2
        wdtype = self.qkv.weight.dtype
        y = layer_norm(self.norm1, x)
        if ex.fp16_safe and y.dtype != wdtype:
            y = y.to(wdtype)
        qkv = cpu.linear(self.qkv, y, ex)
        q = qkv[..., :c].reshape(-1, n, heads, d).transpose(1, 2)  # (windows, heads, n, d)
        kv = self.key_value_windows(qkv[..., c:], h, w)
        k, v = kv.view(kv.shape[0], -1, 2, heads, d).permute(2, 0, 3, 1, 4).unbind(0)  # (windows, heads, m, d)
        bias = self.attn_bias(x.device)
        if cpu.tracing():  # exported graphs: plain ops
            attn = torch.matmul(q * self.scale, k.transpose(-2, -1)) + bias.to(q.dtype)
            out = torch.matmul(attn.softmax(-1), v)
        elif ex.chunked:  # a few windows at a time: their score matrices stay small
            step = max(1, OCAB_CHUNK_ROWS // k.shape[2])
            out = torch.cat(
                [
                    F.scaled_dot_product_attention(
                        q[i : i + step], k[i : i + step], v[i : i + step], bias.to(q.dtype), scale=self.scale
                    )
                    for i in range(0, q.shape[0], step)
                ]
            )
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype), scale=self.scale)
        out = out.transpose(1, 2).reshape(b, length, c)
        x = cpu.linear(self.proj, out.to(wdtype) if ex.fp16_safe else out, ex, residual=x)
        return norm_mlp_residual(self.norm2, self.mlp, x, wdtype, ex)


# -- the residual group ----------------------------------------------------------------------------------
class AttenBlocks(nn.Module):
    """A RHAG's blocks: HABs alternating plain and shifted windows, then one OCAB (released name
    ``residual_group``, with ``blocks`` and ``overlap_attn``)."""

    def __init__(
        self,
        dim: int,
        depth: int,
        num_heads: int,
        window_size: int,
        compress_ratio: int | float,
        squeeze_factor: int | float,
        conv_scale: float,
        overlap_ratio: float,
        mlp_ratio: float,
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            HAB(
                dim,
                num_heads,
                window_size,
                window_size // 2 if i % 2 else 0,
                compress_ratio,
                squeeze_factor,
                conv_scale,
                mlp_ratio,
            )
            for i in range(depth)
        )
        self.overlap_attn = OCAB(dim, window_size, overlap_ratio, num_heads, mlp_ratio)
        self.use_checkpoint = False

    def forward(self, x: Tensor, size: tuple[int, int], plan: WindowPlan | None, ex: Exec = PLAIN) -> Tensor:
        x = run_blocks(self.blocks, x, plan, ex, self.use_checkpoint, size)
        if self.use_checkpoint and self.training and torch.is_grad_enabled():
            out: Tensor = torch.utils.checkpoint.checkpoint(self.overlap_attn, x, size, ex, use_reentrant=False)
            return out
        mixed: Tensor = self.overlap_attn(x, size, ex)
        return mixed


class RHAG(nn.Module):
    """Residual hybrid attention group: the blocks, the closing conv, plus the group's input."""

    def __init__(self, dim: int, depth: int, num_heads: int, window_size: int, resi_connection: str, **block: Any):
        super().__init__()
        self.window_size = window_size
        self.residual_group = AttenBlocks(dim, depth, num_heads, window_size, **block)
        self.conv = resi_conv(dim, RESI_CONNECTIONS[resi_connection])

    def forward(self, x: Tensor, size: tuple[int, int], plan: WindowPlan | None, ex: Exec = PLAIN) -> Tensor:
        """x: (B, H*W, C) tokens in window order -> same."""
        h, w = size
        y = tokens_to_image(self.residual_group(x, size, plan, ex), h, w, self.window_size)
        # F(2x2) Winograd: HAT-L's 12 groups in F(4x4) drifted 1e-5 from the authors' network in fp32
        y = fp32(self.conv, y) if ex.fp16_safe else cpu.conv(self.conv, y, ex, tile=2)
        return add_image_to_tokens(x, y.to(x.dtype), self.window_size)


class PatchEmbed(nn.Module):
    """The original's PatchEmbed with patch_size 1: only a LayerNorm on the tokens (``patch_norm``)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)


def _check_args(
    upsampler: str, resi_connection: str, img_size: int, window_size: int, variant: Mapping[str, Any]
) -> None:
    if upsampler not in UPSAMPLERS:
        raise ValueError(f"HAT's upsampler must be one of {UPSAMPLERS}, got {upsampler!r}")
    if resi_connection not in RESI_CONNECTIONS:
        raise ValueError(f"HAT's resi_connection must be one of {tuple(RESI_CONNECTIONS)}, got {resi_connection!r}")
    if img_size <= window_size:
        raise ValueError(
            f"img_size {img_size} <= window_size {window_size}: the original then drops its shifts and shrinks "
            "its windows; no release does that, and it is not supported"
        )
    released = {"patch_size": 1, "qkv_bias": True, "qk_scale": None}
    if any(variant[k] != v for k, v in released.items()):
        raise ValueError("only patch_size=1, qkv_bias=True and qk_scale=None are supported (as released)")


class HAT(Restorer):
    """HAT with the original constructor arguments and parameter names.

    ``forward`` takes (N, C, H, W) in [0, 1] of any size and returns (N, C, H*upscale, W*upscale): the
    input reflect-padded right and bottom to a window multiple, as the authors' test code pads it, and the
    output cropped. Dropout, drop-path and ``norm_layer`` are accepted for the original's signature and
    unused (identities in eval mode); unknown keyword arguments are an error.
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
        compress_ratio: int | float = 3,
        squeeze_factor: int | float = 30,
        conv_scale: float = CONV_SCALE,
        overlap_ratio: float = 0.5,
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
        upsampler: str = "pixelshuffle",
        resi_connection: str = "1conv",
    ) -> None:
        super().__init__()
        side = img_size if isinstance(img_size, int) else int(img_size[0])
        variant = {"patch_size": patch_size, "qkv_bias": qkv_bias, "qk_scale": qk_scale}
        _check_args(upsampler, resi_connection, side, window_size, variant)
        check_heads(depths, num_heads, embed_dim)
        del drop_rate, attn_drop_rate, drop_path_rate, norm_layer
        self.img_size = img_size
        self.in_chans = in_chans
        self.num_out_ch = in_chans
        self.embed_dim = embed_dim
        self.depths = list(depths)
        self.num_heads = list(num_heads)
        self.window_size = window_size
        self.mlp_ratio = mlp_ratio
        self.upscale = upscale
        self.img_range = float(img_range)
        self.upsampler = upsampler
        self.resi_connection = resi_connection
        self.compress_ratio = _number(compress_ratio)
        self.squeeze_factor = _number(squeeze_factor)
        self.conv_scale = float(conv_scale)
        self.overlap_ratio = float(overlap_ratio)
        self.ape, self.patch_norm = bool(ape), bool(patch_norm)
        mean = RGB_MEAN if in_chans == 3 else (0.0,) * in_chans
        self.register_buffer("mean", torch.tensor(mean).view(1, in_chans, 1, 1), persistent=False)

        dim = embed_dim
        self.conv_first = nn.Conv2d(in_chans, dim, 3, 1, 1)
        if self.patch_norm:
            self.patch_embed = PatchEmbed(dim)
        if self.ape:
            self.absolute_pos_embed = nn.Parameter(torch.zeros(1, side * side, dim))
            nn.init.trunc_normal_(self.absolute_pos_embed, std=0.02)
        block = {
            "compress_ratio": self.compress_ratio,
            "squeeze_factor": self.squeeze_factor,
            "conv_scale": self.conv_scale,
            "overlap_ratio": self.overlap_ratio,
            "mlp_ratio": mlp_ratio,
        }
        self.layers = nn.ModuleList(
            RHAG(dim, d, h, window_size, resi_connection, **block) for d, h in zip(self.depths, self.num_heads)
        )
        self.norm = nn.LayerNorm(dim)
        self.conv_after_body = resi_conv(dim, RESI_CONNECTIONS[resi_connection])
        self._build_reconstruction(upscale)

        self.apply(init_weights)
        self.set_grad_checkpointing(use_checkpoint)
        self._place()

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # type: ignore[no-untyped-def]
        for name in ("relative_position_index_SA", "relative_position_index_OCA"):  # derived: rebuilt
            state_dict.pop(prefix + name, None)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @property
    def spec(self) -> ModelSpec:
        """Hyperparameters and task description (see ``swinir.spec``)."""
        options = {
            "compress_ratio": self.compress_ratio,
            "squeeze_factor": self.squeeze_factor,
            "conv_scale": self.conv_scale,
            "overlap_ratio": self.overlap_ratio,
        }
        return ModelSpec(
            **self._spec_fields(),
            ape=self.ape,
            patch_norm=self.patch_norm,
            architecture="hat",
            options=tuple(sorted(options.items())),
        )

    # -- forward -----------------------------------------------------------------------------------
    def forward_features(self, x: Tensor, ex: Exec = PLAIN) -> Tensor:
        """(B, C, H, W) shallow features (H, W window multiples) -> deep features, channels-last."""
        b, c, h, w = x.shape
        ws = self.window_size
        plan = self.window_plan(b, h, w, x.device) if any(d > 1 for d in self.depths) else None
        t = image_to_tokens(x, ws)
        if self.patch_norm:
            t = layer_norm(self.patch_embed.norm, t)
        if self.ape:
            t = add_image_to_tokens(t, self._position_embedding(b, h, w, t.dtype), ws)
        t = run_groups(self.layers, t, (h, w), plan, ex)
        t = layer_norm(self.norm, t)
        return tokens_to_image(t, h, w, ws)


# ---------------------------------------------------------------------------------------------------
# detection and the released layout
# ---------------------------------------------------------------------------------------------------
_BLOCK0 = "layers.0.residual_group.blocks.0."
_SIGNATURE = "layers.0.residual_group.overlap_attn.relative_position_bias_table"


def _ratio(dim: int, hidden: int, key: str) -> int | float:
    """The compress / squeeze ratio whose ``int(dim // ratio)`` is ``hidden`` (the releases' integers)."""
    if not 0 < hidden <= dim:
        raise SpecError(f"{key} has {hidden} channels; expected 1..{dim}")
    ratio = dim // hidden
    return ratio if dim // ratio == hidden else _number(dim / hidden)


def detect(state_dict: Mapping[str, Any]) -> ModelSpec:
    """Every hyperparameter of a HAT state dict (original key names), from names and shapes alone.

    ``conv_scale`` and ``img_size`` do not show in the weights (nor ``img_range``): they are taken as every
    release has them (0.01, 64, 1) and listed in ``extra['guessed']``, so that stored metadata may set them.
    """
    sd = state_dict
    for key in ("conv_first.weight", _SIGNATURE, _BLOCK0 + "conv_block.cab.0.weight"):
        if key not in sd:
            raise SpecError(f"missing {key}")
    embed_dim, in_chans = shape_of(sd, "conv_first.weight")[:2]
    depths = block_depths(sd)
    heads, window_size = heads_and_window(sd, len(depths), "HAT")
    overlap_rows = shape_of(sd, _SIGNATURE)[0]
    wse = math.isqrt(overlap_rows) + 1 - window_size
    if (window_size + wse - 1) ** 2 != overlap_rows or wse < window_size:
        raise SpecError(f"{_SIGNATURE} has {overlap_rows} rows, not (window + overlapping window - 1)^2")
    overlap_ratio = (wse - window_size) / window_size
    if overlap_window(window_size, overlap_ratio) != wse:  # float rounding: nudge up to the next value
        overlap_ratio = math.nextafter(overlap_ratio, 1.0)
    compress_ratio = _ratio(embed_dim, shape_of(sd, _BLOCK0 + "conv_block.cab.0.weight")[0], "conv_block.cab.0")
    key = _BLOCK0 + "conv_block.cab.3.attention.1.weight"
    if key not in sd:
        raise SpecError(f"missing {key}")
    squeeze_factor = _ratio(embed_dim, shape_of(sd, key)[0], "conv_block.cab.3.attention.1")
    if "conv_before_upsample.0.weight" not in sd:
        raise SpecError("missing conv_before_upsample.0.weight (every HAT upsamples by pixelshuffle)")
    mlp_ratio = shape_of(sd, _BLOCK0 + "mlp.fc1.weight")[0] / embed_dim
    ape = "absolute_pos_embed" in sd
    img_size = math.isqrt(shape_of(sd, "absolute_pos_embed")[1]) if ape else IMG_SIZE
    options = {
        "compress_ratio": compress_ratio,
        "conv_scale": CONV_SCALE,
        "overlap_ratio": overlap_ratio,
        "squeeze_factor": squeeze_factor,
    }
    guessed = ("img_range", "conv_scale") if ape else ("img_range", "img_size", "conv_scale")
    return ModelSpec(
        upscale=pixelshuffle_scale(sd),
        in_chans=in_chans,
        embed_dim=embed_dim,
        depths=depths,
        num_heads=tuple(heads),
        window_size=window_size,
        mlp_ratio=float(mlp_ratio) if mlp_ratio != int(mlp_ratio) else float(int(mlp_ratio)),
        upsampler="pixelshuffle",
        resi_connection="1conv" if "conv_after_body.weight" in sd else "identity",
        img_range=1.0,
        img_size=img_size,
        ape=ape,
        patch_norm="patch_embed.norm.weight" in sd,
        architecture="hat",
        options=tuple(sorted(options.items())),
        extra={"guessed": guessed},
    )


def with_derived(sd: Mapping[str, Tensor], spec: ModelSpec, img_size: int) -> dict[str, Tensor]:
    """``sd`` in the released layout: the two relative position indices the original registers first
    (``img_size`` plays no part: HAT computes its shift masks per forward)."""
    del img_size
    ws = spec.window_size
    wse = overlap_window(ws, float(spec.option("overlap_ratio", 0.5)))
    out = {
        "relative_position_index_SA": relative_position_index(ws),
        "relative_position_index_OCA": overlap_position_index(ws, wse),
    }
    out.update((k, v) for k, v in sd.items() if not k.endswith(DERIVED_SUFFIXES))
    return out
