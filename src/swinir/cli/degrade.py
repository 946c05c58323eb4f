"""`swinir degrade`: apply a degradation pipeline to images, to see what a model is trained on.

Writes every degraded sample, a ``sheet.png`` (one row per input: the HR crop, then the samples
enlarged by pixel repetition to the same region) and ``samples.json`` (each sample's seed and the
steps that were drawn). Sample ``k`` of input ``i`` uses ``np.random.default_rng([SEED, i, k])``, so
it is reproducible whatever ``-n`` is.
"""

from __future__ import annotations

import argparse
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from swinir.atomic import write_text
from swinir.degrade.registry import PIPELINES, Pipeline
from swinir.errors import SwinIRError

EPILOG = """examples:
  swinir degrade --pipeline bsrgan photo.png -o degraded/            # 8 random x4 samples + sheet.png
  swinir degrade --pipeline realesrgan --scale 2 -n 4 --seed 7 hr/ -o out/
  swinir degrade --pipeline noise --sigma 15-50 Set12/ -o noisy/      # sigma drawn per sample
  swinir degrade --pipeline jpeg --quality 10 classic5/ -o q10/
  swinir degrade --pipeline bicubic --scale 3 Set5/HR -o lr_x3/       # MATLAB bicubic (1 sample)

pipelines:
  bsrgan      BSRGAN practical degradation (blur x2, down/down-up, noise, JPEG, sensor noise, shuffled)
  realesrgan  Real-ESRGAN second-order degradation (2 rounds + final sinc/JPEG)
  bicubic     MATLAB-compatible bicubic downscale (deterministic)
  noise       additive white Gaussian noise, --sigma on 0..255 (no resize)
  jpeg        OpenCV JPEG at --quality (no resize)
Outputs: OUTDIR/<name>_<pipeline>_<k>.png, OUTDIR/sheet.png, OUTDIR/samples.json.
"""

PIPELINE_NAMES = tuple(PIPELINES)
MAX_SEED = 2**32 - 1  # numpy seeds are non-negative; the classic 32-bit range, as np.random.seed takes
# (lr_uint8, hr_uint8) from (hr_uint8, rng, trace)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "degrade",
        help="apply a degradation pipeline (bsrgan, realesrgan, bicubic, noise, jpeg) to images",
        description="Degrade images with a training pipeline and write the samples plus an image sheet, "
        "so the synthetic training data can be inspected.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders of images")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="folder for the results")
    p.add_argument("--pipeline", required=True, choices=PIPELINE_NAMES, help="which degradation")
    p.add_argument("--scale", type=int, default=None, help="downscale factor for bsrgan/realesrgan/bicubic (default 4)")
    p.add_argument("--seed", type=int, default=0, help=f"random seed, 0..{MAX_SEED} (default 0)")
    p.add_argument("-n", "--samples", type=int, default=8, help="random samples per input (default 8)")
    p.add_argument("--sigma", default="25", help="noise pipeline: sigma or LO-HI range on 0..255 (default 25)")
    p.add_argument("--quality", default="40", help="jpeg pipeline: quality or LO-HI range (default 40)")
    p.add_argument(
        "--crop",
        type=int,
        default=256,
        help="sheet panel: centred square of this many HR pixels (0: whole images; default 256)",
    )
    p.add_argument("--no-sheet", action="store_true", help="do not write sheet.png")
    p.set_defaults(func=run)


def _parse_range(text: str, what: str, lo: float, hi: float) -> tuple[float, float]:
    parts = text.split("-") if "-" in text.strip("-") else [text]
    try:
        vals = [float(v) for v in parts]
    except ValueError:
        raise SwinIRError(f"--{what} must be a number or a LO-HI range, got {text!r}") from None
    if len(vals) == 1:
        vals = vals * 2
    if len(vals) != 2 or vals[0] > vals[1] or vals[0] < lo or vals[1] > hi:
        raise SwinIRError(f"--{what} must be a number or LO-HI range within {lo:g}..{hi:g}, got {text!r}")
    return vals[0], vals[1]


@dataclass(frozen=True)
class PipelineChoice:
    """A named pipeline with its options; ``random`` says whether samples differ."""

    name: str
    scale: int
    fn: Pipeline
    random: bool


def make_pipeline(
    name: str,
    scale: int | None = None,
    sigma: tuple[float, float] = (25.0, 25.0),
    quality: tuple[float, float] = (40.0, 40.0),
) -> PipelineChoice:
    """Build a pipeline by name from ``swinir.degrade``'s registry; raises SwinIRError on bad options."""
    from swinir.degrade.registry import is_random
    from swinir.degrade.registry import make_pipeline as build

    if name not in PIPELINE_NAMES:
        raise SwinIRError(f"unknown pipeline {name!r}; use one of {', '.join(PIPELINE_NAMES)}")
    if name in ("noise", "jpeg"):
        if scale not in (None, 1):
            raise SwinIRError(f"--scale does not apply to the {name} pipeline (it keeps the size); drop it")
        scale = 1
    scale = 4 if scale is None else scale
    if scale < 1 or scale > 8:
        raise SwinIRError(f"--scale must be 1..8, got {scale}")
    options = {"noise": {"sigma": sigma}, "jpeg": {"quality": quality}}.get(name, {"scale": scale})
    try:
        fn = build(name, **options)
    except ValueError as exc:
        raise SwinIRError(str(exc)) from None
    return PipelineChoice(name, scale, fn, is_random(fn))


def _collect(inputs: list[str]) -> list[Path]:
    from swinir.io import list_images

    files: list[Path] = []
    for item in inputs:
        p = Path(item).expanduser()
        if p.is_dir():
            files += list_images(p)
        elif p.is_file():
            files.append(p)
        else:
            raise SwinIRError(f"{p}: no such file or folder")
    return files


def _sheet_row(hr: np.ndarray, lrs: list[np.ndarray], crop: int) -> np.ndarray:
    from swinir.evaluate import comparison_sheet

    panels = [("HR", hr)] + [(f"#{k}", lr) for k, lr in enumerate(lrs)]
    return comparison_sheet(panels, crop=crop if crop > 0 else None)


def _stack_rows(rows: list[np.ndarray], gap: int = 6) -> np.ndarray:
    width = max(r.shape[1] for r in rows)
    out = []
    for i, r in enumerate(rows):
        if i:
            out.append(np.full((gap, width, 3), 255, np.uint8))
        out.append(np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255))
    return np.concatenate(out, 0)


def _output_folder(path: str, files: list[Path]) -> Path:
    out_dir = Path(path).expanduser()
    if out_dir.exists() and not out_dir.is_dir():
        raise SwinIRError(f"{out_dir}: exists and is not a folder; choose another -o")
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir


def _unique_stem(path: Path, seen: dict[str, int]) -> str:
    """The input's stem, numbered when two inputs from different folders share it."""
    seen[path.stem] = seen.get(path.stem, 0) + 1
    return path.stem if seen[path.stem] == 1 else f"{path.stem}-{seen[path.stem]}"


def _degrade_one(
    args: argparse.Namespace, choice: PipelineChoice, i: int, path: Path, stem: str, files: list[Path], bar: Any
) -> tuple[np.ndarray, list[np.ndarray], list[dict[str, Any]]]:
    """All samples of input ``i``: written to disk; returns (HR used, samples, their records)."""
    from swinir.io import check_not_input, read_image, to_8bit, write_image

    hr = to_8bit(read_image(path).array)
    hr_used, lrs, records = hr, [], []
    for k in range(args.samples if choice.random else 1):
        rng = np.random.default_rng([args.seed, i, k])
        trace: list[str] = []
        try:
            lr, hr_used = choice.fn(hr, rng, trace)
        except ValueError as exc:
            raise SwinIRError(f"{path}: {exc}") from None
        dest = Path(args.output).expanduser() / f"{stem}_{choice.name}_{k}.png"
        check_not_input(dest, files)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            write_image(dest, lr)
        records.append(
            {
                "input": str(path),
                "output": dest.name,
                "seed": [args.seed, i, k],
                "pipeline": choice.name,
                "scale": choice.scale,
                "lr_size": [int(lr.shape[1]), int(lr.shape[0])],
                "steps": trace,
            }
        )
        lrs.append(lr)
        bar.update(1)
    return hr_used, lrs, records


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from swinir.io import check_not_input, write_image

    if args.samples < 1:
        raise SwinIRError(f"-n must be at least 1, got {args.samples}")
    if not 0 <= args.seed <= MAX_SEED:
        raise SwinIRError(f"--seed must be an integer in 0..{MAX_SEED}, got {args.seed}")
    if args.crop < 0:
        raise SwinIRError(f"--crop must be >= 0, got {args.crop}")
    choice = make_pipeline(
        args.pipeline,
        args.scale,
        _parse_range(args.sigma, "sigma", 0, 255),
        _parse_range(args.quality, "quality", 1, 100),
    )
    files = _collect(args.inputs)
    out_dir = _output_folder(args.output, files)
    records: list[dict[str, Any]] = []
    rows: list[np.ndarray] = []
    stems: dict[str, int] = {}
    with tqdm(
        total=len(files) * (args.samples if choice.random else 1), unit="img", desc=choice.name, disable=None
    ) as bar:
        for i, path in enumerate(files):
            hr_used, lrs, recs = _degrade_one(args, choice, i, path, _unique_stem(path, stems), files, bar)
            records += recs
            if not args.no_sheet:
                rows.append(_sheet_row(hr_used, lrs, args.crop))
    meta = out_dir / "samples.json"
    check_not_input(meta, files)
    write_text(meta, json.dumps(records, indent=1))
    msg = f"wrote {len(records)} {choice.name} sample(s) of {len(files)} image(s) to {out_dir}"
    if rows:
        sheet = out_dir / "sheet.png"
        check_not_input(sheet, files)
        grid = _stack_rows(rows)
        write_image(sheet, grid)
        msg += f"; sheet {sheet} ({grid.shape[1]}x{grid.shape[0]})"
    print(msg)
    return 0
