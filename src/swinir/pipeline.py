"""The per-file restore pipeline that `swinir restore`, the server and video share.

One image file goes through ``restore_file``: its size read from the header and checked against
``PixelLimits`` before anything is decoded; a guarded read (``swinir.io``: only regular files, damaged
streams refused); the result's size checked before any compute; ``engine.restore`` with one
``RestoreOptions`` (alpha, final size and strength included); the output checked again at write time
(never an input, never outside the output folder); then an atomic publish with the input's ICC profile
and EXIF that replaces nothing unless asked, so of two runs writing the same name one wins and the other
gets ``OutputExistsError``. The notices given on the way come back as lines for the caller to print or
show. Video (``swinir.video.restore_clip``) takes the same limits and publishes the same way.

The library never names a CLI flag: a refused size carries the limit's field name (``LimitError.field``)
and the surface adds its own spelling.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from swinir.errors import ImageWriteError, OutputExistsError, SwinIRError
from swinir.io import InputFiles
from swinir.options import RestoreOptions
from swinir.restore_plan import lands_inside

__all__ = [
    "OUTPUT_FORMATS",
    "LOSSLESS_WEBP",
    "LimitError",
    "PixelLimits",
    "NO_LIMITS",
    "DEFAULT_INPUT_PIXELS",
    "DEFAULT_OUTPUT_PIXELS",
    "FileRun",
    "restore_file",
    "model_scale",
]

OUTPUT_FORMATS = ("png", "jpg", "webp", "tif", "bmp", "same")  # "same": the input's format where writable
LOSSLESS_WEBP = 101  # a quality above 100 writes lossless WebP


class LimitError(SwinIRError):
    """An image or a result past a ``PixelLimits`` field (``field``: ``input_pixels`` or ``output_pixels``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


DEFAULT_INPUT_PIXELS = 64_000_000  # a 61 MP photo passes, the 81 MP PNG of issue 23 does not
DEFAULT_OUTPUT_PIXELS = 400_000_000  # a 25 MP photo restored x4


def _mp(pixels: int) -> str:
    mp = pixels / 1e6
    return f"{mp:.4g} MP" if mp < 1e4 else f"{mp:,.0f} MP"


@dataclass(frozen=True)
class PixelLimits:
    """Sizes past which no work starts; None lifts a limit.

    A few hundred bytes of PNG can declare 81 megapixels: hours of tiles on a CPU, and a result that no
    memory holds. ``input_pixels`` is checked from the file's header before decoding; ``output_pixels``
    (the final size: model scale, outscale, width/height/long side) before the model runs. The defaults
    take a 61 MP photo, and a 25 MP one restored x4.
    """

    input_pixels: int | None = DEFAULT_INPUT_PIXELS
    output_pixels: int | None = DEFAULT_OUTPUT_PIXELS

    def check_input(self, what: object, height: int, width: int) -> None:
        if self.input_pixels is not None and height * width > self.input_pixels:
            raise LimitError(
                "input_pixels",
                f"{what}: {width}x{height} = {_mp(height * width)} is over the input limit of "
                f"{_mp(self.input_pixels)} (read from the header; nothing decoded)",
            )

    def check_output(self, what: object, height: int, width: int) -> None:
        if self.output_pixels is not None and height * width > self.output_pixels:
            raise LimitError(
                "output_pixels",
                f"{what}: the result would be {width}x{height} = {_mp(height * width)}, over the output limit of "
                f"{_mp(self.output_pixels)} (refused before any compute)",
            )


NO_LIMITS = PixelLimits(None, None)


def model_scale(model: Any) -> int:
    """The model's upscaling factor (1 for denoising and JPEG models)."""
    return int(getattr(model, "upscale", getattr(model, "scale", 1)) or 1)


@dataclass
class FileRun:
    """What every file of one run shares.

    ``replace``: publish over an existing output (else ``OutputExistsError``, also when another process
    publishes the same name first). ``inputs``: every file the run reads, so an output is never one of
    them (through links too); by default the file being restored. ``root``: the output folder that every
    output must stay inside, checked again at write time (a folder swapped for a link meanwhile).
    """

    model: Any
    options: RestoreOptions = field(default_factory=RestoreOptions)
    quality: int = 95
    replace: bool = False
    limits: PixelLimits = field(default_factory=PixelLimits)
    inputs: InputFiles | None = None
    root: Path | None = None
    on_tile: Callable[[int, int], None] | None = None
    on_progress: Callable[[float, int], None] | None = None  # engine.restore's: tiles done with fractions
    on_plan: Callable[[Sequence[tuple[int, int]], Sequence[tuple[int, int]]], None] | None = None  # the tiles laid


def _check_destination(dst: Path, run: FileRun, src: Path) -> None:
    (run.inputs if run.inputs is not None else InputFiles([src])).check(dst)
    if run.root is not None and not lands_inside(dst, run.root):
        raise ImageWriteError(f"{dst}: would land outside the output folder {run.root}; not written")


def restore_file(run: FileRun, src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> list[str]:
    """Restore the image file ``src`` into ``dst`` (see the module docstring); the notices it gave, in order.

    Raises ``SwinIRError`` subclasses with one-line messages: ``ImageReadError`` (unreadable, damaged,
    not a regular file), ``LimitError``, ``OutputExistsError``, ``ImageWriteError``, and the engine's
    (a non-finite result).
    """
    import numpy as np
    from PIL import Image as PILImage

    from swinir.engine import restore
    from swinir.io import SwinIRNotice, frame_count, image_size, notice, read_image, write_image

    src, dst = Path(src), Path(dst)
    if not run.replace and (dst.exists() or dst.is_symlink()):
        raise OutputExistsError(dst)  # before any work: another run may have written it meanwhile
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SwinIRNotice)
        warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)  # the limits decide
        run.limits.check_input(src, *image_size(src))
        img = read_image(src)
        run.limits.check_output(src, *run.options.output_size(img.height, img.width, model_scale(run.model)))
        frames = frame_count(src)
        if frames > 1:
            notice(f"an animated image of {frames} frames: only the first frame is restored")
        data = img.array if img.alpha is None else np.dstack([img.array, img.alpha])
        out = restore(
            run.model, data, run.options, on_tile=run.on_tile, on_progress=run.on_progress, on_plan=run.on_plan
        )
        alpha = None
        if img.alpha is not None:
            out, alpha = out[..., :-1], out[..., -1]
            out = out[..., 0] if out.shape[2] == 1 else out
        _check_destination(dst, run, src)  # again at write time: the files may have changed during the run
        write_image(
            dst,
            out,
            alpha=alpha,
            bit_depth=img.bit_depth,
            quality=run.quality,
            icc_profile=img.icc_profile,
            exif=img.exif,
            replace=run.replace,
        )
    return list(dict.fromkeys(str(c.message) for c in caught if issubclass(c.category, SwinIRNotice)))
