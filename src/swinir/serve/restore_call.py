"""The one place where the server calls the restore code path: the very function `swinir restore` runs per
file (``swinir.pipeline.restore_file``: guarded read, ``engine.restore`` with a ``RestoreOptions`` (alpha
and outscale included), atomic write), so an API result is byte-identical to the CLI's output for the same
input and options.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from swinir.options import OptionsError, RestoreOptions
from swinir.pipeline import LOSSLESS_WEBP, NO_LIMITS, OUTPUT_FORMATS, FileRun, restore_file
from swinir.restore_plan import output_extension

FORMATS = OUTPUT_FORMATS  # png jpg webp tif bmp same


@dataclass(frozen=True)
class JobOptions:
    """What a job can set: the engine's RestoreOptions as the API's form fields, plus the output format."""

    tile: int = 512
    overlap: int = 32
    ensemble: bool = False
    precision: str = "auto"  # swinir.precision: bf16 on a CPU that computes it natively, else fp32
    outscale: float | None = None
    format: str = "png"
    quality: int = 95

    def restore_options(self, device: str | None = None) -> RestoreOptions:
        """Raises ``OptionsError`` (one line, the same as the CLI's) for a bad value."""
        return RestoreOptions(
            tile=self.tile or None,
            overlap=self.overlap,
            ensemble=self.ensemble,
            precision=self.precision,
            device=device,
            outscale=self.outscale,
        )

    def problems(self) -> list[str]:
        """What is wrong with these options (empty when they are valid)."""
        found = []
        try:
            self.restore_options()
        except OptionsError as exc:
            found.append(str(exc))
        if self.format not in FORMATS:
            found.append(f"format must be one of {', '.join(FORMATS)}, got {self.format!r}")
        if not 1 <= self.quality <= LOSSLESS_WEBP:
            found.append(f"quality must be 1-100 ({LOSSLESS_WEBP} = lossless WebP), got {self.quality}")
        elif self.quality == LOSSLESS_WEBP and self.format not in ("webp", "same"):
            found.append(f"quality {LOSSLESS_WEBP} (lossless) applies to WebP only")
        return found

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def cli_args(self) -> list[str]:
        """The `swinir restore` flags that give the same result (shown to users, used by the tests)."""
        args = ["--tile", str(self.tile), "--overlap", str(self.overlap), "--precision", self.precision]
        args += ["--ext", self.format, "--quality", str(self.quality)]
        if self.ensemble:
            args.append("--ensemble")
        if self.outscale is not None:
            args += ["--outscale", str(self.outscale)]
        return args


def output_suffix(input_path: Path, options: JobOptions) -> str:
    """The result's extension, chosen as `swinir restore --ext` chooses it."""
    return output_extension(input_path, options.format)


def output_size(options: JobOptions, height: int, width: int, model_scale: int) -> tuple[int, int]:
    """(height, width) of the result, as the engine will make it."""
    return options.restore_options().output_size(height, width, model_scale)


def load_model(name: str, device: str | None, on_bytes: Callable[[int, int | None], None]) -> Any:
    """A zoo model on ``device``; a released one not cached yet is downloaded first (atomically)."""
    import swinir
    from swinir import zoo

    path = zoo.resolve(name, progress=on_bytes)
    return swinir.load(str(path), device=device)


def restore_to_file(
    model: Any,
    src: Path,
    dst: Path,
    options: JobOptions,
    device: str | None,
    on_tile: Callable[[int, int], None],
) -> list[str]:
    """Restore ``src`` into ``dst`` (atomic) through the library's per-file function; the notices it gave.
    The server checked its own size limits when the upload came in."""
    run = FileRun(model, options.restore_options(device), options.quality, limits=NO_LIMITS, on_tile=on_tile)
    return restore_file(run, src, dst)
