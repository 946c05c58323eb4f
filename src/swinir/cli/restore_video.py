"""`swinir restore clip.mp4 -o out/`: the video half of `swinir restore` (parsing and printing only).

The planner (``swinir.restore_plan``) finds the videos, named or in folders, and names their outputs
(``OUTDIR/<name><suffix>.<ext>`` with the input's container when it can be written: mp4, mkv, mov, nut,
avi; else .mkv); ``swinir.video.restore_clip`` restores each. Every torchrun rank works on every video
(they share its segments), unlike images, which are split between ranks.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from swinir.errors import OutputExistsError, SwinIRError
from swinir.restore_plan import Job

__all__ = ["add_video_args", "VIDEO_FLAGS", "video_flags_given", "encode_options", "run_videos"]

# dest -> flag of the options that only videos use (None default: "given" is told apart from the default)
VIDEO_FLAGS = {
    "codec": "--codec",
    "crf": "--crf",
    "pix_fmt": "--pix-fmt",
    "odd_size": "--odd-size",
    "segment_frames": "--segment-frames",
}


def add_video_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("video inputs (mp4, mkv, mov, ...; named or in folders)")
    g.add_argument("--codec", choices=("libx264", "libx265", "ffv1"), default=None, help="(default libx264)")
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
        default=None,
        help="an odd output size for 4:2:0 video: repeat the last row/column or drop it (default pad)",
    )
    g.add_argument(
        "--segment-frames", type=int, default=None, metavar="N", help="frames per resumable segment (default 48)"
    )


def video_flags_given(args: argparse.Namespace) -> list[str]:
    """The video-only flags on the command line (they do nothing in a run without videos)."""
    return [flag for dest, flag in VIDEO_FLAGS.items() if getattr(args, dest) is not None]


def encode_options(args: argparse.Namespace) -> Any:
    from swinir.video import EncodeOptions

    segment_frames = 48 if args.segment_frames is None else args.segment_frames
    if segment_frames < 1:
        raise SwinIRError(f"--segment-frames must be >= 1, got {segment_frames}")
    if args.crf is not None and not 0 <= args.crf <= 51:
        raise SwinIRError(f"--crf must be in 0-51, got {args.crf}")
    return EncodeOptions(args.codec or "libx264", args.crf, args.pix_fmt, args.odd_size or "pad", segment_frames)


def run_videos(
    jobs: list[Job],
    model: Any,
    options: Any,
    limits: Any,
    args: argparse.Namespace,
    rank: int,
    world: int,
    say: Callable[[str], None],
    fail_line: Callable[[Any, BaseException], str],
) -> list[int]:
    """[restored, failed, exists] over ``jobs``; an output that another run published meanwhile is left
    alone (``exists``: quiet with --skip-existing)."""
    from swinir.video import restore_clip

    ok = failed = exists = 0
    encode = encode_options(args)
    for job in jobs:
        try:
            result = restore_clip(
                model, job.src, job.dst, options, encode, limits,
                resume=args.skip_existing, rank=rank, world=world, progress=rank == 0, say=say,
                replace=args.overwrite,
            )  # fmt: skip
        except KeyboardInterrupt:
            say(f"interrupted: {job.src}: finished segments are kept; rerun with --skip-existing to resume")
            raise
        except OutputExistsError:
            exists += 1
            if not args.skip_existing:
                print(f"exists: {job.dst}: not replaced (from {job.src}); --overwrite replaces it", file=sys.stderr)
            continue
        except Exception as exc:
            if getattr(args, "debug", False):
                raise
            print(fail_line(job.src, exc), file=sys.stderr)
            failed += 1
            continue
        ok += 1
        if rank == 0:
            done = "assembled" if result.assembled else "segments written (another rank assembles)"
            reused = f", {result.reused} reused" if result.reused else ""
            say(f"video: {job.src} -> {job.dst}: {result.frames} frames{reused}, {done}")
    return [ok, failed, exists]
