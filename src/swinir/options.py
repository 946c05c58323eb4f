"""How to run a model over an image: the one options object the CLI, evaluation, the server and video share.

Validated once, here, so every surface rejects the same values with the same message; a surface adds its own
hint (a CLI flag name) from ``OptionsError.field``. No torch import: building options is cheap and a
``--help`` or a bad value costs no framework start-up.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import TYPE_CHECKING, Any, Union

from swinir.errors import SwinIRError

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["RestoreOptions", "OptionsError", "PRECISION_NAMES", "CAPTURE_NAMES", "MAX_OUTSCALE"]

# accepted spellings; the engine maps them to dtypes
PRECISION_NAMES = ("fp32", "float32", "bf16", "bfloat16", "fp16", "float16", "half")
# forward capture (swinir.capture): off, auto (CUDA graphs on CUDA, eager elsewhere), graph, compile
CAPTURE_NAMES = ("off", "auto", "graph", "compile")
MAX_OUTSCALE = 64.0

Device = Union[str, "torch.device", None]


class OptionsError(SwinIRError, ValueError):
    """A parameter value is wrong; ``field`` names the parameter (a RestoreOptions field, a protocol's scale,
    ...), so a surface can point at its own spelling of it (a CLI flag) without the library naming flags."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _int_field(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            as_int = int(value)
        except (TypeError, ValueError):
            as_int = None
        if as_int is None or as_int != value:
            raise OptionsError(name, f"{name} must be an integer, got {value!r}")
        value = as_int
    if value < low:
        raise OptionsError(name, f"{name} must be >= {low}, got {value}")
    return int(value)


@dataclass(frozen=True)
class RestoreOptions:
    """Tiling, self-ensemble, precision, device, batching and final size of one restoration.

    ``tile``: tile side in input pixels, rounded to the window size; None or 0 runs the image whole.
    ``overlap``: input pixels shared by neighbouring tiles (feathered blend); smaller than ``tile``.
    ``ensemble``: average the 8 flips/rotations (x8 slower; the paper's "SwinIR+").
    ``precision``: fp32, bf16 or fp16 (autocast; fp16 on CPU becomes bf16).
    ``device``: cpu, cuda, cuda:1, mps; None keeps the model's accelerator or picks the best available.
    ``batch_size``: tiles per forward pass.
    ``outscale``: final size as a factor of the input size (None: the model's scale); area averaging when
    shrinking, bicubic when enlarging.
    ``capture``: replay one captured forward per tile shape (``swinir.capture``): ``auto`` is CUDA graphs on
    CUDA and eager elsewhere; ``compile`` is torch.compile with static shapes; ``off`` (default) is eager.
    """

    tile: int | None = None
    overlap: int = 32
    ensemble: bool = False
    precision: str = "fp32"
    device: Device = None
    batch_size: int = 1
    outscale: float | None = None
    capture: str = "off"

    def __post_init__(self) -> None:
        tile = None if self.tile is None else _int_field("tile", self.tile, 0)
        object.__setattr__(self, "tile", tile or None)
        object.__setattr__(self, "overlap", _int_field("overlap", self.overlap, 0))
        object.__setattr__(self, "batch_size", _int_field("batch_size", self.batch_size, 1))
        if self.tile is not None and self.overlap >= self.tile:
            raise OptionsError(
                "overlap", f"overlap ({self.overlap}) must be smaller than the tile ({self.tile}) it is part of"
            )
        if str(self.precision).lower() not in PRECISION_NAMES:
            raise OptionsError("precision", f"unknown precision {self.precision!r}; use fp32, bf16 or fp16")
        object.__setattr__(self, "precision", str(self.precision).lower())
        object.__setattr__(self, "ensemble", bool(self.ensemble))
        if str(self.capture).lower() not in CAPTURE_NAMES:
            raise OptionsError("capture", f"unknown capture mode {self.capture!r}; use {', '.join(CAPTURE_NAMES)}")
        object.__setattr__(self, "capture", str(self.capture).lower())
        if self.outscale is not None:
            try:
                scale = float(self.outscale)
            except (TypeError, ValueError):
                raise OptionsError("outscale", f"outscale must be a number, got {self.outscale!r}") from None
            if not (math.isfinite(scale) and 0 < scale <= MAX_OUTSCALE):
                raise OptionsError("outscale", f"outscale must be in (0, {MAX_OUTSCALE:g}], got {self.outscale}")
            object.__setattr__(self, "outscale", scale)

    @classmethod
    def build(cls, options: RestoreOptions | None = None, **overrides: Any) -> RestoreOptions:
        """``options`` (or the defaults) with ``overrides`` applied; unknown names are a TypeError."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise TypeError(f"unknown restore option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        base = options if options is not None else cls()
        return replace(base, **overrides) if overrides else base

    def output_size(self, height: int, width: int, model_scale: int) -> tuple[int, int]:
        """(height, width) of the final result for an input of that size; at least 1 pixel per side or an error."""
        if self.outscale is None:
            return height * model_scale, width * model_scale
        out_h, out_w = round(height * self.outscale), round(width * self.outscale)
        if out_h < 1 or out_w < 1:
            raise OptionsError(
                "outscale",
                f"outscale {self.outscale:g} turns a {width}x{height} image into {out_w}x{out_h} pixels; "
                "the result needs at least 1 pixel per side",
            )
        return out_h, out_w

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["device"] = None if self.device is None else str(self.device)
        return d
