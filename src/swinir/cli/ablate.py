"""`swinir ablate`: the paper's ablation study on your data and budget, as a resumable sweep of training runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from swinir.cli.train import add_set_option

# the sweeps in swinir/presets/ablations (listed here so that --help needs no import of the planner)
SHIPPED = ("rstb-design-cpu", "channels-cpu", "training-data-cpu", "rstb-design-gpu", "channels-gpu")

EPILOG = """a sweep file (YAML):
  name: channels
  base: classical-sr-x2-tiny           # preset or config file: the run every variant starts from
  mode: one-at-a-time                  # or grid (every combination of the axes)
  set: {train.iterations: 400}         # the same for every run: budget (or train.time_limit), validation
  axes:
    model.embed_dim: [8, 16, 32]       # dotted config keys, each with its values
    data.patch_size: [16, 24]
  flops_input: 64                      # FLOPs are counted at one 64x64 input

examples:
  swinir ablate rstb-design-cpu                         # a shipped sweep (see src/swinir/presets/ablations)
  swinir ablate my-sweep.yaml --out runs/sweep1 --parallel 2
  swinir ablate my-sweep.yaml --out runs/sweep1 --resume   # keeps finished runs, continues interrupted ones
  swinir ablate my-sweep.yaml --plan                    # list the runs and exit
  swinir ablate channels-cpu --set train.iterations=100 # a shorter budget for every run
  torchrun --nproc_per_node 4 -m swinir ablate rstb-design-gpu --out runs/rstb   # one run per GPU

outputs (in --out): results.csv, results.md, ablation.png (PSNR and parameters against each axis),
curves.png (validation PSNR of every run against iterations), runs/NAME/ (each an ordinary `swinir train` run)
"""


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "ablate",
        help="run an ablation sweep (config values x training runs) and plot it",
        description="Train one run per value (or combination) of the sweep's axes with the same seed, data, "
        "schedule and validation, then tabulate and plot PSNR, SSIM, parameters, FLOPs, speed and memory.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("sweep", help=f"sweep YAML file, or the name of a shipped sweep: {', '.join(SHIPPED)}")
    p.add_argument("--out", type=Path, help="output folder (default: runs/ablate-<sweep name>)")
    p.add_argument("--resume", action="store_true", help="keep finished runs, continue interrupted ones")
    p.add_argument("--parallel", type=int, default=1, metavar="N", help="runs side by side, one process each")
    add_set_option(p, "change a setting of every run, e.g. train.iterations=100")
    p.add_argument("--plan", action="store_true", help="print the planned runs and exit")
    p.add_argument("--report-only", action="store_true", help="rewrite the tables and plots from --out and exit")
    p.set_defaults(func=run)


def _resolve(name: str) -> Path:
    from swinir.ablate.plan import shipped_sweep

    return shipped_sweep(name)


def run(args: argparse.Namespace) -> int:
    from swinir.ablate import ablate, load_sweep, plan_runs
    from swinir.ablate.plan import format_value
    from swinir.errors import ConfigError

    if args.parallel < 1:
        raise ConfigError(f"--parallel: must be >= 1, got {args.parallel}")
    path = _resolve(args.sweep)
    sweep = load_sweep(path, args.overrides)
    runs, _ = plan_runs(sweep)
    out = args.out or Path("runs") / f"ablate-{sweep.name}"
    if args.plan:
        print(f"{len(runs)} runs ({sweep.mode}) from {sweep.base}, into {out}/runs/:")
        for r in runs:
            print("  " + r.name + "  " + " ".join(f"{k}={format_value(v)}" for k, v in r.values.items()))
        return 0
    if args.report_only:
        from swinir.ablate import report_only

        for p in report_only(path, out, args.overrides):
            print(p)
        return 0

    def on_run(o, i: int, n: int) -> None:  # type: ignore[no-untyped-def]
        print(f"[{i}/{n}] {o.name}: {o.state} in {o.seconds:.0f}s", flush=True)

    summary = ablate(path, out, args.overrides, resume=args.resume, parallel=args.parallel, on_run=on_run)
    for p in summary.reports:
        print(p)
    if not summary.complete:
        left = [o.name for o in summary.outcomes if o.state not in ("done", "kept")]
        print(f"not finished: {', '.join(left) or 'other ranks'}; continue with --resume --out {out}")
        return 130 if any(o.state == "stopped" for o in summary.outcomes) else 1
    return 0
