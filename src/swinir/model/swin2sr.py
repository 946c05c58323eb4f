"""Swin2SR (Conde et al., "Swin2SR: SwinV2 Transformer for Compressed Image Super-Resolution and
Restoration", ECCVW 2022): SwinIR's shallow conv -> residual groups -> reconstruction, with SwinV2 blocks.

What differs from SwinIR, as the released ``models/network_swin2sr.py`` computes it:

- attention is *cosine* attention: q and k are L2-normalised per head, their dot products multiplied by a
  learnt per-head ``logit_scale`` (clamped at log(100), then exponentiated);
- the position bias comes from a continuous-position-bias MLP (``cpb_mlp``: 2 -> 512 -> heads) over
  log-spaced relative coordinates (``sign(t) log2(1 + |8 t / (w-1)|) / 3``), squashed by ``16 sigmoid``;
- q and v have biases, k has none (``q_bias``, ``v_bias`` beside a bias-free ``qkv``);
- blocks are res-post-norm: ``x + norm1(attn(x))``, then ``x + norm2(mlp(x))``;
- every residual group ends with its conv and a 1x1 ``patch_embed.proj``, and the body starts with one;
- ``pixelshuffle_aux`` (compressed-input SR) adds a bicubic branch and an auxiliary low-resolution output.

Parameter names and shapes are the release's; the derived buffers (``attn_mask``, ``relative_coords_table``,
``relative_position_index``) are rebuilt for any input size and ignored on load, and ``with_derived``
writes them back for strict loaders. ``detect`` reads every hyperparameter from a state dict.

Speed (CPU inference): as SwinIR's, tokens stay in window order for a whole group and a block runs
chunk by chunk through ``swinir.model.cpu``. The cosine attention becomes plain scaled-dot-product
attention by normalising q and k once, in the qkv buffer, with the logit scale folded into q; the CPB
bias (16 sigmoid(...)) plus the shift mask is the attention mask, computed once per weights version.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from swinir.model import cpu
from swinir.model.cpu import PLAIN, ChunkAttention, ChunkRows, Exec
from swinir.model.layout import (
    WindowPlan,
    add_image_to_tokens,
    attention_by_group,
    built_on_cpu,
    group_masks,
    image_to_tokens,
    relative_position_index,
    tokens_to_image,
)
from swinir.model.shared import (
    NUM_FEAT,
    RGB_MEAN,
    BiasCached,
    Mlp,
    Restorer,
    Upsample,
    check_heads,
    fp32,
    init_weights,
    layer_norm,
    released_layout,
    resi_conv,
    run_blocks,
    run_groups,
)
from swinir.spec import (
    MAX_WINDOW,
    ModelSpec,
    SpecError,
    block_depths,
    pixelshuffle_scale,
    shape_of,
)

__all__ = [
    "DERIVED_SUFFIXES",
    "UPSAMPLERS",
    "Swin2SR",
    "SwinV2Block",
    "CosineWindowAttention",
    "detect",
    "relative_coords_table",
    "with_derived",
]

UPSAMPLERS = ("pixelshuffle", "pixelshuffle_aux", "pixelshuffledirect", "nearest+conv", "")
RESI_CONNECTIONS = ("1conv", "3conv")
DERIVED_SUFFIXES = ("attn_mask", "relative_coords_table", "relative_position_index")
CPB_HIDDEN = 512
LOGIT_SCALE_MAX = math.log(1.0 / 0.01)  # the logit scale is clamped at 100 before use


@built_on_cpu
def relative_coords_table(ws: int) -> Tensor:
    """(1, 2ws-1, 2ws-1, 2) log-spaced relative coordinates the CPB MLP reads, as SwinV2 computes them."""
    r = torch.arange(-(ws - 1), ws, dtype=torch.float32)
    table = torch.stack(torch.meshgrid(r, r, indexing="ij")).permute(1, 2, 0).contiguous().unsqueeze(0)
    table = table / (ws - 1) * 8  # normalised to [-8, 8]
    return torch.sign(table) * torch.log2(torch.abs(table) + 1.0) / 3.0  # / log2(8)


class CosineWindowAttention(nn.Module):
    """SwinV2 window attention: cosine similarity times a learnt per-head scale, plus a continuous position
    bias; released names ``logit_scale``, ``cpb_mlp``, ``q_bias``, ``v_bias``, ``qkv``, ``proj``."""

    relative_coords_table: Tensor
    relative_position_index: Tensor

    def __init__(self, dim: int, window_size: int, num_heads: int) -> None:
        super().__init__()
        self.dim = dim
        self.window_size = window_size
        self.num_heads = num_heads
        self.logit_scale = nn.Parameter(torch.full((num_heads, 1, 1), math.log(10)))  # (no log op: see layout)
        self.cpb_mlp = nn.Sequential(
            nn.Linear(2, CPB_HIDDEN, bias=True), nn.ReLU(inplace=True), nn.Linear(CPB_HIDDEN, num_heads, bias=False)
        )
        self.register_buffer("relative_coords_table", relative_coords_table(window_size), persistent=False)
        self.register_buffer("relative_position_index", relative_position_index(window_size), persistent=False)
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(dim))
        self.v_bias = nn.Parameter(torch.zeros(dim))
        self.proj = nn.Linear(dim, dim)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # type: ignore[no-untyped-def]
        for name in ("relative_coords_table", "relative_position_index"):  # derived: rebuilt from window_size
            state_dict.pop(prefix + name, None)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def qkv_bias(self) -> Tensor:
        """The qkv projection's bias: q's, zeros for k, v's."""
        return torch.cat((self.q_bias, torch.zeros_like(self.v_bias), self.v_bias))

    def logit_scales(self) -> Tensor:
        """(heads, 1, 1) multipliers of the cosine similarities."""
        return torch.clamp(self.logit_scale, max=LOGIT_SCALE_MAX).exp()

    def position_bias(self) -> Tensor:
        """(heads, N, N) continuous position bias, 16 sigmoid(cpb_mlp(coordinates))."""
        n = self.window_size**2
        table = self.cpb_mlp(self.relative_coords_table.to(self.logit_scale.dtype)).view(-1, self.num_heads)
        bias = table[self.relative_position_index.reshape(-1)].view(n, n, self.num_heads).permute(2, 0, 1)
        return 16 * torch.sigmoid(bias.float())

    def normalized_qkv(self, x: Tensor, ex: Exec) -> tuple[Tensor, Tensor, Tensor]:
        """(windows, heads, N, d) views: q and k L2-normalised, q times the logit scale; v as projected."""
        bn, n, c = x.shape
        h = self.num_heads
        qkv = cpu.linear(self.qkv, x, ex, bias=self.qkv_bias()).view(bn, n, 3, h, c // h).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        scales = self.logit_scales().to(q.dtype)
        return F.normalize(q, dim=-1) * scales, F.normalize(k, dim=-1), v

    def forward(
        self,
        x: Tensor,
        bias: Tensor,
        groups: Sequence[int] | None = None,
        window_group: Tensor | None = None,
        ex: Exec = PLAIN,
    ) -> Tensor:
        """x: (windows, N, C) -> (windows, N, C) before the output projection's norm. ``bias``: (1, heads, N,
        N), or (G, 1, heads, N, N) with ``groups`` (windows per bias, consecutive) or ``window_group``
        (each window's bias), as SwinIR's ``WindowAttention`` takes them."""
        bn, n, c = x.shape
        q, k, v = self.normalized_qkv(x, ex)
        if window_group is not None:  # traced plans: one per-window bias looked up from the window's group
            bias = bias[:, 0][window_group]
        if cpu.tracing():
            attn = torch.matmul(q, k.transpose(-2, -1)) + bias.to(q.dtype)
            out = torch.matmul(attn.softmax(-1), v).transpose(1, 2)
        elif groups is None:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype), scale=1.0).transpose(1, 2)
        else:
            out = attention_by_group(q, k, v, bias, groups, 1.0).transpose(1, 2)
        return cpu.linear(self.proj, out.reshape(bn, n, c), ex)


def _fold_cosine(qkv: Tensor, heads: int, scales: Tensor) -> None:
    """In a (tokens, 3C) fp32 qkv buffer, normalise q and k per head in place, q times its head's scale:
    softmax(q' k'^T + bias) is then the cosine attention, for any plain attention routine (scale 1)."""
    t = qkv.shape[0]
    qk = qkv.view(t, 3, heads, -1)[:, :2]
    norms = torch.linalg.vector_norm(qk, dim=-1, keepdim=True).clamp_min_(1e-12)
    factor = torch.stack((scales.view(heads, 1), torch.ones(heads, 1, dtype=scales.dtype)))  # (2, heads, 1)
    qk.mul_(factor / norms)


class SwinV2Block(BiasCached):
    """Res-post-norm Swin block: x + norm1(W-MSA or SW-MSA(x)), then x + norm2(MLP(x)).

    Works on tokens in window order; a shifted block reads and writes them through a ``WindowPlan``."""

    def __init__(self, dim: int, num_heads: int, window_size: int, shift_size: int, mlp_ratio: float) -> None:
        super().__init__()
        self.window_size = window_size
        self.shift_size = shift_size
        self.num_heads = num_heads
        self.norm1 = nn.LayerNorm(dim)
        self.attn = CosineWindowAttention(dim, window_size, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def attn_bias(self, device: torch.device) -> Tensor:
        """(1, heads, N, N) position bias, or (4, 1, heads, N, N) bias + mask per window group if shifted;
        cached (``BiasCache``) on the CPB MLP's values."""
        return self._bias_cache.get(device, tuple(self.attn.cpb_mlp.parameters()), self._make_bias)

    def _make_bias(self, device: torch.device) -> Tensor:
        bias = self.attn.position_bias().unsqueeze(0).to(device)
        if self.shift_size > 0:
            masks = group_masks(self.window_size, self.shift_size, device).to(bias.dtype)
            bias = bias.unsqueeze(0) + masks[:, None, None]
        return bias

    def forward_chunk(self, xs: Tensor, attend: ChunkAttention, ex: Exec, out: ChunkRows) -> None:
        """The whole block on a chunk of tokens (tokens, C) in window order (the chunked CPU path), its result
        put into ``out``."""
        attn = self.attn
        qkv = cpu.linear(attn.qkv, xs, ex, bias=attn.qkv_bias()).float()
        _fold_cosine(qkv, self.num_heads, attn.logit_scales().float())
        a = attend(qkv, 1.0)
        xs = xs + layer_norm(self.norm1, cpu.linear(attn.proj, a.to(attn.proj.weight.dtype), ex)).to(xs.dtype)
        out.put(xs + layer_norm(self.norm2, self.mlp(xs, ex=ex)).to(xs.dtype))

    def forward(self, x: Tensor, plan: WindowPlan | None, ex: Exec = PLAIN, out: Tensor | None = None) -> Tensor:
        """x: (B, H*W, C) in window order -> same. ``plan`` is needed by shifted blocks. ``out``: a buffer
        of x's shape for the result of the chunked CPU path (which never writes into ``x``)."""
        if ex.chunked:
            return cpu.forward_chunked(self, x, plan, torch.empty_like(x) if out is None else out, ex)
        b, length, c = x.shape
        n = self.window_size**2
        wdtype = self.attn.qkv.weight.dtype
        y = x.to(wdtype) if ex.fp16_safe and x.dtype != wdtype else x
        bias = self.attn_bias(x.device)
        if self.shift_size == 0:
            a = layer_norm(self.norm1, self.attn(y.view(-1, n, c), bias, ex=ex)).view(b, length, c)
            x = x + a.to(x.dtype)
        else:
            assert plan is not None, "shifted blocks need a WindowPlan"
            ys = y.reshape(b * length, c).index_select(0, plan.perm)
            ys = self.attn(ys.view(-1, n, c), bias, plan.groups, plan.window_group, ex=ex).view(b * length, c)
            ys = layer_norm(self.norm1, ys)
            x = x.reshape(b * length, c).index_add(0, plan.perm, ys.to(x.dtype)).view(b, length, c)
        y = x.to(wdtype) if ex.fp16_safe and x.dtype != wdtype else x
        return x + layer_norm(self.norm2, self.mlp(y, ex=ex)).to(x.dtype)


class BasicLayer(nn.Module):
    """A stack of SwinV2 blocks alternating plain and shifted windows (released name ``residual_group``)."""

    def __init__(self, dim: int, depth: int, num_heads: int, window_size: int, mlp_ratio: float) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            SwinV2Block(dim, num_heads, window_size, window_size // 2 if i % 2 else 0, mlp_ratio) for i in range(depth)
        )
        self.use_checkpoint = False

    def forward(self, x: Tensor, plan: WindowPlan | None, ex: Exec = PLAIN) -> Tensor:
        return run_blocks(self.blocks, x, plan, ex, self.use_checkpoint)


class PatchEmbed(nn.Module):
    """Swin2SR's patch embedding with patch size 1: a 1x1 conv ``proj`` (and a LayerNorm on the body's)."""

    def __init__(self, dim: int, norm: bool) -> None:
        super().__init__()
        self.proj = nn.Conv2d(dim, dim, 1, 1)
        self.norm = nn.LayerNorm(dim) if norm else None


class RSTB(nn.Module):
    """Residual group: SwinV2 blocks, the closing conv, a 1x1 projection, plus the group's input."""

    def __init__(
        self, dim: int, depth: int, num_heads: int, window_size: int, mlp_ratio: float, resi_connection: str
    ) -> None:
        super().__init__()
        self.window_size = window_size
        self.residual_group = BasicLayer(dim, depth, num_heads, window_size, mlp_ratio)
        self.conv = resi_conv(dim, resi_connection)
        self.patch_embed = PatchEmbed(dim, norm=False)

    def forward(self, x: Tensor, size: tuple[int, int], plan: WindowPlan | None, ex: Exec = PLAIN) -> Tensor:
        """x: (B, H*W, C) tokens in window order -> same."""
        h, w = size
        y = tokens_to_image(self.residual_group(x, plan, ex), h, w, self.window_size)
        if ex.fp16_safe:
            y = fp32(self.patch_embed.proj, fp32(self.conv, y))
        else:
            y = cpu.conv(self.patch_embed.proj, cpu.conv(self.conv, y, ex), ex)
        return add_image_to_tokens(x, y.to(x.dtype), self.window_size)


def _check_args(upsampler: str, resi_connection: str, upscale: int, variant: Mapping[str, Any]) -> None:
    if upsampler not in UPSAMPLERS:
        raise ValueError(f"upsampler must be one of {UPSAMPLERS}, got {upsampler!r}")
    if resi_connection not in RESI_CONNECTIONS:
        raise ValueError(f"resi_connection must be one of {RESI_CONNECTIONS}, got {resi_connection!r}")
    if upsampler == "nearest+conv" and upscale != 4:
        raise ValueError(f"Swin2SR's nearest+conv supports upscale 4 only, got {upscale}")
    released = {"patch_size": 1, "qkv_bias": True}
    if any(variant[k] != v for k, v in released.items()):
        raise ValueError("only patch_size=1 and qkv_bias=True are supported (as released)")


class Swin2SR(Restorer):
    """Swin2SR with the original constructor arguments and parameter names.

    ``forward`` takes (N, C, H, W) in [0, 1] of any size and returns (N, C, H*upscale, W*upscale), the
    original's first output; ``forward_with_aux`` also returns ``pixelshuffle_aux``'s auxiliary
    low-resolution image. ``transformers_head`` reproduces transformers' ``Swin2SRForImageSuperResolution``,
    whose compressed-input bicubic branch and no-upsampler residual read the raw input instead of the
    normalised one (the released weights converted to that layout give its outputs then). Dropout,
    drop-path and ``norm_layer`` are accepted for the original's signature and unused (identities in
    eval mode); unknown keyword arguments are an error.
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
        transformers_head: bool = False,
    ) -> None:
        super().__init__()
        _check_args(upsampler, resi_connection, upscale, {"patch_size": patch_size, "qkv_bias": qkv_bias})
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
        self.upscale = upscale if upsampler else 1
        self.img_range = float(img_range)
        self.upsampler = upsampler
        self.resi_connection = resi_connection
        self.ape, self.patch_norm = bool(ape), bool(patch_norm)
        self.transformers_head = bool(transformers_head)
        mean = RGB_MEAN if in_chans == 3 else (0.0,) * in_chans
        self.register_buffer("mean", torch.tensor(mean).view(1, in_chans, 1, 1), persistent=False)

        dim = embed_dim
        self.conv_first = nn.Conv2d(in_chans, dim, 3, 1, 1)
        self.patch_embed = PatchEmbed(dim, norm=self.patch_norm)
        if self.ape:
            side = img_size if isinstance(img_size, int) else int(img_size[0])
            self.absolute_pos_embed = nn.Parameter(torch.zeros(1, side * side, dim))
            nn.init.trunc_normal_(self.absolute_pos_embed, std=0.02)
        self.layers = nn.ModuleList(
            RSTB(dim, d, h, window_size, mlp_ratio, resi_connection) for d, h in zip(self.depths, self.num_heads)
        )
        self.norm = nn.LayerNorm(dim)
        self.conv_after_body = resi_conv(dim, resi_connection)
        self._build_reconstruction(self.upscale)

        self.apply(init_weights)
        self.set_grad_checkpointing(use_checkpoint)
        self._place()

    def _build_reconstruction(self, upscale: int) -> None:
        """The shared heads, plus ``pixelshuffle_aux`` (compressed-input SR): pixelshuffle from an auxiliary
        low-resolution image (``conv_aux`` / ``conv_after_aux``) plus a bicubic branch (``conv_bicubic``)."""
        if self.upsampler != "pixelshuffle_aux":
            super()._build_reconstruction(upscale)
            return
        out = self.num_out_ch
        self.conv_bicubic = nn.Conv2d(self.in_chans, NUM_FEAT, 3, 1, 1)
        before = nn.Conv2d(self.embed_dim, NUM_FEAT, 3, 1, 1)
        self.conv_before_upsample = nn.Sequential(before, nn.LeakyReLU(inplace=True))
        self.conv_aux = nn.Conv2d(NUM_FEAT, out, 3, 1, 1)
        self.conv_after_aux = nn.Sequential(nn.Conv2d(3, NUM_FEAT, 3, 1, 1), nn.LeakyReLU(inplace=True))
        self.upsample = Upsample(upscale, NUM_FEAT)
        self.conv_last = nn.Conv2d(NUM_FEAT, out, 3, 1, 1)

    @property
    def spec(self) -> ModelSpec:
        """Hyperparameters and task description (see ``swinir.spec``)."""
        return ModelSpec(
            **self._spec_fields(),
            ape=self.ape,
            patch_norm=self.patch_norm,
            architecture="swin2sr",
            options=(("transformers_head", True),) if self.transformers_head else (),
        )

    # -- forward -----------------------------------------------------------------------------------
    def forward_features(self, x: Tensor, ex: Exec = PLAIN) -> Tensor:
        """(B, C, H, W) shallow features (H, W window multiples) -> deep features, channels-last."""
        b, c, h, w = x.shape
        ws = self.window_size
        plan = self.window_plan(b, h, w, x.device) if any(d > 1 for d in self.depths) else None
        x = fp32(self.patch_embed.proj, x).to(x.dtype) if ex.fp16_safe else cpu.conv(self.patch_embed.proj, x, ex)
        t = image_to_tokens(x, ws)
        if self.patch_embed.norm is not None:
            t = layer_norm(self.patch_embed.norm, t)
        if self.ape:
            t = add_image_to_tokens(t, self._position_embedding(b, h, w, t.dtype), ws)
        t = run_groups(self.layers, t, (h, w), plan, ex)
        t = layer_norm(self.norm, t)
        return tokens_to_image(t, h, w, ws)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_with_aux(x)[0]

    def forward_with_aux(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """(output, auxiliary LR output of pixelshuffle_aux or None), both in [0, 1] ranges."""
        h, w = x.shape[-2:]
        raw = x
        x = self.pad_to_window(x)
        ex = cpu.choose(self.placement, x, self.fp16_active(x))
        mean = self.mean.to(x.dtype)
        x = ((x - mean) * self.img_range).contiguous(memory_format=torch.channels_last)
        s = self.upscale
        if self.upsampler == "pixelshuffle_aux":
            out, aux = self._reconstruct_aux(x, raw if self.transformers_head else None, (h, w), ex)
        elif self.upsampler == "" and self.transformers_head:  # transformers adds the raw input back
            out, aux = self.pad_to_window(raw).to(x.dtype) + self.conv_last(self._body(self.conv_first(x), ex)), None
        else:
            out, aux = self._reconstruct(x, ex), None
        out = out / self.img_range + mean
        if aux is not None:
            aux = aux / self.img_range + mean
        return out[..., : h * s, : w * s].contiguous(), aux

    def _reconstruct_aux(
        self, x: Tensor, raw: Tensor | None, size: tuple[int, int], ex: Exec
    ) -> tuple[Tensor, Tensor | None]:
        """Compressed-input SR: features upsampled from an auxiliary LR image, plus a bicubic branch of the
        (padded) input resized to H*s x W*s, as the original computes it."""
        h, w = size
        s = self.upscale
        src = x if raw is None else raw.to(x.dtype)
        bicubic = F.interpolate(src, size=(h * s, w * s), mode="bicubic", align_corners=False)
        bicubic = cpu.conv(self.conv_bicubic, bicubic.contiguous(memory_format=torch.channels_last), ex)
        y = cpu.conv(self.conv_before_upsample, self._body(self.conv_first(x), ex), ex)
        aux = self.conv_aux(y)
        y = cpu.conv(self.upsample, cpu.conv(self.conv_after_aux, aux, ex), ex)
        y = y[:, :, : h * s, : w * s] + bicubic[:, :, : h * s, : w * s]
        return cpu.conv(self.conv_last, y, ex), aux


# ---------------------------------------------------------------------------------------------------
# detection and the released layout
# ---------------------------------------------------------------------------------------------------
_SIGNATURE = "layers.0.residual_group.blocks.0.attn.cpb_mlp.0.weight"


def _window(sd: Mapping[str, Any]) -> int | None:
    """The window size the derived buffers were made for, if the file carries any."""
    for key, value in sd.items():
        if not key.startswith("layers.0.residual_group.blocks."):
            continue
        shape = tuple(int(n) for n in value.shape)
        if key.endswith("attn.relative_position_index") and len(shape) == 2:
            ws = math.isqrt(shape[0])
        elif key.endswith("attn.relative_coords_table") and len(shape) == 4:
            ws = (shape[1] + 1) // 2
        elif key.endswith("attn_mask") and len(shape) == 3:
            ws = math.isqrt(shape[1])
        else:
            continue
        if not 1 < ws <= MAX_WINDOW:
            raise SpecError(f"{key} has shape {list(shape)}: not a window of 2..{MAX_WINDOW}")
        return ws
    return None


def _upsampling(sd: Mapping[str, Any], in_chans: int) -> tuple[str, int]:
    if "conv_bicubic.weight" in sd:
        return "pixelshuffle_aux", pixelshuffle_scale(sd)
    if "conv_up1.weight" in sd:
        if "conv_up2.weight" not in sd:
            raise SpecError("missing conv_up2.weight (Swin2SR's nearest+conv upsamples x4)")
        return "nearest+conv", 4
    if "conv_before_upsample.0.weight" in sd:
        return "pixelshuffle", pixelshuffle_scale(sd)
    if "upsample.0.weight" in sd:
        out_total = shape_of(sd, "upsample.0.weight")[0]
        upscale = math.isqrt(out_total // in_chans)
        if upscale * upscale * in_chans != out_total:
            raise SpecError(f"upsample.0.weight has {out_total} outputs, not scale^2 x {in_chans}")
        return "pixelshuffledirect", upscale
    return "", 1


def detect(state_dict: Mapping[str, Any]) -> ModelSpec:
    """Every hyperparameter of a Swin2SR state dict (original key names), from names and shapes alone.

    The window size shows only in the derived buffers (the CPB MLP reads coordinates, not a table per
    window): without them it is guessed as the releases have it (7 for the JPEG model, the only one
    without an upsampler, 8 otherwise) and listed in ``extra['guessed']`` so that stored metadata (our
    files, transformers' config.json) may set it. ``img_range`` is guessed the same way (255 for the JPEG
    model) and ``img_size`` read from a shift mask when there is one.
    """
    sd = state_dict
    for key in ("conv_first.weight", _SIGNATURE, "patch_embed.proj.weight"):
        if key not in sd:
            raise SpecError(f"missing {key}")
    embed_dim, in_chans = shape_of(sd, "conv_first.weight")[:2]
    depths = block_depths(sd)
    heads = []
    for i in range(len(depths)):
        key = f"layers.{i}.residual_group.blocks.0.attn.logit_scale"
        if key not in sd:
            raise SpecError(f"missing {key}")
        heads.append(shape_of(sd, key)[0])
    if "layers.0.residual_group.blocks.0.attn.q_bias" not in sd:
        raise SpecError("missing layers.0.residual_group.blocks.0.attn.q_bias (every release has qkv_bias=True)")
    upsampler, upscale = _upsampling(sd, in_chans)
    found = _window(sd)
    window_size = found or (7 if upsampler == "" else 8)
    mlp_ratio = shape_of(sd, "layers.0.residual_group.blocks.0.mlp.fc1.weight")[0] / embed_dim
    img_size = 64
    mask_key = "layers.0.residual_group.blocks.1.attn_mask"
    if mask_key in sd:
        img_size = math.isqrt(shape_of(sd, mask_key)[0]) * window_size
    if "absolute_pos_embed" in sd:
        img_size = math.isqrt(shape_of(sd, "absolute_pos_embed")[1])
    if "conv_after_body.0.weight" in sd:
        resi = "3conv"
    elif "conv_after_body.weight" in sd:
        resi = "1conv"
    else:
        raise SpecError("missing conv_after_body.weight")
    guessed = ("img_range",) if found else ("img_range", "window_size")
    return ModelSpec(
        upscale=upscale,
        in_chans=in_chans,
        embed_dim=embed_dim,
        depths=depths,
        num_heads=tuple(heads),
        window_size=window_size,
        mlp_ratio=float(mlp_ratio) if mlp_ratio != int(mlp_ratio) else float(int(mlp_ratio)),
        upsampler=upsampler,
        resi_connection=resi,
        img_range=255.0 if (upsampler == "" and window_size == 7) else 1.0,
        img_size=img_size,
        ape="absolute_pos_embed" in sd,
        patch_norm="patch_embed.norm.weight" in sd,
        architecture="swin2sr",
        extra={"guessed": guessed},
    )


def with_derived(sd: Mapping[str, Tensor], spec: ModelSpec, img_size: int) -> dict[str, Tensor]:
    """``sd`` in the released layout: each shifted (odd) block's ``attn_mask`` first, for an ``img_size``
    square input, and each attention's ``relative_coords_table`` and ``relative_position_index`` after its
    ``v_bias``, as the original's ``state_dict()`` orders them."""
    ws = spec.window_size
    buffers = {
        "relative_coords_table": relative_coords_table(ws),
        "relative_position_index": relative_position_index(ws),
    }
    return released_layout(sd, DERIVED_SUFFIXES, ws, img_size, {".attn.v_bias": buffers})
