"""Video restoration figures: frames per second, and peak memory against the clip's length.

    python benchmarks/video.py                          # builtin-x4: 320x240 fps; peak RSS 100 vs 1000 frames
    python benchmarks/video.py --fps-frames 8 --lengths 50 500 --device cuda

Each measurement runs in a fresh process (peak RSS is per process: ``ru_maxrss`` of the child). The clip is
made here with PyAV (smooth random frames, 25 fps, an AAC track), restored to ffv1-free H.264 (crf 18) by
``swinir.video.restore_clip``; fps counts restored frames over the wall time of the restoration alone.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np


def make_clip(path: Path, frames: int, width: int, height: int) -> None:
    import av

    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        a = c.add_stream("aac", rate=16000, layout="mono")
        base = rng.integers(0, 256, (height // 8 + 1, width // 8 + 1, 3)).astype(np.uint8)
        for i in range(frames):
            img = np.repeat(np.repeat(np.roll(base, i, axis=1), 8, 0), 8, 1)[:height, :width]
            f = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            f.pts, f.time_base = i, Fraction(1, 25)
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
        for i in range(0, frames * 640, 1024):
            af = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            af.sample_rate, af.pts = 16000, i
            for p in a.encode(af):
                c.mux(p)
        for p in a.encode():
            c.mux(p)


def child(args: argparse.Namespace) -> None:
    import torch

    import swinir
    from swinir import video
    from swinir.options import RestoreOptions

    torch.set_num_threads(args.threads)
    model = swinir.load(args.model, device=args.device)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "clip.mp4"
        make_clip(src, args.frames, args.width, args.height)
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t0 = time.perf_counter()
        result = video.restore_clip(model, src, Path(tmp) / "out.mp4", RestoreOptions(device=args.device))
        seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {"frames": result.frames, "seconds": seconds, "peak_mb": peak / 1024, "before_mb": rss_before / 1024}
        )
    )


def measure(args: argparse.Namespace, frames: int, width: int, height: int) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--child", "--frames", str(frames), "--width", str(width), "--height", str(height)]
    cmd += ["--model", args.model, "--device", args.device, "--threads", str(args.threads)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=os.environ.copy())
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="builtin-x4")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--fps-frames", type=int, default=10, help="frames of the 320x240 clip (default 10)")
    p.add_argument("--lengths", type=int, nargs="+", default=[100, 1000], help="clip lengths for peak memory")
    p.add_argument("--memory-size", type=int, nargs=2, default=[64, 48], metavar=("W", "H"))
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--frames", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--width", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--height", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args)
        return
    print(f"# model {args.model}, device {args.device}, {args.threads} torch thread(s)")
    r = measure(args, args.fps_frames, 320, 240)
    print(f"320x240 -> 1280x960, {r['frames']} frames: {r['frames'] / r['seconds']:.2f} frames/s")
    w, h = args.memory_size
    for n in args.lengths:
        r = measure(args, n, w, h)
        print(f"{w}x{h}, {n} frames: peak RSS {r['peak_mb']:.0f} MB ({r['frames'] / r['seconds']:.1f} frames/s)")


if __name__ == "__main__":
    main()
