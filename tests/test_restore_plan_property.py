"""Property test of the restore planner (issue 12): random folders of images with colliding names,
extensions, suffixes, ``-r`` and output folders inside input folders. Whatever the layout, no input's bytes
change and no existing file is replaced without ``--overwrite``.

Most cases are checked at plan level (the plan is executed by writing marker bytes to every output the CLI
would write, through the same ``split_existing`` and ``InputFiles`` checks); a subset runs the real CLI with
a tiny model.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from io import StringIO
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
