"""Training throughput: iterations/s and peak memory (RSS) per preset and precision, plus the data pipeline.

Each measurement runs in a fresh process, so peak RSS belongs to that configuration alone. ``CPU s/it`` is the
process's CPU time per iteration (all threads): on a shared, busy machine it moves much less than wall time. Training data
is the shared BSD400 folder for every preset (the paper presets' DIV2K etc. are not needed to time a step);
validation is off; loader workers are off, so the figure is model + one-process data cost.

    python benchmarks/train.py                                   # tiny presets + lightweight-sr-x2 at batch 8
    python benchmarks/train.py --presets builtin-x2 --iters 3 --variants fp32 bf16
    python benchmarks/train.py --data                            # data pipeline: cached vs decoded per sample
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT = [
    ("builtin-x2-tiny", []),
    ("denoise-color-tiny", []),
    ("jpeg-gray-tiny", []),
    ("lightweight-sr-x2", ["data.batch_size=8"]),
]
VARIANTS = {
    "fp32": [],
    "bf16": ["train.amp=bf16"],
    "fp16": ["train.amp=fp16"],
    "ckpt": ["model.grad_checkpointing=true"],
}


def child(preset: str, overrides: list[str], iters: int, warmup: int) -> dict:
    import torch

    from swinir.paths import shared_dir
    from swinir.train import Trainer, load_config

    shared = shared_dir()
    if shared is None:
        raise SystemExit("../shared not found: the benchmark trains on shared/data/train/BSD400")
    channels = load_config(preset).model.in_chans
    train_dir = shared / "data" / "train" / ("Train400" if channels == 1 else "BSD400")
    cfg = load_config(
        preset,
        [
            f"data.train=[{train_dir}]",
            "data.num_workers=0",
            "data.skip_bad=true",
            "val.hr=null",
            "model.init_from=null",
            "log.progress=false",
            "log.tensorboard=false",
            "log.plot=false",
            *overrides,
        ],
    )
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        trainer = Trainer(cfg, Path(tmp))
        setup_s = time.perf_counter() - t0
        batches = trainer._batches()
        for _ in range(warmup):
            trainer.training_step(next(batches))
        sync = torch.cuda.synchronize if trainer.device.type == "cuda" else (lambda: None)
        data_s = 0.0
        sync()
        t1, c1 = time.perf_counter(), time.process_time()
        for _ in range(iters):
            t_data = time.perf_counter()
            batch = next(batches)  # where the loader (degradation, crops, host->device copy) shows up
            data_s += time.perf_counter() - t_data
            logs = trainer.training_step(batch)
        sync()
        dt, cpu = time.perf_counter() - t1, time.process_time() - c1
        trainer.close()
    return {
        "preset": preset,
        "overrides": overrides,
        "batch": cfg.data.batch_size,
        "patch": cfg.data.patch_size,
        "params_M": round(sum(p.numel() for p in trainer.model.parameters()) / 1e6, 3),
        "it_per_s": iters / dt,
        "s_per_it": dt / iters,
        "cpu_s_per_it": cpu / iters,
        "data_s_per_it": data_s / iters,  # waiting for the next batch; the rest of s_per_it is the step
        "samples_per_s": iters * cfg.data.batch_size / dt,
        "peak_rss_MB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "setup_s": setup_s,
        "loss": float(logs["loss"]),
        "threads": torch.get_num_threads(),
    }


def data_child(cache: bool, samples: int) -> dict:
    from swinir.paths import shared_dir
    from swinir.train.config import DataConfig, SourceConfig
    from swinir.train.data import TrainSet

    shared = shared_dir()
    assert shared is not None
    cfg = DataConfig(
        train=[SourceConfig(str(shared / "data" / "train" / "BSD400"))],
        patch_size=48,
        batch_size=16,
        num_workers=0,
        cache=cache,
    )
    t0 = time.perf_counter()
    ds = TrainSet(cfg, scale=2, channels=3)
    setup = time.perf_counter() - t0
    t1 = time.perf_counter()
    for g in range(samples):
        ds[g]
    dt = time.perf_counter() - t1
    return {
        "cache": cache,
        "setup_s": setup,
        "samples_per_s": samples / dt,
        "ms_per_sample": 1000 * dt / samples,
        "peak_rss_MB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def spawn(args: list[str]) -> dict:
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--presets", nargs="*", help="presets to time (default: tiny ones + lightweight-sr-x2 @ batch 8)")
    p.add_argument("--set", dest="overrides", action="append", default=[], help="extra config override")
    p.add_argument("--variants", nargs="*", default=["fp32", "bf16"], choices=sorted(VARIANTS))
    p.add_argument("--iters", type=int, default=0, help="timed iterations (default 20 for tiny, 2 otherwise)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--data", action="store_true", help="time the data pipeline (cache on/off) instead")
    p.add_argument("--samples", type=int, default=400)
    p.add_argument("--_child", nargs=3, help=argparse.SUPPRESS)
    p.add_argument("--_data_child", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a._child:
        preset, iters, warmup = a._child
        print(json.dumps(child(preset, a.overrides, int(iters), int(warmup))))
        return 0
    if a._data_child:
        print(json.dumps(data_child(a._data_child == "1", a.samples)))
        return 0
    print(f"# CPU: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; torch threads default")
    if a.data:
        print(f"{'cache':6s} {'setup s':>8s} {'samples/s':>10s} {'ms/sample':>10s} {'peak RSS MB':>12s}")
        for cache in (True, False):
            r = spawn(["--_data_child", "1" if cache else "0", "--samples", str(a.samples)])
            if "error" in r:
                print(f"{cache!s:6s} error: {r['error']}")
                continue
            print(
                f"{cache!s:6s} {r['setup_s']:8.2f} {r['samples_per_s']:10.1f} {r['ms_per_sample']:10.2f} "
                f"{r['peak_rss_MB']:12.0f}"
            )
        return 0
    runs = (
        [(name, list(a.overrides)) for name in a.presets] if a.presets else [(n, o + a.overrides) for n, o in DEFAULT]
    )
    print(
        f"{'preset':22s} {'variant':7s} {'batch':>5s} {'patch':>5s} {'params M':>8s} {'it/s':>8s} {'s/it':>8s} "
        f"{'CPU s/it':>8s} {'samples/s':>9s} {'peak RSS MB':>11s}"
    )
    for name, over in runs:
        iters = a.iters or (20 if name.endswith("-tiny") else 2)
        for v in a.variants:
            r = spawn(
                ["--_child", name, str(iters), str(a.warmup)] + [x for o in over + VARIANTS[v] for x in ("--set", o)]
            )
            if "error" in r:
                print(f"{name:22s} {v:7s} error: {r['error']}")
                continue
            print(
                f"{name:22s} {v:7s} {r['batch']:5d} {r['patch']:5d} {r['params_M']:8.3f} {r['it_per_s']:8.3f} "
                f"{r['s_per_it']:8.3f} {r['cpu_s_per_it']:8.3f} {r['samples_per_s']:9.2f} {r['peak_rss_MB']:11.0f}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
