"""SwinIR's modules with the released parameter names: shallow conv -> residual Swin groups -> reconstruction.

Read this file for the network; ``layout`` holds the window maths and ``cpu`` the CPU inference backend.
Every forward takes an ``Exec`` (chosen once per forward by ``SwinIR``) that says which backend path runs;
``PLAIN`` (the default) is plain PyTorch, which autograd, export and every device use.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from swinir.model import cpu
from swinir.model.cpu import PLAIN, ChunkAttention, ChunkRows, Exec
from swinir.model.layout import (
    WindowPlan,
    add_image_to_tokens,
    image_to_tokens,
    relative_position_index,
    tokens_to_image,
)
from swinir.model.shared import (
    NUM_FEAT,
    RESI_CONNECTIONS,
    RGB_MEAN,
    BiasCached,
    Mlp,
    Restorer,
    Upsample,
    UpsampleOneStep,
    WindowAttention,
    fp32,
    init_weights,
    layer_norm,
    norm_mlp_residual,
    released_layout,
    resi_conv,
    run_blocks,
    run_groups,
    window_bias,
)

if TYPE_CHECKING:
    from swinir.spec import ModelSpec

__all__ = [
    "DERIVED_SUFFIXES",
    "NUM_FEAT",
    "RESI_CONNECTIONS",
    "RGB_MEAN",
    "RSTB",
    "UPSAMPLERS",
    "BasicLayer",
    "Mlp",
    "SwinIR",
    "SwinTransformerBlock",
    "Upsample",
    "UpsampleOneStep",
    "WindowAttention",
    "with_derived",
]

UPSAMPLERS = ("pixelshuffle", "pixelshuffledirect", "nearest+conv", "")
# Derived buffers that released checkpoints carry but that we rebuild on demand.
DERIVED_SUFFIXES = ("attn_mask", "relative_position_index")
# the helpers' names before they moved to ``swinir.model.shared`` (kept importable)
_layer_norm, _fp32, _resi_conv, _init_weights = layer_norm, fp32, resi_conv, init_weights


class SwinTransformerBlock(BiasCached):
    """LayerNorm -> (shifted) window attention -> residual -> LayerNorm -> MLP -> residual.

    Works on tokens in window order; a shifted block reads/writes them through a ``WindowPlan``.
    """

    def __init__(self, dim: int, num_heads: int, window_size: int, shift_size: int, mlp_ratio: float) -> None:
        super().__init__()
        self.window_size = window_size
        self.shift_size = shift_size
        self.num_heads = num_heads
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window_size, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def attn_bias(self, device: torch.device) -> Tensor:
        """(1, heads, N, N) position bias, or (4, 1, heads, N, N) bias + mask per window group if shifted.
        Independent of the input size; cached (``BiasCache``) on the bias table's values."""
        return self._bias_cache.get(device, (self.attn.relative_position_bias_table,), self._make_bias)

    def _make_bias(self, device: torch.device) -> Tensor:
        return window_bias(self.attn.position_bias(), self.window_size, self.shift_size, device)

    def forward_chunk(self, xs: Tensor, attend: ChunkAttention, ex: Exec, out: ChunkRows) -> None:
        """The whole block on a chunk of tokens (tokens, C) in window order (the chunked CPU path), its result
        put into ``out``."""
        attn, mlp = self.attn, self.mlp
        a = attend(cpu.linear(attn.qkv, cpu.norm(self.norm1, xs, ex), ex), attn.scale)  # bf16 or fp32 in, the same out
        xs, y = cpu.linear_residual_norm(attn.proj, cpu.projection_input(a, attn.proj, ex), xs, self.norm2, ex)
        out.put_sum(mlp.fc2, cpu.linear(mlp.fc1, y, ex, gelu=True), xs, ex)

    def forward(self, x: Tensor, plan: WindowPlan | None, ex: Exec = PLAIN, out: Tensor | None = None) -> Tensor:
        """x: (B, H*W, C) in window order -> same. ``plan`` is needed by shifted blocks. ``out``: a buffer
        of x's shape for the result of the chunked CPU path (which never writes into ``x``)."""
        if ex.chunked:
            return cpu.forward_chunked(self, x, plan, torch.empty_like(x) if out is None else out, ex)
        wdtype = self.attn.qkv.weight.dtype
        y = layer_norm(self.norm1, x)
        if ex.fp16_safe and y.dtype != wdtype:
            y = y.to(wdtype)
        x = self.attn.with_residual(y, x, self.attn_bias(x.device), self.shift_size > 0, plan, ex)
        return norm_mlp_residual(self.norm2, self.mlp, x, wdtype, ex)


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

    def forward(self, x: Tensor, plan: WindowPlan | None, ex: Exec = PLAIN) -> Tensor:
        return run_blocks(self.blocks, x, plan, ex, self.use_checkpoint)


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
        self.conv = resi_conv(dim, resi_connection)

    def forward(self, x: Tensor, size: tuple[int, int], plan: WindowPlan | None, ex: Exec = PLAIN) -> Tensor:
        """x: (B, H*W, C) tokens in window order -> same."""
        h, w = size
        y = tokens_to_image(self.residual_group(x, plan, ex), h, w, self.window_size)
        y = fp32(self.conv, y) if ex.fp16_safe else cpu.conv(self.conv, y, ex)
        if not self.residual:
            return image_to_tokens(y, self.window_size)
        return add_image_to_tokens(x, y, self.window_size)


def _check_args(
    upsampler: str,
    resi_connection: str,
    depths: Sequence[int],
    num_heads: Sequence[int],
    upscale: int,
    variant: dict[str, Any],
) -> None:
    if upsampler not in UPSAMPLERS:
        raise ValueError(f"upsampler must be one of {UPSAMPLERS}, got {upsampler!r}")
    if resi_connection not in RESI_CONNECTIONS:
        raise ValueError(f"resi_connection must be one of {RESI_CONNECTIONS}, got {resi_connection!r}")
    if len(depths) != len(num_heads):
        raise ValueError(f"depths {list(depths)} and num_heads {list(num_heads)} differ in length")
    if upsampler == "nearest+conv" and upscale not in (2, 4):
        raise ValueError(f"nearest+conv supports upscale 2 or 4, got {upscale}")
    released = {"patch_size": 1, "qkv_bias": True, "qk_scale": None}
    if any(variant[k] != v for k, v in released.items()):
        raise ValueError("only patch_size=1, qkv_bias=True and qk_scale=None are supported (as released)")


class SwinIR(Restorer):
    """SwinIR with the original constructor arguments and parameter names.

    ``forward`` takes (N, C, H, W) in [0, 1] of any size and returns (N, C, H*upscale, W*upscale); inputs
    are reflect-padded to a window multiple internally, as the original does. It runs in fp32, bf16
    (``.to(torch.bfloat16)`` or autocast) or fp16; ``fp16_safe`` (default True) keeps the overflowing
    parts in fp32 when it runs in fp16. Unknown keyword arguments are an error (a typo would otherwise
    build a different network silently); dropout, drop-path and ``norm_layer`` are accepted for the
    original's signature and unused (every released model runs in eval mode, where they are identities).
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
    ) -> None:
        super().__init__()
        variant = {
            "patch_size": patch_size,
            "ape": ape,
            "qkv_bias": qkv_bias,
            "qk_scale": qk_scale,
            "patch_norm": patch_norm,
        }
        _check_args(upsampler, resi_connection, depths, num_heads, upscale, variant)
        del drop_rate, attn_drop_rate, drop_path_rate, norm_layer
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
        self.rstb_residual, self.shift, self.ape, self.patch_norm = bool(rstb_residual), bool(shift), ape, patch_norm
        mean = RGB_MEAN if in_chans == 3 else (0.0,) * in_chans
        self.register_buffer("mean", torch.tensor(mean).view(1, in_chans, 1, 1), persistent=False)

        self._build_body()
        self._build_reconstruction(upscale)

        self.apply(init_weights)
        self.set_grad_checkpointing(use_checkpoint)
        self._place()

    def _build_body(self) -> None:
        """Shallow conv, patch norm, the residual Swin groups, the final norm and conv (original names)."""
        dim = self.embed_dim
        self.conv_first = nn.Conv2d(self.in_chans, dim, 3, 1, 1)
        self.patch_embed = _PatchNorm(dim) if self.patch_norm else nn.Identity()
        if self.ape:  # learned absolute position embedding at img_size (resized for other sizes)
            side = self.img_size if isinstance(self.img_size, int) else int(self.img_size[0])
            self.absolute_pos_embed = nn.Parameter(torch.zeros(1, side * side, dim))
            nn.init.trunc_normal_(self.absolute_pos_embed, std=0.02)
        self.layers = nn.ModuleList(
            RSTB(dim, d, nh, self.window_size, self.mlp_ratio, self.resi_connection, self.rstb_residual, self.shift)
            for d, nh in zip(self.depths, self.num_heads)
        )
        self.norm = nn.LayerNorm(dim)
        self.conv_after_body = resi_conv(dim, self.resi_connection)

    # -- configuration -------------------------------------------------------------------------------
    @property
    def spec(self) -> ModelSpec:
        """Hyperparameters and task description (see ``swinir.spec``)."""
        from swinir.spec import ModelSpec

        return ModelSpec(
            **self._spec_fields(),
            num_out_ch=self.num_out_ch if self.num_out_ch != self.in_chans else None,
            rstb_residual=self.rstb_residual,
            shift=self.shift,
            ape=self.ape,
            patch_norm=self.patch_norm,
        )

    # -- forward -----------------------------------------------------------------------------------
    def forward_features(self, x: Tensor, ex: Exec = PLAIN) -> Tensor:
        """(B, C, H, W) shallow features (H, W window multiples) -> deep features, channels-last."""
        b, c, h, w = x.shape
        ws = self.window_size
        plan = self.window_plan(b, h, w, x.device) if self.shift and any(d > 1 for d in self.depths) else None
        t = image_to_tokens(x, ws)
        if isinstance(self.patch_embed, _PatchNorm):  # patch_norm
            t = layer_norm(self.patch_embed.norm, t)
        if self.ape:
            t = add_image_to_tokens(t, self._position_embedding(b, h, w, t.dtype), ws)
        t = run_groups(self.layers, t, (h, w), plan, ex)
        t = layer_norm(self.norm, t)
        return tokens_to_image(t, h, w, ws)


class _PatchNorm(nn.Module):
    """The original PatchEmbed with patch_size 1: only a LayerNorm on the flattened tokens."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.norm(x)
        return out


def with_derived(sd: Mapping[str, Tensor], spec: ModelSpec, img_size: int) -> dict[str, Tensor]:
    """``sd`` in the released layout: each block's ``attn.relative_position_index`` after its bias table and,
    on shifted (odd) blocks, ``attn_mask`` first, for an ``img_size`` square input."""
    index = relative_position_index(spec.window_size)
    after = {".attn.relative_position_bias_table": {"relative_position_index": index}}
    return released_layout(sd, DERIVED_SUFFIXES, spec.window_size, img_size, after)
