"""Throughput of the real-world degradation pipelines on 256x256 HR patches (CPU, NumPy/OpenCV path).

    python benchmarks/degrade.py                    # every pipeline, one core, 200 samples each
    python benchmarks/degrade.py -n 500 --workers 2 # also through 2 worker processes

Prints samples/s per pipeline on one core (OpenCV and torch held to one thread, as in a data-loader
worker) and, with ``--workers N``, the aggregate rate of N processes. HR patches are random crops
of the training images in ``../shared/data/train/BSD400`` (falls back to a synthetic image).
A data loader needs roughly batch/step-time samples/s: 32 patches at ~1 step/s for SwinIR-M on a GPU.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np


def _patches(n: int, size: int, seed: int) -> list[np.ndarray]:
    from swinir.paths import shared_dir

    rng = np.random.default_rng(seed)
    shared = shared_dir()
    files = sorted((shared / "data" / "train" / "BSD400").glob("*.jpg")) if shared else []
    out = []
    if not files:
        print("note: ../shared/data/train/BSD400 not found; using synthetic images", file=sys.stderr)
    for i in range(n):
        if files:
            img = cv2.imread(str(files[i % len(files)]), cv2.IMREAD_COLOR)[:, :, ::-1]
        else:
            img = (rng.uniform(size=(size + 64, size + 64, 3)) * 255).astype(np.uint8)
        y = int(rng.integers(0, img.shape[0] - size + 1))
        x = int(rng.integers(0, img.shape[1] - size + 1))
        out.append(np.ascontiguousarray(img[y : y + size, x : x + size]))
    return out


def _pipeline(name: str, scale: int):
    from swinir.degrade.bsrgan import BSRGANDegradation
    from swinir.degrade.realesrgan import RealESRGANDegradation

    return {"bsrgan": lambda: BSRGANDegradation(scale=scale), "realesrgan": lambda: RealESRGANDegradation(scale=scale)}[
        name
    ]()


def _one_thread() -> None:
    cv2.setNumThreads(1)
    import torch

    torch.set_num_threads(1)


def _worker(args: tuple[str, int, list[np.ndarray], int]) -> int:
    name, scale, patches, seed = args
    _one_thread()
    pipe = _pipeline(name, scale)
    for i, p in enumerate(patches):
        pipe(p, np.random.default_rng(seed + i))
    return len(patches)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=200, help="samples per pipeline (default 200)")
    ap.add_argument("--size", type=int, default=256, help="HR patch size (default 256)")
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--workers", type=int, default=0, help="also measure N processes together")
    ap.add_argument("--pipelines", nargs="+", default=["bsrgan", "realesrgan"])
    args = ap.parse_args()

    _one_thread()
    patches = _patches(args.n, args.size, 0)
    print(
        f"cpu: {os.cpu_count()} logical cores visible; HR patch {args.size}x{args.size}, x{args.scale}, "
        f"{args.n} samples"
    )
    for name in args.pipelines:
        pipe = _pipeline(name, args.scale)
        pipe(patches[0], np.random.default_rng(0))  # warm up (imports, OpenCV init)
        t0 = time.perf_counter()
        for i, p in enumerate(patches):
            lr, hr = pipe(p, np.random.default_rng(1000 + i))
        dt = time.perf_counter() - t0
        print(
            f"{name:11s} 1 core : {args.n / dt:7.1f} samples/s  ({1000 * dt / args.n:.1f} ms/sample, "
            f"LR {lr.shape[1]}x{lr.shape[0]})"
        )
        if args.workers > 1:
            chunks = [patches[i :: args.workers] for i in range(args.workers)]
            with mp.get_context("spawn").Pool(args.workers, initializer=_one_thread) as pool:
                pool.map(_worker, [(name, args.scale, c[:2], 0) for c in chunks])  # warm up
                t0 = time.perf_counter()
                done = sum(pool.map(_worker, [(name, args.scale, c, 7 * k) for k, c in enumerate(chunks)]))
                dt = time.perf_counter() - t0
            print(f"{name:11s} {args.workers} procs: {done / dt:7.1f} samples/s")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    raise SystemExit(main())
