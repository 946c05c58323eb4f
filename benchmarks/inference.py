"""Inference speed, memory and equality: swinir's SwinIR against a peer implementation, side by side.

The peer is spandrel's SwinIR (``pip install -e .[bench]``), a faithful copy of the original architecture.
spandrel's package imports torchvision and einops at import time, which do not import beside this torch,
so its SwinIR module is loaded on its own through a small import shim here (benchmark only). Without
spandrel, the peer is ``swinir.reference.ReferenceSwinIR``, our plain step-by-step copy of the original
forward, and the table says so.

Both implementations get the same random weights with the released shapes (configurations from
``shared/golden/released_state_dicts.json``) and the same input (a crop of Set5 'baby' when the shared data
is there, else uniform noise). They run in one process, alternating, after one warm-up run each; the
median of ``--repeats`` runs is reported, as process CPU time by default (one thread): on a machine shared
with other jobs, as this one is, wall time mostly measures the other jobs. Peak memory is the largest resident-set growth during the
warm-up forward, sampled every millisecond after returning freed heap to the OS (torch's allocations do
not show in tracemalloc). ``max |diff|`` and PSNR are against the peer's fp32 output.

    python benchmarks/inference.py                      # the README's table (~4 min on one core)
    python benchmarks/inference.py --threads 2 --clock wall   # on a quiet machine
    python benchmarks/inference.py --small              # one configuration, one small size (CI smoke)
    python benchmarks/inference.py --configs classical_x2 --sizes 128 --compile
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import importlib
import importlib.util
import math
import os
import platform
import statistics
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from swinir import architectures, kernels
from swinir.errors import SwinIRError
from swinir.model import cpu, flops, native_bf16
from swinir.model.shared import Restorer
from swinir.paths import released_configurations, shared_dir
from swinir.spec import ModelSpec

# (released configuration, input side) of the table in the README: issue 13's seven cases, at sizes where the
# original takes 3-11 s per image on one core, so that one table fits in ~4 minutes
FULL = (
    ("classical_x2", 64),
    ("classical_x2", 128),
    ("lightweight_x2", 128),
    ("lightweight_x4", 128),
    ("color_dn", 96),
    ("color_dn", 128),
    ("real_L_x4", 64),
)
# the earlier sessions' sizes (the original takes up to a minute per 256x256 image on one core)
LARGE = (("classical_x2", 128), ("classical_x2", 256), ("lightweight_x4", 256), ("color_dn", 256), ("real_L_x4", 128))
SMALL = (("lightweight_x4", 32),)
# the family's rows (--family): Swin2SR-M (the classical x2 release's configuration) and HAT (the x4 release's)
# against spandrel's copies
FAMILY_CASES = (("swin2sr_classical_x2", 64), ("swin2sr_classical_x2", 128), ("hat_x4", 64), ("hat_x4", 128))
# our configuration names -> the family manifest's release names (golden/family/released_state_dicts.json)
FAMILY_RELEASES = {
    "swin2sr_classical_x2": "Swin2SR_ClassicalSR_X2_64",
    "swin2sr_classical_x4": "Swin2SR_ClassicalSR_X4_64",
    "swin2sr_lightweight_x2": "Swin2SR_Lightweight_X2_64",
    "swin2sr_compressed_x4": "Swin2SR_CompressedSR_X4_48",
    "swin2sr_real_x4": "Swin2SR_RealworldSR_X4_64_BSRGAN_PSNR",
    "swin2sr_jpeg_gray": "Swin2SR_Jpeg_dynamic",
    "hat_s_x4": "HAT-S_SRx4",
    "hat_x2": "HAT_SRx2",
    "hat_x4": "HAT_SRx4",
    "hat_l_x4": "HAT-L_SRx4_ImageNet-pretrain",
}
# spandrel's module and class of each architecture's copy of the authors' network
SPANDREL_CLASSES = {"swinir": ("SwinIR", "SwinIR"), "swin2sr": ("Swin2SR", "Swin2SR"), "hat": ("HAT", "HAT")}
LABELS = {
    "classical_x2": "classical SR x2 (M)",
    "lightweight_x2": "lightweight SR x2",
    "lightweight_x4": "lightweight SR x4",
    "color_dn": "color denoising (M)",
    "real_L_x4": "real-world SR x4 (L)",
    "swin2sr_classical_x2": "Swin2SR-M classical SR x2",
    "swin2sr_classical_x4": "Swin2SR-M classical SR x4",
    "swin2sr_lightweight_x2": "Swin2SR lightweight SR x2",
    "swin2sr_compressed_x4": "Swin2SR compressed SR x4",
    "swin2sr_real_x4": "Swin2SR real-world SR x4",
    "swin2sr_jpeg_gray": "Swin2SR gray JPEG",
    "hat_s_x4": "HAT-S SR x4",
    "hat_x2": "HAT SR x2",
    "hat_x4": "HAT SR x4",
    "hat_l_x4": "HAT-L SR x4",
}


# -- the peer -----------------------------------------------------------------------------------------
def load_spandrel_swinir(architecture: str = "swinir") -> tuple[type[nn.Module], str] | None:
    """spandrel's copy of an architecture's network class without importing spandrel/__init__ (which pulls
    in torchvision, einops)."""
    if "spandrel" in sys.modules:  # the bare package this shim registered for another architecture
        root = Path(list(sys.modules["spandrel"].__path__)[0])
    else:
        spec = importlib.util.find_spec("spandrel")
        if spec is None or spec.origin is None:
            return None
        root = Path(spec.origin).parent
    package, cls_name = SPANDREL_CLASSES[architecture]
    try:
        if "spandrel" not in sys.modules:
            pkg = types.ModuleType("spandrel")
            pkg.__path__ = [str(root)]  # a bare namespace: submodules import, __init__ does not run
            sys.modules["spandrel"] = pkg
        name = f"spandrel.architectures.{package}"
        if name not in sys.modules:
            importlib.import_module("spandrel.architectures")
            sub = types.ModuleType(name)
            sub.__path__ = [str(root / "architectures" / package)]
            sys.modules[name] = sub
        cls = getattr(importlib.import_module(f"{name}.__arch.{package}"), cls_name)
    except Exception as exc:
        fallback = "swinir.reference" if architecture == "swinir" else f"none: no {architecture} rows"
        print(
            f"# spandrel's {package} did not import ({type(exc).__name__}: {exc}); peer = {fallback}",
            file=sys.stderr,
        )
        return None
    from importlib.metadata import version

    return cls, f"spandrel {version('spandrel')}"


def peer_class(choice: str, architecture: str = "swinir") -> tuple[Callable[..., nn.Module], str]:
    if choice in ("auto", "spandrel") or architecture != "swinir":
        found = load_spandrel_swinir(architecture)
        if found is not None:
            return found
        if choice == "spandrel" or architecture != "swinir":
            raise SystemExit(
                f"spandrel (the peer of the {architecture} rows) is not installed or does not import: "
                "pip install --no-deps spandrel==0.4.2"
            )
    from swinir.reference import ReferenceSwinIR

    return ReferenceSwinIR, "swinir.reference"


# -- measuring ------------------------------------------------------------------------------------------
def _trim_heap() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_growth(fn: Callable[[], Tensor]) -> tuple[Tensor, int]:
    """Run ``fn`` once; return its output and the largest RSS growth seen (bytes, 1 ms sampling)."""
    _trim_heap()
    base = _rss()
    peak = [base]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss())
            time.sleep(0.001)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    try:
        out = fn()
    finally:
        done.set()
        t.join()
    return out, max(peak[0], _rss()) - base


@dataclass
class Row:
    impl: str
    config: str
    size: int
    precision: str
    ms: float
    wall_ms: float
    mps: float
    peak_mib: float
    diff: float
    psnr: float
    speedup: float
    speedup_same: float | None = None  # against the peer in the same reduced precision
    finite: bool = True
    gflops: float = 0.0  # the model's FLOPs (swinir.model.flops) per second of ms/image
    of_peak: float = 0.0  # gflops / the SGEMM peak measured in the same run (between this case's repeats)
    peak: float = math.nan  # that SGEMM peak, GFLOP/s

    def cells(self) -> list[str]:
        psnr = "inf" if math.isinf(self.psnr) else f"{self.psnr:.1f}"
        ms = f"{self.ms:.0f}" if self.ms >= 100 else f"{self.ms:.2f}"
        wall = f"{self.wall_ms:.0f}" if self.wall_ms >= 100 else f"{self.wall_ms:.2f}"
        return [
            self.impl,
            LABELS.get(self.config, self.config),
            f"{self.size}x{self.size}",
            self.precision,
            ms,
            wall,
            f"{self.mps:.4f}",
            f"{self.peak_mib:.0f}",
            f"{self.diff:.1e}" if self.finite else "NON-FINITE",
            psnr,
            f"{self.speedup:.2f}x",
            "-" if self.speedup_same is None else f"{self.speedup_same:.2f}x",
            f"{self.gflops:.1f}",
            f"{self.peak:.0f}",
            f"{100 * self.of_peak:.0f}%",
        ]


HEADER = [
    "implementation",
    "configuration",
    "input",
    "precision",
    "ms/image",
    "wall ms",
    "MP/s (input)",
    "peak MiB",
    "max abs diff",
    "PSNR dB",
    "vs peer fp32",
    "vs peer same precision",
    "GFLOP/s",
    "SGEMM peak",
    "of SGEMM peak",
]


def sgemm_peak(clock: str, n: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of one large fp32 matmul (n x n x n) on this machine and thread count, best of ``repeats``:
    the ceiling the model's GEMM-shaped work could reach here."""
    a, b = torch.rand(n, n), torch.rand(n, n)
    timer = time.process_time if clock == "cpu" else time.perf_counter
    torch.mm(a, b)
    best = math.inf
    for _ in range(repeats):
        t0 = timer()
        torch.mm(a, b)
        best = min(best, timer() - t0)
    return 2 * n**3 / best / 1e9


def _psnr(a: Tensor, b: Tensor) -> float:
    mse = ((a.float() - b.float()) ** 2).mean().item()
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def test_image(size: int, chans: int) -> Tensor:
    root = shared_dir()
    path = root / "data" / "Set5" / "HR" / "baby.png" if root else None
    if path is not None and path.is_file():
        import cv2

        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is not None and min(bgr.shape[:2]) >= size:
            y0, x0 = (bgr.shape[0] - size) // 2, (bgr.shape[1] - size) // 2
            crop = bgr[y0 : y0 + size, x0 : x0 + size]
            if chans == 1:
                crop = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)[..., None]
            else:
                crop = crop[..., ::-1]
            return torch.from_numpy(crop.copy()).permute(2, 0, 1)[None].float() / 255.0
    return torch.rand(1, chans, size, size, generator=torch.Generator().manual_seed(0))


@contextlib.contextmanager
def cpu_setting(**values: object) -> Iterator[None]:
    """Module-level switches of ``swinir.model.cpu`` set for the block, restored after it."""
    before = {k: getattr(cpu, k) for k in values}
    for k, v in values.items():
        setattr(cpu, k, v)
    try:
        yield
    finally:
        for k, v in before.items():
            setattr(cpu, k, v)


def released_configs() -> dict[str, dict]:
    """SwinIR's released configurations by name, and the family's under ``FAMILY_RELEASES``' names (each
    entry with its ``architecture``)."""
    configs = released_configurations()
    try:
        releases = released_configurations(family=True)
    except SwinIRError:  # an older shared folder without the family's manifest
        releases = {}
    configs.update({ours: releases[theirs] for ours, theirs in FAMILY_RELEASES.items() if theirs in releases})
    return configs


def build_pair(entry: dict, peer_cls: Callable[..., nn.Module]) -> tuple[nn.Module, Restorer]:
    """The peer with seeded random weights, and ours (built through the registry) with exactly those weights."""
    torch.manual_seed(0)
    peer = peer_cls(**entry["config"]).eval()
    arch = entry.get("architecture", "swinir")
    ours = architectures.build(ModelSpec.from_kwargs(entry["config"], arch)).eval()
    missing, unexpected = ours.load_state_dict(peer.state_dict(), strict=False)
    if missing or unexpected:
        raise SystemExit(f"weights do not transfer: missing {missing[:3]}, unexpected {unexpected[:3]}")
    want = {k: tuple(v) for k, v in entry["state_dict"].items()}
    got = {k: tuple(v.shape) for k, v in peer.state_dict().items() if k in want}
    if got != {k: v for k, v in want.items() if k in got} or not set(ours.state_dict()) <= set(want):
        raise SystemExit("model shapes differ from the released state dict")
    return peer, ours


DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def _cast(model: nn.Module, prec: str) -> nn.Module:
    import copy

    return model if prec == "fp32" else copy.deepcopy(model).to(DTYPES[prec])


def bench_case(
    name: str,
    size: int,
    entry: dict,
    peer_cls: Callable[..., nn.Module],
    peer_name: str,
    precisions: list[str],
    repeats: int,
    compile_: bool,
    peer_precisions: list[str],
    clock: str,
    device: torch.device,
    without_kernels: bool = False,
    peak: float = math.nan,
) -> list[Row]:
    peer, ours = build_pair(entry, peer_cls)
    peer, ours = peer.to(device), ours.to(device)
    x = test_image(size, entry["config"]["in_chans"]).to(device)
    runs: dict[str, tuple[str, str, Callable[[], Tensor]]] = {}  # key -> (impl, precision, fn)

    def add(key: str, impl: str, prec: str, model: Callable[[Tensor], Tensor]) -> None:
        xp = x.to(DTYPES[prec])
        runs[key] = (impl, prec, lambda: model(xp))

    def autocast(model: nn.Module, prec: str) -> Callable[[Tensor], Tensor]:
        def run() -> Tensor:
            with torch.autocast(device.type, dtype=DTYPES[prec]):
                return model(x)

        return run

    add("peer", peer_name, "fp32", peer)
    for prec in precisions:
        add(f"ours_{prec}", "swinir", prec, _cast(ours, prec))
        if prec in peer_precisions and prec != "fp32":
            # the peer's shift mask is built in float32 at run time, so its weights cannot simply be cast
            # (a dtype error in attn @ v): it runs under autocast, as its users run it in reduced precision
            runs[f"peer_{prec}"] = (peer_name, f"{prec} autocast", autocast(peer, prec))
    if without_kernels and device.type == "cpu" and kernels.available():

        def plain() -> Tensor:
            with kernels.disabled():
                return ours(x)

        def whole() -> Tensor:
            with kernels.disabled(), cpu_setting(CHUNKED_WITHOUT_KERNEL=False):
                return ours(x)

        runs["ours_plain"] = ("swinir, CPU kernels off (chunked, SDPA)", "fp32", plain)
        runs["ours_whole"] = ("swinir, CPU kernels off, whole-size blocks", "fp32", whole)
    if compile_:
        compiled = torch.compile(ours, dynamic=False)
        runs["ours_compiled"] = ("swinir + torch.compile", "fp32", lambda: compiled(x))

    cuda = device.type == "cuda"
    outputs: dict[str, Tensor] = {}
    peaks: dict[str, int] = {}
    times: dict[str, list[float]] = {k: [] for k in runs}
    walls: dict[str, list[float]] = {k: [] for k in runs}
    timer = time.process_time if clock == "cpu" else time.perf_counter
    with torch.inference_mode():
        for key, (_, _, fn) in runs.items():  # warm-up, with the memory measurement
            t0 = time.perf_counter()
            if cuda:
                fn()  # kernels chosen and loaded before the measured run
                torch.cuda.synchronize(device)
                base = torch.cuda.memory_allocated(device)
                torch.cuda.reset_peak_memory_stats(device)
                outputs[key] = fn()
                torch.cuda.synchronize(device)
                peaks[key] = torch.cuda.max_memory_allocated(device) - base
            else:
                outputs[key], peaks[key] = peak_rss_growth(fn)
            if key == "ours_compiled":
                print(f"# torch.compile warm-up for {name} {size}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        case_peaks = []
        for _ in range(repeats):  # alternating, with the SGEMM peak measured between repeats
            if not cuda:
                case_peaks.append(sgemm_peak(clock, repeats=3))
            for key, (_, _, fn) in runs.items():
                if cuda:
                    torch.cuda.synchronize(device)
                w0, t0 = time.perf_counter(), timer()
                fn()
                if cuda:
                    torch.cuda.synchronize(device)
                times[key].append(timer() - t0)
                walls[key].append(time.perf_counter() - w0)
    ref = outputs["peer"].float()
    peer_ms = {
        prec.split()[0]: statistics.median(times[k]) * 1000 for k, (impl, prec, _) in runs.items() if impl == peer_name
    }
    rows = []
    work = flops(ours, size, size)
    # The peak beside this case's runs: on a VM the 2048^3 matmul measured 297-386 GFLOP/s within one
    # session (Xeon, two threads), so a peak from the start of the run could be another moment's
    peak = statistics.median(case_peaks) if case_peaks else peak
    for key, (impl, prec, _) in runs.items():
        ms = statistics.median(times[key]) * 1000
        out = outputs[key].float()
        same = peer_ms[prec] / ms if impl != peer_name and prec in peer_ms and prec != "fp32" else None
        rows.append(
            Row(
                impl,
                name,
                size,
                prec,
                ms,
                statistics.median(walls[key]) * 1000,
                size * size / 1e6 / (ms / 1000),
                peaks[key] / 2**20,
                (out - ref).abs().max().item(),
                _psnr(out, ref),
                peer_ms["fp32"] / ms,
                same,
                bool(torch.isfinite(outputs[key]).all()),
                work / ms / 1e6,
                work / ms / 1e6 / peak,
                peak,
            )
        )
    return rows


def machine() -> str:
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    have = kernels.cpu_flags()
    named = [f for f in ("avx512f", "avx512_bf16", "amx_bf16") if f in have]
    if not named and have:  # an x86 CPU without AVX-512: say what it has instead of nothing
        named = [f for f in ("avx2", "fma") if f in have] + ["no AVX-512"]
    flags = ", ".join(named) or platform.machine()
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    caps = [
        f"{k}={os.environ[k]}"
        for k in ("ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS", "ATEN_CPU_CAPABILITY", kernels.ISA_ENV)
        if k in os.environ
    ]
    return (
        f"{cpu} ({flags}{'; ISA capped: ' + ' '.join(caps) if caps else ''}), {os.cpu_count()} logical CPUs, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, native bf16 {native_bf16()}, "
        f"load average {load}"
    )


def render(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(r.cells()) + " |" for r in rows]
    return "\n".join(lines)


def gpu_name(device: torch.device) -> str:
    props = torch.cuda.get_device_properties(device)
    return (
        f"{props.name} ({props.total_memory / 2**30:.0f} GiB, {props.multi_processor_count} SMs), torch "
        f"{torch.__version__}, CUDA {torch.version.cuda}, TF32 matmul {torch.backends.cuda.matmul.allow_tf32}, "
        f"cuDNN TF32 {torch.backends.cudnn.allow_tf32}"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", action="store_true", help="one configuration at 32x32, one repeat (CI smoke)")
    ap.add_argument("--large", action="store_true", help="the earlier sessions' sizes (slow: ~30 min on one core)")
    ap.add_argument(
        "--family",
        action="store_true",
        help="the family's rows: Swin2SR-M (classical x2 configuration) and HAT (x4) at 64 and 128 against "
        "spandrel's copies",
    )
    ap.add_argument("--configs", nargs="*", help="released configuration names (default: the README's five)")
    ap.add_argument("--sizes", nargs="*", type=int, help="input sides, applied to every --configs entry")
    ap.add_argument(
        "--precisions", default=None, help="ours in these precisions (default fp32,bf16 on CPU, fp32,bf16,fp16 on CUDA)"
    )
    ap.add_argument(
        "--peer-precisions",
        default=None,
        help="the peer in these precisions besides fp32 (default: none on CPU, as --precisions on CUDA)",
    )
    ap.add_argument(
        "--repeats", type=int, default=None, help="timed runs per implementation (median; default 3 on CPU, 20 on CUDA)"
    )
    ap.add_argument(
        "--device",
        default="cpu",
        help="cpu (default) or cuda[:N]; on CUDA ms/image is synchronized "
        "wall time and peak memory is the allocator's peak beyond the weights",
    )
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1; 0 = torch's default). On a shared machine more threads mostly "
        "measure OpenMP barriers waiting for the other jobs",
    )
    ap.add_argument(
        "--clock",
        choices=("cpu", "wall"),
        default=None,
        help="what ms/image measures: this process's CPU time (default with 1 thread: immune to other "
        "jobs on the machine) or wall time (default with more threads, and always on CUDA)",
    )
    ap.add_argument("--peer", choices=("auto", "spandrel", "reference"), default="auto")
    ap.add_argument("--peer-bf16", action="store_true", help="also time the peer in bf16 (= --peer-precisions bf16)")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile(ours) in fp32 after warm-up")
    ap.add_argument(
        "--without-kernels",
        action="store_true",
        help="also time ours in fp32 with swinir.kernels switched off: chunked blocks with PyTorch's attention (the "
        "ARM/macOS path) and whole-size blocks",
    )
    ap.add_argument("--output", type=Path, help="also write the table (markdown) to this file")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if cuda and not torch.cuda.is_available():
        raise SystemExit(f"--device {args.device}: CUDA is not available in this torch ({torch.__version__})")
    if args.threads:
        torch.set_num_threads(args.threads)
    clock = "wall" if cuda else (args.clock or ("cpu" if torch.get_num_threads() == 1 else "wall"))
    precisions = [
        p.strip() for p in (args.precisions or ("fp32,bf16,fp16" if cuda else "fp32,bf16")).split(",") if p.strip()
    ]
    peer_precisions = [
        p.strip()
        for p in (args.peer_precisions or (",".join(precisions) if cuda else "bf16" if args.peer_bf16 else "")).split(
            ","
        )
        if p.strip()
    ]
    bad = [p for p in precisions + peer_precisions if p not in DTYPES]
    if bad:
        raise SystemExit(f"unknown precision(s) {bad}; choose from {', '.join(DTYPES)}")
    repeats = args.repeats or (20 if cuda else 3)
    if args.small:
        cases = list(SMALL)
        repeats = min(repeats, 1)
    elif args.large:
        cases = list(LARGE)
    elif args.family:
        cases = list(FAMILY_CASES)
    elif args.configs:
        cases = [(c, s) for c in args.configs for s in (args.sizes or [128])]
    else:
        cases = list(FULL)
    configs = released_configs()
    unknown = [c for c, _ in cases if c not in configs]
    if unknown:
        raise SystemExit(f"unknown configuration(s) {unknown}; choose from {sorted(configs)}")
    if not cuda and "bf16" in precisions and not native_bf16():
        # emulated bf16 runs ~5x slower than fp32; swinir.engine then runs fp32 instead, and so does this table
        precisions.remove("bf16")
    peer_cls, peer_name = peer_class(args.peer)
    peers = {"swinir": (peer_cls, peer_name)}
    for arch in {configs[c].get("architecture", "swinir") for c, _ in cases} - {"swinir"}:
        peers[arch] = peer_class(args.peer, arch)
    names = sorted({n for _, n in peers.values()})
    where = gpu_name(device) if cuda else f"{machine()}; swinir CPU kernel: {kernels.status()}"
    peak = math.nan if cuda else sgemm_peak(clock)
    header = (
        f"Machine: {where}. Peer: {', '.join(names)}. Median of {repeats} alternating runs after "
        f"{'two warm-ups' if cuda else 'one warm-up'}; ms/image is "
        f"{'process CPU' if clock == 'cpu' else 'wall'} time. SGEMM peak (2048^3 fp32 matmul): {peak:.1f} GFLOP/s at "
        "the start; each case's 'of SGEMM peak' is against the median of the peaks measured between its repeats "
        "(column 'SGEMM peak')."
    )
    if "bf16" not in precisions and not cuda and not native_bf16():
        header += " No native bf16 here: bf16 runs as fp32 (swinir.engine falls back), so it has no rows."
    print(header, flush=True)
    rows: list[Row] = []
    for name, size in cases:
        case_cls, case_peer = peers[configs[name].get("architecture", "swinir")]
        case = bench_case(
            name,
            size,
            configs[name],
            case_cls,
            case_peer,
            precisions,
            repeats,
            args.compile,
            peer_precisions,
            clock,
            device,
            args.without_kernels,
            peak,
        )
        rows += case
        print(render(case), file=sys.stderr, flush=True)
        if cuda:
            torch.cuda.empty_cache()
        if args.output:  # after every case: a run stopped at its time box keeps what it measured
            write_output(args.output, header, rows, argv, names)
    print(render(rows))
    print(summary(rows, names))
    return 0


def summary(rows: list[Row], peer_names: str | list[str]) -> str:
    """The smallest speed-up per (implementation, precision, architecture) over all cases."""
    peers = [peer_names] if isinstance(peer_names, str) else peer_names
    worst: dict[str, Row] = {}
    for r in rows:
        family = r.config.split("_")[0] if r.config in FAMILY_RELEASES else "swinir"
        key = f"{r.impl} {r.precision}" + ("" if family == "swinir" else f" ({family})")
        if r.impl not in peers and (key not in worst or r.speedup < worst[key].speedup):
            worst[key] = r
    lines = [
        f"minimum vs peer fp32, {k}: {r.speedup:.2f}x ({LABELS.get(r.config, r.config)} {r.size}x{r.size})"
        for k, r in worst.items()
    ]
    # the limit: doing the same FLOPs, nothing beats the peer by more than SGEMM peak / the peer's rate
    for r in rows:
        if r.impl in peers and r.precision == "fp32" and r.of_peak > 0:
            lines.append(
                f"ceiling for fp32 at the SGEMM peak, {LABELS.get(r.config, r.config)} {r.size}x{r.size}: "
                f"{1 / r.of_peak:.2f}x (the peer runs at {100 * r.of_peak:.0f}% of it)"
            )
    return "\n".join(lines)


def write_output(path: Path, header: str, rows: list[Row], argv: list[str] | None, peer_name: str | list[str]) -> None:
    from swinir.atomic import write_text

    write_text(
        path,
        f"{header}\n\n{render(rows)}\n\n{summary(rows, peer_name)}\n\nCommand: python benchmarks/inference.py "
        f"{' '.join(argv if argv is not None else sys.argv[1:])}\n",
    )


if __name__ == "__main__":
    sys.exit(main())
