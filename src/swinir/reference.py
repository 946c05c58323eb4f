"""A plain SwinIR forward that follows the original release code step by step: the test oracle.

``swinir.model.SwinIR`` reorganises the computation for speed (tokens kept in window order, gathers instead
of roll + partition, grouped fused attention, oneDNN linears). This module does none of that: every step
is the original's, in the original's order, so that the two can be compared on any input:

- explicit ``(q * scale) @ k^T + bias``, the shift mask added per window, ``softmax``, ``@ v``;
- ``torch.roll`` + window partition/reverse with ``view``/``permute``/``contiguous``;
- the shift mask built at construction for ``img_size`` and recomputed in every forward whose size differs;
- tokens back to an image with ``transpose``/``view`` around every convolution.

Parameter names and buffers are the released checkpoints' (``relative_position_index`` and ``attn_mask``
are persistent buffers here, so a released file loads with ``strict=True``); the fast model's state dict
loads with ``strict=False`` (it has no derived buffers), or use ``ReferenceSwinIR.from_model``.
It is slow and memory-hungry by design; use it for tests and benchmarks only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

if TYPE_CHECKING:
    from swinir.model import SwinIR

RGB_MEAN = (0.4488, 0.4371, 0.4040)


def partition(x: Tensor, ws: int) -> Tensor:
    """(B, H, W, C) -> (B*nW, ws, ws, C), as the original ``window_partition``."""
    b, h, w, c = x.shape
    x = x.view(b, h // ws, ws, w // ws, ws, c)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(-1, ws, ws, c)


def reverse(windows: Tensor, ws: int, h: int, w: int) -> Tensor:
    """(B*nW, ws, ws, C) -> (B, H, W, C), as the original ``window_reverse``."""
    b = int(windows.shape[0] / (h * w / ws / ws))
    x = windows.view(b, h // ws, w // ws, ws, ws, -1)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(b, h, w, -1)


def build_mask(h: int, w: int, ws: int, shift: int) -> Tensor:
    """(nW, N, N): 0 between tokens of the same pre-shift region, -100 otherwise."""
    labels = torch.zeros((1, h, w, 1))
    region = 0
    for rows in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)):
        for cols in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)):
            labels[:, rows, cols, :] = region
            region += 1
    flat = partition(labels, ws).view(-1, ws * ws)
    diff = flat.unsqueeze(1) - flat.unsqueeze(2)
    return diff.masked_fill(diff != 0, -100.0).masked_fill(diff == 0, 0.0)


def position_index(ws: int) -> Tensor:
    grid = torch.stack(torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij"))
    flat = torch.flatten(grid, 1)
    rel = (flat[:, :, None] - flat[:, None, :]).permute(1, 2, 0).contiguous()
    rel[:, :, 0] += ws - 1
    rel[:, :, 1] += ws - 1
    rel[:, :, 0] *= 2 * ws - 1
    return rel.sum(-1)


class RefMlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        x = self.fc1(x)
        x = self.act(x)
        out: Tensor = self.fc2(x)
        return out


class RefWindowAttention(nn.Module):
    relative_position_index: Tensor

    def __init__(self, dim: int, ws: int, heads: int) -> None:
        super().__init__()
        self.ws = ws
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * ws - 1) ** 2, heads))
        self.register_buffer("relative_position_index", position_index(ws))
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        bn, n, c = x.shape
        qkv = self.qkv(x).reshape(bn, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        q = q * self.scale
        attn = q @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        bias = bias.view(self.ws * self.ws, self.ws * self.ws, -1).permute(2, 0, 1).contiguous()
        attn = attn + bias.unsqueeze(0)
        if mask is not None:
            nw = mask.shape[0]
            attn = attn.view(bn // nw, nw, self.heads, n, n) + mask.unsqueeze(1).unsqueeze(0)
            attn = attn.view(-1, self.heads, n, n)
        attn = attn.softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(bn, n, c)
        out: Tensor = self.proj(x)
        return out


class RefBlock(nn.Module):
    def __init__(
        self, dim: int, resolution: tuple[int, int], heads: int, ws: int, shift: int, mlp_ratio: float
    ) -> None:
        super().__init__()
        self.resolution = resolution
        self.ws = ws
        self.shift = shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = RefWindowAttention(dim, ws, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = RefMlp(dim, int(dim * mlp_ratio))
        self.register_buffer("attn_mask", build_mask(*resolution, ws, shift) if shift > 0 else None)

    def forward(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        h, w = size
        b, _, c = x.shape
        shortcut = x
        x = self.norm1(x).view(b, h, w, c)
        if self.shift > 0:
            x = torch.roll(x, shifts=(-self.shift, -self.shift), dims=(1, 2))
        windows = partition(x, self.ws).view(-1, self.ws * self.ws, c)
        if self.shift == 0:
            mask = None
        elif tuple(size) == tuple(self.resolution):
            mask = self.attn_mask
        else:
            # the original moves it to the device only, which breaks bf16/fp16 at other sizes
            mask = build_mask(h, w, self.ws, self.shift).to(x.device, x.dtype)
        windows = self.attn(windows, mask).view(-1, self.ws, self.ws, c)
        x = reverse(windows, self.ws, h, w)
        if self.shift > 0:
            x = torch.roll(x, shifts=(self.shift, self.shift), dims=(1, 2))
        x = shortcut + x.view(b, h * w, c)
        out: Tensor = x + self.mlp(self.norm2(x))
        return out


class RefLayer(nn.Module):
    """Swin blocks with the given shift sizes (the original: 0, ws // 2, 0, ...)."""

    def __init__(
        self, dim: int, resolution: tuple[int, int], shifts: list[int], heads: int, ws: int, mlp_ratio: float
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(RefBlock(dim, resolution, heads, ws, s, mlp_ratio) for s in shifts)

    def forward(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        for blk in self.blocks:
            x = blk(x, size)
        return x


def _resi(dim: int, kind: str) -> nn.Module:
    if kind == "1conv":
        return nn.Conv2d(dim, dim, 3, 1, 1)
    if kind == "1x1":
        return nn.Conv2d(dim, dim, 1, 1, 0)
    if kind == "none":
        return nn.Identity()
    return nn.Sequential(
        nn.Conv2d(dim, dim // 4, 3, 1, 1),
        nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(dim // 4, dim // 4, 1, 1, 0),
        nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(dim // 4, dim, 3, 1, 1),
    )


class RefRSTB(nn.Module):
    def __init__(
        self,
        dim: int,
        resolution: tuple[int, int],
        depth: int,
        heads: int,
        ws: int,
        mlp_ratio: float,
        kind: str,
        residual: bool = True,
        shift: bool = True,
    ) -> None:
        super().__init__()
        shifts = [ws // 2 if shift and i % 2 else 0 for i in range(depth)]
        self.residual_group = RefLayer(dim, resolution, shifts, heads, ws, mlp_ratio)
        self.conv = _resi(dim, kind)
        self.residual = residual

    def forward(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        b, _, c = x.shape
        y: Tensor = self.residual_group(x, size)
        y = y.transpose(1, 2).view(b, c, size[0], size[1])  # unembed
        y = self.conv(y)
        y = y.flatten(2).transpose(1, 2)  # embed
        return y + x if self.residual else y


class _Norm(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)


class ReferenceSwinIR(nn.Module):
    """The original network, computed the original way (same constructor arguments as ``SwinIR``)."""

    def __init__(
        self,
        img_size: int | Sequence[int] = 64,
        in_chans: int = 3,
        embed_dim: int = 96,
        depths: Sequence[int] = (6, 6, 6, 6),
        num_heads: Sequence[int] = (6, 6, 6, 6),
        window_size: int = 7,
        mlp_ratio: float = 4.0,
        upscale: int = 2,
        img_range: float = 1.0,
        upsampler: str = "",
        resi_connection: str = "1conv",
        num_out_ch: int | None = None,
        rstb_residual: bool = True,
        shift: bool = True,
        ape: bool = False,
        patch_norm: bool = True,
        **_: object,
    ) -> None:
        super().__init__()
        size = (img_size, img_size) if isinstance(img_size, int) else (int(img_size[0]), int(img_size[1]))
        self.ape, self.patch_norm = ape, patch_norm
        out_ch = num_out_ch or in_chans
        self.window_size = window_size
        self.upscale = upscale
        self.img_range = float(img_range)
        self.upsampler = upsampler
        mean = RGB_MEAN if in_chans == 3 else (0.0,) * in_chans
        self.mean = torch.tensor(mean).view(1, in_chans, 1, 1)
        feat = 64
        self.conv_first = nn.Conv2d(in_chans, embed_dim, 3, 1, 1)
        self.patch_embed: nn.Module = _Norm(embed_dim) if patch_norm else nn.Module()
        if ape:  # the original's: (1, img_size^2, C), added to the tokens in row-major order
            self.absolute_pos_embed = nn.Parameter(torch.zeros(1, size[0] * size[1], embed_dim))
        self.layers = nn.ModuleList(
            RefRSTB(embed_dim, size, d, h, window_size, mlp_ratio, resi_connection, rstb_residual, shift)
            for d, h in zip(depths, num_heads)
        )
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = _resi(embed_dim, resi_connection)
        if upsampler == "pixelshuffle":
            self.conv_before_upsample = nn.Sequential(nn.Conv2d(embed_dim, feat, 3, 1, 1), nn.LeakyReLU(inplace=True))
            stages: list[nn.Module] = []
            if upscale & (upscale - 1) == 0:
                for _level in range(int(math.log2(upscale))):
                    stages += [nn.Conv2d(feat, 4 * feat, 3, 1, 1), nn.PixelShuffle(2)]
            else:
                stages += [nn.Conv2d(feat, 9 * feat, 3, 1, 1), nn.PixelShuffle(3)]
            self.upsample = nn.Sequential(*stages)
            self.conv_last = nn.Conv2d(feat, out_ch, 3, 1, 1)
        elif upsampler == "pixelshuffledirect":
            self.upsample = nn.Sequential(nn.Conv2d(embed_dim, upscale**2 * out_ch, 3, 1, 1), nn.PixelShuffle(upscale))
        elif upsampler == "nearest+conv":
            self.conv_before_upsample = nn.Sequential(nn.Conv2d(embed_dim, feat, 3, 1, 1), nn.LeakyReLU(inplace=True))
            self.conv_up1 = nn.Conv2d(feat, feat, 3, 1, 1)
            if upscale == 4:
                self.conv_up2 = nn.Conv2d(feat, feat, 3, 1, 1)
            self.conv_hr = nn.Conv2d(feat, feat, 3, 1, 1)
            self.conv_last = nn.Conv2d(feat, out_ch, 3, 1, 1)
            self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)
        else:
            self.conv_last = nn.Conv2d(embed_dim, out_ch, 3, 1, 1)

    @classmethod
    def from_model(cls, model: SwinIR) -> ReferenceSwinIR:
        """A reference network with the weights of a ``swinir.model.SwinIR`` (same device and dtype)."""
        ref = cls(**model.spec.kwargs())
        missing, unexpected = ref.load_state_dict(model.state_dict(), strict=False)
        derived = ("relative_position_index", "attn_mask")
        if unexpected or any(not k.endswith(derived) for k in missing):
            raise ValueError(f"state dicts differ: missing {missing[:3]}, unexpected {unexpected[:3]}")
        p = next(model.parameters())
        return ref.to(device=p.device, dtype=p.dtype).eval()

    def check_image_size(self, x: Tensor) -> Tensor:
        _, _, h, w = x.size()
        ph = (self.window_size - h % self.window_size) % self.window_size
        pw = (self.window_size - w % self.window_size) % self.window_size
        return F.pad(x, (0, pw, 0, ph), "reflect")

    def forward_features(self, x: Tensor) -> Tensor:
        size = (x.shape[2], x.shape[3])
        x = x.flatten(2).transpose(1, 2)
        if self.patch_norm:
            assert isinstance(self.patch_embed, _Norm)
            x = self.patch_embed.norm(x)
        if self.ape:  # only at img_size, as the original
            x = x + self.absolute_pos_embed
        for layer in self.layers:
            x = layer(x, size)
        x = self.norm(x)
        b, _, c = x.shape
        return x.transpose(1, 2).view(b, c, size[0], size[1])

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[2:]
        x = self.check_image_size(x)
        mean = self.mean.type_as(x)
        x = (x - mean) * self.img_range
        if self.upsampler == "pixelshuffle":
            x = self.conv_first(x)
            x = self.conv_after_body(self.forward_features(x)) + x
            x = self.conv_before_upsample(x)
            x = self.conv_last(self.upsample(x))
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
        s = self.upscale if self.upsampler else 1
        return x[:, :, : h * s, : w * s]
