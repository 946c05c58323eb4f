"""Which files a restore run reads and writes, decided in full before the first write.

The plan is pure bookkeeping over paths (no model, no decoding), so every rule that protects the user's files
is checked here, over the whole run, and tested on thousands of generated layouts:

- no output is ever an input (same path, symlink or hard link), whatever the order, suffix or extension;
- two inputs that would write the same output both fail, instead of the later one replacing the earlier;
- an output that already exists is replaced only when asked (``overwrite``), else reported and left alone;
- what is left out of an input folder is counted: the output folder inside it, and the earlier outputs of
  a run with the same suffix beside their source (``a_x4.png`` next to ``a.png``), so a rerun does not
  restore its own results again (``a_x4_x4.png``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from swinir.io import READ_EXTENSIONS, WRITE_FORMATS, InputFiles

__all__ = ["Job", "Plan", "plan_restore", "split_existing", "output_extension", "earlier_outputs"]


@dataclass(frozen=True)
class Job:
    src: Path
    dst: Path


@dataclass
class Plan:
    """The outcome of planning; ``jobs`` are safe to write unless their output exists (``split_existing``)."""

    jobs: list[Job] = field(default_factory=list)
    missing: list[Path] = field(default_factory=list)  # named inputs that do not exist
    empty: list[Path] = field(default_factory=list)  # input folders without images
    subfolders_not_read: dict[Path, int] = field(default_factory=dict)  # folder -> subfolders (not recursive)
    under_output: dict[Path, int] = field(default_factory=dict)  # folder -> images inside the output folder
    earlier_outputs: dict[Path, int] = field(default_factory=dict)  # folder -> name{suffix} beside name
    clashes: list[tuple[Path, list[Path]]] = field(default_factory=list)  # output -> inputs that share it
    onto_inputs: list[Job] = field(default_factory=list)  # outputs that are inputs: never written
    inputs: int = 0  # images found or named

    @property
    def failed_sources(self) -> int:
        """Inputs that cannot be restored at all (missing, clashing, or whose output is an input)."""
        return len(self.missing) + sum(len(srcs) for _, srcs in self.clashes) + len(self.onto_inputs)


def output_extension(src: Path, ext: str) -> str:
    """``ext`` as ``.png`` etc.; ``same`` keeps the input's extension when it can be written, else PNG."""
    if ext == "same":
        suffix = src.suffix.lower()
        return suffix if suffix in WRITE_FORMATS else ".png"
    return "." + ext.lstrip(".").lower()


def _within(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
        return True
    except ValueError:
        return False


def _walk(folder: Path, recursive: bool) -> list[Path]:
    walker = folder.rglob("*") if recursive else folder.iterdir()
    found = []
    for f in sorted(walker):
        rel = f.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts):
            continue  # hidden files and folders, and our own temporary files
        if f.suffix.lower() in READ_EXTENSIONS and f.is_file():
            found.append(f)
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
    files = _walk(folder, recursive)
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
    """Every image under ``inputs`` with its output under ``outdir`` (``name + suffix + ext``, mirroring
    subfolders when ``recursive``), sorted by output; see the module docstring for what is refused."""
    plan = Plan()
    out = Path(outdir).expanduser()
    out_res = out.resolve()
    sources: list[tuple[Path, Path]] = []
    for text in inputs:
        p = Path(text).expanduser()
        if p.is_dir():
            sources += _gather_folder(p, out_res, recursive, suffix, plan)
        elif p.exists():
            sources.append((p, Path()))
        else:
            plan.missing.append(p)
    taken = InputFiles()
    seen: set[Path] = set()
    by_dst: dict[str, list[Job]] = {}
    for src, rel in sources:
        real = taken.real(src)
        if real in seen:
            continue  # the same file named twice (or through a link)
        seen.add(real)
        taken.add(src)
        dst = out / rel / f"{src.stem}{suffix}{output_extension(src, ext)}"
        by_dst.setdefault(os.path.normcase(str(taken.real(dst))), []).append(Job(src, dst))
    plan.inputs = len(seen) + len(plan.missing)
    for jobs in by_dst.values():
        if len(jobs) > 1:
            plan.clashes.append((jobs[0].dst, [j.src for j in jobs]))
        elif taken.find(jobs[0].dst) is not None:
            plan.onto_inputs.append(jobs[0])
        else:
            plan.jobs.append(jobs[0])
    plan.jobs.sort(key=lambda j: str(j.dst))
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
