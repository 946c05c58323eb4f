"""Peak memory of tiled restoration as the image grows: it should stay flat beyond the output image.

Each size runs in its own fresh process: build a small x2 model, make a random uint8 RGB image, note the
resident set (RSS), run ``swinir.engine.restore(model, image, tile=...)`` and read the process's peak RSS.
Reported: the peak growth during the restore, and that growth minus the output image (the part that
must grow with the image) - the working memory of the tiling itself, which should not grow.

    python benchmarks/memory.py                         # 1024, 2048, 4096 (x2 outputs up to 8192^2)
    python benchmarks/memory.py --sizes 256 768 --tile 128
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

MiB = 2**20


def small_model():  # type: ignore[no-untyped-def]
    """A small x2 SwinIR (the golden-test architecture: 2 groups of 2 blocks, 24 channels), seeded."""
    import torch

    from swinir.model import SwinIR

    torch.manual_seed(0)
    return SwinIR(
        upscale=2,
        in_chans=3,
        img_size=64,
        window_size=8,
        img_range=1.0,
        depths=[2, 2],
        embed_dim=24,
        num_heads=[2, 2],
        mlp_ratio=2,
        upsampler="pixelshuffle",
        resi_connection="1conv",
    ).eval()


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def child(size: int, tile: int, threads: int) -> dict:
    """Runs in a fresh process: one tiled restore of a size x size image; memory figures in bytes."""
    import numpy as np
    import torch

    from swinir.engine import restore

    torch.set_num_threads(threads)
    model = small_model()
    restore(model, np.zeros((tile // 2, tile // 2, 3), np.uint8), tile=tile)  # libraries and kernels loaded
    image = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    base = _rss()
    t0 = time.perf_counter()
    out = restore(model, image, tile=tile)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    assert out.shape == (2 * size, 2 * size, 3) and out.dtype == np.uint8
    return {
        "size": size,
        "tile": tile,
        "base": base,
        "peak": peak,
        "growth": peak - base,
        "output": out.nbytes,
        "input": image.nbytes,
        "seconds": seconds,
    }


def measure(size: int, tile: int, threads: int = 1) -> dict:
    """``child`` in a fresh interpreter (peak RSS is per process)."""
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        str(size),
        "--tile",
        str(tile),
        "--threads",
        str(threads),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"memory child for {size} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="*", type=int, default=[1024, 2048, 4096], help="square input sides")
    ap.add_argument("--tile", type=int, default=256, help="tile side in input pixels (default 256)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--output", type=Path, help="also write the table (markdown) here")
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.tile, args.threads)))
        return 0
    header = "| input | output (x2, uint8) | peak RSS growth | growth minus output | time |\n|---|---|---|---|---|"
    lines = [header]
    print(header, flush=True)
    for size in args.sizes:
        r = measure(size, args.tile, args.threads)
        line = (
            f"| {size}x{size} | {r['output'] / MiB:.0f} MiB | {r['growth'] / MiB:.0f} MiB | "
            f"{(r['growth'] - r['output']) / MiB:.0f} MiB | {r['seconds']:.0f} s |"
        )
        lines.append(line)
        print(line, flush=True)
    if args.output:
        args.output.write_text(
            f"Tile {args.tile}, small x2 model, {args.threads} thread(s).\n\n" + "\n".join(lines) + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
