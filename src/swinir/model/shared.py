"""What the windowed restoration networks (SwinIR, Swin2SR, ...) share, below them: the reconstruction
heads, the residual-group convolutions, the fp32 islands, the input padding, and ``Restorer``, the base
class that holds the per-size caches and picks the CPU path when a model is placed.

The window maths (partition, shift masks, relative-position index, shifted-window plans) is in
``swinir.model.layout``; the CPU backend in ``swinir.model.cpu``. Each architecture's own module only
builds its modules with its released parameter names and wires its forward.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from swinir.model import cpu
from swinir.model.cpu import PLAIN, Exec
from swinir.model.layout import (
    WindowPlan,
    attention_by_group,
    group_masks,
    relative_position_index,
    shift_mask,
    shifted_window_plan,
)
from swinir.model.progress import enter_group, leave_group, report_block, report_group

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


def norm_mlp_residual(norm: nn.LayerNorm, mlp: Mlp, x: Tensor, weight_dtype: torch.dtype, ex: Exec) -> Tensor:
    """x + MLP(norm(x)), a pre-norm block's second half off the chunked path: the norm as ``layer_norm``
    runs it (fp32 under ``fp16_safe``), the MLP in the weights' dtype."""
    y = layer_norm(norm, x)
    if ex.fp16_safe and y.dtype != weight_dtype:
        y = y.to(weight_dtype)
    return mlp(y, residual=x, ex=ex)  # type: ignore[no-any-return]


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


class BiasCache:
    """One block's attention bias (position bias, plus shift masks per window group), kept while gradients
    are off and keyed on the storage and version counters of the weights it is made from, so that any
    in-place update (EMA, load_state_dict) rebuilds it. Traced graphs and training compute it in-graph."""

    def __init__(self) -> None:
        self.key: tuple[Any, ...] | None = None
        self.value: Tensor | None = None

    def get(self, device: torch.device, sources: Iterable[Tensor], make: Callable[[torch.device], Tensor]) -> Tensor:
        if cpu.tracing() or torch.is_grad_enabled():
            return make(device)
        key = (device, *(k for t in sources for k in cpu.values_key(t)))
        if key != self.key or self.value is None:
            # a plain tensor without grad (fused attention skips masks that need grad), made outside
            # inference mode so that it stays usable in any later mode; on CPU outside autocast too, so
            # that it does not depend on the mode of the first call (Swin2SR's CPB MLP made a bf16-rounded
            # bias under bf16 autocast, which later fp32 calls kept; the CPU attention runs in fp32 anyway)
            off = torch.autocast("cpu", enabled=False) if device.type == "cpu" else contextlib.nullcontext()
            with torch.inference_mode(False), torch.no_grad(), off:
                self.value = make(device)
            self.key = key
        return self.value

    def clear(self) -> None:
        self.key = self.value = None


class BiasCached(nn.Module):
    """A block that keeps its attention bias in a ``BiasCache``: emptied by ``clear_cache`` and on every load,
    where ``DERIVED``, the released files' buffer that the bias replaces, is dropped (rebuilt, not read)."""

    DERIVED = "attn_mask"

    def __init__(self) -> None:
        super().__init__()
        self._bias_cache = BiasCache()

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # type: ignore[no-untyped-def]
        state_dict.pop(prefix + self.DERIVED, None)
        self.clear_cache()
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def clear_cache(self) -> None:
        self._bias_cache.clear()


class WindowAttention(nn.Module):
    """Multi-head self-attention inside ws x ws windows with a learned relative-position bias."""

    relative_position_index: Tensor

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
        ex: Exec = PLAIN,
    ) -> Tensor:
        """x: (windows, N, C). bias: (1, heads, N, N), or (G, 1, heads, N, N) with either ``groups`` giving
        the number of consecutive windows that use each of the G biases, or ``window_group`` giving each
        window's bias. ``residual`` (windows, N, C) is added to the output (fused where possible)."""
        bn, n, c = x.shape
        h = self.num_heads
        # strided views into one qkv buffer; the CPU/GPU fused kernels take them without copies
        q, k, v = cpu.linear(self.qkv, x, ex).view(bn, n, 3, h, c // h).permute(2, 0, 3, 1, 4).unbind(0)
        if window_group is not None:  # traced plans: one per-window bias looked up from the window's group
            bias = bias[:, 0][window_group]
        if cpu.tracing():
            # exported graphs: plain ops (the fused kernel's output layout does not survive decomposition)
            attn = torch.matmul(q, k.transpose(-2, -1)) * self.scale + bias.to(q.dtype)
            out = torch.matmul(attn.softmax(-1), v).transpose(1, 2)
        elif groups is None:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype), scale=self.scale)
            out = out.transpose(1, 2)  # the fused kernels write (windows, N, heads, d): a free view
        else:
            out = attention_by_group(q, k, v, bias, groups, self.scale).transpose(1, 2)
        return cpu.linear(self.proj, out.reshape(bn, n, c), ex, residual=residual)

    def with_residual(
        self, y: Tensor, residual: Tensor, bias: Tensor, shifted: bool, plan: WindowPlan | None, ex: Exec = PLAIN
    ) -> Tensor:
        """residual + (S)W-MSA(y) for (B, L, C) tokens in window order: a plain block fuses the residual into
        the projection; a shifted one gathers its windows through ``plan.perm`` and scatters the result back
        onto the residual (SwinIR's and HAT's blocks)."""
        b, length, c = y.shape
        n = self.window_size**2
        if not shifted:
            plain: Tensor = self(y.view(-1, n, c), bias, residual=residual.view(-1, n, c), ex=ex)
            return plain.view(b, length, c)
        assert plan is not None, "shifted blocks need a WindowPlan"
        ys = y.reshape(b * length, c).index_select(0, plan.perm)
        ys = self(ys.view(-1, n, c), bias, plan.groups, plan.window_group, ex=ex).view(b * length, c)
        return residual.reshape(b * length, c).index_add(0, plan.perm, ys.to(residual.dtype)).view(b, length, c)


def window_bias(position_bias: Tensor, window_size: int, shift_size: int, device: torch.device) -> Tensor:
    """A Swin block's attention bias from its (heads, N, N) position bias: (1, heads, N, N), or with a shift
    (4, 1, heads, N, N), the bias plus the shift mask of each window group (``group_masks``)."""
    bias = position_bias.unsqueeze(0).to(device)
    if shift_size > 0:
        masks = group_masks(window_size, shift_size, device).to(bias.dtype)
        bias = bias.unsqueeze(0) + masks[:, None, None]
    return bias


def run_blocks(
    blocks: nn.ModuleList,
    x: Tensor,
    plan: WindowPlan | None,
    ex: Exec,
    checkpoint: bool,
    size: tuple[int, int] | None = None,
) -> Tensor:
    """A residual group's transformer blocks in order: on the chunked CPU path each writes into one of two
    alternated buffers (the input is never written); with ``checkpoint`` (training) each is recomputed in
    the backward pass. ``size``: the feature map's (H, W), passed on to blocks that need it (HAT's)."""
    kw: dict[str, Any] = {} if size is None else {"size": size}
    if ex.chunked and len(blocks):
        buffers = (torch.empty_like(x), torch.empty_like(x))
        for i, blk in enumerate(blocks):
            x = blk(x, plan, ex, out=buffers[i % 2], **kw)
            report_block(i + 1, len(blocks))
        return x
    for i, blk in enumerate(blocks):
        if checkpoint and blk.training and torch.is_grad_enabled():
            x = torch.utils.checkpoint.checkpoint(blk, x, plan, ex, use_reentrant=False, **kw)
        else:
            x = blk(x, plan, ex, **kw)
        report_block(i + 1, len(blocks))
    return x


def run_groups(layers: nn.ModuleList, t: Tensor, size: tuple[int, int], plan: WindowPlan | None, ex: Exec) -> Tensor:
    """The residual groups in order on tokens ``t``, each reported as it finishes, and its blocks within it
    (``swinir.model.progress``: a no-op unless a sink is set), so that a progress bar can move within one
    long forward. The reconstruction after them counts as one more step (``_reconstruct`` reports it)."""
    steps = len(layers) + 1
    for i, layer in enumerate(layers):
        token = enter_group(i, steps)
        try:
            t = layer(t, size, plan, ex)
        finally:
            leave_group(token)
        report_group(i + 1, steps)
    return t


_BLOCK_NORM1 = re.compile(r"(layers\.\d+\.residual_group\.blocks\.(\d+)\.)norm1\.weight")


def released_layout(
    sd: Mapping[str, Tensor],
    derived: tuple[str, ...],
    window_size: int,
    img_size: int,
    after: Mapping[str, Mapping[str, Tensor]],
) -> dict[str, Tensor]:
    """``sd`` with the derived buffers in the order the releases' ``state_dict()`` has them: each shifted
    (odd) block's ``attn_mask`` (for an ``img_size`` square input) before its ``norm1.weight``, and after
    every key ending in a suffix of ``after``, that entry's buffers (named in the same module). One tensor
    of each is shared by every block, so a file grows by one copy of each."""
    mask = shift_mask(img_size, img_size, window_size, window_size // 2).float().contiguous()
    out: dict[str, Tensor] = {}
    for k, v in sd.items():
        if k.endswith(derived):
            continue
        block = _BLOCK_NORM1.fullmatch(k)
        if block and int(block.group(2)) % 2 == 1:
            out[block.group(1) + "attn_mask"] = mask
        out[k] = v
        for suffix, buffers in after.items():
            if k.endswith(suffix):
                stem = k[: len(k) - len(suffix) + suffix.rfind(".") + 1]
                out.update({stem + name: t for name, t in buffers.items()})
    return out


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
    depths: list[int]
    num_heads: list[int]
    mlp_ratio: float
    resi_connection: str
    img_size: int | Sequence[int]
    window_size: int
    upscale: int
    in_chans: int
    num_out_ch: int
    img_range: float
    upsampler: str
    conv_first: nn.Conv2d
    mean: Tensor  # the normalisation's per-channel mean (a buffer)
    conv_after_body: nn.Module
    layers: nn.ModuleList  # the residual groups
    absolute_pos_embed: nn.Parameter  # with ape only
    # the reconstruction heads (released names; which exist depends on the upsampler)
    conv_before_upsample: nn.Sequential
    upsample: nn.Module
    conv_last: nn.Conv2d
    conv_up1: nn.Conv2d
    conv_up2: nn.Conv2d
    conv_hr: nn.Conv2d
    lrelu: nn.LeakyReLU
    # where a loaded model's weights came from in its file (``swinir.layouts.Unwrapped``, set by ``load``)
    origin: Any = None

    def __init__(self) -> None:
        super().__init__()
        self.fp16_safe = True
        self._plans: dict[tuple[Any, ...], WindowPlan] = {}

    @property
    def spec(self) -> ModelSpec:
        raise NotImplementedError

    def _spec_fields(self) -> dict[str, Any]:
        """The ``ModelSpec`` fields every architecture has, from this network (its ``spec`` adds its own)."""
        return {
            "upscale": self.upscale,
            "in_chans": self.in_chans,
            "embed_dim": self.embed_dim,
            "depths": tuple(self.depths),
            "num_heads": tuple(self.num_heads),
            "window_size": self.window_size,
            "mlp_ratio": float(self.mlp_ratio),
            "upsampler": self.upsampler,
            "resi_connection": self.resi_connection,
            "img_range": self.img_range,
            "img_size": self.img_size if isinstance(self.img_size, int) else int(self.img_size[0]),
        }

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

    # -- the reconstruction heads the releases share (the upsamplers) --------------------------------
    def _build_reconstruction(self, upscale: int) -> None:
        """The tail after the deep features with the releases' attribute names: ``pixelshuffle`` (classical
        SR), ``pixelshuffledirect`` (lightweight), ``nearest+conv`` (real-world, x2 or x4), none (denoising,
        JPEG: a conv and the global residual)."""
        dim, out = self.embed_dim, self.num_out_ch
        if self.upsampler in ("pixelshuffle", "nearest+conv"):
            self.conv_before_upsample = nn.Sequential(nn.Conv2d(dim, NUM_FEAT, 3, 1, 1), nn.LeakyReLU(inplace=True))
        if self.upsampler == "pixelshuffle":
            self.upsample = Upsample(upscale, NUM_FEAT)
            self.conv_last = nn.Conv2d(NUM_FEAT, out, 3, 1, 1)
        elif self.upsampler == "pixelshuffledirect":
            self.upsample = UpsampleOneStep(upscale, dim, out)
        elif self.upsampler == "nearest+conv":
            self.conv_up1 = nn.Conv2d(NUM_FEAT, NUM_FEAT, 3, 1, 1)
            if upscale == 4:
                self.conv_up2 = nn.Conv2d(NUM_FEAT, NUM_FEAT, 3, 1, 1)
            self.conv_hr = nn.Conv2d(NUM_FEAT, NUM_FEAT, 3, 1, 1)
            self.conv_last = nn.Conv2d(NUM_FEAT, out, 3, 1, 1)
            self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)
        elif self.upsampler == "":
            self.conv_last = nn.Conv2d(dim, out, 3, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        """Pad to the window, normalise, reconstruct, undo the normalisation, crop to the scaled input size
        (SwinIR's and HAT's; Swin2SR adds its auxiliary output)."""
        h, w = x.shape[-2:]
        x = self.pad_to_window(x)
        ex = cpu.choose(self.placement, x, self.fp16_active(x))
        mean = self.mean.to(x.dtype)
        x = ((x - mean) * self.img_range).contiguous(memory_format=torch.channels_last)
        x = self._reconstruct(x, ex)
        x = x / self.img_range + mean
        s = self.upscale
        return x[..., : h * s, : w * s].contiguous()

    def _reconstruct(self, x: Tensor, ex: Exec) -> Tensor:
        """Shallow conv -> body -> the head, on the normalised, padded input ``x``."""
        conv = cpu.conv
        if self.upsampler == "pixelshuffle":
            y = conv(self.conv_before_upsample, self._body(self.conv_first(x), ex), ex)
            return conv(self.conv_last, conv(self.upsample, y, ex), ex)
        if self.upsampler == "pixelshuffledirect":
            return conv(self.upsample, self._body(self.conv_first(x), ex), ex)
        if self.upsampler == "nearest+conv":  # its convolutions at 2x and 4x take long: each reports
            y = conv(self.conv_before_upsample, self._body(self.conv_first(x), ex), ex)
            steps, groups = 2 + (self.upscale == 4), len(self.layers)
            token = enter_group(groups, groups + 1)
            try:
                y = self.lrelu(conv(self.conv_up1, F.interpolate(y, scale_factor=2, mode="nearest"), ex))
                report_block(1, steps)
                if self.upscale == 4:
                    y = self.lrelu(conv(self.conv_up2, F.interpolate(y, scale_factor=2, mode="nearest"), ex))
                    report_block(2, steps)
                y = self.lrelu(conv(self.conv_hr, y, ex))
                report_block(steps, steps)
            finally:
                leave_group(token)
            out: Tensor = self.conv_last(y)
            return out
        res: Tensor = x + self.conv_last(self._body(self.conv_first(x), ex))
        return res

    # -- the body both released families share: deep features plus a residual ------------------------
    def forward_features(self, x: Tensor, ex: Exec = PLAIN) -> Tensor:
        raise NotImplementedError

    def _body(self, first: Tensor, ex: Exec) -> Tensor:
        """conv_after_body(forward_features(first)) + first; fp32 throughout when fp16_safe."""
        conv_after_body: nn.Module = self.conv_after_body
        if not ex.fp16_safe:
            return cpu.conv(conv_after_body, self.forward_features(first, ex), ex) + first
        f32 = first.float()
        res = fp32(conv_after_body, self.forward_features(f32, ex)) + f32
        return res.to(first.dtype)

    def _position_embedding(self, b: int, h: int, w: int, dtype: torch.dtype) -> Tensor:
        """The absolute position embedding (``ape``) as a (b, C, h, w) image: as learned at img_size x
        img_size, bicubically resized for other sizes (the originals only run at img_size)."""
        n, c = self.absolute_pos_embed.shape[1:]
        side = math.isqrt(n)
        pe = self.absolute_pos_embed.reshape(1, side, side, c).permute(0, 3, 1, 2)
        if (h, w) != (side, side):
            pe = F.interpolate(pe.float(), size=(h, w), mode="bicubic", align_corners=False)
        return pe.to(dtype).expand(b, -1, -1, -1).contiguous()
