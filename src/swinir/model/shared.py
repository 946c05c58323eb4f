"""What the windowed restoration networks (SwinIR, Swin2SR, ...) share, below them: the reconstruction
heads, the residual-group convolutions, the fp32 islands, the input padding, and ``Restorer``, the base
class that holds the per-size caches and picks the CPU path when a model is placed.

The window maths (partition, shift masks, relative-position index, shifted-window plans) is in
``swinir.model.layout``; the CPU backend in ``swinir.model.cpu``. Each architecture's own module only
builds its modules with its released parameter names and wires its forward.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from swinir.model import cpu
from swinir.model.layout import WindowPlan, shifted_window_plan

if TYPE_CHECKING:
    from swinir.spec import ModelSpec

RGB_MEAN = (0.4488, 0.4371, 0.4040)  # DIV2K's mean, subtracted by every released color model
NUM_FEAT = 64  # channels of the pixelshuffle / nearest+conv reconstruction
# the convolution closing each residual group and the body: the released 3x3 ('1conv') and bottleneck
# ('3conv'), and SwinIR's ablation variants ('1x1', 'none')
RESI_CONNECTIONS = ("1conv", "3conv", "1x1", "none")
_PLAN_CACHE_SIZE = 8


def layer_norm(norm: nn.LayerNorm, x: Tensor) -> Tensor:
    """LayerNorm computed in the input's dtype (fp32 islands keep fp32 even when the weights are fp16)."""
    w = norm.weight.to(x.dtype) if norm.weight.dtype != x.dtype else norm.weight
    b = norm.bias.to(x.dtype) if norm.bias.dtype != x.dtype else norm.bias
    return F.layer_norm(x, norm.normalized_shape, w, b, norm.eps)


def fp32(module: nn.Module, x: Tensor) -> Tensor:
    """Run a conv / conv stack in fp32 whatever the weights' dtype or autocast (fp16-safe islands)."""
    with torch.autocast(x.device.type, enabled=False):
        x = x.float()
        if isinstance(module, nn.Sequential):
            for m in module:
                x = fp32(m, x)
            return x
        if isinstance(module, nn.Conv2d):
            bias = None if module.bias is None else module.bias.float()
            return F.conv2d(
                x, module.weight.float(), bias, module.stride, module.padding, module.dilation, module.groups
            )
        out: Tensor = module(x)
        return out


def resi_conv(dim: int, kind: str) -> nn.Module:
    """The convolution closing a residual group (and the body), by its ``resi_connection`` name."""
    if kind == "1conv":
        return nn.Conv2d(dim, dim, 3, 1, 1)
    if kind == "3conv":  # cheaper bottleneck used by the real-world L models
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


class Mlp(nn.Module):
    """fc1 -> GELU -> fc2, the transformer blocks' feed-forward (released names ``fc1``, ``fc2``)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor, residual: Tensor | None = None, ex: cpu.Exec = cpu.PLAIN) -> Tensor:
        """fc2(GELU(fc1(x))) (+ residual), with the GELU and the add fused where the backend allows."""
        return cpu.linear(self.fc2, cpu.linear(self.fc1, x, ex, gelu=True), ex, residual=residual)


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


def init_weights(m: nn.Module) -> None:
    """The releases' initialisation: truncated-normal linears, unit LayerNorms (convs keep PyTorch's)."""
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


def pad_to_window(x: Tensor, ws: int) -> Tensor:
    """Reflect-pad right/bottom to a window multiple, as the releases' forwards do; steps for tiny inputs."""
    h, w = x.shape[-2:]
    ph, pw = (ws - h % ws) % ws, (ws - w % ws) % ws
    if cpu.tracing():  # branch-free, so that an exported graph stays generic in H and W (both >= ws)
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


def pad_like_release(x: Tensor, window: int) -> Tensor:
    """Mirror-flip concatenation padding of an (N, C, H, W) tensor, as SwinIR's and Swin2SR's released test
    scripts pad before the forward.

    Always adds ``(h // window + 1) * window - h`` rows (a whole extra window when ``h`` is already a
    multiple), taken from the vertically flipped image, then the same for columns. Inputs smaller than
    the padding come out shorter; the model pads those further by itself.
    """
    h, w = x.shape[-2:]
    hp = (h // window + 1) * window - h
    wp = (w // window + 1) * window - w
    x = torch.cat([x, torch.flip(x, [2])], 2)[:, :, : h + hp, :]
    x = torch.cat([x, torch.flip(x, [3])], 3)[:, :, :, : w + wp]
    return x


def check_heads(depths: Sequence[int], num_heads: Sequence[int], embed_dim: int) -> None:
    if len(depths) != len(num_heads):
        raise ValueError(f"depths {list(depths)} and num_heads {list(num_heads)} differ in length")
    for h in num_heads:
        if h < 1 or embed_dim % h:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by {h} heads")


class Restorer(nn.Module):
    """Base of the windowed restoration networks: (N, C, H, W) in [0, 1] of any size -> (N, C, sH, sW).

    It holds what does not depend on the architecture: the cached shifted-window plans per input size,
    the CPU-path placement (decided on construction and on every ``.to()`` / ``.float()`` /
    ``.bfloat16()``, never per block), cache invalidation, the fp16 test and the input padding. A subclass
    sets ``embed_dim``, ``num_heads``, ``window_size``, ``upscale``, ``in_chans``, ``num_out_ch``,
    ``img_range`` and ``conv_first``, calls ``_place()`` at the end of its constructor, and provides
    ``spec``.
    """

    embed_dim: int
    num_heads: list[int]
    window_size: int
    upscale: int
    in_chans: int
    num_out_ch: int
    img_range: float
    conv_first: nn.Conv2d
    # where a loaded model's weights came from in its file (``swinir.layouts.Unwrapped``, set by ``load``)
    origin: Any = None

    def __init__(self) -> None:
        super().__init__()
        self.fp16_safe = True
        self._plans: dict[tuple[Any, ...], WindowPlan] = {}

    @property
    def spec(self) -> ModelSpec:
        raise NotImplementedError

    @property
    def architecture(self) -> str:
        return self.spec.architecture

    @property
    def scale(self) -> int:
        return self.upscale

    @property
    def task(self) -> str:
        return self.spec.task

    def extra_repr(self) -> str:
        return self.spec.describe()

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute transformer blocks in the backward pass: less activation memory for slower training."""
        for m in self.modules():
            if hasattr(m, "use_checkpoint"):
                m.__dict__["use_checkpoint"] = enable  # a plain attribute of the blocks' layers

    def clear_cache(self) -> None:
        """Drop cached biases and window orders (they are rebuilt on the next forward)."""
        self._plans.clear()
        for m in self.modules():
            clear = getattr(m, "clear_cache", None)
            if m is not self and callable(clear):
                clear()

    def _place(self) -> None:
        """Decide what the CPU backend may do on the current device and weight dtype (``cpu.Placement``)."""
        head_dims = [self.embed_dim // h for h in self.num_heads]
        self.placement = cpu.placement(self.conv_first.weight, [self.window_size] * len(head_dims), head_dims)

    def _apply(self, fn, recurse=True):  # type: ignore[no-untyped-def]
        self.clear_cache()  # device or dtype changes invalidate cached tensors
        result = super()._apply(fn, recurse)  # type: ignore[no-untyped-call]  # unannotated in torch
        self._place()
        return result

    def window_plan(self, b: int, h: int, w: int, device: torch.device) -> WindowPlan:
        """The shifted-window order for a (b, h, w) feature map; cached per size when not tracing."""
        ws = self.window_size
        if cpu.tracing():
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

    def pad_to_window(self, x: Tensor) -> Tensor:
        """Reflect-pad right/bottom to a window multiple, as the original; repeats for tiny inputs."""
        return pad_to_window(x, self.window_size)
