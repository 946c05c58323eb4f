"""A/B of the CPU path's switches on the released shapes: one process, alternating, same weights and input.

Each variant is one setting of a module-level switch in ``swinir.model.cpu`` (or the kernels switched off);
the figures are the median / minimum over ``--repeats`` alternating runs of process CPU time (1 thread) or wall time.
It decides defaults that depend on the CPU, e.g. whether oneDNN's GELU post-op beats PyTorch's GELU after
the GEMM (only in oneDNN's AVX-512 code), and whether chunked blocks pay without the C attention kernel
(the ARM/macOS path).

    python benchmarks/levers.py --threads 1 --repeats 5
    ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 ATEN_CPU_CAPABILITY=avx2 SWINIR_CPU_ISA=avx2 \\
        python benchmarks/levers.py --threads 1 --repeats 5
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from inference import cpu_setting, machine, test_image
from swinir import kernels
from swinir.model import SwinIR, cpu
from swinir.paths import released_configurations


@contextlib.contextmanager
def no_kernels(**values: object) -> Iterator[None]:
    with kernels.disabled(), cpu_setting(**values):
        yield


VARIANTS: dict[str, Callable[[], contextlib.AbstractContextManager[None]]] = {
    "default": contextlib.nullcontext,
    # the other GELU placement than this CPU's default (post-op on AVX-512, after the GEMM elsewhere)
    "GELU placement flipped": lambda: cpu_setting(FUSE_GELU=not cpu.FUSE_GELU),
    # oneDNN-reordered linear weights on where they are off and off where they are on (on with AVX-512 code)
    "weight prepacking flipped": lambda: cpu_setting(
        PREPACK_WEIGHTS=not cpu.PREPACK_WEIGHTS and cpu.ONEDNN_LINEAR and cpu._onednn_prepack_ok()
    ),
    # one thread's chunks of the M/L models: 2048 tokens where the default is 1024, and the other way round
    "one-thread chunk flipped": lambda: cpu_setting(CPU_CHUNK_MIN_TOKENS=0 if cpu.CPU_CHUNK_MIN_TOKENS else 2048),
    # fp32 proj and fc2: the residual by oneDNN's binary post-op instead of added after the inner product
    "residual by post-op": lambda: cpu_setting(RESIDUAL_POSTOP=True),
    # where the GELU runs after fc1's GEMM (AVX2 code): PyTorch's instead of the C kernel
    "GELU by PyTorch": lambda: cpu_setting(GELU_KERNEL=False),
    # session 10's fp32 path: residuals by the post-op, PyTorch's GELU, no fused adds
    "session 10 path": lambda: cpu_setting(
        RESIDUAL_POSTOP=True, GELU_KERNEL=False, ADD_NORM_KERNEL=False, ADD_ROWS_KERNEL=False
    ),
    # the residual adds apart from norm2 and from the put into the block's output (add, then norm / copy)
    "residual adds unfused": lambda: cpu_setting(ADD_NORM_KERNEL=False, ADD_ROWS_KERNEL=False),
    "attention by SDPA (Winograd kept)": lambda: cpu_setting(ATTENTION_KERNEL=False),
    "pre-norms by PyTorch's LayerNorm": lambda: cpu_setting(LAYER_NORM_KERNEL=False),
    "kernels off, chunked (SDPA)": lambda: no_kernels(CHUNKED_WITHOUT_KERNEL=True),
    "kernels off, whole-size blocks": lambda: no_kernels(CHUNKED_WITHOUT_KERNEL=False),
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", nargs="*", default=["classical_x2:64", "lightweight_x4:128", "real_L_x4:64"])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--variants", nargs="*", default=list(VARIANTS), help="which variants to run (default: all)")
    args = ap.parse_args(argv)
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        ap.error(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
    variants = {"default": VARIANTS["default"], **{v: VARIANTS[v] for v in args.variants}}
    torch.set_num_threads(args.threads)
    timer = time.process_time if args.threads == 1 else time.perf_counter
    released = released_configurations()
    defaults = f"FUSE_GELU {cpu.FUSE_GELU}, PREPACK_WEIGHTS {cpu.PREPACK_WEIGHTS}, CPU_CHUNK_MIN_TOKENS {cpu.CPU_CHUNK_MIN_TOKENS}"
    defaults += f", RESIDUAL_POSTOP {cpu.RESIDUAL_POSTOP}, ADD_NORM_KERNEL {cpu.ADD_NORM_KERNEL}"
    defaults += f", ADD_ROWS_KERNEL {cpu.ADD_ROWS_KERNEL}, GELU_KERNEL {cpu.GELU_KERNEL}"
    print(f"# {machine()}; {kernels.status()}; defaults: {defaults}")
    print("| case | " + " | ".join(f"{v} ms (median / min)" for v in variants) + " |")
    print("|---|" + "---|" * len(variants))
    for case in args.cases:
        name, size = case.split(":")
        torch.manual_seed(0)
        model = SwinIR(**released[name]["config"]).eval()
        x = test_image(int(size), released[name]["config"]["in_chans"])
        times: dict[str, list[float]] = {v: [] for v in variants}
        outs = {}
        with torch.inference_mode():
            for v, ctx in variants.items():
                with ctx():
                    outs[v] = model(x)
            for _ in range(args.repeats):
                for v, ctx in variants.items():
                    with ctx():
                        t0 = timer()
                        model(x)
                        times[v].append(timer() - t0)
        diff = max((o - outs["default"]).abs().max().item() for o in outs.values())
        cells = [f"{1000 * statistics.median(t):.0f} / {1000 * min(t):.0f}" for t in times.values()]
        print(f"| {name} {size}x{size} | " + " | ".join(cells) + f" |  (max diff between variants {diff:.1e})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
