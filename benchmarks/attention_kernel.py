"""A/B of the CPU window-attention kernel's two paths, per call and in a whole forward (session 10).

"old" is the path before session 10: the row-wise kernel (``kernels.TRANSPOSED_HEAD_DIM = 0``) and, under
bf16 linears, qkv converted with ``.float()`` and the fp32 result cast for the output projection
(``cpu.KERNEL_BF16_IO = False``). "new" is the default: the transposed kernel, reading bf16 qkv and writing
bf16. Per call: one chunk of windows (2048 tokens) with four shift-mask groups, at the head dims of the
shipped and released models. Whole model: the built-in model's forward, fp32 and under bf16 autocast.
Old and new alternate in one process (the order flips every repeat); the figure is the median of process
CPU time at one thread (the machine this was written on is shared, so wall time would measure the others).

    python benchmarks/attention_kernel.py
    ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 ATEN_CPU_CAPABILITY=avx2 SWINIR_CPU_ISA=avx2 \\
        python benchmarks/attention_kernel.py
    python benchmarks/attention_kernel.py --small      # a smoke run (CI)
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator

import torch

from swinir import checkpoint, kernels
from swinir.model import cpu

# (heads, head dim): builtin-x4 and the lightweight models, the M models, the largest head the kernel takes
SHAPES = ((4, 12), (6, 10), (6, 30), (6, 32))
WINDOW_TOKENS = 64
WINDOWS_PER_CALL = 32  # 2048 tokens, one chunk of the CPU path


@contextlib.contextmanager
def path(new: bool) -> Iterator[None]:
    """The kernel's path before session 10 (``new=False``) or now, for the block."""
    before = kernels.TRANSPOSED_HEAD_DIM, cpu.KERNEL_BF16_IO
    kernels.TRANSPOSED_HEAD_DIM = before[0] if new else 0
    cpu.KERNEL_BF16_IO = new
    try:
        yield
    finally:
        kernels.TRANSPOSED_HEAD_DIM, cpu.KERNEL_BF16_IO = before


def alternate(old: Callable[[], object], new: Callable[[], object], repeats: int, calls: int) -> tuple[float, float]:
    """Median seconds per call of ``old`` and ``new``, run alternately (the order flips every repeat)."""
    times: dict[bool, list[float]] = {False: [], True: []}
    for r in range(repeats):
        for is_new in (True, False) if r % 2 else (False, True):
            fn = new if is_new else old
            with path(is_new):
                t0 = time.process_time()
                for _ in range(calls):
                    fn()
                times[is_new].append((time.process_time() - t0) / calls)
    return statistics.median(times[False]), statistics.median(times[True])


def per_call(heads: int, d: int, repeats: int, calls: int) -> str:
    n, windows = WINDOW_TOKENS, WINDOWS_PER_CALL
    g = torch.Generator().manual_seed(d)
    qkv = torch.randn(windows, n, 3 * heads * d, generator=g)
    bias = torch.randn(4, heads, n, n, generator=g)
    bias[1:, :, : n // 2, n // 2 :] = -100.0  # the shift mask's value
    group_end = torch.tensor([8, 16, 24, windows])
    scale = d**-0.5
    half = qkv.bfloat16()
    bias_t = bias.transpose(-1, -2).contiguous()  # made once per block in the model; dropped on the old path

    def fp32() -> None:
        out = torch.empty(windows, n, heads * d)
        kernels.window_attention(qkv, bias, group_end, 0, out, heads, scale, bias_t)

    def bf16_old() -> None:  # as the model ran it: a fp32 copy of qkv, the fp32 kernel, a cast of the result
        out = torch.empty(windows, n, heads * d)
        kernels.window_attention(half.float(), bias, group_end, 0, out, heads, scale, bias_t)
        out.bfloat16()

    def bf16_new() -> None:
        out = torch.empty(windows, n, heads * d, dtype=torch.bfloat16)
        kernels.window_attention(half, bias, group_end, 0, out, heads, scale, bias_t)

    old32, new32 = alternate(fp32, fp32, repeats, calls)
    old16, new16 = alternate(bf16_old, bf16_new, repeats, calls)
    flops = 4 * n * n * d * heads * windows
    return (
        f"| {heads} x {d} | {old32 * 1e6:.0f} | {new32 * 1e6:.0f} | {old32 / new32:.2f}x | "
        f"{flops / old32 / 1e9:.0f} -> {flops / new32 / 1e9:.0f} | {old16 * 1e6:.0f} | {new16 * 1e6:.0f} | "
        f"{old16 / new16:.2f}x |"
    )


def whole_model(name: str, size: int, repeats: int) -> list[str]:
    model = checkpoint.load(name)
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    rows = []
    for bf16 in (False, True):

        def forward(bf16: bool = bf16) -> torch.Tensor:
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                return model(x).float()

        with path(False):
            before = forward()
        with path(True):
            after = forward()
        old, new = alternate(forward, forward, repeats, 1)
        precision = "bf16 autocast" if bf16 else "fp32"
        diff = (before - after).abs().max().item()
        rows.append(f"| {name} {size}x{size} | {precision} | {old:.3f} | {new:.3f} | {old / new:.2f}x | {diff:.1e} |")
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=21)
    ap.add_argument("--model", default="builtin-x4")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--small", action="store_true", help="one shape, a 32x32 input, 3 repeats (smoke run)")
    args = ap.parse_args(argv)
    if not kernels.available():
        print(f"the CPU kernels are not in use here: {kernels.status()}")
        return 1
    torch.set_num_threads(1)
    shapes, size = (SHAPES[:1], 32) if args.small else (SHAPES, args.size)
    repeats = 3 if args.small else args.repeats
    print(f"# {kernels.status()}; one thread, process CPU time; load average {os.getloadavg()[0]:.2f} at start")
    print(
        "| heads x d | fp32 old us | fp32 new us | fp32 old/new | GFLOP/s | bf16 old us | bf16 new us | bf16 old/new |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for heads, d in shapes:
        print(per_call(heads, d, repeats, 2 if args.small else 10), flush=True)
    print()
    print("| model | precision | old s | new s | old/new | max abs old-new |")
    print("|---|---|---|---|---|---|")
    for row in whole_model(args.model, size, max(1, repeats // 3)):
        print(row, flush=True)
    print(f"# load average {os.getloadavg()[0]:.2f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
