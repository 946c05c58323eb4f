"""What a checkpoint is, read from its state dict alone (no configuration needed): ``ModelSpec``, the typed
spec every architecture of the family detects into, and SwinIR's detection.

``ModelSpec`` holds the hyperparameters the family shares (scale, channels, width, depths, heads, window,
MLP ratio, upsampler, residual connection, input range) plus ``architecture`` and ``options``, the
architecture's own constructor arguments (HAT's channel-attention ratios, for example). The other
architectures' detections live beside their networks (``swinir.model.swin2sr.detect``); the registry that
tries them in order is ``swinir.architectures``. The helpers below that read shapes, depths and
upsamplers are shared by those detections.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from swinir.tasks import MODEL_TASKS

TASKS = MODEL_TASKS  # kept for callers of swinir.spec.TASKS


class SpecError(ValueError):
    """The state dict does not look like a network of the architecture being tried."""


# display names of the architectures (``ModelSpec.architecture`` holds the key)
TITLES = {"swinir": "SwinIR", "swin2sr": "Swin2SR", "hat": "HAT"}
# SwinIR constructor arguments every family member shares, with their defaults when a config omits them
_COMMON_ARGS = (
    "upscale",
    "in_chans",
    "embed_dim",
    "depths",
    "num_heads",
    "window_size",
    "mlp_ratio",
    "upsampler",
    "resi_connection",
    "img_range",
    "img_size",
    "num_out_ch",
    "rstb_residual",
    "shift",
    "ape",
    "patch_norm",
)
# constructor arguments of the originals that every released model leaves at these values (not options)
_RELEASED_CONSTANTS = {
    "patch_size": 1,
    "qkv_bias": True,
    "qk_scale": None,
    "drop_rate": 0.0,
    "attn_drop_rate": 0.0,
    "drop_path_rate": 0.1,
    "use_checkpoint": False,
}


@dataclass(frozen=True)
class ModelSpec:
    """Hyperparameters plus a description of what the network does."""

    upscale: int
    in_chans: int
    embed_dim: int
    depths: tuple[int, ...]
    num_heads: tuple[int, ...]
    window_size: int
    mlp_ratio: float
    upsampler: str
    resi_connection: str
    img_range: float = 1.0
    img_size: int = 64
    num_out_ch: int | None = None
    # the paper's ablation switches (defaults: the released architecture); ape and patch_norm show in the
    # weights, rstb_residual and shift only in stored metadata
    rstb_residual: bool = True
    shift: bool = True
    ape: bool = False
    patch_norm: bool = True
    # which network these are the hyperparameters of (a key of ``TITLES`` / ``swinir.architectures``)
    architecture: str = "swinir"
    # the architecture's own constructor arguments beyond the shared ones, as sorted (name, value) pairs
    options: tuple[tuple[str, Any], ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def title(self) -> str:
        """The architecture's name as its paper writes it."""
        return TITLES.get(self.architecture, self.architecture)

    def option(self, name: str, default: Any = None) -> Any:
        return dict(self.options).get(name, default)

    def switches(self) -> dict[str, bool]:
        """The ablation switches that differ from the released architecture."""
        return {k: v for k, v in zip(SWITCHES, self._switch_values()) if v != SWITCH_DEFAULTS[k]}

    def _switch_values(self) -> tuple[bool, ...]:
        return (self.rstb_residual, self.shift, self.ape, self.patch_norm)

    @property
    def scale(self) -> int:
        return self.upscale

    @property
    def out_chans(self) -> int:
        return self.num_out_ch or self.in_chans

    @property
    def task(self) -> str:
        """classical_sr, lightweight_sr, real_sr, compressed_sr, denoise or jpeg (a guess from the
        architecture)."""
        if self.upsampler == "pixelshuffle_aux":  # Swin2SR's SR of JPEG-compressed inputs
            return "compressed_sr"
        if self.upsampler == "pixelshuffle":
            return "classical_sr"
        if self.upsampler == "pixelshuffledirect":
            return "lightweight_sr"
        if self.upsampler == "nearest+conv":
            return "real_sr"
        return "jpeg" if self.window_size == 7 or self.img_range == 255.0 else "denoise"

    @property
    def color(self) -> str:
        return "gray" if self.in_chans == 1 else "color" if self.in_chans == 3 else f"{self.in_chans}-channel"

    @property
    def size_multiple(self) -> int:
        """Inputs are padded internally to this multiple; any size is accepted."""
        return self.window_size

    def kwargs(self) -> dict[str, Any]:
        """Constructor arguments under the original names: ``SwinIR(**spec.kwargs())`` (or the
        architecture's class, see ``swinir.architectures``)."""
        kw: dict[str, Any] = {
            "upscale": self.upscale,
            "in_chans": self.in_chans,
            "img_size": self.img_size,
            "window_size": self.window_size,
            "img_range": self.img_range,
            "depths": list(self.depths),
            "embed_dim": self.embed_dim,
            "num_heads": list(self.num_heads),
            "mlp_ratio": self.mlp_ratio,
            "upsampler": self.upsampler,
            "resi_connection": self.resi_connection,
        }
        if self.num_out_ch and self.num_out_ch != self.in_chans:
            kw["num_out_ch"] = self.num_out_ch
        kw.update(self.switches())
        kw.update(self.options)
        return kw

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("extra")
        d["depths"] = list(self.depths)
        d["num_heads"] = list(self.num_heads)
        d["options"] = dict(self.options)
        return d

    @classmethod
    def from_kwargs(cls, kw: Mapping[str, Any], architecture: str | None = None) -> ModelSpec:
        """A spec from constructor arguments (original names). Arguments beyond the shared ones become the
        architecture's ``options``, except those every release leaves at their defaults (``patch_size``,
        ``qkv_bias``...). ``architecture`` defaults to ``kw['architecture']``, else SwinIR."""
        upsampler = kw.get("upsampler", "")
        arch = architecture or str(kw.get("architecture", "swinir"))
        stored = kw.get("options")
        options = dict(stored) if isinstance(stored, Mapping) else {}
        for k, v in kw.items():
            if k not in _COMMON_ARGS and k not in ("architecture", "options") and k not in _RELEASED_CONSTANTS:
                options[k] = v
        return cls(
            upscale=int(kw.get("upscale", 1)) if upsampler else 1,
            in_chans=int(kw.get("in_chans", 3)),
            embed_dim=int(kw["embed_dim"]),
            depths=tuple(int(d) for d in kw["depths"]),
            num_heads=tuple(int(h) for h in kw["num_heads"]),
            window_size=int(kw["window_size"]),
            mlp_ratio=float(kw.get("mlp_ratio", 2.0)),
            upsampler=upsampler,
            resi_connection=kw.get("resi_connection", "1conv"),
            img_range=float(kw.get("img_range", 1.0)),
            img_size=int(kw.get("img_size", 64))
            if not isinstance(kw.get("img_size"), (list, tuple))
            else int(kw["img_size"][0]),
            num_out_ch=kw.get("num_out_ch"),
            rstb_residual=bool(kw.get("rstb_residual", True)),
            shift=bool(kw.get("shift", True)),
            ape=bool(kw.get("ape", False)),
            patch_norm=bool(kw.get("patch_norm", True)),
            architecture=arch,
            options=tuple(sorted((k, _hashable(v)) for k, v in options.items())),
        )

    def with_(self, **changes: Any) -> ModelSpec:
        return replace(self, **changes)

    def describe(self) -> str:
        scale = f"x{self.upscale} " if self.upscale > 1 else ""
        return (
            f"{self.title} {self.task} {scale}{self.color}: embed_dim={self.embed_dim}, depths={list(self.depths)}, "
            f"heads={list(self.num_heads)}, window={self.window_size}, mlp_ratio={self.mlp_ratio:g}, "
            f"upsampler={self.upsampler or 'none'}, resi={self.resi_connection}, img_range={self.img_range:g}"
            + "".join(f", {k}={'on' if v else 'off'}" for k, v in self.switches().items())
            + "".join(f", {k}={v}" for k, v in self.options)
        )


def _hashable(value: Any) -> Any:
    """Lists (from JSON or YAML) as tuples, so that a spec stays hashable."""
    return tuple(_hashable(v) for v in value) if isinstance(value, (list, tuple)) else value


SWITCH_DEFAULTS = {"rstb_residual": True, "shift": True, "ape": False, "patch_norm": True}
SWITCHES = tuple(SWITCH_DEFAULTS)


_BLOCK = re.compile(r"^layers\.(\d+)\.residual_group\.blocks\.(\d+)\.")

# Limits on values that size buffers the weights do not show: the relative-position index holds
# window^4 entries (8 MB at window 32; window 1024 would ask for 17.6 TB) and a saved attention mask
# grows with img_size^2. The released models use windows 7-8 and img_size 48-128.
MAX_WINDOW = 32
MAX_IMG_SIZE = 2048
# Fields that the tensor shapes determine: stored metadata may repeat them, never change them.
SHAPE_FIELDS = (
    "upscale",
    "in_chans",
    "embed_dim",
    "depths",
    "num_heads",
    "window_size",
    "upsampler",
    "resi_connection",
    "num_out_ch",
    "ape",
    "patch_norm",
)


def shape_of(sd: Mapping[str, Any], key: str) -> tuple[int, ...]:
    """The shape of ``sd[key]`` (a tensor, meta tensor or anything with ``.shape``) as ints."""
    return tuple(int(n) for n in sd[key].shape)


def block_depths(sd: Mapping[str, Any]) -> tuple[int, ...]:
    """Blocks per residual group, from the ``layers.N.residual_group.blocks.M.`` keys."""
    depth_of: dict[int, int] = {}
    for k in sd:
        m = _BLOCK.match(k)
        if m:
            i, j = int(m.group(1)), int(m.group(2))
            depth_of[i] = max(depth_of.get(i, 0), j + 1)
    if not depth_of:
        raise SpecError("missing layers.0.residual_group.blocks.0.* (no transformer blocks)")
    n_layers = max(depth_of) + 1
    if sorted(depth_of) != list(range(n_layers)):
        raise SpecError(f"residual groups are not numbered 0..{n_layers - 1}: {sorted(depth_of)}")
    return tuple(depth_of[i] for i in range(n_layers))


def heads_and_window(sd: Mapping[str, Any], n_layers: int, title: str = "SwinIR") -> tuple[tuple[int, ...], int]:
    """Each residual group's head count and the window, read from the groups' first position-bias tables
    (SwinIR's and HAT's keys); ``title`` names the architecture in the error for a window too large."""
    heads = []
    table_len = 0
    for i in range(n_layers):
        key = f"layers.{i}.residual_group.blocks.0.attn.relative_position_bias_table"
        if key not in sd:
            raise SpecError(f"missing {key}")
        table_len, h = shape_of(sd, key)
        heads.append(h)
    side = math.isqrt(table_len)
    if side * side != table_len or side % 2 == 0:
        raise SpecError(f"relative_position_bias_table has {table_len} rows, not (2*window-1)^2")
    window_size = (side + 1) // 2
    if window_size > MAX_WINDOW:
        raise SpecError(f"window {window_size} is larger than {MAX_WINDOW}; no {title} uses such windows")
    return tuple(heads), window_size


def pixelshuffle_scale(sd: Mapping[str, Any]) -> int:
    """The scale of a conv + PixelShuffle ``upsample`` stack after ``conv_before_upsample``."""
    num_feat = shape_of(sd, "conv_before_upsample.0.weight")[0]
    keys = [k for k in sd if k.startswith("upsample.") and k.endswith(".weight")]
    upscale = 1
    for k in sorted(keys, key=lambda s: int(s.split(".")[1])):
        ch = shape_of(sd, k)[0]
        if ch == 4 * num_feat:
            upscale *= 2
        elif ch == 9 * num_feat:
            upscale *= 3
        else:
            raise SpecError(f"{k} has {ch} output channels; expected 4x or 9x {num_feat}")
    return upscale


def _upsampling(sd: Mapping[str, Any], in_chans: int) -> tuple[str, int, int]:
    """(upsampler, upscale, output channels) from the tail of the network."""
    if "conv_up1.weight" in sd:
        return "nearest+conv", 4 if "conv_up2.weight" in sd else 2, shape_of(sd, "conv_last.weight")[0]
    if "conv_before_upsample.0.weight" in sd:
        return "pixelshuffle", pixelshuffle_scale(sd), shape_of(sd, "conv_last.weight")[0]
    if "upsample.0.weight" in sd:
        out_total = shape_of(sd, "upsample.0.weight")[0]
        upscale = math.isqrt(out_total // in_chans)
        if upscale * upscale * in_chans != out_total:
            raise SpecError(f"upsample.0.weight has {out_total} outputs, not scale^2 x {in_chans}")
        return "pixelshuffledirect", upscale, in_chans
    out_ch = shape_of(sd, "conv_last.weight")[0] if "conv_last.weight" in sd else in_chans
    return "", 1, out_ch


def detect(state_dict: Mapping[str, Any]) -> ModelSpec:
    """Infer every hyperparameter from key names and tensor shapes (a pure function).

    ``img_range`` is not stored in the weights: the JPEG models (window 7) use 255, every other released
    model 1. A ``__swinir_spec__``-free state dict cannot say more; callers with metadata override it.
    """
    sd = state_dict
    if "conv_first.weight" not in sd:
        raise SpecError("missing conv_first.weight")
    embed_dim, in_chans = shape_of(sd, "conv_first.weight")[:2]
    depths = block_depths(sd)
    heads, window_size = heads_and_window(sd, len(depths))
    mlp_ratio = shape_of(sd, "layers.0.residual_group.blocks.0.mlp.fc1.weight")[0] / embed_dim
    upsampler, upscale, out_ch = _upsampling(sd, in_chans)
    img_size = 64
    mask_key = "layers.0.residual_group.blocks.1.attn_mask"
    if mask_key in sd:
        img_size = math.isqrt(shape_of(sd, mask_key)[0]) * window_size
    ape = "absolute_pos_embed" in sd
    if ape:
        img_size = _ape_side(sd)
    return ModelSpec(
        upscale=upscale,
        in_chans=in_chans,
        embed_dim=embed_dim,
        depths=depths,
        num_heads=heads,
        window_size=window_size,
        mlp_ratio=float(mlp_ratio) if mlp_ratio != int(mlp_ratio) else float(int(mlp_ratio)),
        upsampler=upsampler,
        resi_connection=_resi_connection(sd),
        img_range=255.0 if (upsampler == "" and window_size == 7) else 1.0,
        img_size=img_size,
        num_out_ch=out_ch if out_ch != in_chans else None,
        ape=ape,
        patch_norm="patch_embed.norm.weight" in sd,
    )


def _resi_connection(sd: Mapping[str, Any]) -> str:
    """The convolution closing the body (and each RSTB): 3x3 '1conv', 1x1 '1x1', bottleneck '3conv', or none."""
    if "conv_after_body.weight" in sd:
        k = shape_of(sd, "conv_after_body.weight")[-1]
        if k not in (1, 3):
            raise SpecError(f"conv_after_body.weight is a {k}x{k} convolution; SwinIR uses 3x3 or 1x1")
        return "1conv" if k == 3 else "1x1"
    if "conv_after_body.0.weight" in sd:
        return "3conv"
    if any(k.startswith("layers.0.conv.") for k in sd):
        raise SpecError("missing conv_after_body.weight (layers.0.conv has weights)")
    return "none"


def _ape_side(sd: Mapping[str, Any]) -> int:
    n = shape_of(sd, "absolute_pos_embed")[1]
    side = math.isqrt(n)
    if side * side != n or side > MAX_IMG_SIZE:
        raise SpecError(f"absolute_pos_embed has {n} positions, not img_size^2 (img_size <= {MAX_IMG_SIZE})")
    return side


# ---------------------------------------------------------------------------------------------------
# stored metadata: a hint checked against the tensors, never trusted over them
# ---------------------------------------------------------------------------------------------------
_INT_FIELDS = ("upscale", "in_chans", "embed_dim", "window_size", "img_size")
_NUMBER_FIELDS = ("mlp_ratio", "img_range")
_STR_FIELDS = ("upsampler", "resi_connection")
_LIST_FIELDS = ("depths", "num_heads")
_BOOL_FIELDS = ("rstb_residual", "shift", "ape", "patch_norm")


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_types(stored: Mapping[str, Any]) -> None:
    for key, value in stored.items():
        if key in _INT_FIELDS and not (_is_int(value) or (key == "img_size" and _is_int_pair(value))):
            raise SpecError(f"{key} must be an integer, got {value!r:.40}")
        if key in _NUMBER_FIELDS and not (
            (_is_int(value) or isinstance(value, float)) and math.isfinite(value) and value > 0
        ):
            raise SpecError(f"{key} must be a positive number, got {value!r:.40}")
        if key in _STR_FIELDS and not isinstance(value, str):
            raise SpecError(f"{key} must be a string, got {value!r:.40}")
        if key in _LIST_FIELDS and not (
            isinstance(value, (list, tuple)) and value and all(_is_int(v) and v > 0 for v in value)
        ):
            raise SpecError(f"{key} must be a list of positive integers, got {value!r:.40}")
        if key in _BOOL_FIELDS and not isinstance(value, bool):
            raise SpecError(f"{key} must be true or false, got {value!r:.40}")
        if key == "num_out_ch" and value is not None and not (_is_int(value) and value > 0):
            raise SpecError(f"num_out_ch must be a positive integer or null, got {value!r:.40}")


def _is_int_pair(v: object) -> bool:
    return isinstance(v, (list, tuple)) and len(v) == 2 and all(_is_int(x) for x in v)


def merge_metadata(detected: ModelSpec, stored: object) -> ModelSpec:
    """``detected`` (from the tensors) completed by stored metadata, which must agree with it.

    Metadata only adds what shapes cannot show (``img_range``, ``img_size``, what the detection had to
    guess, listed in ``detected.extra['guessed']``, and architecture options the tensors do not fix);
    every shape field it repeats must equal the detected value, and values are bounded before anything
    is allocated. Raises ``SpecError`` naming the first problem.
    """
    if not isinstance(stored, Mapping):
        raise SpecError(f"the stored spec is a {type(stored).__name__}, not a mapping")
    _check_types(stored)
    arch = stored.get("architecture", detected.architecture)
    if arch != detected.architecture:
        raise SpecError(f"its metadata says architecture={arch!r} but the weights are {detected.title}'s")
    fields = _INT_FIELDS + _NUMBER_FIELDS + _STR_FIELDS + _LIST_FIELDS + _BOOL_FIELDS
    kw = {k: v for k, v in stored.items() if k in fields}
    if "num_out_ch" in stored:
        kw["num_out_ch"] = stored["num_out_ch"]
    options = dict(detected.options)
    stored_options = stored.get("options", {})
    if not isinstance(stored_options, Mapping):
        raise SpecError(f"options must be a mapping, got {stored_options!r:.40}")
    guessed = detected.extra.get("guessed", ())
    for k, v in stored_options.items():
        if k in options and k not in guessed and _hashable(v) != options[k]:
            raise SpecError(f"its metadata says {k}={v!r} but the weights have {options[k]!r}")
        options[k] = _hashable(v) if k in guessed else options.get(k, v)
    shared = {k: v for k, v in detected.kwargs().items() if k not in options}  # the options travel as such
    merged = ModelSpec.from_kwargs({**shared, **kw, "options": options}, detected.architecture)
    for name in SHAPE_FIELDS:
        if name in kw and name not in guessed and getattr(merged, name) != getattr(detected, name):
            if name == "num_out_ch" and merged.out_chans == detected.out_chans:
                continue
            raise SpecError(
                f"its metadata says {name}={getattr(merged, name)!r} but the weights have {getattr(detected, name)!r}"
            )
    hidden = int(detected.embed_dim * detected.mlp_ratio)
    if int(detected.embed_dim * merged.mlp_ratio) != hidden:
        raise SpecError(f"its metadata says mlp_ratio={merged.mlp_ratio:g} but the weights have {detected.mlp_ratio:g}")
    if detected.ape and merged.img_size != detected.img_size:
        raise SpecError(f"its metadata says img_size={merged.img_size} but absolute_pos_embed is {detected.img_size}^2")
    if not 1 <= merged.img_size <= MAX_IMG_SIZE:
        raise SpecError(f"its metadata says img_size={merged.img_size}; expected 1..{MAX_IMG_SIZE}")
    if not 1 <= merged.window_size <= MAX_WINDOW:
        raise SpecError(f"its metadata says window_size={merged.window_size}; expected 1..{MAX_WINDOW}")
    return merged.with_(mlp_ratio=detected.mlp_ratio, num_out_ch=detected.num_out_ch)
