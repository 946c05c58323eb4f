"""`swinir export`: write a checkpoint as an ONNX graph with dynamic batch, height and width."""

from __future__ import annotations

import argparse
import sys
import time

from swinir.errors import SwinIRError

EPILOG = """examples:
  swinir export 001_classicalSR_DIV2K_s48w8_SwinIR-M_x2.pth --onnx swinir_x2.onnx
  swinir export classical-x4 --onnx x4.onnx --opset 18
  swinir export runs/x4/best.safetensors --onnx x4.onnx --verify-sizes 40x56 96x64

The graph takes (N, C, H, W) float32 in [0, 1] with any N and any H, W of at least one window (8, or 7 for
the JPEG models) and returns (N, C, H*scale, W*scale). It is checked with onnxruntime against PyTorch
(max abs difference <= 1e-4) before it is written.
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "export",
        help="export a model to ONNX (dynamic batch, height and width)",
        description="Export a SwinIR checkpoint (file or zoo name) to ONNX through torch.export, with dynamic "
        "batch, height and width, and verify the graph with onnxruntime at two sizes.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", metavar="MODEL", help="checkpoint file (.pth/.safetensors) or model-zoo name")
    p.add_argument("--onnx", required=True, metavar="OUT.onnx", help="output file (written atomically)")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset, 18..25 (default 18)")
    p.add_argument(
        "--verify-sizes",
        nargs="*",
        default=["37x29", "64x48"],
        metavar="HxW",
        help="input sizes checked with onnxruntime against PyTorch (default: 37x29 64x48; none: skip)",
    )
    p.add_argument("--tolerance", type=float, default=1e-4, help="largest accepted abs difference (default 1e-4)")
    p.set_defaults(func=run)


def _size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise SwinIRError(f"--verify-sizes: {text!r} is not HxW (e.g. 64x48)") from None
    return h, w


def run(args: argparse.Namespace) -> int:
    import swinir
    from swinir.export import DEFAULT_OPSET, check_opset, export_onnx

    opset = DEFAULT_OPSET if args.opset is None else args.opset
    check_opset(opset)  # before the model loads
    sizes = [_size(s) for s in args.verify_sizes]
    model = swinir.load(args.model, device="cpu")
    t0 = time.perf_counter()
    print(f"exporting {model.spec.describe()} ...", flush=True)

    def progress(stage: str) -> None:
        print(f"  [{time.perf_counter() - t0:4.0f} s] {stage} ...", file=sys.stderr, flush=True)

    report = export_onnx(
        model,
        args.onnx,
        opset=opset,
        verify_sizes=sizes,
        tolerance=args.tolerance,
        progress=progress,
    )
    checked = ", ".join(f"{h}x{w}: {d:.1e}" for (h, w), d in report.max_abs_diff.items()) or "not checked"
    print(
        f"wrote {report.path} (opset {report.opset}, inputs >= {report.min_side}x{report.min_side}, "
        f"{time.perf_counter() - t0:.0f} s); onnxruntime vs PyTorch max abs diff {checked}"
    )
    return 0
