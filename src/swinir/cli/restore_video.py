"""`swinir restore clip.mp4 -o out/`: the video half of `swinir restore` (parsing and printing only).

A video input goes to ``swinir.video``; its output is ``OUTDIR/<name><suffix>.<ext>`` with the input's
container when it can be written (mp4, mkv, mov, nut, avi), else .mkv. Every torchrun rank works on every
video (they share its segments), unlike images, which are split between ranks.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from swinir.errors import SwinIRError
from swinir.restore_plan import Job

__all__ = ["add_video_args", "VideoJob", "plan_videos", "split_videos", "restore_clip", "run_videos"]


def add_video_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("video inputs (mp4, mkv, mov, ...)")
    g.add_argument("--codec", choices=("libx264", "libx265", "ffv1"), default="libx264", help="(default libx264)")
    g.add_argument("--crf", type=int, default=None, metavar="N", help="x264/x265 quality, lower is better (18/20)")
    g.add_argument(
        "--pix-fmt",
        default=None,
        metavar="FMT",
        help="e.g. yuv420p, yuv420p10le (default: 4:2:0 at the source's depth)",
    )
    g.add_argument(
        "--odd-size",
        choices=("pad", "crop"),
        default="pad",
        help="an odd output size for 4:2:0 video: repeat the last row/column or drop it (default pad)",
    )
    g.add_argument(
        "--segment-frames", type=int, default=48, metavar="N", help="frames per resumable segment (default 48)"
    )


VideoJob = Job  # the planner's (src, dst)


def _out_suffix(src: Path) -> str:
    from swinir.video import _OUT_FORMATS

    return src.suffix.lower() if src.suffix.lower() in _OUT_FORMATS else ".mkv"


def plan_videos(videos: list[Path], outdir: Path, suffix: str) -> tuple[list[VideoJob], list[str]]:
    """Jobs, and one failure line per video that would overwrite an input or collide with another."""
    jobs: list[VideoJob] = []
    problems: list[str] = []
    seen: dict[Path, Path] = {}
    inputs = {v.resolve() for v in videos}
    for src in videos:
        dst = outdir / f"{src.stem}{suffix}{_out_suffix(src)}"
        key = dst.resolve()
        if key in inputs:
            problems.append(
                f"failed: {src}: refusing to overwrite the input video {dst}; choose another -o or a --suffix"
            )
        elif key in seen:
            problems.append(f"failed: {src}: its output {dst} would also be written for {seen[key]}; use a --suffix")
        else:
            seen[key] = src
            jobs.append(VideoJob(src, dst))
    return jobs, problems


def split_videos(inputs: list[str], outdir: Path, suffix: str) -> tuple[list[VideoJob], list[str], list[str]]:
    """(video jobs, their failure lines, the other inputs): video files go to ``swinir.video``."""
    from swinir.video import is_video

    videos = [Path(t).expanduser() for t in inputs if is_video(t) and Path(t).expanduser().is_file()]
    others = [t for t in inputs if not (is_video(t) and Path(t).expanduser().is_file())]
    jobs, problems = plan_videos(videos, outdir, suffix)
    return jobs, problems, others


def restore_clip(model: Any, src: Path, dst: Path, encode: Any, resume: bool, rank: int, world: int,
                 progress: bool, say: Callable[[str], None], options: Any = None) -> Any:  # fmt: skip
    from swinir.video import restore_clip as run

    return run(model, src, dst, options, encode, resume=resume, rank=rank, world=world, progress=progress, say=say)


def encode_options(args: argparse.Namespace) -> Any:
    from swinir.video import EncodeOptions

    if args.segment_frames < 1:
        raise SwinIRError(f"--segment-frames must be >= 1, got {args.segment_frames}")
    if args.crf is not None and not 0 <= args.crf <= 51:
        raise SwinIRError(f"--crf must be in 0-51, got {args.crf}")
    return EncodeOptions(args.codec, args.crf, args.pix_fmt, args.odd_size, args.segment_frames)


def run_videos(
    jobs: list[VideoJob],
    restore_clip: Callable[..., Any],
    args: argparse.Namespace,
    rank: int,
    world: int,
    say: Callable[[str], None],
) -> list[int]:
    """[restored, skipped, failed] over ``jobs``; ``restore_clip(src, dst, encode, resume, rank, world,
    progress, say)`` does one video."""
    ok = skipped = failed = 0
    encode = encode_options(args)
    for job in jobs:
        if job.dst.exists() and not args.overwrite:  # appeared during the run: the plan saw it absent
            if args.skip_existing:
                skipped += 1
                continue
            say(f"failed: {job.src}: {job.dst} appeared while this run was working; not replaced")
            failed += 1
            continue
        try:
            result = restore_clip(job.src, job.dst, encode, args.skip_existing, rank, world, rank == 0, say)
        except KeyboardInterrupt:
            say(f"interrupted: {job.src}: finished segments are kept; rerun with --skip-existing to resume")
            raise
        except Exception as exc:
            if getattr(args, "debug", False):
                raise
            msg = " ".join(str(exc).split())
            line = msg if isinstance(exc, SwinIRError) else f"{type(exc).__name__}: {msg[:300]}"
            print(f"failed: {job.src}: {line}", file=sys.stderr)
            failed += 1
            continue
        ok += 1
        if rank == 0:
            done = "assembled" if result.assembled else "segments written (another rank assembles)"
            reused = f", {result.reused} reused" if result.reused else ""
            say(f"video: {job.src} -> {job.dst}: {result.frames} frames{reused}, {done}")
    return [ok, skipped, failed]
