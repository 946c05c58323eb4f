"""Property test of the restore planner (issue 12): random folders of images with colliding names,
extensions, suffixes, ``-r`` and output folders inside input folders. Whatever the layout, no input's bytes
change and no existing file is replaced without ``--overwrite``.

Most cases are checked at plan level (the plan is executed by writing marker bytes to every output the CLI
would write, through the same ``split_existing`` and ``InputFiles`` checks); a subset runs the real CLI with
a tiny model.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from io import StringIO
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from swinir.atomic import write_bytes
from swinir.cli import main
from swinir.cli.restore import EXTS
from swinir.errors import ImageWriteError
from swinir.io import InputFiles, encode_image
from swinir.restore_plan import Plan, plan_restore, split_existing

FOLDERS = ("", "sub", "sub/deep", "out", "out/sub")
STEMS = ("a", "b", "a_x", "a_x_x", "b_x", "c.d")
EXTENSIONS = (".png", ".jpg", ".tif", ".webp", ".bmp")
OUTPUTS = ("", "out", "sub", "sub/deep", "../elsewhere", "out/sub")

layouts = st.fixed_dictionaries(
    {
        "files": st.sets(st.tuples(st.sampled_from(FOLDERS), st.sampled_from(STEMS), st.sampled_from(EXTENSIONS)))
        .filter(bool)
        .map(sorted),
        "out": st.sampled_from(OUTPUTS),
        "suffix": st.sampled_from(("", "_x")),
        "ext": st.sampled_from(EXTS),
        "recursive": st.booleans(),
        "overwrite": st.booleans(),
        "explicit": st.integers(0, 3),  # name this many files on the command line besides the folder
    }
)


def _make(root: Path, case: dict) -> tuple[list[str], Path]:
    """Write the layout under root/in; return the command-line inputs and the output folder."""
    src = root / "in"
    for folder, stem, ext in case["files"]:
        path = src / folder / f"{stem}{ext}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encode_image(np.full((4, 4, 3), len(str(path)) % 256, np.uint8), ext))
    named = [str(src / f"{stem}{ext}") for folder, stem, ext in case["files"] if folder == ""][: case["explicit"]]
    return [str(src), *named], (src / case["out"]).resolve()


@contextmanager
def _layout(case: dict) -> Iterator[tuple[Path, list[str], Path, dict[Path, bytes], Plan]]:
    """A temporary folder holding the case's files: (root, inputs, output folder, bytes before, plan)."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        inputs, out = _make(root, case)
        before = _snapshot(root)
        yield root, inputs, out, before, plan_restore(inputs, out, case["recursive"], case["suffix"], case["ext"])


def _sources(plan: Plan) -> set[Path]:
    """Every file the plan takes as an input, whether it is restored or refused."""
    return {j.src.resolve() for j in plan.jobs + plan.onto_inputs} | {
        s.resolve() for _, srcs in plan.clashes for s in srcs
    }


def _snapshot(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _check_after(before: dict[Path, bytes], after: dict[Path, bytes], inputs: set[Path], overwrite: bool) -> None:
    for path, data in before.items():
        if path in inputs or not overwrite:
            assert after.get(path) == data, f"{path} changed"


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=layouts)
def test_plan_never_writes_an_input_nor_replaces_without_overwrite(case: dict) -> None:
    with _layout(case) as (root, inputs, out, before, plan):
        sources = _sources(plan)
        dsts = [j.dst.resolve() for j in plan.jobs]
        assert len(set(dsts)) == len(dsts), "two jobs write the same file"
        assert not sources & set(dsts), "an output is an input"
        run, existing = split_existing(plan.jobs, case["overwrite"])
        guard = InputFiles(sources)
        for job in run:  # what the CLI does per image, with marker bytes instead of a restoration
            try:
                guard.check(job.dst)
            except ImageWriteError:
                raise AssertionError(f"the plan let {job.dst} through, the write-time guard caught it") from None
            job.dst.parent.mkdir(parents=True, exist_ok=True)
            job.dst.write_bytes(b"restored")
        _check_after(before, _snapshot(root), sources, case["overwrite"])
        assert not case["overwrite"] or not existing
        for job in existing:
            assert job.dst.resolve() in before


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(case=layouts)
def test_real_runs_never_change_an_input_nor_replace_without_overwrite(case: dict, tiny_x2_checkpoint: Path) -> None:
    with _layout(case) as (root, inputs, out, before, plan):
        sources = _sources(plan)
        args = ["restore", *inputs, "-o", str(out), "--ext", case["ext"], "--model", str(tiny_x2_checkpoint)]
        args += ["--suffix", case["suffix"]] if case["suffix"] else []
        args += ["-r"] if case["recursive"] else []
        args += ["--overwrite"] if case["overwrite"] else []
        with redirect_stdout(StringIO()), redirect_stderr(StringIO()):
            main(args)
        after = _snapshot(root)
        _check_after(
            {p.resolve(): b for p, b in before.items()},
            {p.resolve(): b for p, b in after.items()},
            sources,
            case["overwrite"],
        )
        assert not [p for p in after if p.name.startswith(".")], "a temporary file was left behind"


# ---------------------------------------------------------------------------------------------------
# issue 23: hostile suffixes, output folders and layouts; nothing lands outside -o, no input changes
# ---------------------------------------------------------------------------------------------------
HOSTILE_SUFFIXES = ("", "_x", ".x", "/../../outside/v", "_x/..", "..", "_..", "a/b", "\\..\\v", "x\0y")
HOSTILE_OUTPUTS = ("out", "sub", "out/sub", "..", "../outside_link", "out/../out", ".", "")

hostile = st.fixed_dictionaries(
    {
        "files": st.sets(st.tuples(st.sampled_from(FOLDERS), st.sampled_from(STEMS), st.sampled_from(EXTENSIONS)))
        .filter(bool)
        .map(sorted),
        "out": st.sampled_from(HOSTILE_OUTPUTS),
        "suffix": st.sampled_from(HOSTILE_SUFFIXES),
        "ext": st.sampled_from(EXTS),
        "recursive": st.booleans(),
        "overwrite": st.booleans(),
        "fifo": st.sampled_from(("", "fifo.png", "sub/pipe.jpg")),  # a FIFO named like an image, or none
        "link_in_out": st.booleans(),  # out/sub is a link to a folder outside: -r would mirror sub/ into it
        "link_file": st.booleans(),  # in/sub/ext.png links to a file outside (an input, never written)
    }
)


def _files(root: Path) -> dict[Path, bytes]:
    """Regular files under root, links not followed (a write through a link shows up where it landed)."""
    found = {}
    for folder, _, names in os.walk(root):
        for name in names:
            p = Path(folder) / name
            if stat.S_ISREG(p.lstat().st_mode):
                found[p] = p.read_bytes()
    return found


def _make_hostile(root: Path, case: dict) -> tuple[list[str], str, Path | None]:
    """The layout under root: inputs, the -o text, and the output folder it resolves to (None if empty)."""
    src = root / "in"
    (root / "outside").mkdir()
    (root / "outside" / "v.png").write_bytes(b"unrelated")
    (root / "outside_link").symlink_to(root / "outside", target_is_directory=True)
    for folder, stem, ext in case["files"]:
        path = src / folder / f"{stem}{ext}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encode_image(np.full((4, 4, 3), len(str(path)) % 256, np.uint8), ext))
    if case["fifo"]:
        (src / case["fifo"]).parent.mkdir(parents=True, exist_ok=True)
        os.mkfifo(src / case["fifo"])
    if case["link_in_out"]:
        (src / "out").mkdir(parents=True, exist_ok=True)
        if not (src / "out" / "sub").exists():
            (src / "out" / "sub").symlink_to(root / "outside", target_is_directory=True)
    if case["link_file"]:
        (src / "sub").mkdir(parents=True, exist_ok=True)
        (src / "sub" / "ext.png").symlink_to(root / "outside" / "v.png")
    out_text = "" if case["out"] == "" else os.path.join(src, case["out"])
    return [str(src)], out_text, Path(os.path.realpath(out_text)) if out_text else None


def _refused(case: dict) -> bool:
    s = case["suffix"]
    return case["out"] == "" or any(c in s for c in ("/", "\\", "\0")) or ".." in s


def _check_no_write_outside(before: dict[Path, bytes], after: dict[Path, bytes], out: Path | None) -> None:
    touched = [p for p, data in after.items() if before.get(p) != data]
    assert not [p for p in before if p not in after], "a file disappeared"
    outside = [p for p in touched if out is None or not (p == out or out in p.parents)]
    assert not outside, f"written outside -o {out}: {outside}"


_EXAMPLES = [  # the cases of issue 23, always tried besides the generated ones
    {"suffix": "/../../outside/v", "out": "out", "link_in_out": False, "fifo": ""},
    {"suffix": "_x", "out": "out", "link_in_out": True, "fifo": "sub/pipe.jpg"},
    {"suffix": "", "out": "", "link_in_out": False, "fifo": "fifo.png"},
]


def _example(**kw: object) -> dict:
    base = {"files": [("", "a", ".png"), ("sub", "b", ".jpg")], "ext": "png", "recursive": True}
    return {**base, "overwrite": True, "link_file": True, **kw}


def _with_examples(test):  # type: ignore[no-untyped-def]
    for kw in _EXAMPLES:
        test = example(case=_example(**kw))(test)
    return test


@_with_examples
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=hostile)
def test_hostile_plans_write_nothing_outside_the_output_folder(case: dict) -> None:
    from swinir.options import OptionsError

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        inputs, out_text, out = _make_hostile(root, case)
        before = _files(root)
        try:
            plan = plan_restore(inputs, out_text, case["recursive"], case["suffix"], case["ext"])
        except OptionsError as exc:
            assert _refused(case) and exc.field in ("suffix", "output"), exc
            return
        assert not _refused(case), "a hostile suffix or an empty -o was accepted"
        assert out is not None
        run, _ = split_existing(plan.jobs + plan.videos, case["overwrite"])
        guard = InputFiles(_sources(plan))
        for job in run:  # what the pipeline does per file, with marker bytes instead of a restoration
            guard.check(job.dst)
            job.dst.parent.mkdir(parents=True, exist_ok=True)
            write_bytes(job.dst, b"restored", replace=case["overwrite"])
        after = _files(root)
        _check_no_write_outside(before, after, out)
        _check_after(before, after, _sources(plan), case["overwrite"])
        if case["fifo"]:
            fifo = Path(inputs[0]) / case["fifo"]
            assert fifo in [p for p, _ in plan.skipped_special] or not case["recursive"] and "/" in case["fifo"]


@_with_examples
@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(case=hostile)
def test_hostile_real_runs_write_nothing_outside_the_output_folder(case: dict, tiny_x2_checkpoint: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        inputs, out_text, out = _make_hostile(root, case)
        before = _files(root)
        args = ["restore", *inputs, "-o", out_text, "--ext", case["ext"], "--suffix", case["suffix"]]
        args += ["--model", str(tiny_x2_checkpoint)]
        args += ["-r"] if case["recursive"] else []
        args += ["--overwrite"] if case["overwrite"] else []
        cwd = os.getcwd()
        os.chdir(root)  # `-o ''` used to write into the current folder: let that land where it is seen
        try:
            with redirect_stdout(StringIO()), redirect_stderr(StringIO()) as err:
                rc = main(args)
        finally:
            os.chdir(cwd)
        after = _files(root)
        if _refused(case):
            assert rc == 1 and after == before, err.getvalue()
            return
        _check_no_write_outside(before, after, out)
        plan = plan_restore(inputs, out_text, case["recursive"], case["suffix"], case["ext"])
        _check_after(before, after, _sources(plan), case["overwrite"])
        assert not [p for p in after if p.name.startswith(".")], "a temporary file was left behind"
