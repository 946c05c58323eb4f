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

# accepted spellings; the engine maps them to dtypes ("auto": swinir.precision decides per model and device)
PRECISION_NAMES = ("fp32", "float32", "bf16", "bfloat16", "fp16", "float16", "half", "auto")
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
    ``precision``: fp32 (default), bf16 or fp16 (autocast; fp16 on CPU becomes bf16), or auto: bf16 where the
    CPU computes it natively, else fp32 (``swinir.precision``; the default of `swinir restore` and serve).
    ``device``: cpu, cuda, cuda:1, mps; None keeps the model's accelerator or picks the best available.
    ``batch_size``: tiles per forward pass.
    ``outscale``: final size as a factor of the input size (None: the model's scale); area averaging when
    shrinking, bicubic when enlarging. ``width``/``height`` (one keeps the aspect ratio, both set it) and
    ``long_side`` are the other ways to say the final size (one of the three); ``max_megapixels`` caps it.
    The resize runs in float, before the one rounding to the output's bit depth.
    ``strength``: 1 is the model's result, 0 the input at the output size (bicubic for SR), in between a mix.
    ``tile="auto"`` picks the tile from the memory free on the device (``swinir.fit``). Whatever the tile,
    a forward that runs out of memory halves it and retries the image, with a notice.
    ``capture``: replay one captured forward per tile shape (``swinir.capture``): ``auto`` is CUDA graphs on
    CUDA and eager elsewhere; ``compile`` is torch.compile with static shapes; ``off`` (default) is eager.
    """

    tile: int | str | None = None
    overlap: int = 32
    ensemble: bool = False
    precision: str = "fp32"
    device: Device = None
    batch_size: int = 1
    outscale: float | None = None
    strength: float = 1.0
    width: int | None = None
    height: int | None = None
    long_side: int | None = None
    max_megapixels: float | None = None
    capture: str = "off"

    def __post_init__(self) -> None:
        if self.tile == "auto":
            tile: int | str | None = "auto"
        else:
            if isinstance(self.tile, str) and not self.tile.isdigit():
                raise OptionsError("tile", f"tile must be a number of pixels or 'auto', got {self.tile!r}")
            tile = None if self.tile is None else _int_field("tile", self.tile, 0)
        object.__setattr__(self, "tile", tile or None)
        object.__setattr__(self, "overlap", _int_field("overlap", self.overlap, 0))
        object.__setattr__(self, "batch_size", _int_field("batch_size", self.batch_size, 1))
        if isinstance(self.tile, int) and self.overlap >= self.tile:
            raise OptionsError(
                "overlap", f"overlap ({self.overlap}) must be smaller than the tile ({self.tile}) it is part of"
            )
        if str(self.precision).lower() not in PRECISION_NAMES:
            raise OptionsError("precision", f"unknown precision {self.precision!r}; use fp32, bf16, fp16 or auto")
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
        self._check_size_and_strength()

    def _check_size_and_strength(self) -> None:
        for name in ("width", "height", "long_side"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _int_field(name, value, 1))
        if self.max_megapixels is not None and not (0 < float(self.max_megapixels) < math.inf):
            raise OptionsError("max_megapixels", f"max_megapixels must be > 0, got {self.max_megapixels}")
        try:
            strength = float(self.strength)
        except (TypeError, ValueError):
            strength = math.nan
        if not 0.0 <= strength <= 1.0:
            raise OptionsError("strength", f"strength must be in [0, 1], got {self.strength!r}")
        object.__setattr__(self, "strength", strength)
        given = [n for n in ("outscale", "width", "long_side") if getattr(self, n) or (n == "width" and self.height)]
        if len(given) > 1:
            names = " and ".join("width/height" if n == "width" else n for n in given)
            raise OptionsError(given[1], f"give only one of {names} for the output size")

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
        """(height, width) of the final result for an input of that size; at least 1 pixel per side."""
        from swinir.finish import final_size

        return final_size(
            height, width, model_scale, outscale=self.outscale, out_width=self.width, out_height=self.height,
            long_side=self.long_side, max_megapixels=self.max_megapixels,
        )  # fmt: skip

    @property
    def changes_result(self) -> bool:
        """True when the model's result is resized or mixed after the model (a float pass is needed)."""
        return self.strength < 1.0 or any(
            v is not None for v in (self.outscale, self.width, self.height, self.long_side, self.max_megapixels)
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["device"] = None if self.device is None else str(self.device)
        return d
