"""What bf16 changes on real photos: PSNR of each built-in model's bf16 output against its own fp32 output.

``--precision auto`` runs bf16 on CPUs that compute it natively; a model whose bf16 output falls under
``swinir.precision.MIN_BF16_PSNR_DB`` (45 dB) here runs fp32 under auto instead (``FP32_UNDER_AUTO``, by the
digest of its weights, which this script prints). Both runs go through ``swinir.restore`` exactly as
`swinir restore` does (bf16 = the engine's autocast), on the whole image, trained weights (the built-ins).

Inputs, from shared/data (MANIFEST.md): Set5, McMaster and RealSRSet+5images. SR models get Set5's bicubic
LR images at their scale, McMaster downscaled by the scale (bicubic), RealSRSet as it is; the denoising
model gets Set5 HR and McMaster with Gaussian noise sigma 25 (seeded) and RealSRSet as it is (real noise).

    python benchmarks/bf16_quality.py                  # the README's table
    python benchmarks/bf16_quality.py --limit 2        # two images per set (smoke)
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

import swinir
from swinir.model.cpu import native_bf16
from swinir.paths import shared_dir
from swinir.precision import MIN_BF16_PSNR_DB, weights_digest

MODELS = ("builtin-x2", "builtin-x4", "builtin-denoise")
SETS = ("Set5", "McMaster", "RealSRSet")
NOISE_SIGMA = 25.0


@dataclass
class Row:
    model: str
    dataset: str
    images: int
    mean_db: float
    min_db: float
    max_levels: int  # largest difference of the 8-bit results
    fp32_s: float
    bf16_s: float

    def cells(self) -> list[str]:
        return [
            self.model, self.dataset, str(self.images), _db(self.mean_db), _db(self.min_db), str(self.max_levels),
            f"{self.fp32_s:.1f}", f"{self.bf16_s:.1f}",
        ]  # fmt: skip


HEADER = ["model", "set", "images", "mean PSNR dB", "min PSNR dB", "max 8-bit diff", "fp32 s", "bf16 s"]


def _db(value: float) -> str:
    return "inf" if math.isinf(value) else f"{value:.1f}"


def _read_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise SystemExit(f"{path}: not readable as an image")
    return np.ascontiguousarray(bgr[..., ::-1]).astype(np.float32) / 255.0


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".tif", ".bmp"))


def inputs(data: Path, dataset: str, scale: int, limit: int) -> Iterator[tuple[str, np.ndarray]]:
    """(name, float RGB image in [0, 1]) for one model's share of a set (see the module docstring)."""
    rng = np.random.default_rng(0)
    if dataset == "Set5":
        folder = data / "Set5" / ("HR" if scale == 1 else f"LR_bicubic/X{scale}")
    elif dataset == "McMaster":
        folder = data / "McMaster"
    else:
        folder = data / "RealSRSet+5images"
    for path in _files(folder)[: limit or None]:
        img = _read_rgb(path)
        if dataset == "McMaster" and scale > 1:
            h, w = img.shape[0] // scale, img.shape[1] // scale
            img = np.clip(cv2.resize(img, (w, h), interpolation=cv2.INTER_CUBIC), 0, 1)
        if scale == 1 and dataset != "RealSRSet":
            noise = rng.normal(0, NOISE_SIGMA / 255.0, img.shape).astype(np.float32)
            img = np.clip(img + noise, 0, 1)
        yield path.name, img


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def measure(model: torch.nn.Module, name: str, dataset: str, data: Path, limit: int) -> Row:
    scale = int(model.spec.upscale)
    dbs: list[float] = []
    levels = 0
    seconds = {"fp32": 0.0, "bf16": 0.0}
    for _, img in inputs(data, dataset, scale, limit):
        out = {}
        for prec in ("fp32", "bf16"):  # alternating per image, same process
            t0 = time.perf_counter()
            out[prec] = np.clip(swinir.restore(model, img, precision=prec), 0, 1)
            seconds[prec] += time.perf_counter() - t0
        dbs.append(_psnr(out["bf16"], out["fp32"]))
        as8 = {k: np.rint(v * 255).astype(np.int16) for k, v in out.items()}
        levels = max(levels, int(np.abs(as8["bf16"] - as8["fp32"]).max()))
    finite = [d for d in dbs if not math.isinf(d)]
    mean = sum(finite) / len(finite) if finite else math.inf
    return Row(name, dataset, len(dbs), mean, min(dbs), levels, seconds["fp32"], seconds["bf16"])


def render(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    return "\n".join(lines + ["| " + " | ".join(r.cells()) + " |" for r in rows])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=list(MODELS), help="zoo names or checkpoint files")
    p.add_argument("--sets", nargs="+", choices=SETS, default=list(SETS))
    p.add_argument("--limit", type=int, default=0, help="images per set (0 = all)")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    root = shared_dir()
    if root is None or not (root / "data").is_dir():
        raise SystemExit("shared/data not found (set SWINIR_SHARED or run from a checkout beside shared/)")
    torch.set_num_threads(args.threads)
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(
        f"# bf16 against fp32 output, whole images through swinir.restore; {args.threads} threads, native bf16 "
        f"{native_bf16()}, torch {torch.__version__}, load average {load}"
    )
    if not native_bf16():
        print("# this CPU emulates bf16 (slow); the PSNR figures still hold, the timings do not", file=sys.stderr)
    rows: list[Row] = []
    under: list[str] = []
    for name in args.models:
        model = swinir.load(name, device="cpu")
        digest = weights_digest(model)
        print(f"# {name}: weights digest {digest}")
        for dataset in args.sets:
            row = measure(model, name, dataset, root / "data", args.limit)
            rows.append(row)
            print(render([row]).splitlines()[-1], flush=True)
            if row.min_db < MIN_BF16_PSNR_DB:
                under.append(f'    "{digest}": ("{name}", {row.min_db:.1f}),  # {dataset}')
    print()
    print(render(rows))
    if under:
        print(f"\nunder {MIN_BF16_PSNR_DB:g} dB (for swinir.precision.FP32_UNDER_AUTO):")
        print("\n".join(under))
    else:
        print(f"\nevery model stays at or above {MIN_BF16_PSNR_DB:g} dB on every image: auto runs bf16 for all")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
