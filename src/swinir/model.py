"""SwinIR (Liang et al., ICCVW 2021): shallow conv -> residual Swin Transformer blocks -> reconstruction.

Parameter names and shapes follow the released checkpoints exactly. Everything derived from the window
size or the input size (relative-position index, shift masks) is a non-persistent buffer or a cache keyed
by (height, width), so any input size works without rebuilding, and checkpoints that carry those buffers
(as every released file does) load regardless of the ``img_size`` they were trained at.

Attention runs through one fused ``F.scaled_dot_product_attention`` call per block, with the relative
position bias and the shift mask pre-added into one additive ``attn_mask``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

if TYPE_CHECKING:
    from swinir.spec import ModelSpec

UPSAMPLERS = ("pixelshuffle", "pixelshuffledirect", "nearest+conv", "")
RESI_CONNECTIONS = ("1conv", "3conv")
RGB_MEAN = (0.4488, 0.4371, 0.4040)
# Derived buffers that released checkpoints carry but that we rebuild on demand.
DERIVED_SUFFIXES = ("attn_mask", "relative_position_index")


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


def relative_position_index(ws: int) -> Tensor:
    """(ws*ws, ws*ws) index into the (2ws-1)^2 bias table, as in Swin."""
    coords = torch.stack(torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (ws - 1)
    return rel[:, :, 0] * (2 * ws - 1) + rel[:, :, 1]


def shift_mask(h: int, w: int, ws: int, shift: int, device: torch.device | None = None) -> Tensor:
    """(nW, N, N) additive mask (0 or -100) that keeps shifted windows from mixing unrelated regions."""
    img = torch.zeros(1, h, w, 1, device=device)
    cnt = 0
    for hs in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)):
        for wsl in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)):
            img[:, hs, wsl, :] = cnt
            cnt += 1
    mw = window_partition(img, ws).squeeze(-1)  # nW, N
    mask = mw.unsqueeze(1) - mw.unsqueeze(2)
    return mask.masked_fill(mask != 0, -100.0).masked_fill(mask == 0, 0.0)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


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

    def forward(self, x: Tensor, attn_bias: Tensor) -> Tensor:
        """x: (B*nW, N, C); attn_bias: (heads, N, N) or (nW, heads, N, N), added before softmax."""
        bn, n, c = x.shape
        h = self.num_heads
        qkv = self.qkv(x).view(bn, n, 3, h, c // h).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # (B*nW, heads, N, d)
        if attn_bias.dim() == 4:
            # Fold windows into the head axis so a (nW, heads, N, N) bias broadcasts over the batch only.
            nw = attn_bias.shape[0]
            b = bn // nw
            q, k, v = (t.reshape(b, nw * h, n, c // h) for t in (q, k, v))
            attn_bias = attn_bias.reshape(1, nw * h, n, n)
        bias = attn_bias.to(q.dtype)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=self.scale)
        out = out.reshape(bn, h, n, c // h).transpose(1, 2).reshape(bn, n, c)
        return self.proj(out)


class SwinTransformerBlock(nn.Module):
    """LayerNorm -> (shifted) window attention -> residual -> LayerNorm -> MLP -> residual."""

    def __init__(self, dim: int, num_heads: int, window_size: int, shift_size: int, mlp_ratio: float) -> None:
        super().__init__()
        self.window_size = window_size
        self.shift_size = shift_size
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window_size, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        # Cached additive attention bias per (H, W, device, dtype); valid only while weights are frozen.
        self._bias_cache: dict[tuple, Tensor] = {}

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # type: ignore[no-untyped-def]
        state_dict.pop(prefix + "attn_mask", None)  # derived from the input size; rebuilt per size
        self._bias_cache.clear()
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def train(self, mode: bool = True) -> "SwinTransformerBlock":
        self._bias_cache.clear()
        return super().train(mode)

    def attn_bias(self, h: int, w: int, device: torch.device) -> Tensor:
        """Relative-position bias, plus the shift mask for shifted blocks: (heads,N,N) or (nW,heads,N,N)."""
        cacheable = not (self.training or torch.is_grad_enabled())
        key = (h, w, device)
        if cacheable and key in self._bias_cache:
            return self._bias_cache[key]
        bias = self.attn.position_bias()
        if self.shift_size > 0:
            mask = shift_mask(h, w, self.window_size, self.shift_size, device=device).to(bias.dtype)
            bias = mask.unsqueeze(1) + bias.unsqueeze(0)
        if cacheable:
            if len(self._bias_cache) >= 4:
                self._bias_cache.pop(next(iter(self._bias_cache)))
            self._bias_cache[key] = bias
        return bias

    def forward(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        h, w = size
        b, _, c = x.shape
        ws, s = self.window_size, self.shift_size
        shortcut = x
        x = self.norm1(x).view(b, h, w, c)
        if s > 0:
            x = torch.roll(x, shifts=(-s, -s), dims=(1, 2))
        x = self.attn(window_partition(x, ws), self.attn_bias(h, w, x.device))
        x = window_reverse(x, ws, h, w)
        if s > 0:
            x = torch.roll(x, shifts=(s, s), dims=(1, 2))
        x = shortcut + x.reshape(b, h * w, c)
        return x + self.mlp(self.norm2(x))


class BasicLayer(nn.Module):
    """A stack of Swin blocks alternating plain (W-MSA) and shifted (SW-MSA) windows."""

    def __init__(self, dim: int, depth: int, num_heads: int, window_size: int, mlp_ratio: float) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            SwinTransformerBlock(dim, num_heads, window_size, 0 if i % 2 == 0 else window_size // 2, mlp_ratio)
            for i in range(depth)
        )
        self.use_checkpoint = False

    def forward(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        for blk in self.blocks:
            if self.use_checkpoint and self.training:
                x = torch.utils.checkpoint.checkpoint(blk, x, size, use_reentrant=False)
            else:
                x = blk(x, size)
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
    raise ValueError(f"resi_connection must be one of {RESI_CONNECTIONS}, got {kind!r}")


class RSTB(nn.Module):
    """Residual Swin Transformer Block: Swin layers, then a conv, then a residual connection."""

    def __init__(
        self, dim: int, depth: int, num_heads: int, window_size: int, mlp_ratio: float, resi_connection: str
    ) -> None:
        super().__init__()
        self.residual_group = BasicLayer(dim, depth, num_heads, window_size, mlp_ratio)
        self.conv = _resi_conv(dim, resi_connection)

    def forward(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        h, w = size
        b, _, c = x.shape
        y = self.residual_group(x, size).transpose(1, 2).reshape(b, c, h, w)
        return self.conv(y).flatten(2).transpose(1, 2) + x


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

    ``forward`` takes (N, C, H, W) in [0, 1] of any size and returns (N, C, H*upscale, W*upscale).
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
        **kwargs: object,
    ) -> None:
        super().__init__()
        if upsampler not in UPSAMPLERS:
            raise ValueError(f"upsampler must be one of {UPSAMPLERS}, got {upsampler!r}")
        if resi_connection not in RESI_CONNECTIONS:
            raise ValueError(f"resi_connection must be one of {RESI_CONNECTIONS}, got {resi_connection!r}")
        if len(depths) != len(num_heads):
            raise ValueError(f"depths {list(depths)} and num_heads {list(num_heads)} differ in length")
        if patch_size != 1 or ape or not qkv_bias or qk_scale is not None or not patch_norm:
            raise ValueError("only the released SwinIR variants are supported: patch_size=1, ape=False, "
                             "qkv_bias=True, qk_scale=None, patch_norm=True")
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
        mean = RGB_MEAN if in_chans == 3 else (0.0,) * in_chans
        self.register_buffer("mean", torch.tensor(mean).view(1, in_chans, 1, 1), persistent=False)

        num_feat = 64
        self.conv_first = nn.Conv2d(in_chans, embed_dim, 3, 1, 1)
        self.patch_embed = _PatchNorm(embed_dim)
        self.layers = nn.ModuleList(
            RSTB(embed_dim, d, nh, window_size, mlp_ratio, resi_connection) for d, nh in zip(depths, num_heads)
        )
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = _resi_conv(embed_dim, resi_connection)

        if upsampler == "pixelshuffle":
            self.conv_before_upsample = nn.Sequential(nn.Conv2d(embed_dim, num_feat, 3, 1, 1), nn.LeakyReLU(inplace=True))
            self.upsample = Upsample(upscale, num_feat)
            self.conv_last = nn.Conv2d(num_feat, self.num_out_ch, 3, 1, 1)
        elif upsampler == "pixelshuffledirect":
            self.upsample = UpsampleOneStep(upscale, embed_dim, self.num_out_ch)
        elif upsampler == "nearest+conv":
            if upscale not in (2, 4):
                raise ValueError(f"nearest+conv supports upscale 2 or 4, got {upscale}")
            self.conv_before_upsample = nn.Sequential(nn.Conv2d(embed_dim, num_feat, 3, 1, 1), nn.LeakyReLU(inplace=True))
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
    def spec(self) -> "ModelSpec":
        """Hyperparameters and task description (see ``swinir.spec``)."""
        from swinir.spec import ModelSpec

        return ModelSpec(
            upscale=self.upscale, in_chans=self.in_chans, embed_dim=self.embed_dim, depths=tuple(self.depths),
            num_heads=tuple(self.num_heads), window_size=self.window_size, mlp_ratio=float(self.mlp_ratio),
            upsampler=self.upsampler, resi_connection=self.resi_connection, img_range=self.img_range,
            img_size=self.img_size if isinstance(self.img_size, int) else int(self.img_size[0]),
            num_out_ch=self.num_out_ch if self.num_out_ch != self.in_chans else None,
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
        for m in self.modules():
            if isinstance(m, SwinTransformerBlock):
                m._bias_cache.clear()

    def _apply(self, fn, recurse=True):  # type: ignore[no-untyped-def]
        self.clear_cache()  # device or dtype changes invalidate cached biases
        return super()._apply(fn, recurse)

    # -- forward -----------------------------------------------------------------------------------
    def pad_to_window(self, x: Tensor) -> Tensor:
        """Reflect-pad right/bottom to a window multiple, as the original; repeats for tiny inputs."""
        ws = self.window_size
        h, w = x.shape[-2:]
        ph, pw = (ws - h % ws) % ws, (ws - w % ws) % ws
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

    def forward_features(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        size = (h, w)
        x = self.patch_embed(x.flatten(2).transpose(1, 2))
        for layer in self.layers:
            x = layer(x, size)
        x = self.norm(x)
        return x.transpose(1, 2).reshape(b, c, h, w)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        x = self.pad_to_window(x)
        mean = self.mean.to(x.dtype)
        x = (x - mean) * self.img_range

        if self.upsampler == "pixelshuffle":
            x = self.conv_first(x)
            x = self.conv_after_body(self.forward_features(x)) + x
            x = self.conv_last(self.upsample(self.conv_before_upsample(x)))
        elif self.upsampler == "pixelshuffledirect":
            x = self.conv_first(x)
            x = self.conv_after_body(self.forward_features(x)) + x
            x = self.upsample(x)
        elif self.upsampler == "nearest+conv":
            x = self.conv_first(x)
            x = self.conv_after_body(self.forward_features(x)) + x
            x = self.conv_before_upsample(x)
            x = self.lrelu(self.conv_up1(F.interpolate(x, scale_factor=2, mode="nearest")))
            if self.upscale == 4:
                x = self.lrelu(self.conv_up2(F.interpolate(x, scale_factor=2, mode="nearest")))
            x = self.conv_last(self.lrelu(self.conv_hr(x)))
        else:
            first = self.conv_first(x)
            res = self.conv_after_body(self.forward_features(first)) + first
            x = x + self.conv_last(res)

        x = x / self.img_range + mean
        s = self.upscale
        return x[..., : h * s, : w * s]


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
