"""`swinir restore`: restore image files and folders with a SwinIR model.

Reads any PNG/JPEG/BMP/TIFF/WebP (8/16-bit, gray/RGB, alpha, EXIF orientation), runs ``swinir.restore``
with tiles, writes each result atomically, and keeps going when one file fails. Under ``torchrun`` the
sorted file list is split across ranks (``files[rank::world]``); every rank writes its own outputs.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from swinir.cli.restore_controls import add_control_args, control_options, load_model, tile_value
from swinir.cli.restore_video import add_video_args, restore_clip, run_videos, split_videos
from swinir.errors import ImageWriteError, SwinIRError
from swinir.io import READ_EXTENSIONS, WRITE_FORMATS

DEFAULT_MODEL = "builtin-x4"
EXTS = ("png", "jpg", "webp", "tif", "bmp", "same")

EPILOG = """examples:
  swinir restore photo.jpg -o out/                       # built-in x4 model, works offline
  swinir restore photos/ -o out/ --model realsr-x4 --tile 256
  swinir restore scans/ -o out/ -r --skip-existing        # a folder tree; resumes an interrupted run
  swinir restore lr.png -o out/ --model classical-x2 --ensemble --precision bf16
  swinir restore shot.jpg -o out/ --model realsr-x4 --outscale 2 --ext jpg --quality 92
  swinir restore noisy.png -o out/ --model my_run/best.safetensors --suffix _dn
  torchrun --nproc_per_node 4 -m swinir restore big_folder/ -o out/ -r --model realsr-x4-large

notes:
  Outputs keep the input's name (plus --suffix) under OUTDIR, mirroring subfolders with --recursive.
  An input is never overwritten. Bit depth follows the input (16-bit PNG/TIFF stay 16-bit); alpha is
  upscaled separately with bicubic interpolation and kept. Gray images on color models (and color on
  gray) are converted with a notice. --outscale resizes the model's result to the given factor of the
  input size: area averaging when shrinking, bicubic when enlarging.
  Each bad file is reported on one line and the rest continue; the exit status is 1 if any failed.
"""


def _int_at_least(lo: int) -> Any:
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if v < lo:
            raise argparse.ArgumentTypeError(f"must be >= {lo}, got {v}")
        return v

    return parse


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not v > 0 or v > 64:
        raise argparse.ArgumentTypeError(f"must be in (0, 64], got {text}")
    return v


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "restore",
        help="restore images (super-resolution, denoising, JPEG artifacts) with a SwinIR model",
        description="Restore image files and folders with a SwinIR model (a zoo name or a checkpoint file). "
        "Large images are processed in overlapping tiles blended without seams, so memory stays bounded.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files and/or folders")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="folder for the results")
    p.add_argument(
        "-m",
        "--model",
        default=None,
        metavar="NAME|PATH",
        help=f"model-zoo name (`swinir models`) or checkpoint file (default: {DEFAULT_MODEL})",
    )
    p.add_argument(
        "--tile",
        type=tile_value,
        default="auto",
        metavar="N|auto",
        help="tile side in input pixels, rounded to the window size; 0 = whole image; auto (default) = from the "
        "free memory. Out of memory halves the tile and retries",
    )
    p.add_argument(
        "--overlap",
        type=_int_at_least(0),
        default=32,
        metavar="N",
        help="overlap between tiles in input pixels (default 32)",
    )
    p.add_argument("--ensemble", action="store_true", help="average the 8 flips/rotations (x8 slower, a bit better)")
    p.add_argument(
        "--precision",
        choices=("fp32", "bf16", "fp16"),
        default="fp32",
        help="compute precision (default fp32; fp16 on CPU falls back to bf16)",
    )
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: best available)")
    p.add_argument(
        "--batch-size", type=_int_at_least(1), default=1, metavar="N", help="tiles per forward pass (default 1)"
    )
    p.add_argument("-r", "--recursive", action="store_true", help="descend into subfolders of folder inputs")
    p.add_argument("--skip-existing", action="store_true", help="skip inputs whose output already exists (resume)")
    p.add_argument("--suffix", default="", help="appended to each output's name, e.g. _x4 (default: none)")
    p.add_argument(
        "--ext",
        choices=EXTS,
        default="png",
        help="output format; 'same' keeps the input's (default png: lossless, 16-bit, alpha)",
    )
    p.add_argument(
        "--quality",
        type=_int_at_least(1),
        default=95,
        metavar="Q",
        help="JPEG/WebP quality 1-100 (default 95; above 100 makes WebP lossless)",
    )
    p.add_argument(
        "--outscale",
        type=_positive_float,
        default=None,
        metavar="F",
        help="final size as a factor of the input size, e.g. 2 or 3.5 (default: the model's scale)",
    )
    add_control_args(p)
    add_video_args(p)
    p.set_defaults(func=run)


# ---------------------------------------------------------------------------------------------------
# what to do
# ---------------------------------------------------------------------------------------------------
@dataclass
class Job:
    src: Path
    dst: Path


@dataclass
class Plan:
    jobs: list[Job] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # one line per input that cannot even start
    inputs: int = 0


def _out_ext(src: Path, ext: str) -> str:
    if ext == "same":
        suffix = src.suffix.lower()
        return suffix if suffix in WRITE_FORMATS else ".png"
    return "." + ext


def _is_hidden(rel: Path) -> bool:
    return any(part.startswith(".") for part in rel.parts)


def _within(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
        return True
    except ValueError:
        return False


def collect(inputs: list[str], outdir: Path, recursive: bool, suffix: str, ext: str) -> Plan:
    """Jobs for every image under ``inputs``, sorted by output path; inputs that cannot start as problems."""
    plan = Plan()
    out_res = outdir.resolve()
    seen_src: set[Path] = set()
    by_dst: dict[Path, Job] = {}

    def add(src: Path, rel_parent: Path) -> None:
        key = src.resolve()
        if key in seen_src:
            return
        seen_src.add(key)
        dst = outdir / rel_parent / f"{src.stem}{suffix}{_out_ext(src, ext)}"
        if dst in by_dst:
            plan.problems.append(
                f"failed: {src}: its output {dst} would also be written for {by_dst[dst].src}; "
                "use --ext same or a --suffix"
            )
            return
        by_dst[dst] = Job(src, dst)

    for text in inputs:
        p = Path(text).expanduser()
        if p.is_dir():
            walker = p.rglob("*") if recursive else p.iterdir()
            found = 0
            for f in sorted(walker):
                rel = f.relative_to(p)
                if _is_hidden(rel) or f.suffix.lower() not in READ_EXTENSIONS or not f.is_file():
                    continue
                if _within(f.resolve(), out_res) and out_res != p.resolve():
                    continue  # our own outputs inside an input tree
                found += 1
                add(f, rel.parent)
            if not found:
                sub = (
                    "" if recursive or not any(c.is_dir() for c in p.iterdir()) else " (use --recursive for subfolders)"
                )
                plan.problems.append(f"notice: {p}: no images found{sub}")
            plan.inputs += found
        elif p.exists():
            plan.inputs += 1
            add(p, Path())
        else:
            plan.inputs += 1
            plan.problems.append(f"failed: {p}: no such file or folder")
    plan.jobs = sorted(by_dst.values(), key=lambda j: str(j.dst))
    return plan


class InputGuard:
    """Refuses any output that is one of the inputs (same path, symlink or hard link)."""

    def __init__(self, sources: list[Path]) -> None:
        self.paths = {s.resolve() for s in sources}
        self.inodes = set()
        for s in sources:
            try:
                st = s.stat()
                self.inodes.add((st.st_dev, st.st_ino))
            except OSError:
                pass

    def check(self, dst: Path) -> None:
        hit = dst.resolve() in self.paths
        if not hit and dst.exists():
            st = dst.stat()
            hit = (st.st_dev, st.st_ino) in self.inodes
        if hit:
            raise ImageWriteError(
                f"{dst}: refusing to overwrite an input image; choose another output folder or a --suffix"
            )


# ---------------------------------------------------------------------------------------------------
# distributed sharding (torchrun sets RANK / WORLD_SIZE / LOCAL_RANK)
# ---------------------------------------------------------------------------------------------------
def dist_env() -> tuple[int, int, int]:
    """(rank, world size, local rank) from the environment; (0, 1, 0) outside torchrun."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError:
        return 0, 1, 0
    if world < 2 or not 0 <= rank < world:
        return 0, 1, 0
    return rank, world, local


def _sum_across_ranks(counts: list[int]) -> list[int] | None:
    """Totals over all ranks through a gloo all-reduce, or None when no process group can be formed.

    Only under torchrun's agent store, which stays up until every rank is done, so ranks that finish
    early wait for the others instead of failing to meet; elsewhere each rank reports for itself.
    """
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True" or os.environ.get("MASTER_PORT", "0") == "0":
        return None
    try:
        from datetime import timedelta

        import torch
        import torch.distributed as dist

        if not dist.is_available():
            return None
        created = not dist.is_initialized()
        if created:  # ranks finish at different times: wait as long as the slowest one needs
            dist.init_process_group("gloo", timeout=timedelta(days=2))
        try:
            t = torch.tensor(counts, dtype=torch.int64)
            dist.all_reduce(t)
            return [int(v) for v in t.tolist()]
        finally:
            if created:
                dist.destroy_process_group()
    except Exception:
        return None


def _device_for(requested: str | None, local_rank: int, world: int) -> str | None:
    if world < 2:
        return requested
    import torch

    if requested in (None, "auto", "cuda") and torch.cuda.is_available():
        return f"cuda:{local_rank % torch.cuda.device_count()}"
    return requested


# ---------------------------------------------------------------------------------------------------
# running
# ---------------------------------------------------------------------------------------------------
class _Notices:
    """Print each distinct notice once per run, above the progress bar."""

    def __init__(self, write: Any) -> None:
        self.seen: set[str] = set()
        self.write = write

    def emit(self, src: Path, caught: list[warnings.WarningMessage]) -> None:
        for w in caught:
            msg = str(w.message)
            if msg not in self.seen:
                self.seen.add(msg)
                self.write(f"notice: {src.name}: {msg}")


def restore_file(
    job: Job, model: Any, args: argparse.Namespace, device: str | None, progress: bool, notices: _Notices
) -> None:
    """Read, restore, resize alpha/outscale, write atomically."""
    from swinir.engine import restore
    from swinir.io import SwinIRNotice, read_image, resize, write_image

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SwinIRNotice)
        img = read_image(job.src)
        out = restore(model, img.array, restore_options(args), device=device, progress=progress)
        h, w = out.shape[:2]
        alpha = resize(img.alpha, h, w) if img.alpha is not None else None  # bicubic up, area down
        write_image(job.dst, out, alpha=alpha, bit_depth=img.bit_depth, quality=args.quality)
    notices.emit(job.src, [c for c in caught if issubclass(c.category, SwinIRNotice)])


def restore_options(args: argparse.Namespace) -> Any:
    from swinir.options import RestoreOptions

    return RestoreOptions(
        tile=args.tile or None,
        overlap=args.overlap,
        ensemble=args.ensemble,
        precision=args.precision,
        batch_size=args.batch_size,
        outscale=args.outscale,
        **control_options(args),
    )


def _fail_line(src: Path, exc: BaseException) -> str:
    msg = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, SwinIRError):
        return f"failed: {msg}" if msg.startswith(str(src)) else f"failed: {src}: {msg}"
    if isinstance(exc, MemoryError):
        return f"failed: {src}: out of memory; use a smaller --tile"
    return f"failed: {src}: {type(exc).__name__}: {msg[:300]}"


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    rank, world, local_rank = dist_env()
    outdir = Path(args.output).expanduser()
    if outdir.exists() and not outdir.is_dir():
        raise SwinIRError(f"{outdir}: the output must be a folder, and this is a file")
    if isinstance(args.tile, int) and args.overlap >= args.tile > 0:
        raise SwinIRError(f"--overlap {args.overlap} must be smaller than --tile {args.tile}")
    options = restore_options(args)  # every value checked before any work
    say = (lambda line: tqdm.write(line, file=sys.stderr)) if rank == 0 else (lambda line: None)

    video_jobs, video_problems, args.inputs = split_videos(args.inputs, outdir, args.suffix)
    plan = collect(args.inputs, outdir, args.recursive, args.suffix, args.ext) if args.inputs else Plan()
    plan.problems += video_problems
    guard = InputGuard([j.src for j in plan.jobs])
    jobs: list[Job] = []
    refused: list[str] = []
    for job in plan.jobs:
        try:
            guard.check(job.dst)
            jobs.append(job)
        except ImageWriteError as exc:
            refused.append(_fail_line(job.src, exc))
    failed_lines = [line for line in plan.problems if line.startswith("failed:")] + refused
    for line in plan.problems + refused:
        say(line)
    if not jobs and not failed_lines and not video_jobs:
        raise SwinIRError("no images found in " + ", ".join(args.inputs))
    if refused and not jobs and not video_jobs:
        raise SwinIRError(f"every output would overwrite its input in {outdir}; choose another -o or a --suffix")

    mine = jobs[rank::world]
    if args.model is None:
        from swinir import zoo

        desc = zoo.get(DEFAULT_MODEL).description if zoo.is_known(DEFAULT_MODEL) else "compact x4"
        say(
            f"using built-in model {DEFAULT_MODEL} ({desc}); for the released SwinIR use "
            "--model classical-x4 / realsr-x4 ..."
        )
    device = _device_for(args.device, local_rank, world)
    model = load_model(args, DEFAULT_MODEL, device, say) if mine or video_jobs else None
    if model is not None and rank == 0:
        shard = f", {len(mine)} of {len(jobs)} on rank 0 of {world}" if world > 1 else ""
        say(f"model: {model.spec.describe()}{shard}")
        if next(model.parameters()).device.type == "cpu" and args.precision == "fp32":
            from swinir import kernels

            if not kernels.available():
                say(
                    f"note: swinir's CPU attention kernel is not in use ({kernels.status()}), so CPU inference "
                    "takes PyTorch's attention, ~10% slower"
                )

    notices = _Notices(lambda line: tqdm.write(line, file=sys.stderr))
    ok = skipped = 0
    failures = 0
    start = time.perf_counter()
    inner = sys.stderr.isatty() and world == 1
    bar = tqdm(mine, desc="restore", unit="img", file=sys.stderr, disable=rank != 0 or not mine, dynamic_ncols=True)
    try:
        for job in bar:
            bar.set_postfix_str(job.src.name, refresh=False)
            if args.skip_existing and job.dst.exists():
                skipped += 1
                continue
            try:
                restore_file(job, model, args, device, inner, notices)
                ok += 1
            except KeyboardInterrupt:
                raise
            except Exception as exc:
                if getattr(args, "debug", False):
                    raise
                failures += 1
                tqdm.write(_fail_line(job.src, exc), file=sys.stderr)
    except KeyboardInterrupt:
        bar.close()
        print(
            f"interrupted after {ok} image(s); finished outputs are kept: rerun with --skip-existing to resume",
            file=sys.stderr,
        )
        raise
    finally:
        bar.close()

    clip = partial(restore_clip, model, options=options)
    videos = run_videos(video_jobs, clip, args, rank, world, say)  # every rank works on every video
    failures += videos[2] if rank else 0
    own = [ok, skipped, failures]
    totals = _sum_across_ranks(own) if world > 1 else own
    if rank == 0:
        totals = [t + v for t, v in zip(totals or own, videos)]
    scope = f" across {world} ranks" if world > 1 else ""
    if totals is None:  # no process group could be formed: rank 0 reports its share, others their failures
        totals, scope = own, f" on rank 0 of {world} (other ranks report their own failures)"
        if rank != 0 and failures:
            print(f"rank {rank} of {world}: {ok} restored, {failures} failed", file=sys.stderr)
    n_failed = totals[2] + len(failed_lines)
    if rank == 0:
        parts = [f"{totals[0]} restored"]
        if totals[1]:
            parts.append(f"{totals[1]} skipped (output exists)")
        parts.append(f"{n_failed} failed")
        print(f"done: {', '.join(parts)}{scope} in {time.perf_counter() - start:.1f} s -> {outdir}")
    return 1 if failures or (rank == 0 and n_failed) else 0
