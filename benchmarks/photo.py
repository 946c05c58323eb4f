"""A whole photo through `swinir restore`, end to end, against the original release's tiled test script.

Each run is a real process on real files: ``python -m swinir restore photo.png -o DIR --model CKPT --tile T``
(reading, tiling, overlap blending, writing the PNG, start-up and model load included), and the original's
way: its tile loop (``main_test_swinir.py --tile 256 --tile_overlap 32``: tiles at a fixed stride, every
tile's output added into a full-size sum and a full-size weight map, one division at the end), written
here, over spandrel 0.4.2's copy of the original network, with the same checkpoint file. Peak RSS and CPU
time per process come from ``wait4``.

The photo is deterministic: Set5 'baby' (512x512) upscaled with bicubic interpolation and cropped to
1600x1200 (``--small``: 96x64). Models: builtin-x4 (trained), and lightweight x4 and real-world M x4 with
seeded random weights in the released shapes (``swinir.paths.released_configurations``), saved in the
released layout so both sides load the same file.

Figures per model: seconds, megapixels per second (input), peak RSS, and the end-to-end rate in FLOPs
(``swinir.model.flops`` for the whole image, without overlap, over the wall time) as a fraction of the SGEMM
peak (benchmarks/inference.py's, measured in this run); then the model's own forward on one tile of the size
restore used (the first of its tiles, as ``swinir.tiling`` lays them), in the same precision, and
``e2e / forward``, the share of the forward's rate the whole run keeps (goal: 0.85 or more). Restore runs
with ``--tile auto`` itself (its rate probe is part of the run); the tile count it used is read from its bar.
``start-up`` is a restore of a 32x32 crop of the photo with the same model and options (interpreter,
imports, model load, a tiny forward): ``e2e / forward`` is given with and without it. ``vs original`` is the
original script's wall time over ours (goal: 5x); the same in CPU seconds (both threads, from ``wait4``) is
steadier on a machine shared with other jobs. ``--original-tiles K`` runs only the first K tiles of the
original's loop and extrapolates its time to all of them (every tile is the same 256x256 forward), for the
heavy models whose original run takes an hour; the table marks such rows "est.".

    python benchmarks/photo.py                          # 1600x1200, three models (long: see the README)
    python benchmarks/photo.py --small                  # smoke run
    python benchmarks/photo.py --size 512x384 --models real_M_x4 --tile 256
    python benchmarks/photo.py --models real_M_x4 --original-tiles 4
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import swinir
from inference import load_spandrel_swinir, machine, sgemm_peak
from swinir.heap import keep_freed_memory
from swinir.io import write_image
from swinir.model.flops import flops
from swinir.paths import released_configurations, shared_dir
from swinir.precision import choose
from swinir.tiling import tiles

MODELS = ("builtin-x4", "lightweight_x4", "real_M_x4")
FULL_SIZE = (1600, 1200)
SMALL_SIZE = (96, 64)
ORIGINAL_TILE, ORIGINAL_OVERLAP = 256, 32


@dataclass
class Run:
    seconds: float
    cpu_seconds: float
    peak_rss_mib: float
    output: str = ""
    estimated: bool = False


def make_photo(width: int, height: int) -> np.ndarray:
    """Set5 'baby' upscaled (bicubic) to cover width x height, cropped at the centre: uint8 RGB."""
    root = shared_dir()
    path = root / "data" / "Set5" / "HR" / "baby.png" if root else None
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR) if path else None
    if bgr is None:
        raise SystemExit("Set5/HR/baby.png not found under shared/data (set SWINIR_SHARED)")
    side = max(width, height)
    big = cv2.resize(bgr, (side, side), interpolation=cv2.INTER_CUBIC)
    y0, x0 = (side - height) // 2, (side - width) // 2
    return np.ascontiguousarray(big[y0 : y0 + height, x0 : x0 + width, ::-1])


def write_checkpoint(name: str, folder: Path) -> tuple[Path, dict]:
    """The model's checkpoint in the released layout, and its constructor arguments."""
    if name.startswith("builtin"):
        model = swinir.load(name, device="cpu")
    else:
        config = released_configurations()[name]["config"]
        torch.manual_seed(0)
        model = swinir.SwinIR(**config)
    path = swinir.save(model, folder / f"{name}.pth")
    return path, model.spec.kwargs()


def _waited(cmd: list[str], env: dict[str, str]) -> Run:
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    out, err = proc.stdout.read(), proc.stderr.read()  # type: ignore[union-attr]
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} ... failed ({proc.returncode}):\n{(out + err).decode()[-3000:]}")
    text = (out + err).decode(errors="replace")
    return Run(seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, text)


def run_ours(ckpt: Path, photo: Path, out: Path, tile: str, overlap: int, precision: str, env: dict) -> Run:
    cmd = [sys.executable, "-m", "swinir", "restore", str(photo), "-o", str(out), "--model", str(ckpt)]
    cmd += ["--tile", tile, "--overlap", str(overlap), "--precision", precision, "--overwrite"]
    return _waited(cmd, env)


def tiles_run(run: Run) -> int:
    """How many tiles restore laid, from its bar's last 'tile i/N'."""
    found = re.findall(r"tile \d+/(\d+)", run.output)
    return int(found[-1]) if found else 1


def run_original(
    ckpt: Path, config: dict, photo: Path, out: Path, tile: int, overlap: int, env: dict, limit: int
) -> Run:
    cmd = [sys.executable, __file__, "--original-worker", str(ckpt), json.dumps(config), str(photo), str(out)]
    run = _waited([*cmd, "--tile", str(tile), "--overlap", str(overlap), "--original-tiles", str(limit)], env)
    found = re.search(r"^ORIGINAL (\{.*\})$", run.output, re.M)
    if not found:
        return run
    loop = json.loads(found.group(1))
    left = loop["total"] - loop["run"]
    if left <= 0:
        return run
    per_tile, per_tile_cpu = loop["seconds"] / loop["run"], loop["cpu_seconds"] / loop["run"]
    return Run(run.seconds + left * per_tile, run.cpu_seconds + left * per_tile_cpu, run.peak_rss_mib, run.output, True)


# -- the original release's tiled test, as a worker process ---------------------------------------------
def original_tiled(
    model: torch.nn.Module, lq: torch.Tensor, tile: int, overlap: int, scale: int, limit: int = 0
) -> torch.Tensor:
    """The release's tile loop: tiles of ``tile`` at stride ``tile - overlap`` (the last row and column flush
    with the border), every tile's output summed into a full-size image and a count of the tiles that cover
    each output pixel, divided at the end. ``limit``: stop after that many tiles (0: all) and print the
    loop's timing for the caller to extrapolate."""
    _, c, h, w = lq.shape
    tile = min(tile, h, w)
    stride = tile - overlap
    rows = [*range(0, h - tile, stride), h - tile]
    cols = [*range(0, w - tile, stride), w - tile]
    total = torch.zeros(1, c, h * scale, w * scale)
    count = torch.zeros_like(total)
    start, cpu_start, done = time.perf_counter(), time.process_time(), 0
    for y, x in [(y, x) for y in rows for x in cols][: limit or None]:
        patch = model(lq[..., y : y + tile, x : x + tile])
        region = (..., slice(y * scale, (y + tile) * scale), slice(x * scale, (x + tile) * scale))
        total[region].add_(patch)
        count[region].add_(torch.ones_like(patch))
        done += 1
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    timing = {"total": len(rows) * len(cols), "run": done, "seconds": seconds, "cpu_seconds": cpu_seconds}
    print("ORIGINAL " + json.dumps(timing), flush=True)
    return total.div_(count.clamp_(min=1))


def original_worker(ckpt: str, config_json: str, photo: str, out: str, tile: int, overlap: int, limit: int) -> None:
    """What main_test_swinir.py does for one image: cv2 read, pad to a window multiple by mirroring the
    bottom and right edges, the tiled test under no_grad, crop, cv2 write."""
    found = load_spandrel_swinir()
    if found is None:
        raise SystemExit("spandrel is needed for the original's side: pip install --no-deps spandrel==0.4.2")
    config = json.loads(config_json)
    model = found[0](**config)
    model.load_state_dict(torch.load(ckpt, map_location="cpu", weights_only=True)["params"], strict=True)
    model.eval()
    bgr = cv2.imread(photo, cv2.IMREAD_COLOR).astype(np.float32) / 255.0
    lq = torch.from_numpy(np.transpose(bgr[:, :, [2, 1, 0]], (2, 0, 1)).copy())[None]
    window, scale = config["window_size"], config["upscale"]
    h, w = lq.shape[-2:]
    ph, pw = (h // window + 1) * window - h, (w // window + 1) * window - w
    with torch.no_grad():
        lq = torch.cat([lq, torch.flip(lq, [2])], 2)[:, :, : h + ph, :]
        lq = torch.cat([lq, torch.flip(lq, [3])], 3)[:, :, :, : w + pw]
        result = original_tiled(model, lq, tile, overlap, scale, limit)[..., : h * scale, : w * scale]
    rgb = result[0].clamp_(0, 1).numpy()
    cv2.imwrite(out, (np.transpose(rgb[[2, 1, 0]], (1, 2, 0)) * 255.0).round().astype(np.uint8))


# -- the forward alone ------------------------------------------------------------------------------
def forward_rate(ckpt: Path, tile_h: int, tile_w: int, precision: str, image: np.ndarray) -> tuple[float, float, str]:
    """FLOPs per wall second and per CPU second (all threads) of the model's own forward on one tile of the
    photo (best of two after a warm-up), in the precision restore resolves to, and that precision's
    description. The heap keeps freed memory as restore's does (``swinir.heap``), so that the forward here
    reuses its pages as the forward in restore does."""
    keep_freed_memory()
    model = swinir.load(ckpt, device="cpu").eval()
    chosen = choose(precision, model)
    crop = image[:tile_h, :tile_w].astype(np.float32) / 255.0
    x = torch.from_numpy(crop).permute(2, 0, 1)[None].contiguous()
    amp = torch.bfloat16 if chosen.name in ("bf16", "fp16") else None
    wall = cpu = math.inf
    with torch.inference_mode(), torch.autocast("cpu", dtype=amp or torch.bfloat16, enabled=amp is not None):
        for i in range(3):
            start, cpu_start = time.perf_counter(), time.process_time()
            model(x)
            if i:
                wall = min(wall, time.perf_counter() - start)
                cpu = min(cpu, time.process_time() - cpu_start)
    work = flops(model.spec, tile_h, tile_w)
    return work / wall, work / cpu, chosen.describe()


def _percent(share: float) -> str:
    """A share as a percentage: whole percent, or two significant digits under 10% (a smoke run's tiny photo
    is a fraction of a percent of the peak, which would print as 0%)."""
    return f"{100 * share:.0f}%" if share >= 0.1 else f"{100 * share:.2g}%"


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from None
    return w, h


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--small", action="store_true", help=f"a {SMALL_SIZE[0]}x{SMALL_SIZE[1]} photo (smoke run)")
    p.add_argument("--size", type=_size, default=None, metavar="WxH", help="photo size (default 1600x1200)")
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    p.add_argument("--tile", default="auto", help="our --tile: N or auto (resolved here, passed on as N)")
    p.add_argument("--overlap", type=int, default=32)
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--skip-original", action="store_true", help="leave out the original's tiled script")
    p.add_argument(
        "--original-tiles",
        type=int,
        default=0,
        metavar="K",
        help="run only the first K tiles of the original's loop and extrapolate its time (0: all)",
    )
    p.add_argument("--original-worker", nargs=4, metavar=("CKPT", "CONFIG", "IN", "OUT"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.original_worker:
        original_worker(*args.original_worker, int(args.tile), args.overlap, args.original_tiles)
        return 0
    width, height = args.size or (SMALL_SIZE if args.small else FULL_SIZE)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    peak = sgemm_peak("wall")
    print(f"# {width}x{height} photo; {machine()}; SGEMM peak {peak:.1f} GFLOP/s (wall, {args.threads} threads)")
    header = ["model", "run", "tiles", "seconds", "MP/s", "peak RSS MiB", "CPU s", "of SGEMM peak", "vs original"]
    header.append("vs original (CPU s)")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    notes = []
    with tempfile.TemporaryDirectory(prefix="swinir-photo-") as tmp:
        folder = Path(tmp)
        photo, tiny = folder / "photo.png", folder / "tiny.png"
        image = make_photo(width, height)
        write_image(photo, image)
        write_image(tiny, np.ascontiguousarray(image[:32, :32]))
        for name in args.models:
            ckpt, config = write_checkpoint(name, folder)
            model = swinir.load(ckpt, device="cpu").eval()
            window = model.spec.window_size
            if args.tile == "auto":  # what restore will choose (it probes again in its own process)
                from swinir.fit import auto_tile

                amp = torch.bfloat16 if choose(args.precision, model).name == "bf16" else None
                side = auto_tile(model, torch.device("cpu"), height, width, amp, overlap=args.overlap)
            else:
                side = int(args.tile) or None
            laid = tiles(height, width, side, args.overlap, window) if side else [(height, width)]
            work = flops(model.spec, height, width) / 1e9
            del model
            startup = run_ours(ckpt, tiny, folder / "tiny", args.tile, args.overlap, args.precision, env)
            ours = run_ours(ckpt, photo, folder / "ours", args.tile, args.overlap, args.precision, env)
            original = None
            if not args.skip_original:
                original_out = Path(folder / f"original_{name}.png")
                original = run_original(
                    ckpt, config, photo, original_out, ORIGINAL_TILE, ORIGINAL_OVERLAP, env, args.original_tiles
                )
            tile_h, tile_w = laid[0]
            rate, cpu_rate, described = forward_rate(ckpt, tile_h, tile_w, args.precision, image)
            mp = width * height / 1e6
            e2e = work / ours.seconds
            est = " (est.)" if original is not None and original.estimated else ""
            ratio = "-" if original is None else f"{original.seconds / ours.seconds:.2f}x{est}"
            cpu_ratio = "-" if original is None else f"{original.cpu_seconds / ours.cpu_seconds:.2f}x{est}"
            count = tiles_run(ours)
            described_tiles = f"{count} of {tile_h}x{tile_w}" if count > 1 else f"1 of {height}x{width}"
            if count != len(laid):
                described_tiles += f" (this process would lay {len(laid)})"
            runs = (("swinir restore", ours, described_tiles), ("original tiled", original, "256/32" + est))
            for label, run, t in runs:
                if run is None:
                    continue
                lines.append(
                    f"| {name} | {label} | {t} | {run.seconds:.1f} | {mp / run.seconds:.4f} | "
                    f"{run.peak_rss_mib:.0f} | {run.cpu_seconds:.1f} | {_percent(work / run.seconds / peak)} | "
                    f"{ratio if label == 'swinir restore' else '1.00x'} | "
                    f"{cpu_ratio if label == 'swinir restore' else '1.00x'} |"
                )
            after = work / max(ours.seconds - startup.seconds, 1e-9)
            after_cpu = work / max(ours.cpu_seconds - startup.cpu_seconds, 1e-9)
            notes.append(
                f"{name}: {work:.0f} GFLOP; end to end {e2e:.2f} GFLOP/s, forward on one {tile_h}x{tile_w} tile "
                f"{rate / 1e9:.2f} GFLOP/s: e2e / forward {e2e / (rate / 1e9):.2f} "
                f"(in CPU time {work / ours.cpu_seconds / (cpu_rate / 1e9):.2f}); start-up {startup.seconds:.1f} s "
                f"({startup.cpu_seconds:.1f} CPU s), without it e2e / forward {after / (rate / 1e9):.2f} "
                f"(CPU {after_cpu / (cpu_rate / 1e9):.2f}); precision {described}"
            )
            print(lines[-1] if original is None else "\n".join(lines[-2:]), notes[-1], sep="\n", flush=True)
    print()
    print("\n".join(lines))
    print()
    print("\n".join(notes))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
