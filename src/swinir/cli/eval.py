"""`swinir eval`: score a checkpoint (or the bicubic baseline) with the paper's test protocol."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from swinir.errors import SwinIRError
from swinir.options import RestoreOptions

if TYPE_CHECKING:
    from torch import nn

EPILOG = """examples:
  # classical SR x2 on Set5 with the MATLAB LR images, as in the paper (Y channel, border = scale)
  swinir eval --task classical_sr --model classical-x2 --hr Set5/HR --lr Set5/LR_bicubic/X2 --scale 2
  # the same without --lr: LR made from HR by MATLAB-compatible bicubic
  swinir eval --model classical-x4 --hr Set5/HR --scale 4
  # the classic bicubic baseline (Set5 x4: 28.43 / 0.8111 on Y)
  swinir eval --task classical_sr --model bicubic --hr Set5/HR --scale 4
  # denoising and JPEG: degradation applied on the fly (seed 0 noise; OpenCV JPEG)
  swinir eval --task gray_dn --model denoise-gray-25 --hr Set12 --noise 25
  swinir eval --task jpeg_car --model jpeg-gray-10 --hr classic5 --jpeg 10 --save out/car10
  # real-world SR: no ground truth, outputs and side-by-side sheets are saved
  swinir eval --task real_sr --model realsr-x4 --hr RealSRSet+5images --save out/real --sheet

Writes <save>/results.json and results.csv with --save (or where --json / --csv say).
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from swinir.tasks import EVAL_TASKS

    p = subparsers.add_parser(
        "eval",
        help="evaluate a model with the paper's protocol (PSNR/SSIM/PSNR-B)",
        description="Evaluate a checkpoint (SwinIR, Swin2SR, ...), a zoo model or the bicubic baseline on a test "
        "folder, following the architecture's released test script exactly: MATLAB-bicubic LR, the script's "
        "padding to the window, seeded Gaussian noise, OpenCV JPEG, PSNR/SSIM on RGB and Y with border = scale. "
        "compressed_sr (Swin2SR): the LR is a JPEG (NAME.jpg in --lr, or the bicubic LR compressed at --jpeg).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--task", choices=EVAL_TASKS, help="protocol (default: what the model was built for)")
    p.add_argument("--model", required=True, help="zoo name, checkpoint path, or 'bicubic'")
    p.add_argument("--hr", metavar="DIR", help="ground-truth folder (for real_sr: the input folder)")
    p.add_argument("--lr", metavar="DIR", help="LR folder with NAMEx{scale}.ext (SR); default: MATLAB bicubic of HR")
    p.add_argument("--scale", type=int, help="SR scale (default: the model's)")
    p.add_argument(
        "--noise", type=float, help="Gaussian sigma on 0..255 for gray_dn/color_dn (default: the zoo model's)"
    )
    p.add_argument(
        "--jpeg",
        type=int,
        help="JPEG quality for jpeg_car/color_jpeg_car (default: the zoo model's), and for compressed_sr "
        "without --lr (the bicubic LR is compressed at this quality)",
    )
    p.add_argument("--ensemble", action="store_true", help="average 8 flips/rotations (x8 slower)")
    p.add_argument("--tile", type=int, help="restore in tiles of this many input pixels (saves memory)")
    p.add_argument("--tile-overlap", type=int, default=32, help="tile overlap in input pixels (default 32)")
    p.add_argument(
        "--precision",
        choices=("fp32", "bf16", "fp16"),
        default="fp32",
        help="compute precision (the paper's numbers are fp32)",
    )
    p.add_argument("--device", help="cpu, cuda, cuda:1, mps (default: best available)")
    p.add_argument("--limit", type=int, help="only the first N images (sorted by name)")
    p.add_argument("--save", metavar="DIR", help="save restored images (and results.json/csv) here")
    p.add_argument("--sheet", action="store_true", help="with --save: also write input | output | GT sheets")
    p.add_argument("--json", metavar="FILE", help="write the results as JSON here")
    p.add_argument("--csv", metavar="FILE", help="write the per-image table as CSV here")
    p.add_argument("--quiet", action="store_true", help="no progress bar; print only the averages")
    p.set_defaults(func=run)


def _zoo_entry(name: str):  # type: ignore[no-untyped-def]
    """The zoo entry for a model name, or None for paths and unknown names."""
    if Path(name).exists():
        return None
    try:
        from swinir import zoo

        return zoo.get(name) if zoo.is_known(name) else None
    except Exception:
        return None


# library parameter -> flag, for the one-line errors
FLAGS = {
    "tile": "--tile",
    "overlap": "--tile-overlap",
    "precision": "--precision",
    "scale": "--scale",
    "noise": "--noise",
    "jpeg": "--jpeg",
    "lr_dir": "--lr",
    "hr_dir": "--hr",
    "task": "--task",
}


def _options(args: argparse.Namespace) -> RestoreOptions:
    """The engine options of this evaluation; a bad value is one line naming the flag."""
    from swinir.cli.restore import build_options

    values = {"tile": args.tile or None, "overlap": args.tile_overlap, "ensemble": args.ensemble}
    return build_options(FLAGS, precision=args.precision, device=args.device, **values)


def _model_and_protocol(args: argparse.Namespace) -> tuple[Any, Any]:
    """The model (or the bicubic baseline) and the test protocol the arguments ask for."""
    from swinir.evaluate import BICUBIC, Protocol, task_for_model
    from swinir.tasks import DENOISE_TASKS, JPEG_TASKS, SR_TASKS, eval_task

    entry = _zoo_entry(args.model) if args.model != BICUBIC else None
    model: nn.Module | str
    if args.model == BICUBIC:
        model = BICUBIC
        task = args.task or "classical_sr"
        if task in SR_TASKS and args.scale is None:
            raise SwinIRError("the bicubic baseline needs --scale")
    else:
        import swinir

        loaded = swinir.load(args.model, device=args.device)
        model = loaded
        # a zoo name says what the model is for, where its weights cannot (Real-HAT-GAN reads as classical SR)
        named = eval_task(entry.task, loaded.in_chans) if entry is not None else None
        task = args.task or named or task_for_model(model)
        if task is None:
            raise SwinIRError(f"cannot tell the task of {args.model}; give --task")
    if task in SR_TASKS:
        scale = args.scale if args.scale is not None else int(getattr(model, "upscale", 0) or 0)
    else:
        scale = 1
    noise = args.noise if args.noise is not None else (entry.noise if entry is not None else None)
    jpeg = args.jpeg if args.jpeg is not None else (entry.jpeg_quality if entry is not None else None)
    protocol = Protocol(
        task,
        scale=scale,
        noise=noise if task in DENOISE_TASKS else None,
        jpeg=jpeg if task in (*JPEG_TASKS, "compressed_sr") else None,
    )
    return model, protocol


def run(args: argparse.Namespace) -> int:
    from swinir.evaluate import evaluate

    if args.sheet and not args.save:
        raise SwinIRError("--sheet needs --save DIR (the folder the sheets go to)")
    if args.tile is not None and args.tile < 0:
        raise SwinIRError(f"--tile must be positive, got {args.tile}")
    if args.limit is not None and args.limit < 1:
        raise SwinIRError(f"--limit must be at least 1, got {args.limit}")
    if args.hr is None and args.lr is None:
        raise SwinIRError("give the test folder with --hr DIR (for real_sr the inputs: --hr or --lr)")

    from swinir.cli.restore import flag_hints
    from swinir.io import SwinIRNotice

    options = _options(args)
    with flag_hints(FLAGS), warnings.catch_warnings(record=True) as caught:
        model, protocol = _model_and_protocol(args)
        warnings.simplefilter("always", SwinIRNotice)
        report = evaluate(
            model,
            args.hr,
            protocol,
            lr_dir=args.lr,
            limit=args.limit,
            model_name=args.model,
            options=options,
            save_dir=args.save,
            sheet=args.sheet,
            progress=not args.quiet,
        )
    for line in dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, SwinIRNotice)):
        print(f"notice: {line}", file=sys.stderr)
    table = report.table()
    if args.quiet:
        table = "\n".join(line for line in table.splitlines() if line.startswith("-- "))
    print(table)

    json_path = args.json or (str(Path(args.save) / "results.json") if args.save else None)
    csv_path = args.csv or (str(Path(args.save) / "results.csv") if args.save else None)
    if json_path:
        print(f"wrote {report.write_json(json_path)}", file=sys.stderr)
    if csv_path:
        print(f"wrote {report.write_csv(csv_path)}", file=sys.stderr)
    if args.save:
        print(f"restored images in {args.save}", file=sys.stderr)
    return 0
