"""A/B of the chunks' pre-norms: PyTorch's LayerNorm (+ the cast a bf16 linear makes) against swinir's C kernel.

One process, alternating A and B, the median over ``--repeats`` of process CPU time at one thread (wall time
at more). Per call: ``rows x C`` fp32 rows to fp32, and to bf16 (PyTorch: ``F.layer_norm(x).to(bf16)``, the
two passes the chunked path made under bf16 autocast). Whole forwards: builtin-x4 (or a released
configuration) in fp32 and under bf16 autocast with ``swinir.model.cpu.LAYER_NORM_KERNEL`` off and on.

    python benchmarks/layer_norm.py --threads 1 --repeats 7
    ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 ATEN_CPU_CAPABILITY=avx2 SWINIR_CPU_ISA=avx2 \\
        python benchmarks/layer_norm.py --threads 1 --repeats 7
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import swinir
from inference import cpu_setting, machine, test_image
from swinir import kernels
from swinir.paths import released_configurations


def _faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def ab(
    a: Callable[[], object], b: Callable[[], object], repeats: int, inner: int, timer: Callable[[], float]
) -> tuple[float, float, str, float, float]:
    """Median seconds per call of a and of b, alternating; and their page faults per call (a fresh multi-MB
    output that glibc maps from the OS costs a fault per 4 KiB page, which can outweigh the arithmetic)."""
    ta: list[float] = []
    tb: list[float] = []
    faults = [0, 0]
    a(), b()
    for _ in range(repeats):
        for k, (fn, acc) in enumerate(((a, ta), (b, tb))):
            f0, t0 = _faults(), timer()
            for _ in range(inner):
                fn()
            acc.append((timer() - t0) / inner)
            faults[k] += _faults() - f0
    per = repeats * inner
    faults_text = f"{faults[0] / per:.0f} / {faults[1] / per:.0f}"
    return statistics.median(ta), statistics.median(tb), faults_text, min(ta), min(tb)


def _torch_ln(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, dt: torch.dtype) -> torch.Tensor:
    return F.layer_norm(x, (x.shape[-1],), w, b, 1e-5).to(dt)


def per_call(shapes: list[tuple[int, int]], repeats: int, timer: Callable[[], float]) -> None:
    print("| rows x C | in -> out | PyTorch us | kernel us | speed-up | max abs diff | page faults / call |")
    print("|---|---|---|---|---|---|---|")
    f32, bf16 = torch.float32, torch.bfloat16
    for rows, c in shapes:
        g = torch.Generator().manual_seed(c)
        x32 = torch.randn(rows, c, generator=g)
        w, b = torch.randn(c, generator=g), torch.randn(c, generator=g)
        # fp32 -> bf16: PyTorch's LayerNorm, then the cast; bf16 -> bf16: PyTorch's bf16 LayerNorm (one pass)
        for x, dt in ((x32, f32), (x32, bf16), (x32.to(bf16), bf16)):
            torch_ln = functools.partial(_torch_ln, x, w, b, dt)
            kernel_ln = functools.partial(kernels.layer_norm, x, w, b, 1e-5, dt)

            diff = (torch_ln().float() - kernel_ln().float()).abs().max().item()
            inner = max(1, 2_000_000 // (rows * c))
            ta, tb, faults, _, _ = ab(torch_ln, kernel_ln, repeats, inner, timer)
            io = f"{str(x.dtype)[6:]} -> {str(dt)[6:]}"
            print(f"| {rows} x {c} | {io} | {1e6 * ta:.1f} | {1e6 * tb:.1f} | {ta / tb:.2f}x | {diff:.1e} | {faults} |")


def load(model: str) -> swinir.model.Restorer:  # type: ignore[name-defined]
    if model.startswith("builtin"):
        return swinir.load(model, device="cpu")
    torch.manual_seed(0)
    return swinir.SwinIR(**released_configurations()[model]["config"]).eval()


def _forward(model: torch.nn.Module, x: torch.Tensor, amp: bool, kernel: bool) -> torch.Tensor:
    ctx = torch.autocast("cpu", torch.bfloat16) if amp else contextlib.nullcontext()
    with cpu_setting(LAYER_NORM_KERNEL=kernel), torch.inference_mode(), ctx:
        out: torch.Tensor = model(x)
    return out


def whole(model_name: str, size: int, precisions: list[str], repeats: int, timer: Callable[[], float]) -> None:
    model = load(model_name)
    x = test_image(size, 3)
    print(
        "| model | input | precision | LN off ms | LN kernel ms | speed-up | min: off / kernel ms | max abs diff | faults / call |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for precision in precisions:
        amp = precision == "bf16"

        off = functools.partial(_forward, model, x, amp, False)
        on = functools.partial(_forward, model, x, amp, True)
        diff = (off().float() - on().float()).abs().max().item()
        ta, tb, faults, ma, mb = ab(off, on, repeats, 1, timer)
        print(
            f"| {model_name} | {size}x{size} | {'bf16 autocast' if amp else 'fp32'} | {1e3 * ta:.0f} | {1e3 * tb:.0f} | {ta / tb:.3f}x | {1e3 * ma:.0f} / {1e3 * mb:.0f} | "
            f"{diff:.1e} | {faults} |"
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", nargs="*", default=["4096x48", "4096x180", "4096x60", "2048x48"])
    ap.add_argument("--model", default="builtin-x4")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--precisions", nargs="*", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    ap.add_argument("--skip-model", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    timer = time.process_time if args.threads == 1 else time.perf_counter
    if not kernels.available():
        raise SystemExit(f"the C kernels are not in use here: {kernels.status()}")
    load_avg = " / ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"# {machine()}; {kernels.status()}; {args.threads} thread(s); load average {load_avg}")
    shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes]
    per_call(shapes, args.repeats, timer)  # type: ignore[arg-type]
    if not args.skip_model:
        whole(args.model, args.size, args.precisions, args.repeats, timer)
    print(f"# load average at the end {' / '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
