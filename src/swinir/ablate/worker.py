"""One run of a sweep, in its own process: ``python -m swinir.ablate.worker RUN_DIR [--resume]``.

It trains ``RUN_DIR/run.yaml`` with the ordinary trainer (``swinir.train.train``) into ``RUN_DIR`` and, when
the run finished, writes ``RUN_DIR/result.json`` (parameters, FLOPs, peak memory). A process per run keeps
peak memory per run and lets runs go side by side. Exit status: 0 done, 130 stopped (resumable), 1 error.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from swinir.ablate.measure import count_flops, count_params, peak_memory_mb
from swinir.ablate.runner import RESULT
from swinir.atomic import write_text
from swinir.errors import SwinIRError


def run(run_dir: Path, resume: bool, flops_input: int, progress: bool) -> int:
    from swinir.train import load_config, train

    cfg = load_config(run_dir / "run.yaml")
    result = train(cfg, run_dir, resume=resume, progress=progress)
    if result.interrupted:
        return 130
    from swinir.model import SwinIR

    model = SwinIR(**cfg.model.kwargs())
    device = torch.device("cuda") if torch.cuda.is_available() and cfg.train.device != "cpu" else torch.device("cpu")
    peak, kind = peak_memory_mb(device)
    info = {
        "iterations": result.iteration,
        "train_seconds": round(result.seconds, 3),
        "params": count_params(model),
        "flops": count_flops(model, cfg.model.in_chans, flops_input),
        "flops_input": flops_input,
        "peak_mem_mb": None if peak is None else round(peak, 1),
        "peak_mem_kind": kind,
        "device": str(device),
        "threads": torch.get_num_threads(),
    }
    write_text(run_dir / RESULT, json.dumps(info, indent=1) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m swinir.ablate.worker")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--flops-input", type=int, default=64)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        return run(args.run_dir, args.resume, args.flops_input, not args.no_progress)
    except SwinIRError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
