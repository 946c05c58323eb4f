"""Network interpolation: a model whose weights are ``(1 - alpha) * a + alpha * b``.

Two checkpoints of one architecture trained for different strengths (denoising sigma 15 and 25, JPEG
quality 10 and 20, or a PSNR and a GAN model) blend into a model in between, as Real-ESRGAN's
``--denoise_strength`` does with its ``dni``. ``for_level`` picks the pair of released denoising or JPEG
models around a requested sigma or quality and the weight between them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from swinir.errors import SwinIRError
from swinir.model.shared import Restorer
from swinir.spec import ModelSpec

__all__ = [
    "interpolate",
    "interpolate_state_dicts",
    "Blend",
    "level_pair",
    "for_level",
    "NOISE_LEVELS",
    "JPEG_QUALITIES",
]

NOISE_LEVELS = (15, 25, 50)
JPEG_QUALITIES = (10, 20, 30, 40)

Source = Restorer | str | os.PathLike[str] | Mapping[str, Any]


def _as_model(source: Source) -> Restorer:
    if isinstance(source, Restorer):
        return source
    from swinir.checkpoint import load

    return load(source, device="cpu")


def _spec_difference(a: ModelSpec, b: ModelSpec) -> str:
    da, db = a.to_dict(), b.to_dict()
    keys = [k for k in da if k not in ("extra", "img_size") and da.get(k) != db.get(k)]
    return ", ".join(f"{k} {da[k]} vs {db[k]}" for k in keys[:3])


def interpolate_state_dicts(a: Mapping[str, Tensor], b: Mapping[str, Tensor], alpha: float) -> dict[str, Tensor]:
    """``(1 - alpha) * a + alpha * b`` for every floating tensor (computed in float64, stored in a's dtype);
    integer tensors must agree and are taken from ``a``."""
    if set(a) != set(b):
        only = sorted(set(a) ^ set(b))
        raise SwinIRError(f"cannot blend: the checkpoints differ in their weights (e.g. {only[0]})")
    out: dict[str, Tensor] = {}
    for key, ta in a.items():
        tb = b[key]
        if ta.shape != tb.shape:
            raise SwinIRError(
                f"cannot blend: {key} has shape {tuple(ta.shape)} in one and {tuple(tb.shape)} in the other"
            )
        if ta.is_floating_point():
            mixed = ta.double() * (1.0 - alpha) + tb.to(ta.device).double() * alpha
            out[key] = mixed.to(ta.dtype)
        else:
            out[key] = ta.clone()
    return out


def interpolate(model_a: Source, model_b: Source, alpha: float) -> Restorer:
    """A new model between ``model_a`` (alpha 0) and ``model_b`` (alpha 1); either may be a model, a
    checkpoint path, a zoo name or a state dict. Refuses two different architectures."""
    if not 0.0 <= float(alpha) <= 1.0:
        raise SwinIRError(f"alpha must be in [0, 1], got {alpha}")
    a, b = _as_model(model_a), _as_model(model_b)
    if a.spec != b.spec:
        raise SwinIRError(f"cannot blend two different architectures ({_spec_difference(a.spec, b.spec)})")
    from swinir.checkpoint import build, drop_derived

    sd = interpolate_state_dicts(drop_derived(a.state_dict()), drop_derived(b.state_dict()), float(alpha))
    model = build(a.spec, {k: v.cpu() for k, v in sd.items()}, source="blend")
    model.eval()
    return model.to(next(a.parameters()).device)


@dataclass(frozen=True)
class Blend:
    """Which two models a level uses and how: ``(1 - alpha) * low + alpha * high``."""

    low: int
    high: int
    alpha: float

    def describe(self, names: Mapping[int, str]) -> str:
        if self.alpha == 0.0:
            return f"{names[self.low]} alone"
        return f"{1 - self.alpha:.3g} x {names[self.low]} + {self.alpha:.3g} x {names[self.high]}"


def level_pair(level: float, levels: tuple[int, ...]) -> Blend:
    """The two neighbouring trained levels around ``level`` and the weight of the upper one (linear in the
    level); an exact trained level uses that model alone."""
    lo, hi = min(levels), max(levels)
    if not lo <= level <= hi:
        raise SwinIRError(f"level {level:g} is outside the trained range {lo}..{hi}")
    for a, b in zip(levels, levels[1:]):
        if level == a:
            return Blend(a, a, 0.0)
        if a < level <= b:
            return Blend(b, b, 0.0) if level == b else Blend(a, b, (level - a) / (b - a))
    return Blend(hi, hi, 0.0)


def for_level(
    kind: str, level: float, color: bool = True, sources: Mapping[int, Source] | None = None
) -> tuple[Restorer, str]:
    """The model for denoising sigma ``level`` (``kind="noise"``, 15..50) or JPEG quality ``level``
    (``kind="jpeg"``, 10..40), interpolated between the released models, and a line saying which files and
    weights it used. ``sources`` maps trained level -> model/checkpoint instead of the zoo's."""
    if kind not in ("noise", "jpeg"):
        raise SwinIRError(f"kind must be 'noise' or 'jpeg', got {kind!r}")
    trained = NOISE_LEVELS if kind == "noise" else JPEG_QUALITIES
    zoo_names = sources is None
    if sources is None:
        family = f"{'denoise' if kind == 'noise' else 'jpeg'}-{'color' if color else 'gray'}"
        sources = {lv: f"{family}-{lv}" for lv in trained}
    levels = tuple(sorted(sources))
    blend = level_pair(level, levels)
    names = {lv: _name(src) for lv, src in sources.items()}
    what = "sigma" if kind == "noise" else "quality"
    line = f"{what} {level:g}: {blend.describe(names)}"
    if blend.alpha == 0.0:
        return _as_model(sources[blend.low]), line
    if zoo_names:  # fetch both (or name every missing file) before loading either
        from swinir import zoo

        zoo.resolve_all([str(sources[blend.low]), str(sources[blend.high])], f"{what} {level:g}")
    with torch.no_grad():
        return interpolate(sources[blend.low], sources[blend.high], blend.alpha), line


def _name(source: Source) -> str:
    if isinstance(source, (str, os.PathLike)):
        return os.path.basename(os.fspath(source))
    return type(source).__name__
