"""What ``--tile auto`` picks for a large input, and the peak memory of that run.

    python benchmarks/auto_tile.py                     # builtin-x4, 2048x2048, CPU
    python benchmarks/auto_tile.py --size 4096 --device cuda

Prints the free memory seen, the per-pixel cost used (measured on CUDA, estimated on CPU), the tile picked,
the wall time and the peak memory: RSS of this process on CPU, ``torch.cuda.max_memory_allocated`` on CUDA.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch

import swinir
from swinir.fit import auto_tile, bytes_per_pixel, free_bytes


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="builtin-x4")
    p.add_argument("--size", type=int, default=2048)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model = swinir.load(args.model, device=args.device)
    dev = torch.device(args.device)
    img = np.random.default_rng(0).integers(0, 256, (args.size, args.size, 3), dtype=np.uint8)
    free = free_bytes(dev)
    tile = auto_tile(model, dev, args.size, args.size)
    print(f"# {args.model} on {dev}, {args.threads} thread(s), input {args.size}x{args.size}")
    print(f"free {free / 2**30:.1f} GiB, cost {bytes_per_pixel(model, dev) / 1024:.1f} KiB/input pixel -> tile {tile}")
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    t0 = time.perf_counter()
    out = swinir.restore(model, img, tile="auto")
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"output {out.shape[1]}x{out.shape[0]} in {seconds:.1f} s; peak RSS {peak:.0f} MB (before the run {rss0:.0f} MB)"
    )
    if dev.type == "cuda":
        print(f"peak CUDA allocated {torch.cuda.max_memory_allocated(dev) / 2**20:.0f} MB")


if __name__ == "__main__":
    main()
