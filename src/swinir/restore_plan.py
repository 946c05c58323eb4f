"""Which files a restore run reads and writes, decided in full before the first write.

The plan is pure bookkeeping over paths (no model, no decoding), so every rule that protects the user's files
is checked here, over the whole run, and tested on thousands of generated layouts:

- no output is ever an input (same path, symlink or hard link), whatever the order, suffix or extension;
- two inputs that would write the same output both fail, instead of the later one replacing the earlier;
- an output that already exists is replaced only when asked (``overwrite``), else reported and left alone;
- every output lands inside the output folder: the suffix is a name fragment (no separators, no ``..``),
  and an output whose folder resolves elsewhere (a link inside the output tree) fails before any write;
- only regular files are inputs: a FIFO, socket or device named like an image is listed with its kind
  (opening a FIFO blocks until a writer comes);
- videos in folders are restored like named ones, and two inputs of either kind that would write the
  same output both fail;
- what is left out of an input folder is counted: the output folder inside it, and the earlier outputs of
  a run with the same suffix beside their source (``a_x4.png`` next to ``a.png``), so a rerun does not
  restore its own results again (``a_x4_x4.png``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from swinir.io import READ_EXTENSIONS, WRITE_FORMATS, InputFiles, file_kind
from swinir.options import OptionsError
from swinir.video import VIDEO_EXTENSIONS, is_video, video_output_extension

__all__ = [
    "Job",
    "Plan",
    "plan_restore",
    "split_existing",
    "output_extension",
    "earlier_outputs",
    "check_suffix",
    "lands_inside",
]


@dataclass(frozen=True)
class Job:
    src: Path
    dst: Path


@dataclass
class Plan:
    """The outcome of planning; ``jobs`` are safe to write unless their output exists (``split_existing``)."""

    jobs: list[Job] = field(default_factory=list)
    videos: list[Job] = field(default_factory=list)  # video inputs (swinir.video), checked as the images
    missing: list[Path] = field(default_factory=list)  # named inputs that do not exist
    not_regular: list[tuple[Path, str]] = field(default_factory=list)  # (named input, what it is): failed
    skipped_special: list[tuple[Path, str]] = field(default_factory=list)  # the same found in a folder
    outside: list[Job] = field(default_factory=list)  # outputs that would land outside the output folder
    empty: list[Path] = field(default_factory=list)  # input folders without images
    subfolders_not_read: dict[Path, int] = field(default_factory=dict)  # folder -> subfolders (not recursive)
    under_output: dict[Path, int] = field(default_factory=dict)  # folder -> images inside the output folder
    earlier_outputs: dict[Path, int] = field(default_factory=dict)  # folder -> name{suffix} beside name
    clashes: list[tuple[Path, list[Path]]] = field(default_factory=list)  # output -> inputs that share it
    onto_inputs: list[Job] = field(default_factory=list)  # outputs that are inputs: never written
    inputs: int = 0  # images found or named

    @property
    def failed_sources(self) -> int:
        """Inputs that cannot be restored at all (missing, not a regular file, clashing, whose output is an
        input or lands outside the output folder)."""
        clashing = sum(len(srcs) for _, srcs in self.clashes)
        return len(self.missing) + len(self.not_regular) + clashing + len(self.onto_inputs) + len(self.outside)


def output_extension(src: Path, ext: str) -> str:
    """``ext`` as ``.png`` etc.; ``same`` keeps the input's extension when it can be written, else PNG."""
    if ext == "same":
        suffix = src.suffix.lower()
        return suffix if suffix in WRITE_FORMATS else ".png"
    return "." + ext.lstrip(".").lower()


def check_suffix(suffix: str) -> str:
    """``suffix`` if it is a name fragment; a separator or ``..`` could put an output anywhere."""
    if any(c in suffix for c in ("/", "\\", "\0", os.sep, os.altsep or "/")) or ".." in suffix:
        raise OptionsError(
            "suffix", f"suffix {suffix!r} must be a name fragment, e.g. _x4: no path separators and no '..'"
        )
    return suffix


def _within(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
        return True
    except ValueError:
        return False


def lands_inside(path: str | os.PathLike[str], folder: str | os.PathLike[str]) -> bool:
    """Whether writing ``path`` creates or replaces an entry inside ``folder``, links in its folders
    followed (a link at ``path`` itself is replaced, not followed)."""
    p = Path(path)
    return _within(Path(os.path.realpath(p.parent)) / p.name, Path(os.path.realpath(folder)))


_INPUT_EXTENSIONS = READ_EXTENSIONS + VIDEO_EXTENSIONS


def _walk(folder: Path, recursive: bool, plan: Plan) -> list[Path]:
    """Regular image and video files under ``folder``; others named like them go to ``plan``."""
    walker = folder.rglob("*") if recursive else folder.iterdir()
    found = []
    for f in sorted(walker):
        rel = f.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts):
            continue  # hidden files and folders, and our own temporary files
        if f.suffix.lower() not in _INPUT_EXTENSIONS:
            continue
        kind = file_kind(f)
        if kind is None:
            found.append(f)
        elif kind != "a folder":
            plan.skipped_special.append((f, kind))
    return found


def earlier_outputs(files: Sequence[Path], suffix: str) -> set[Path]:
    """Files named ``stem + suffix`` beside a file named ``stem``: the results of an earlier run."""
    if not suffix:
        return set()
    stems: dict[Path, set[str]] = {}
    for f in files:
        stems.setdefault(f.parent, set()).add(f.stem)
    return {f for f in files if f.stem.endswith(suffix) and f.stem[: -len(suffix)] in stems[f.parent]}


def _gather_folder(folder: Path, out_res: Path, recursive: bool, suffix: str, plan: Plan) -> list[tuple[Path, Path]]:
    """(image, folder it mirrors under the output) for one input folder; exclusions counted in ``plan``."""
    files = _walk(folder, recursive, plan)
    folder_res = folder.resolve()
    out_inside = out_res != folder_res and _within(out_res, folder_res)
    inside_out = [f for f in files if out_inside and _within(f.resolve(), out_res)]
    if inside_out:
        plan.under_output[folder] = len(inside_out)
    excluded = set(inside_out)
    kept = [f for f in files if f not in excluded]
    earlier = earlier_outputs(kept, suffix)
    if earlier:
        plan.earlier_outputs[folder] = len(earlier)
    kept = [f for f in kept if f not in earlier]
    if not recursive:
        subfolders = sum(1 for c in folder.iterdir() if c.is_dir() and not c.name.startswith("."))
        if subfolders:
            plan.subfolders_not_read[folder] = subfolders
    if not files:
        plan.empty.append(folder)
    return [(f, f.parent.relative_to(folder)) for f in kept]


def plan_restore(
    inputs: Iterable[str | os.PathLike[str]], outdir: str | os.PathLike[str], recursive: bool, suffix: str, ext: str
) -> Plan:
    """Every image and video under ``inputs`` with its output under ``outdir`` (``name + suffix + ext``,
    mirroring subfolders when ``recursive``; a video keeps its container where it can be written, else
    .mkv), sorted by output; see the module docstring for what is refused. A bad ``suffix`` or an empty
    ``outdir`` raises ``OptionsError``."""
    if not os.fspath(outdir):
        raise OptionsError("output", "the output folder is empty; name a folder (. is the current one)")
    check_suffix(suffix)
    plan = Plan()
    out = Path(outdir).expanduser()
    out_res = out.resolve()
    sources: list[tuple[Path, Path]] = []
    for text in inputs:
        p = Path(text).expanduser()
        kind = file_kind(p)
        if kind == "a folder":
            sources += _gather_folder(p, out_res, recursive, suffix, plan)
        elif kind is None:
            sources.append((p, Path()))
        elif kind in ("missing", "a broken link"):
            plan.missing.append(p)
        else:
            plan.not_regular.append((p, kind))
    taken = InputFiles()
    seen: set[Path] = set()
    by_dst: dict[str, list[Job]] = {}
    for src, rel in sources:
        real = taken.real(src)
        if real in seen:
            continue  # the same file named twice (or through a link)
        seen.add(real)
        taken.add(src)
        extension = video_output_extension(src) if is_video(src) else output_extension(src, ext)
        dst = out / rel / f"{src.stem}{suffix}{extension}"
        by_dst.setdefault(os.path.normcase(str(taken.real(dst))), []).append(Job(src, dst))
    plan.inputs = len(seen) + len(plan.missing) + len(plan.not_regular)
    for jobs in by_dst.values():
        job = jobs[0]
        if len(jobs) > 1:
            plan.clashes.append((job.dst, [j.src for j in jobs]))
        elif taken.find(job.dst) is not None:
            plan.onto_inputs.append(job)
        elif not lands_inside(job.dst, out_res):
            plan.outside.append(job)
        else:
            (plan.videos if is_video(job.src) else plan.jobs).append(job)
    plan.jobs.sort(key=lambda j: str(j.dst))
    plan.videos.sort(key=lambda j: str(j.dst))
    plan.clashes.sort(key=lambda c: str(c[0]))
    return plan


def split_existing(jobs: Iterable[Job], overwrite: bool) -> tuple[list[Job], list[Job]]:
    """(jobs to run, jobs whose output already exists and must be left alone); with ``overwrite`` all run."""
    run: list[Job] = []
    existing: list[Job] = []
    for job in jobs:
        there = job.dst.exists() or job.dst.is_symlink()
        (existing if there and not overwrite else run).append(job)
    return run, existing
