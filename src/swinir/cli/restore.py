"""`swinir restore`: restore image files and folders with a SwinIR model.

Parsing and printing only: ``swinir.restore_plan`` decides what is read and written (whole plan checked before
the first write), ``swinir.pipeline.restore_file`` restores each image (limits, guarded read, engine, atomic
publish that replaces nothing unless asked), ``swinir.video`` each video. Under ``torchrun`` the sorted image
list is split across ranks (``jobs[rank::world]``); every rank writes its own outputs.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from swinir.cli.restore_controls import CONTROL_FLAGS, add_control_args, control_options, load_model, tile_value
from swinir.cli.restore_video import add_video_args, run_videos, video_flags_given
from swinir.errors import OutputExistsError, SwinIRError
from swinir.options import CAPTURE_NAMES, MAX_OUTSCALE, OptionsError, RestoreOptions
from swinir.pipeline import (
    DEFAULT_INPUT_PIXELS,
    DEFAULT_OUTPUT_PIXELS,
    LOSSLESS_WEBP,
    OUTPUT_FORMATS,
    FileRun,
    LimitError,
    PixelLimits,
)
from swinir.precision import choose as choose_precision
from swinir.restore_plan import Job, Plan, plan_restore, split_existing
from swinir.torchrun import DistInfo, from_env

DEFAULT_MODEL = "builtin-x4"
EXTS = OUTPUT_FORMATS
LISTED = 10  # per-file lines of one kind before "... and N more"

EPILOG = """examples:
  swinir restore photo.jpg -o out/                       # built-in x4 model, works offline
  swinir restore photos/ -o out/ --model realsr-x4 --tile 256
  swinir restore scans/ -o out/ -r --skip-existing        # a folder tree; resumes an interrupted run
  swinir restore lr.png -o out/ --model classical-x2 --ensemble --precision bf16
  swinir restore shot.jpg -o out/ --model realsr-x4 --outscale 2 --ext jpg --quality 92
  swinir restore noisy.png -o out/ --model my_run/best.safetensors --suffix _dn
  torchrun --nproc_per_node 4 -m swinir restore big_folder/ -o out/ -r --model realsr-x4-large
  swinir restore clip.mp4 -o out/ --model realsr-x4 --codec libx265 --crf 20   # a video, audio copied
  swinir restore noisy.png -o out/ --noise-level 35 --strength 0.8
  swinir restore photo.jpg -o out/ --model realsr-x4 --outscale 1            # enhance only
  swinir restore photo.jpg -o out/ --long-side 2000 --max-megapixels 4

notes:
  Outputs keep the input's name (plus --suffix) under OUTDIR, mirroring subfolders with --recursive.
  Existing files: an input is never written, whatever -o, --suffix or --ext (the run refuses those images).
  An output that already exists is not replaced: it is listed and the exit status is 1, unless
  --overwrite (replace it) or --skip-existing (leave it, quietly, exit 0) is given. Two inputs that would
  write the same output (a.png and a.jpg) both fail. The whole plan is checked before the first write,
  and every output lands inside OUTDIR (--suffix is a name fragment: no path separators, no '..').
  Two runs writing into one folder never replace each other's outputs: the one that finishes an image
  second lists it as existing. Only regular files are read: a FIFO or device named *.png is listed
  with what it is. Videos in folders are restored like named ones.
  Sizes: an input over --input-limit megapixels (read from its header) and a result over
  --output-limit are refused before any work.
  Left out of a folder, with a count: subfolders without -r, the output folder when it lies inside the
  input folder, and earlier outputs of the same --suffix beside their source (a_x4.png next to a.png).
  Bit depth follows the input (16-bit PNG/TIFF stay 16-bit); alpha is upscaled separately with bicubic
  interpolation and kept. The ICC profile and EXIF (less orientation) are kept in PNG, JPEG and WebP
  outputs. Gray images on color models (and color on gray) are converted with a notice.
  Animated images: the first frame is restored, with a notice. --outscale resizes the model's result to
  the given factor of the input size: area averaging when shrinking, bicubic when enlarging.
  Each bad file is reported on one line and the rest continue; the exit status is 1 if any failed.
  Ctrl-C or SIGTERM stops after cleaning up the file being written (exit 130 / 143).
"""


def _int_in(lo: int, hi: int | None = None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if v < lo or (hi is not None and v > hi):
            allowed = f"in {lo}-{hi}" if hi is not None else f">= {lo}"
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {v}")
        return v

    return parse


def _outscale(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < v <= MAX_OUTSCALE:
        raise argparse.ArgumentTypeError(f"must be in (0, {MAX_OUTSCALE:g}], got {text}")
    return v


def _megapixels(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of megapixels, got {text!r}") from None
    if not 0 <= v < float("inf"):
        raise argparse.ArgumentTypeError(f"must be >= 0 (0 = no limit), got {text}")
    return v


def _add_run_args(p: argparse.ArgumentParser) -> None:
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
        "free memory. An out-of-memory error halves the tile and retries",
    )
    p.add_argument(
        "--overlap", type=_int_in(0), default=32, metavar="N", help="overlap between tiles in input pixels (default 32)"
    )
    p.add_argument("--ensemble", action="store_true", help="average the 8 flips/rotations (x8 slower, a bit better)")
    p.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16", "fp16"),
        default="auto",
        help="compute precision. auto (default): bf16 on a CPU that computes it natively (AVX512-BF16 or AMX), "
        "else fp32; the summary line says which ran. fp32: results identical on every machine. "
        "fp16 on CPU falls back to bf16",
    )
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: best available)")
    p.add_argument(
        "--capture",
        choices=CAPTURE_NAMES,
        default="off",
        help="capture the forward once per tile shape and replay it: auto = CUDA graphs on CUDA (default off)",
    )
    p.add_argument("--batch-size", type=_int_in(1), default=1, metavar="N", help="tiles per forward pass (default 1)")
    p.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="also say whether swinir's CPU kernels run for this model, and why not",
    )


def _add_file_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files and/or folders")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="folder for the results")
    p.add_argument("-r", "--recursive", action="store_true", help="descend into subfolders of folder inputs")
    existing = p.add_mutually_exclusive_group()
    existing.add_argument("--overwrite", action="store_true", help="replace outputs that already exist")
    existing.add_argument(
        "--skip-existing", action="store_true", help="leave existing outputs alone, quietly (resume a run)"
    )
    p.add_argument("--suffix", default="", help="appended to each output's name, e.g. _x4 (default: none)")
    p.add_argument(
        "--ext", choices=EXTS, default="png", help="output format; 'same' keeps the input's (default png: lossless)"
    )
    p.add_argument(
        "--quality",
        type=_int_in(1, LOSSLESS_WEBP),
        default=95,
        metavar="Q",
        help=f"JPEG/WebP quality 1-100 (default 95); {LOSSLESS_WEBP} = lossless WebP",
    )
    p.add_argument(
        "--outscale",
        type=_outscale,
        default=None,
        metavar="F",
        help="final size as a factor of the input size, e.g. 2 or 3.5 (default: the model's scale)",
    )
    limits = (
        ("--input-limit", DEFAULT_INPUT_PIXELS, "an image over MP megapixels, read from its header before decoding"),
        (
            "--output-limit",
            DEFAULT_OUTPUT_PIXELS,
            "an image whose result would be over MP megapixels, before any compute",
        ),
    )
    for flag, default, what in limits:
        shrink = "; --max-megapixels shrinks instead" if flag == "--output-limit" else ""
        p.add_argument(
            flag,
            type=_megapixels,
            default=default / 1e6,
            metavar="MP",
            help=f"refuse {what} (default {default / 1e6:g}; 0 = no limit{shrink})",
        )


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "restore",
        help="restore images (super-resolution, denoising, JPEG artifacts) with a SwinIR model",
        description="Restore image files and folders with a SwinIR model (a zoo name or a checkpoint file). "
        "Large images are processed in overlapping tiles blended without seams, so memory stays bounded.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_file_args(p)
    _add_run_args(p)
    add_control_args(p)
    add_video_args(p)
    p.set_defaults(func=run)


# ---------------------------------------------------------------------------------------------------
# checks before any work
# ---------------------------------------------------------------------------------------------------
FLAGS = {
    "tile": "--tile",
    "overlap": "--overlap",
    "batch_size": "--batch-size",
    "precision": "--precision",
    "outscale": "--outscale",
    "capture": "--capture",
    "suffix": "--suffix",
    "output": "-o",
    "input_pixels": "--input-limit",
    "output_pixels": "--output-limit",
    **CONTROL_FLAGS,
}


@contextlib.contextmanager
def flag_hints(flags: dict[str, str]) -> Iterator[None]:
    """A library ``OptionsError`` becomes one line that starts with the flag of its field (``flags``)."""
    try:
        yield
    except OptionsError as exc:
        raise SwinIRError(f"{flags.get(exc.field, exc.field)}: {exc}") from None


def build_options(flags: dict[str, str], **values: Any) -> RestoreOptions:
    """RestoreOptions from parsed arguments; a bad value is one line naming the flag (``flags``: field -> flag)."""
    with flag_hints(flags):
        return RestoreOptions(**values)


def options_from(args: argparse.Namespace) -> RestoreOptions:
    return build_options(
        FLAGS,
        tile=args.tile or None,
        overlap=args.overlap,
        ensemble=args.ensemble,
        precision=args.precision,
        batch_size=args.batch_size,
        outscale=args.outscale,
        capture=args.capture,
        **control_options(args),
    )


def limits_from(args: argparse.Namespace) -> PixelLimits:
    return PixelLimits(
        round(args.input_limit * 1e6) or None,
        round(args.output_limit * 1e6) or None,
    )


def _check_ignored(args: argparse.Namespace) -> None:
    """Options that would do nothing here are refused instead of being ignored in silence."""
    if args.alpha is not None and not args.blend_with:
        raise SwinIRError("--alpha weighs the model of --blend-with; give --blend-with too, or leave --alpha out")
    if args.gray and args.noise_level is None and args.jpeg_quality is None:
        raise SwinIRError(
            "--gray picks the grayscale models of --noise-level/--jpeg-quality; give one of them, or leave --gray "
            "out (a color model restores gray images, with a notice)"
        )


def _check_args(args: argparse.Namespace) -> None:
    if not args.output:
        raise SwinIRError("-o is empty; give a folder for the results (-o . is the current folder)")
    _check_ignored(args)
    if args.quality == LOSSLESS_WEBP and args.ext not in ("webp", "same"):
        raise SwinIRError(f"--quality {LOSSLESS_WEBP} (lossless) applies to WebP only; use 1-100 for --ext {args.ext}")
    if args.device is not None:
        from swinir.device import resolve_device

        try:
            resolve_device(args.device)
        except SwinIRError as exc:
            raise SwinIRError(f"--device {args.device}: {exc}") from None
    outdir = Path(args.output).expanduser()
    if outdir.exists() and not outdir.is_dir():
        raise SwinIRError(f"{outdir}: the output must be a folder, and this is a file; choose another -o")


def check_writable(outdir: Path) -> None:
    """Create ``outdir`` and write a file there once, so a read-only or full target fails before any work."""
    try:
        outdir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=outdir, prefix=".swinir-probe-"):
            pass
    except OSError as exc:
        raise SwinIRError(f"{outdir}: cannot write there ({exc.strerror or exc}); choose another -o") from None


def _listed(lines: list[str], say: Callable[[str], None]) -> None:
    for line in lines[:LISTED]:
        say(line)
    if len(lines) > LISTED:
        say(f"... and {len(lines) - LISTED} more like the above")


def report_plan(plan: Plan, args: argparse.Namespace, say: Callable[[str], None]) -> None:
    """One line per exclusion (with its count) and per input that cannot start."""
    from swinir.video import is_video

    for folder, n in plan.subfolders_not_read.items():
        say(f"notice: {folder}: {n} subfolder(s) not read (use --recursive)")
    for folder, n in plan.under_output.items():
        say(f"notice: {folder}: {n} image(s) inside the output folder {args.output} left out")
    for folder, n in plan.earlier_outputs.items():
        say(f"notice: {folder}: {n} earlier output(s) (*{args.suffix} beside their source) left out")
    for folder in plan.empty:
        say(f"notice: {folder}: no images or videos found")
    _listed(
        [f"skipped: {p}: {kind}, not a regular file; only regular files are read" for p, kind in plan.skipped_special],
        say,
    )
    _listed([f"failed: {p}: no such file or folder" for p in plan.missing], say)
    _listed(
        [f"failed: {p}: {kind}, not a regular file; only regular files are read" for p, kind in plan.not_regular], say
    )
    clash = [
        f"failed: {', '.join(map(str, srcs))}: all would be written to {dst}; "
        + ("use separate -o folders" if is_video(dst) else "use --ext same or a --suffix")
        for dst, srcs in plan.clashes
    ]
    _listed(clash, say)
    onto = [
        f"failed: {j.src}: refusing to overwrite the input {'video' if is_video(j.src) else 'image'} {j.dst}; "
        "choose another -o or a --suffix"
        for j in plan.onto_inputs
    ]
    _listed(onto, say)
    outside = [
        f"failed: {j.src}: its output {j.dst} would land in {os.path.realpath(j.dst.parent)}, outside -o "
        f"{args.output} (a link inside the output folder); not written"
        for j in plan.outside
    ]
    _listed(outside, say)


# ---------------------------------------------------------------------------------------------------
# distributed sharding (torchrun sets RANK / WORLD_SIZE / LOCAL_RANK)
# ---------------------------------------------------------------------------------------------------
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


def _device_for(requested: str | None, info: DistInfo) -> str | None:
    if not info.enabled:
        return requested
    import torch

    if requested in (None, "auto", "cuda") and torch.cuda.is_available():
        return f"cuda:{info.local_rank % torch.cuda.device_count()}"
    return requested


# ---------------------------------------------------------------------------------------------------
# running
# ---------------------------------------------------------------------------------------------------
class _Notices:
    """Print each distinct notice once per run, above the progress bar."""

    def __init__(self, write: Callable[[str], None]) -> None:
        self.seen: set[str] = set()
        self.write = write

    def emit(self, src: Path, messages: list[str]) -> None:
        for msg in messages:
            if msg not in self.seen:
                self.seen.add(msg)
                self.write(f"notice: {src.name}: {msg}")


def _progress_bar(total: int, disable: bool) -> Any:
    """tqdm whose bar fills by tiles while its count shows whole images (``3/20``, never ``0.04/1``)."""
    from tqdm import tqdm

    class ImagesBar(tqdm):  # type: ignore[misc]
        @property
        def format_dict(self) -> dict[str, Any]:
            d: dict[str, Any] = super().format_dict
            d["images"] = int(d["n"] or 0)
            return d

    fmt = "{l_bar}{bar}| {images}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}{postfix}]"
    return ImagesBar(
        total=total, desc="restore", unit="img", file=sys.stderr, disable=disable, dynamic_ncols=True, bar_format=fmt
    )


class _ImageBar:
    """The per-image bar, advanced by fractions of an image as its tiles finish (with the tile count)."""

    def __init__(self, bar: Any, say: Callable[[str], None] | None = None) -> None:
        self.bar, self.done, self.name, self.shown = bar, 0, "", 0.0
        self.say = say  # with -v: each image's tiling, as laid

    def on_plan(self, rows: Sequence[tuple[int, int]], cols: Sequence[tuple[int, int]]) -> None:
        if self.say is not None:
            self.say(f"note: {self.name}: {tiling_note(rows, cols)}")

    def start(self, name: str) -> None:
        self.name = name
        self.bar.set_postfix_str(name, refresh=False)

    def on_tile(self, done: int, total: int) -> None:
        self.bar.n = self.done + done / total
        now = time.monotonic()
        if done == 1 or done == total or now - self.shown >= 0.1:  # small tiles on a GPU: 10 redraws/s at most
            self.shown = now
            self.bar.set_postfix_str(f"{self.name} tile {done}/{total}")

    def on_progress(self, done: float, total: int) -> None:
        """Within a tile (CPU): the bar fills as the model's residual groups finish; the counts stay whole."""
        if done == int(done):
            return  # a whole tile: on_tile draws it with the tile count
        self.bar.n = self.done + done / total
        now = time.monotonic()
        if now - self.shown >= 0.1:
            self.shown = now
            self.bar.refresh()

    def finish(self) -> None:
        self.done += 1
        self.bar.n = self.done
        self.bar.refresh()


def tiling_note(rows: Sequence[tuple[int, int]], cols: Sequence[tuple[int, int]]) -> str:
    """How an image is tiled, in input pixels: "the whole image (1200x1600) in one forward", or "12 tiles
    (3 rows x 4 columns) of up to 424x424, overlapping by up to 32"."""
    if len(rows) == 1 and len(cols) == 1:
        return f"the whole image ({rows[0][1] - rows[0][0]}x{cols[0][1] - cols[0][0]}) in one forward"
    height, width = max(b - a for a, b in rows), max(b - a for a, b in cols)
    overlap = max((end - start for spans in (rows, cols) for (_, end), (start, _) in zip(spans, spans[1:])), default=0)
    shared = f", overlapping by up to {overlap}" if overlap > 0 else ""
    grid = f"{len(rows)} row{'s' if len(rows) > 1 else ''} x {len(cols)} column{'s' if len(cols) > 1 else ''}"
    return f"{len(rows) * len(cols)} tiles ({grid}) of up to {height}x{width}{shared}"


def _fail_line(src: Path, exc: BaseException) -> str:
    msg = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, LimitError):
        flag = FLAGS[exc.field]
        msg += f"; {flag} MP raises the limit ({flag} 0 lifts it)"
    if isinstance(exc, SwinIRError):
        return f"failed: {msg}" if msg.startswith(str(src)) else f"failed: {src}: {msg}"
    if isinstance(exc, MemoryError):
        return f"failed: {src}: out of memory; use a smaller --tile"
    return f"failed: {src}: {type(exc).__name__}: {msg[:300]}"


def _exists_line(job: Job, meanwhile: bool = False) -> str:
    when = "; another run wrote it meanwhile" if meanwhile else ""
    return f"exists: {job.dst}: not replaced (from {job.src}{when}); --overwrite replaces it"


class Stopped(KeyboardInterrupt):
    """Ctrl-C or SIGTERM: the run stops; the exit status is 128 + the signal number."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[None]:
    """SIGINT and SIGTERM raise ``Stopped``, so the file being written is cleaned up (atomic_path)."""

    def handler(signum: int, frame: Any) -> None:
        raise Stopped(signum)

    old: dict[signal.Signals, Any] = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError):  # not the main thread
            old[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)


def _restore_all(
    jobs: list[Job], run: FileRun, notices: _Notices, info: DistInfo, args: argparse.Namespace
) -> list[int]:
    """[restored, failed, exists] of this rank's images, with a bar that moves per tile and within one."""
    from tqdm import tqdm

    from swinir.pipeline import restore_file

    ok = failures = exists = 0
    with _progress_bar(len(jobs), disable=not info.main) as bar:
        images = _ImageBar(bar, (lambda line: tqdm.write(line, file=sys.stderr)) if args.verbose else None)
        run.on_tile, run.on_progress, run.on_plan = images.on_tile, images.on_progress, images.on_plan
        for job in jobs:
            images.start(job.src.name)
            try:
                notices.emit(job.src, restore_file(run, job.src, job.dst))
                ok += 1
            except KeyboardInterrupt:
                raise
            except OutputExistsError:  # published by another run since the plan: theirs stays
                exists += 1
                if not args.skip_existing:
                    tqdm.write(_exists_line(job, meanwhile=True), file=sys.stderr)
            except Exception as exc:
                if getattr(args, "debug", False):
                    raise
                failures += 1
                tqdm.write(_fail_line(job.src, exc), file=sys.stderr)
            images.finish()
    return [ok, failures, exists]


def _load(args: argparse.Namespace, info: DistInfo, say: Callable[[str], None], n_mine: int, n_all: int) -> Any:
    if args.model is None and args.noise_level is None and args.jpeg_quality is None:
        from swinir import zoo

        desc = zoo.get(DEFAULT_MODEL).description if zoo.is_known(DEFAULT_MODEL) else "compact x4"
        say(f"using built-in model {DEFAULT_MODEL} ({desc}); for the released SwinIR use --model classical-x4 / ...")
    model = load_model(args, DEFAULT_MODEL, _device_for(args.device, info), say)
    shard = f", {n_mine} of {n_all} on rank 0 of {info.world}" if info.enabled else ""
    say(f"model: {model.spec.describe()}{shard}")
    if args.verbose and next(model.parameters()).device.type == "cpu":
        from swinir import kernels

        spec = model.spec
        say("note: " + kernels.usage_note(spec.window_size, [spec.embed_dim // h for h in spec.num_heads]))
    return model


def _summary(
    counts: list[int], plan: Plan, info: DistInfo, elapsed: float, outdir: Path, skip: bool, precision: str = ""
) -> int:
    """Print the totals (rank 0), with the precision that ran when a model ran, and return the exit status."""
    totals = _sum_across_ranks(counts) if info.enabled else counts
    scope = f" across {info.world} ranks" if info.enabled else ""
    if totals is None:  # no process group could be formed: rank 0 reports its share, others their failures
        totals, scope = counts, f" on rank 0 of {info.world} (other ranks report their own failures)"
        if not info.main and counts[1]:
            print(f"rank {info.rank} of {info.world}: {counts[0]} restored, {counts[1]} failed", file=sys.stderr)
    restored, failed, existing = totals[0], totals[1] + plan.failed_sources, totals[2]
    parts = [f"{restored} restored"]
    if existing:
        parts.append(f"{existing} skipped (output exists)" if skip else f"{existing} not replaced (output exists)")
    parts.append(f"{failed} failed")
    if info.main:
        ran = f"; precision {precision}" if precision else ""
        print(f"done: {', '.join(parts)}{scope} in {elapsed:.1f} s -> {outdir}{ran}")
    own_kept_back = counts[2] and not skip
    everything_kept_back = existing and not skip
    return 1 if counts[1] or own_kept_back or (info.main and (failed or everything_kept_back)) else 0


def run(args: argparse.Namespace) -> int:
    info = from_env()
    options = options_from(args)
    _check_args(args)
    limits = limits_from(args)
    outdir = Path(args.output).expanduser()
    say: Callable[[str], None] = (lambda line: print(line, file=sys.stderr)) if info.main else (lambda line: None)

    with flag_hints(FLAGS):
        plan = plan_restore(args.inputs, outdir, args.recursive, args.suffix, args.ext)
    report_plan(plan, args, say)
    if not plan.jobs and not plan.videos and not plan.failed_sources:
        raise SwinIRError("no images or videos found in " + ", ".join(args.inputs))
    if plan.onto_inputs and not plan.jobs and not plan.videos:
        raise SwinIRError(f"every output would overwrite its input in {outdir}; choose another -o or a --suffix")
    from swinir.io import InputFiles
    from swinir.video import is_video

    sources = [j.src for j in plan.jobs + plan.videos + plan.onto_inputs + plan.outside]
    sources += [s for _, srcs in plan.clashes for s in srcs]
    unused = video_flags_given(args)
    if unused and not any(is_video(s) for s in sources):
        verb = "applies" if len(unused) == 1 else "apply"
        say(f"notice: {', '.join(unused)} {verb} to videos only, and no input is a video: ignored")
    # each rank looks only at its own share of outputs: another rank's fresh files never count as existing
    mine, existing = split_existing(plan.jobs[info.rank :: info.world], args.overwrite)
    videos, video_existing = split_existing(plan.videos, args.overwrite)  # every rank works on every video
    existing += video_existing if info.main else []
    if not args.skip_existing:
        _listed([_exists_line(j) for j in existing], lambda line: print(line, file=sys.stderr))
    guard = InputFiles(sources)
    start = time.perf_counter()
    counts = [0, 0, len(existing)]
    precision = ""
    if mine or videos:
        check_writable(outdir)
        from swinir.cli import running_as_program

        if running_as_program():  # a one-shot process: full-size activations reuse freed pages (swinir.heap)
            from swinir.heap import keep_freed_memory

            keep_freed_memory()
        model = _load(args, info, say, len(mine), len(plan.jobs))
        chosen = choose_precision(options.precision, model)
        options, precision = replace(options, precision=chosen.name), chosen.describe()
        file_run = FileRun(model, options, args.quality, args.overwrite, limits, guard, outdir)
        try:
            with _stop_on_signals():
                images = _restore_all(mine, file_run, _Notices(say_always), info, args) if mine else [0, 0, 0]
                clips = run_videos(videos, model, options, limits, args, info.rank, info.world, say, _fail_line)
            counts = [
                images[0] + (clips[0] if info.main else 0),
                images[1] + clips[1],
                counts[2] + images[2] + (clips[2] if info.main else 0),
            ]
        except Stopped as stop:
            name = signal.Signals(stop.signum).name
            print(
                f"stopped by {name}: finished outputs are kept; rerun with --skip-existing to resume", file=sys.stderr
            )
            return 128 + stop.signum
    return _summary(counts, plan, info, time.perf_counter() - start, outdir, args.skip_existing, precision)


def say_always(line: str) -> None:
    from tqdm import tqdm

    tqdm.write(line, file=sys.stderr)
