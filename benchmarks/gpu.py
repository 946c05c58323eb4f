"""GPU inference against the hardware: ms/image, MP/s, achieved TFLOP/s and its fraction of the dense peak.

For each configuration, size and precision it times our model eager and captured (``swinir.capture``: a
CUDA graph per shape, or ``torch.compile`` with static shapes), in one process, alternating, after warm-ups.
FLOPs come from ``torch.utils.flop_counter`` on one forward at that size (matmuls, convolutions and
attention; element-wise work is not counted, so the fraction of peak is a floor). In fp32 the captured
output must equal the eager output with TF32 off (max |diff| is printed; the issue asks for <= 1e-6).

    python benchmarks/gpu.py --output benchmarks/results_gpu_inference.md          # the issue's table
    python benchmarks/gpu.py --folder 100 --output folder.md                      # + swinir restore on 100 images
    python benchmarks/gpu.py --device cpu --configs lightweight_x4 --sizes 32 --precisions fp32 --repeats 1 --capture compile --compile-backend aot_eager \
        --folder 2 --folder-side 32 --folder-config lightweight_x4  # a CPU rehearsal
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from swinir.capture import CapturedForward, resolve_capture
from swinir.model import SwinIR
from swinir.paths import released_configuration, shared_dir

CONFIGS = ("classical_x2", "real_L_x4", "lightweight_x4")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
# published dense peaks in TFLOP/s (fp32 without TF32, bf16 and fp16 tensor cores without sparsity)
PEAKS = {
    "H200": {"fp32": 67.0, "bf16": 989.0, "fp16": 989.0},
    "H100 80GB HBM3": {"fp32": 67.0, "bf16": 989.0, "fp16": 989.0},
    "H100 PCIe": {"fp32": 51.0, "bf16": 756.0, "fp16": 756.0},
    "A100": {"fp32": 19.5, "bf16": 312.0, "fp16": 312.0},
    "L4": {"fp32": 30.3, "bf16": 121.0, "fp16": 121.0},
}


def peak_for(device: torch.device, precision: str) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, table in PEAKS.items():
        if key in name:
            return table[precision]
    return None


def build(config: str, precision: str, device: torch.device) -> SwinIR:
    entry = released_configuration(config)
    torch.manual_seed(0)
    return SwinIR(**entry["config"]).eval().to(device=device, dtype=DTYPES[precision])


def count_flops(model: nn.Module, x: Tensor) -> int:
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        model(x)
    return int(counter.get_total_flops())


def timed(fn: Callable[[], Tensor], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - t0) * 1000


def bench(args: argparse.Namespace, device: torch.device) -> list[list[str]]:
    rows = []
    capture = resolve_capture(args.capture, device)
    for config in args.configs:
        for size in args.sizes:
            for prec in args.precisions:
                model = build(config, prec, device)
                x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0)).to(device, DTYPES[prec])
                flops = count_flops(model, x)
                captured = CapturedForward(model, capture, compile_backend=args.compile_backend)
                runs = {"eager": lambda m=model, x=x: m(x), f"captured ({capture})": lambda c=captured, x=x: c(x)}
                times: dict[str, list[float]] = {k: [] for k in runs}
                with torch.inference_mode():
                    outs = {k: fn() for k, fn in runs.items()}  # warm-up and capture
                    for _ in range(args.repeats):
                        for k, fn in runs.items():
                            times[k].append(timed(fn, device))
                diff = (outs["eager"].float() - outs[f"captured ({capture})"].float()).abs().max().item()
                peak = peak_for(device, prec)
                for k, ts in times.items():
                    ms = statistics.median(ts)
                    tflops = flops / (ms / 1000) / 1e12
                    rows.append(
                        [
                            config,
                            f"{size}x{size}",
                            prec,
                            k,
                            f"{ms:.2f}",
                            f"{size * size / ms / 1000:.3f}",
                            f"{flops / 1e9:.1f}",
                            f"{tflops:.2f}",
                            "-" if peak is None else f"{100 * tflops / peak:.1f}%",
                            f"{diff:.1e}" if k != "eager" else "-",
                        ]
                    )
                    print(" | ".join(rows[-1]), flush=True)
                del model, captured, outs
                if device.type == "cuda":
                    torch.cuda.empty_cache()
    return rows


def folder_throughput(n: int, side: int, config: str, device: torch.device, precision: str) -> str:
    """``swinir restore`` on ``n`` side x side images (flips/rotations/shifts of Set5 'baby', 512x512): what a
    user sees, process start and file decode/encode included."""
    import cv2
    import numpy as np

    import swinir

    root = shared_dir()
    assert root is not None
    baby = cv2.imread(str(root / "data" / "Set5" / "HR" / "baby.png"), cv2.IMREAD_COLOR)
    work = Path(tempfile.mkdtemp(prefix="swinir-folder-"))
    try:
        (work / "in").mkdir()
        for i in range(n):
            img = np.rot90(np.roll(baby, 7 * i, axis=1), i % 4)[:side, :side]
            cv2.imwrite(str(work / "in" / f"{i:03d}.png"), np.ascontiguousarray(img))
        swinir.save(build(config, "fp32", torch.device("cpu")), work / "model.pth")
        cmd = [
            sys.executable,
            "-m",
            "swinir",
            "restore",
            str(work / "in"),
            "-o",
            str(work / "out"),
            "--model",
            str(work / "model.pth"),
            "--device",
            str(device),
            "--precision",
            precision,
        ]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            return f"swinir restore failed: {proc.stderr.strip().splitlines()[-1:]}"
        done = len(list((work / "out").glob("*.png")))
        return (
            f"swinir restore, {done} images of {side}x{side}, {config}, {precision}: {wall:.1f} s in all "
            f"(process start, model load, decode, restore, encode) = {done / wall:.2f} images/s, "
            f"{done * side * side / wall / 1e6:.2f} MP/s (input)"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--configs", type=lambda s: s.split(","), default=list(CONFIGS))
    ap.add_argument("--sizes", type=lambda s: [int(v) for v in s.split(",")], default=[256, 512])
    ap.add_argument("--precisions", type=lambda s: s.split(","), default=["fp32", "bf16", "fp16"])
    ap.add_argument("--capture", default="auto", help="auto (graph on CUDA), graph, compile, off")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--compile-backend", default="inductor", help="with --capture compile (aot_eager: CPU rehearsal)")
    ap.add_argument("--folder", type=int, default=0, help="also time swinir restore on this many 512x512 images")
    ap.add_argument("--folder-side", type=int, default=512)
    ap.add_argument("--folder-config", default="classical_x2")
    ap.add_argument("--output", type=Path)
    args = ap.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False  # exact fp32 rows
        gpu = f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}, CUDA {torch.version.cuda}"
    else:
        gpu = f"{device} (rehearsal), torch {torch.__version__}"
    header = [
        "configuration",
        "input",
        "precision",
        "path",
        "ms/image",
        "MP/s",
        "GFLOP",
        "TFLOP/s",
        "of dense peak",
        "max abs diff vs eager",
    ]
    print(f"# {gpu}; median of {args.repeats}; TF32 off\n" + " | ".join(header), flush=True)
    rows = bench(args, device)
    lines = [
        f"{gpu}; median of {args.repeats}; TF32 off.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ] + ["| " + " | ".join(r) + " |" for r in rows]
    if args.folder:
        prec = "bf16" if device.type == "cuda" else "fp32"
        lines += ["", folder_throughput(args.folder, args.folder_side, args.folder_config, device, prec)]
        print(lines[-1])
    if args.output:
        args.output.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
