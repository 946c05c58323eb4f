"""`swinir restore` flags for strength, output size, tiles that fit and model interpolation.

Parsing only: the values go into ``RestoreOptions`` (strength, size, tile) or pick the model
(``--blend-with``/``--alpha``, ``--noise-level``, ``--jpeg-quality`` through ``swinir.blend``).
"""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Callable
from typing import Any

from swinir.errors import SwinIRError

__all__ = ["tile_value", "add_control_args", "control_options", "load_model", "CONTROL_FLAGS"]

CONTROL_FLAGS = {
    "strength": "--strength",
    "width": "--width",
    "height": "--height",
    "long_side": "--long-side",
    "max_megapixels": "--max-megapixels",
    "tile": "--tile",
}


def tile_value(text: str) -> int | str:
    """``--tile``: 'auto' or a number of pixels (0 = whole image)."""
    if text == "auto":
        return "auto"
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a number of pixels, got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {v}")
    return v


class _Range:
    """An argparse type: ``kind`` (int or float) within [low, high]."""

    def __init__(self, kind: type, low: float, high: float | None = None) -> None:
        self.kind, self.low, self.high = kind, low, high

    def __call__(self, text: str) -> Any:
        try:
            value = self.kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if value < self.low or (self.high is not None and value > self.high):
            span = f"in {self.low:g}..{self.high:g}" if self.high is not None else f">= {self.low:g}"
            raise argparse.ArgumentTypeError(f"must be {span}, got {text}")
        return value


def add_control_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("strength and output size")
    g.add_argument(
        "--strength",
        type=_Range(float, 0, 1),
        default=1.0,
        metavar="S",
        help="mix of the result with the input at the output size (bicubic for SR): 1 = model only (default), 0 = input",
    )
    g.add_argument("--width", type=_Range(int, 1), default=None, metavar="W", help="final width (aspect kept)")
    g.add_argument("--height", type=_Range(int, 1), default=None, metavar="H", help="final height (aspect kept)")
    g.add_argument("--long-side", type=_Range(int, 1), default=None, metavar="L", help="final longer side")
    g.add_argument(
        "--max-megapixels", type=_Range(float, 1e-6), default=None, metavar="M", help="cap on the final area"
    )
    m = p.add_argument_group("model interpolation")
    m.add_argument("--blend-with", default=None, metavar="NAME|PATH", help="a second model of the same architecture")
    m.add_argument(
        "--alpha", type=_Range(float, 0, 1), default=None, metavar="A", help="weight of --blend-with (default 0.5)"
    )
    for flag, low, high, what in (
        ("--noise-level", 15, 50, "denoise at sigma N (15..50): interpolates the released denoisers 15/25/50"),
        ("--jpeg-quality", 10, 40, "JPEG artifacts of quality N (10..40): interpolates the models 10/20/30/40"),
    ):
        m.add_argument(flag, type=_Range(float, low, high), default=None, metavar="N", help=what)
    m.add_argument("--gray", action="store_true", help="with --noise-level/--jpeg-quality: the grayscale models")


def control_options(args: argparse.Namespace) -> dict[str, Any]:
    """The RestoreOptions fields these flags set."""
    return {
        "strength": args.strength,
        "width": args.width,
        "height": args.height,
        "long_side": args.long_side,
        "max_megapixels": args.max_megapixels,
    }


def load_model(args: argparse.Namespace, default: str, device: str | None, say: Callable[[str], None]) -> Any:
    """The model the flags ask for: one checkpoint, a blend of two, or the released pair for a level."""
    import swinir
    from swinir.blend import for_level

    levels = [f for f in ("noise_level", "jpeg_quality") if getattr(args, f) is not None]
    if levels and (args.model or args.blend_with):
        raise SwinIRError("--noise-level/--jpeg-quality pick the released models; leave out --model and --blend-with")
    if len(levels) > 1:
        raise SwinIRError("give --noise-level or --jpeg-quality, not both")
    if levels:
        kind = "noise" if levels[0] == "noise_level" else "jpeg"
        model, line = for_level(kind, getattr(args, levels[0]), color=not args.gray)
        say(f"model: {line}")
        return model.to(swinir.device.resolve_device(device))
    from swinir.io import SwinIRNotice

    with warnings.catch_warnings(record=True) as caught:  # e.g. which of params_ema / params was used
        warnings.simplefilter("always", SwinIRNotice)
        model = swinir.load(args.model or default, device=device)
    for w in caught:
        if issubclass(w.category, SwinIRNotice):
            say(f"notice: {w.message}")
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if args.blend_with:
        alpha = 0.5 if args.alpha is None else args.alpha
        model = swinir.interpolate(model, swinir.load(args.blend_with, device=device), alpha)
        say(f"model: {1 - alpha:.3g} x {args.model or default} + {alpha:.3g} x {args.blend_with}")
    return model
