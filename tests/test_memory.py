"""Tiled restoration keeps its working memory flat as the image grows (fresh processes, peak RSS)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

MiB = 2**20
SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "memory.py"


def _memory_module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("bench_memory", SCRIPT)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_peak_memory_is_flat_beyond_the_images() -> None:
    """Going from 256^2 to 640^2 (6.25x the pixels) adds no more than the larger input and output images
    plus a small margin: nothing of the tiling itself scales with the image."""
    bench = _memory_module()
    small = bench.measure(256, tile=128)
    large = bench.measure(640, tile=128)
    assert large["output"] == 1280 * 1280 * 3 and small["output"] == 512 * 512 * 3
    work_small = small["growth"] - small["output"] - small["input"]
    work_large = large["growth"] - large["output"] - large["input"]
    print(
        f"\nworking memory beyond input+output: {work_small / MiB:.1f} MiB at 256^2, {work_large / MiB:.1f} MiB at 640^2"
    )
    assert work_large <= work_small + 16 * MiB
    # the images themselves are what grows: the total growth stays below images + the small run's working set
    assert large["growth"] <= large["output"] + large["input"] + max(work_small, 0) + 16 * MiB
