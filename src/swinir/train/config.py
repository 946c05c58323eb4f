"""Typed training configuration: nested dataclasses read from YAML, with errors that name the bad key.

A config is a YAML mapping with the sections ``model``, ``data``, ``val``, ``train`` and ``log``
(see the presets in ``swinir/presets``). ``base: NAME`` inherits a preset and overrides it key by key;
``${shared}`` in a string is replaced by the project's shared data folder (``swinir.paths.shared_dir``),
``${data}`` by ``$SWINIR_DATA`` (default ``datasets``: where DIV2K, Flickr2K, WED... are unpacked).
``--set a.b=c`` overrides are parsed with ``yaml.safe_load``, so ``--set train.lr=1e-4`` is a number and
``--set model.depths=[4,4]`` a list.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar, Union

import yaml

from swinir.degrade.registry import REAL_WORLD
from swinir.errors import ConfigError
from swinir.spec import TITLES, ModelSpec
from swinir.train.gan import GANConfig
from swinir.train.losses import LOSSES, WeightedLoss, loss_options

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

SectionT = TypeVar("SectionT", bound="DataclassInstance")


# --------------------------------------------------------------------------------------------------
# schema
# --------------------------------------------------------------------------------------------------
@dataclass
class ModelConfig:
    """The network's constructor arguments under their original names (those of ``ModelSpec``), which
    architecture (``swinir``, ``swin2sr``, ...), plus how to initialise the weights."""

    architecture: str = "swinir"
    upscale: int = 1
    in_chans: int = 3
    img_size: int = 64
    window_size: int = 8
    img_range: float = 1.0
    depths: list[int] = field(default_factory=lambda: [6, 6, 6, 6])
    embed_dim: int = 180
    num_heads: list[int] = field(default_factory=lambda: [6, 6, 6, 6])
    mlp_ratio: float = 2.0
    upsampler: Literal["", "pixelshuffle", "pixelshuffledirect", "nearest+conv", "pixelshuffle_aux"] = ""
    # the convolution closing each RSTB and the body: 3x3 (released), bottleneck, or the ablations 1x1 / none
    resi_connection: Literal["1conv", "3conv", "1x1", "none"] = "1conv"
    # the paper's ablation switches; the defaults are the released architecture
    rstb_residual: bool = True  # the residual connection around each RSTB
    shift: bool = True  # shifted windows in every second Swin layer
    ape: bool = False  # a learned absolute position embedding (at img_size)
    patch_norm: bool = True  # the LayerNorm after the shallow features
    # the architecture's own constructor arguments beyond those above (ModelSpec.options)
    options: dict[str, Any] = field(default_factory=dict)
    # fine-tuning: a checkpoint path or zoo name; tensors of matching name and shape are loaded
    init_from: str | None = None
    # take the architecture and every hyperparameter above from init_from's weights (detected as
    # `swinir info` shows them): fine-tune any checkpoint that loads, without restating its configuration
    from_init: bool = False
    # re-initialise the scale-specific upsampler (``upsample.*``); None = only when the scale differs
    init_reset_head: bool | None = None
    # fail if any tensor of the model is not found in init_from (besides a reset head)
    init_strict: bool = False
    grad_checkpointing: bool = False

    def check(self, path: str) -> None:
        if self.architecture not in TITLES:
            raise ConfigError(f"{path}.architecture: unknown {self.architecture!r}; one of {', '.join(TITLES)}")
        if self.from_init and not self.init_from:
            raise ConfigError(f"{path}.from_init: needs {path}.init_from (the checkpoint to take the network from)")
        if len(self.depths) != len(self.num_heads):
            raise ConfigError(f"{path}.num_heads: has {len(self.num_heads)} entries but depths has {len(self.depths)}")
        if self.upsampler and self.upscale < 2:
            raise ConfigError(f"{path}.upscale: upsampler {self.upsampler!r} needs upscale >= 2, got {self.upscale}")
        if not self.upsampler and self.upscale != 1:
            raise ConfigError(f"{path}.upscale: must be 1 when upsampler is '' (denoising/JPEG), got {self.upscale}")
        if self.upsampler == "nearest+conv" and self.upscale not in (2, 4):
            raise ConfigError(f"{path}.upscale: nearest+conv supports 2 or 4, got {self.upscale}")
        _positive(self.embed_dim, f"{path}.embed_dim")
        _positive(self.window_size, f"{path}.window_size")
        for i, h in enumerate(self.num_heads):
            if self.embed_dim % h:
                raise ConfigError(f"{path}.num_heads[{i}]: embed_dim {self.embed_dim} is not divisible by {h} heads")

    def spec(self) -> ModelSpec:
        """The network these fields describe (the fields are ``ModelSpec``'s, under the same names)."""
        args = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name in _SPEC_ARGS}
        return ModelSpec.from_kwargs({**args, "options": self.options}, self.architecture)

    def kwargs(self) -> dict[str, Any]:
        """Constructor arguments of the network (``spec().kwargs()``)."""
        return self.spec().kwargs()

    @classmethod
    def spec_fields(cls, spec: ModelSpec) -> dict[str, Any]:
        """The fields that describe ``spec``'s network, for ``dataclasses.replace`` (``from_init``)."""
        return {
            "architecture": spec.architecture,
            **{k: getattr(spec, k) for k in _SPEC_ARGS},
            "depths": list(spec.depths),
            "num_heads": list(spec.num_heads),
            "options": dict(spec.options),
        }


# the ModelConfig fields that are constructor arguments (ModelSpec fields of the same name)
_SPEC_ARGS = (
    "upscale",
    "in_chans",
    "img_size",
    "window_size",
    "img_range",
    "depths",
    "embed_dim",
    "num_heads",
    "mlp_ratio",
    "upsampler",
    "resi_connection",
    "rstb_residual",
    "shift",
    "ape",
    "patch_norm",
)


@dataclass
class SourceConfig:
    """One training folder. ``weight`` multiplies how often each of its images is drawn (1 = as often as
    an image of any other folder with weight 1; 2 = twice per epoch)."""

    hr: str = ""
    lq: str | None = None  # paired low-quality folder (same stems); None = degrade HR on the fly
    weight: float = 1.0

    @classmethod
    def _pre(cls, value: Any) -> Any:
        return {"hr": value} if isinstance(value, str) else value

    def check(self, path: str) -> None:
        if not self.hr:
            raise ConfigError(f"{path}.hr: a training folder is required")
        if self.weight <= 0:
            raise ConfigError(f"{path}.weight: must be > 0, got {self.weight}")


@dataclass
class DegradeConfig:
    """On-the-fly degradations applied after bicubic downscaling (SR) or to the clean crop (restoration).

    ``noise_sigma``: ``25`` (fixed) or ``[0, 50]`` (blind, uniform per sample), on the 0..255 scale.
    ``jpeg_quality``: ``40`` (fixed) or ``[10, 40]`` (blind, uniform integer per sample).
    """

    noise_sigma: list[float] | None = None
    jpeg_quality: list[int] | None = None
    noise_clip: bool = False  # clip noisy inputs to [0, 1] (the paper's training does not)
    # a real-world pipeline applied to the HR crop instead of bicubic: 'bsrgan' or 'realesrgan'
    # (swinir.degrade); ``pipeline_options`` are passed to its config, e.g. {jpeg_prob: 0.5}
    pipeline: str | None = None
    pipeline_options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def _pre(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            value = dict(value)
            for key in ("noise_sigma", "jpeg_quality"):
                v = value.get(key)
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    value[key] = [v, v]
        return value

    def check(self, path: str) -> None:
        if self.pipeline is not None and self.pipeline not in REAL_WORLD:
            raise ConfigError(
                f"{path}.pipeline: expected one of {', '.join(REAL_WORLD)} or null, got {self.pipeline!r}"
            )
        if self.pipeline and (self.noise_sigma or self.jpeg_quality):
            raise ConfigError(
                f"{path}.pipeline: {self.pipeline} makes its own noise and JPEG; remove noise_sigma / jpeg_quality"
            )
        for key, lo_ok, hi_ok in (("noise_sigma", 0, 255), ("jpeg_quality", 1, 100)):
            v = getattr(self, key)
            if v is None:
                continue
            if len(v) != 2 or v[0] > v[1]:
                raise ConfigError(f"{path}.{key}: expected a number or [low, high] with low <= high, got {v}")
            if v[0] < lo_ok or v[1] > hi_ok:
                raise ConfigError(f"{path}.{key}: must lie in [{lo_ok}, {hi_ok}], got {v}")


@dataclass
class DataConfig:
    train: list[SourceConfig] = field(default_factory=list)
    patch_size: int = 48  # low-quality patch side; the HR crop is patch_size * upscale
    batch_size: int = 16  # global batch: split over DDP processes
    num_workers: int = 2
    cache: bool = True  # decode every image once and keep it in memory as uint8
    skip_bad: bool = False  # unreadable / too small images: warn and skip instead of failing
    augment: bool = True  # the 8 flips/rotations
    max_images: int = 0  # train on the first N images (by folder, then name) only; 0 = all (an ablation axis)
    degrade: DegradeConfig = field(default_factory=DegradeConfig)

    def check(self, path: str) -> None:
        if not self.train:
            raise ConfigError(f"{path}.train: give at least one training folder")
        _positive(self.patch_size, f"{path}.patch_size")
        _positive(self.batch_size, f"{path}.batch_size")
        if self.num_workers < 0:
            raise ConfigError(f"{path}.num_workers: must be >= 0, got {self.num_workers}")
        if self.max_images < 0:
            raise ConfigError(f"{path}.max_images: must be >= 0 (0 = all), got {self.max_images}")


@dataclass
class ValConfig:
    """Validation on a folder: SR inputs are MATLAB-bicubic downscalings of HR (or a paired ``lq``
    folder); restoration inputs get seeded noise / JPEG."""

    hr: str | None = None
    lq: str | None = None
    every: int = 1000
    max_images: int = 0  # 0 = all
    max_size: int = 0  # centre-crop HR images to at most this side (0 = whole image)
    y_channel: bool | None = None  # None: Y for SR, RGB otherwise
    crop_border: int | None = None  # None: the paper's (the scale for SR, 0 otherwise)
    noise_sigma: float | None = None
    jpeg_quality: int | None = None
    seed: int = 0
    use_ema: bool = True  # validate (and pick "best" by) the EMA weights when EMA is on
    sample_images: int = 2  # images written to TensorBoard and val/ at each validation

    def check(self, path: str) -> None:
        if self.every < 0:
            raise ConfigError(f"{path}.every: must be >= 0, got {self.every}")


@dataclass
class LossTerm:
    type: str = "l1"
    weight: float = 1.0
    eps: float = 1e-9  # Charbonnier: sqrt(diff^2 + eps), as the SwinIR options' G_charbonnier_eps

    @classmethod
    def _pre(cls, value: Any) -> Any:
        return {"type": value} if isinstance(value, str) else value

    def check(self, path: str) -> None:
        if self.type not in LOSSES:
            raise ConfigError(f"{path}.type: unknown loss {self.type!r}; known: {', '.join(sorted(LOSSES))}")

    def term(self) -> WeightedLoss:
        """The loss factory's keyword arguments are the fields it names (``eps`` for Charbonnier)."""
        fields = {"eps": self.eps}
        return WeightedLoss(self.type, self.weight, {k: v for k, v in fields.items() if k in loss_options(self.type)})


@dataclass
class OptimConfig:
    iterations: int = 1000
    lr: float = 2e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.99])
    weight_decay: float = 0.0
    milestones: list[int] = field(default_factory=list)
    gamma: float = 0.5
    warmup_iters: int = 0
    loss: list[LossTerm] = field(default_factory=lambda: [LossTerm()])
    grad_clip: float = 0.0  # max gradient norm; 0 = off
    ema_decay: float = 0.999  # 0 = no EMA
    ema_warmup: bool = True  # decay min(ema_decay, (1+n)/(10+n)): short runs get a useful EMA too
    amp: Literal["none", "bf16", "fp16"] = "none"
    seed: int = 0
    device: str = "auto"
    threads: int = 0  # torch CPU threads per process; 0 = torch's default
    # a wall-clock budget (seconds) for the training loop, summed over resumes; 0 = none. After a short
    # probe the run re-plans: ``iterations`` becomes what fits at the measured rate and ``milestones`` are
    # scaled by the same factor (so they keep their place in the schedule); it also stops at the budget
    time_limit: float = 0.0

    @classmethod
    def _pre(cls, value: Any) -> Any:
        if isinstance(value, Mapping) and isinstance(value.get("loss"), (str, Mapping)):
            value = {**value, "loss": [value["loss"]]}
        return value

    def check(self, path: str) -> None:
        _positive(self.iterations, f"{path}.iterations")
        if self.lr <= 0:
            raise ConfigError(f"{path}.lr: must be > 0, got {self.lr}")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ConfigError(f"{path}.betas: expected two numbers in [0, 1), got {self.betas}")
        if sorted(self.milestones) != list(self.milestones):
            raise ConfigError(f"{path}.milestones: must be increasing, got {self.milestones}")
        if not 0 <= self.ema_decay < 1:
            raise ConfigError(f"{path}.ema_decay: must be in [0, 1), got {self.ema_decay}")
        if not self.loss:
            raise ConfigError(f"{path}.loss: give at least one loss")
        if self.time_limit < 0:
            raise ConfigError(f"{path}.time_limit: must be >= 0 seconds, got {self.time_limit}")


@dataclass
class LogConfig:
    every: int = 50  # iterations between logged training losses
    # iterations between checkpoints (full state + released-layout model); a train.time_limit re-plan scales
    # it with the iterations, so the run keeps its planned number of checkpoints
    checkpoint_every: int = 5000
    keep_checkpoints: int = 2  # numbered full checkpoints kept besides latest/best (0 = keep all)
    keep_models: int = 3  # numbered models/model_*.pth kept besides model_best.pth (0 = keep all)
    tensorboard: bool = True
    plot: bool = True
    progress: bool = True

    def check(self, path: str) -> None:
        _positive(self.every, f"{path}.every")
        _positive(self.checkpoint_every, f"{path}.checkpoint_every")
        for name in ("keep_checkpoints", "keep_models"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{path}.{name}: must be >= 0 (0 keeps all), got {getattr(self, name)}")


@dataclass
class Config:
    name: str = "run"
    description: str = ""
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    val: ValConfig = field(default_factory=ValConfig)
    train: OptimConfig = field(default_factory=OptimConfig)
    log: LogConfig = field(default_factory=LogConfig)
    # the GAN stage (real-world SR): present = trained by swinir.train.gan_trainer.GANTrainer
    gan: GANConfig | None = None

    @property
    def scale(self) -> int:
        return self.model.upscale if self.model.upsampler else 1

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        text: str = yaml.safe_dump(self.to_dict(), sort_keys=False)
        return text


# --------------------------------------------------------------------------------------------------
# conversion with key-path errors
# --------------------------------------------------------------------------------------------------
def _positive(v: float, path: str) -> None:
    if v <= 0:
        raise ConfigError(f"{path}: must be > 0, got {v}")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _show(v: Any) -> str:
    return repr(v) if isinstance(v, str) else f"{v!r} ({type(v).__name__})" if v is not None else "null"


def _convert(tp: Any, value: Any, path: str) -> Any:
    """``value`` as type ``tp`` of the schema, or a ``ConfigError`` naming ``path``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (Union, types.UnionType):
        return _to_union(args, value, path)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{path}: expected one of {', '.join(repr(a) for a in args)}, got {_show(value)}")
        return value
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return from_dict(tp, value, path)
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path}: expected a mapping, got {_show(value)}")
        return {str(k): _convert(args[1], v, f"{path}.{k}") for k, v in value.items()}
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected a list, got {_show(value)}")
        return [_convert(args[0], v, f"{path}[{i}]") for i, v in enumerate(value)]
    if tp is Any:
        return value
    if tp in _SCALARS:
        return _SCALARS[tp](value, path)
    raise ConfigError(f"{path}: unsupported type {tp}")  # pragma: no cover - schema bug


def _to_union(args: tuple[Any, ...], value: Any, path: str) -> Any:
    """The first member type that accepts ``value`` (None for an Optional); else the first member's error."""
    if value is None and type(None) in args:
        return None
    errors = []
    for a in (a for a in args if a is not type(None)):
        try:
            return _convert(a, value, path)
        except ConfigError as exc:
            errors.append(str(exc))
    raise ConfigError(errors[0])


def _to_bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{path}: expected true or false, got {_show(value)}")
    return value


def _to_int(value: Any, path: str) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"{path}: expected an integer, got {_show(value)}")
    if isinstance(value, int):
        return value
    try:
        f = float(value)  # accepts 5e5 / "5e5"
    except (TypeError, ValueError):
        f = None
    if f is None or not f.is_integer():
        raise ConfigError(f"{path}: expected an integer, got {_show(value)}")
    return int(f)


def _to_float(value: Any, path: str) -> float:
    if isinstance(value, bool):
        raise ConfigError(f"{path}: expected a number, got {_show(value)}")
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(str(value))  # YAML reads 2e-4 (no dot) as a string
    except ValueError:
        raise ConfigError(f"{path}: expected a number, got {_show(value)}") from None


def _to_str(value: Any, path: str) -> str:
    if isinstance(value, bool) or value is None or isinstance(value, (list, dict)):
        raise ConfigError(f"{path}: expected a string, got {_show(value)}")
    return str(value)


_SCALARS: dict[Any, Any] = {bool: _to_bool, int: _to_int, float: _to_float, str: _to_str}


def from_dict(cls: type[SectionT], data: Any, path: str = "") -> SectionT:
    """Build dataclass ``cls`` from a mapping, checking every key and type; errors name the key path."""
    pre = getattr(cls, "_pre", None)
    if pre is not None:
        data = pre(data)
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path or 'config'}: expected a mapping of keys, got {_show(data)}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        key = str(key)
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(names)}"
            raise ConfigError(f"{_join(path, key)}: unknown key{hint}")
        kwargs[key] = _convert(hints[key], value, _join(path, key))
    obj = cls(**kwargs)
    check = getattr(obj, "check", None)
    if check is not None:
        check(path if cls is not Config else "")
    return obj


# --------------------------------------------------------------------------------------------------
# presets, YAML, overrides
# --------------------------------------------------------------------------------------------------
def preset_names() -> list[str]:
    root = resources.files("swinir") / "presets"
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".yaml") and not p.name.startswith("_"))


def _preset_text(name: str) -> str:
    root = resources.files("swinir") / "presets"
    f = root / f"{name}.yaml"
    if not f.is_file():
        close = difflib.get_close_matches(name, preset_names(), n=3)
        hint = f"did you mean {', '.join(close)}?" if close else "run `swinir train --list` to see the presets"
        raise ConfigError(f"{name}: no such config file or preset; {hint}")
    return f.read_text()


def _read_yaml(text: str, source: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a YAML mapping at the top level")
    return data


def merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Deep merge: mappings merge key by key, anything else replaces."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def raw_config(source: str | os.PathLike[str], _seen: tuple[str, ...] = ()) -> dict[str, Any]:
    """The merged (``base:`` resolved) but unvalidated mapping of a YAML file or preset name."""
    p = Path(source)
    if p.is_file():
        data = _read_yaml(p.read_text(), str(p))
    elif p.suffix in (".yaml", ".yml") or os.sep in str(source):
        raise ConfigError(f"{source}: no such config file")
    else:
        data = _read_yaml(_preset_text(str(source)), f"preset {source}")
    base = data.pop("base", None)
    if base is not None:
        if not isinstance(base, str):
            raise ConfigError(f"{source}: base: expected a preset name or file, got {_show(base)}")
        if base in _seen:
            raise ConfigError(f"{source}: base: circular inheritance through {base!r}")
        if not Path(base).is_file() and (p.is_file() and (p.parent / base).is_file()):
            base = str(p.parent / base)
        data = merge(raw_config(base, _seen + (str(source),)), data)
    return data


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """``a.b=c`` pairs; the value is parsed as YAML (numbers, lists, null)."""
    out = copy.deepcopy(data)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item}: expected KEY=VALUE, e.g. train.lr=1e-4")
        key, text = item.split("=", 1)
        key = key.strip()
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            value = text
        node = out
        parts = key.split(".")
        for i, part in enumerate(parts[:-1]):
            nxt = node.get(part)
            if nxt is None:
                nxt = node[part] = {}
            if not isinstance(nxt, dict):
                raise ConfigError(f"--set {key}: {'.'.join(parts[: i + 1])} is not a section")
            node = nxt
        node[parts[-1]] = value
    return out


def _substitute(obj: Any, mapping: Mapping[str, str]) -> Any:
    if isinstance(obj, str) and "${" in obj:
        for k, v in mapping.items():
            obj = obj.replace("${" + k + "}", v)
        return obj
    if isinstance(obj, dict):
        return {k: _substitute(v, mapping) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_substitute(v, mapping) for v in obj]
    return obj


def placeholders() -> dict[str, str]:
    from swinir.paths import shared_dir

    shared = shared_dir()
    return {"shared": str(shared) if shared else "../shared", "data": os.environ.get("SWINIR_DATA", "datasets")}


def build_config(data: Mapping[str, Any]) -> Config:
    data = _substitute(dict(data), placeholders())
    return from_dict(Config, data, "")


def load_config(source: str | os.PathLike[str], overrides: list[str] | None = None) -> Config:
    """Read a YAML file or preset name, apply ``key=value`` overrides, validate."""
    data = raw_config(source)
    data = apply_overrides(data, overrides or [])
    return build_config(data)
