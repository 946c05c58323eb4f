"""`swinir train`: train or fine-tune a SwinIR from a YAML config or a shipped preset."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from swinir.errors import ConfigError

EPILOG = """examples:
  swinir train builtin-x2                                  # a shipped preset, outputs in runs/builtin-x2
  swinir train builtin-x2 --resume                         # continue exactly from runs/builtin-x2/checkpoints/latest.pt
  swinir train my.yaml --set train.lr=1e-4 --set data.batch_size=8 --out runs/exp1
  swinir train builtin-x4 --set model.init_from=runs/builtin-x2/models/model_best.pth
  swinir train builtin-x2-gpu --time-limit 1h              # re-plan iterations/milestones to fit an hour
  swinir train classical-sr-x2-tiny --print-config         # show the resolved configuration
  swinir train --list                                      # shipped presets
  torchrun --nproc_per_node 2 -m swinir train builtin-x2   # DDP: the config batch is the global batch

outputs (in --out): config.yaml, train.log, metrics.jsonl, tensorboard/, checkpoints/{iter_*,latest,best}.pt,
models/model_*.pth (released layout {'params','params_ema'}, loads with swinir.load), val/, curves.png
"""


def _duration(text: str) -> float:
    """Seconds from '5400', '90m', '1.5h' or '300s'."""
    units = {"s": 1.0, "m": 60.0, "h": 3600.0}
    t = text.strip().lower()
    try:
        value = float(t[:-1]) * units[t[-1]] if t and t[-1] in units else float(t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds or a number with s/m/h (e.g. 90m), got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return value


def add_set_option(p: argparse.ArgumentParser, what: str) -> None:
    """``--set KEY=VALUE`` (repeatable) into ``args.overrides``."""
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"{what} (value parsed as YAML; repeatable)",
    )


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "train",
        help="train or fine-tune a model from a config or preset",
        description="Train or fine-tune SwinIR. CONFIG is a YAML file or the name of a shipped preset.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("config", nargs="?", help="YAML config file or preset name (see --list)")
    add_set_option(p, "override a config value, e.g. train.lr=1e-4")
    p.add_argument("--out", type=Path, help="output folder (default: runs/<config name>)")
    p.add_argument(
        "--resume", action="store_true", help="continue from OUT/checkpoints/latest.pt (starts fresh if there is none)"
    )
    p.add_argument("--iterations", type=int, help="shortcut for --set train.iterations=N")
    p.add_argument(
        "--time-limit",
        type=_duration,
        metavar="DURATION",
        help="wall-clock budget of the training loop: 3600, 90m or 2h (shortcut for --set "
        "train.time_limit=SECONDS); iterations and milestones are re-planned to fit it",
    )
    p.add_argument("--device", help="cpu, cuda, cuda:1, mps (shortcut for --set train.device=...)")
    p.add_argument("--print-config", action="store_true", help="print the resolved config as YAML and exit")
    p.add_argument("--list", action="store_true", help="list the shipped presets and exit")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs still go to train.log)")
    p.set_defaults(func=run)


def check_output_folder(out: Path) -> None:
    """``out`` is (or can be made) a folder this process can write in; else one ``ConfigError`` line."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a folder; choose another --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        raise ConfigError(f"--out {out}: cannot write there ({exc.strerror or exc}); choose another --out") from None


def validation_summary(result: Any) -> str | None:
    """First and last validation PSNR, each with the iteration it was measured at."""
    fv, lv = result.first_val, result.last_val
    if not (fv and lv):
        return None
    return (
        f"validation PSNR: {fv['psnr']:.3f} dB at iteration {int(fv.get('iter', 0))} -> "
        f"{lv['psnr']:.3f} dB at iteration {int(lv.get('iter', result.iteration))} (input {lv['psnr_input']:.3f} dB)"
    )


def run(args: argparse.Namespace) -> int:
    from swinir.train.config import load_config, preset_names, raw_config

    if args.list:
        for name in preset_names():
            desc = str(raw_config(name).get("description", "")).strip().splitlines()
            print(f"{name:34s} {desc[0] if desc else ''}")
        return 0
    overrides = list(args.overrides)
    if args.iterations is not None:
        overrides.append(f"train.iterations={args.iterations}")
    if args.time_limit is not None:
        overrides.append(f"train.time_limit={args.time_limit}")
    if args.device:
        overrides.append(f"train.device={args.device}")
    source = args.config
    if source is None:
        if args.resume and args.out and (args.out / "config.yaml").is_file():
            source = str(args.out / "config.yaml")
        else:
            raise ConfigError(
                "give a config file or preset name (or --resume --out DIR of an existing run); "
                "see `swinir train --list`"
            )
    cfg = load_config(source, overrides)
    if args.print_config:
        print(cfg.to_yaml(), end="")
        return 0
    out = args.out or Path("runs") / cfg.name
    check_output_folder(out)
    from swinir.train import train
    from swinir.train.distributed import from_env

    result = train(cfg, out, resume=args.resume, progress=False if args.no_progress else None)
    if not from_env().main:
        return 130 if result.interrupted else 0
    summary = validation_summary(result)
    if summary:
        print(summary)
    print(f"outputs in {out}" + (" (stopped early; continue with --resume)" if result.interrupted else ""))
    return 130 if result.interrupted else 0
