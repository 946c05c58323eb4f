"""The one place where the server calls the restore code path: the very function `swinir restore` runs per
file (``swinir.cli.restore.restore_file``: read, engine.restore, alpha/outscale resize, atomic write), so an
API result is byte-identical to the CLI's output for the same input and options.

Built against today's API (restore_file takes an argparse namespace); when ``engine.RestoreOptions`` lands,
only this module changes.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from swinir.cli.restore import EXTS, Job, _Notices, _out_ext, restore_file

PRECISIONS = ("fp32", "bf16", "fp16")
FORMATS = EXTS  # png jpg webp tif bmp same


@dataclass(frozen=True)
class JobOptions:
    """The options of `swinir restore` that a job can set, with the CLI's defaults."""

    tile: int = 512
    overlap: int = 32
    ensemble: bool = False
    precision: str = "fp32"
    outscale: float | None = None
    format: str = "png"
    quality: int = 95

    def problems(self) -> list[str]:
        """What is wrong with these options, as the CLI would say it (empty when they are valid)."""
        found = []
        if self.tile < 0:
            found.append(f"tile must be >= 0 (0 = whole image), got {self.tile}")
        if self.overlap < 0:
            found.append(f"overlap must be >= 0, got {self.overlap}")
        elif self.tile > 0 and self.overlap >= self.tile:
            found.append(f"overlap {self.overlap} must be smaller than tile {self.tile}")
        if self.precision not in PRECISIONS:
            found.append(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.outscale is not None and not 0 < self.outscale <= 64:
            found.append(f"outscale must be in (0, 64], got {self.outscale}")
        if self.format not in FORMATS:
            found.append(f"format must be one of {', '.join(FORMATS)}, got {self.format!r}")
        if self.quality < 1:
            found.append(f"quality must be >= 1, got {self.quality}")
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
    return _out_ext(input_path, options.format)


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
    """Restore ``src`` into ``dst`` (atomic) through the CLI's per-file function; the notices it gave."""
    args = argparse.Namespace(
        tile=options.tile,
        overlap=options.overlap,
        ensemble=options.ensemble,
        precision=options.precision,
        batch_size=1,
        outscale=options.outscale,
        quality=options.quality,
    )
    lines: list[str] = []
    restore_file(Job(src, dst), model, args, device, on_tile, _Notices(lines.append))  # type: ignore[arg-type]
    return [line.split(": ", 2)[-1] for line in lines]  # drop "notice: <server-side file name>: "
