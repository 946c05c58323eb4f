"""`swinir restore`: files and folders, formats, resume, refusal to overwrite, failures, outscale, torchrun."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import swinir
from swinir.cli import main
from swinir.engine import restore
from swinir.io import read_image, write_image

RNG = np.random.default_rng(1)


def _rgb(h: int, w: int, dtype: type = np.uint8) -> np.ndarray:
    hi = 65536 if dtype == np.uint16 else 256
    return RNG.integers(0, hi, size=(h, w, 3)).astype(dtype)


@pytest.fixture(scope="module")
def x2(golden: Path) -> Path:
    return golden / "models" / "pixelshuffle_x2.pth"


@pytest.fixture(scope="module")
def tiny(tiny_x2_checkpoint: Path) -> Path:
    return tiny_x2_checkpoint


def test_mixed_folder_formats_alpha_bit_depth(tmp_path: Path, x2: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "in"
    a = _rgb(13, 17)
    write_image(src / "a.png", a)
    write_image(src / "b.jpg", _rgb(20, 11))
    rgba, alpha = _rgb(9, 15), np.zeros((9, 15), np.uint8)
    alpha[:, 8:] = 255
    write_image(src / "c.png", rgba, alpha=alpha)
    write_image(src / "d.png", _rgb(10, 12, np.uint16)[..., 0])  # 16-bit gray on a color model
    write_image(src / "e.tif", _rgb(7, 9, np.uint16))
    out = tmp_path / "out"
    assert main(["restore", str(src), "-o", str(out), "--model", str(x2)]) == 0
    cap = capsys.readouterr()
    assert "done: 5 restored, 0 failed" in cap.out
    assert "notice: d.png: gray image given to a color model" in cap.err

    ra = read_image(out / "a.png")
    assert ra.array.shape == (26, 34, 3) and ra.bit_depth == 8
    assert np.array_equal(ra.array, restore(swinir.load(x2, device="cpu"), a, precision="auto"))  # the default
    assert read_image(out / "b.png").array.shape == (40, 22, 3)
    rc = read_image(out / "c.png")
    assert rc.alpha is not None and rc.alpha.shape == (18, 30)
    assert rc.alpha[:, :14].max() == 0 and rc.alpha[:, 18:].min() == 255
    rd = read_image(out / "d.png")
    assert rd.is_gray and rd.bit_depth == 16 and rd.array.shape == (20, 24)
    re_ = read_image(out / "e.png")
    assert re_.bit_depth == 16 and re_.array.shape == (14, 18, 3)


def test_bad_file_is_one_line_and_the_rest_continue(
    tmp_path: Path, tiny: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "in"
    write_image(src / "good.png", _rgb(8, 8))
    (src / "broken.png").write_text("not an image")
    (src / "truncated.jpg").write_bytes((src / "good.png").read_bytes()[:40])
    rc = main(["restore", str(src), str(tmp_path / "missing.png"), "-o", str(tmp_path / "out"), "--model", str(tiny)])
    cap = capsys.readouterr()
    assert rc == 1
    assert (tmp_path / "out" / "good.png").is_file()
    fails = [line for line in cap.err.splitlines() if "failed:" in line]
    assert len(fails) == 3 and all(line.count("failed:") == 1 for line in fails)
    assert any("broken.png: not a readable image: found text" in line for line in fails)
    assert any("truncated.jpg" in line for line in fails)
    assert any("missing.png: no such file or folder" in line for line in fails)
    assert "Traceback" not in cap.err
    assert "done: 1 restored, 3 failed" in cap.out


def test_never_overwrites_an_input(tmp_path: Path, tiny: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "in"
    write_image(src / "a.png", _rgb(8, 8))
    before = (src / "a.png").read_bytes()
    assert main(["restore", str(src), "-o", str(src), "--model", str(tiny)]) == 1
    assert "refusing to overwrite" in capsys.readouterr().err
    assert (src / "a.png").read_bytes() == before
    assert main(["restore", str(src), "-o", str(src), "--suffix", "_x2", "--model", str(tiny)]) == 0
    assert (src / "a.png").read_bytes() == before
    assert read_image(src / "a_x2.png").array.shape == (16, 16, 3)


def test_skip_existing_resumes(tmp_path: Path, tiny: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    for name in ("a", "b", "c"):
        write_image(src / f"{name}.png", _rgb(8, 8))
    assert main(["restore", str(src), "-o", str(out), "--model", str(tiny)]) == 0
    (out / "b.png").unlink()  # as if interrupted before b was written
    sentinel = (out / "a.png").read_bytes() + b""
    os.utime(out / "a.png", (1, 1))
    capsys.readouterr()
    assert main(["restore", str(src), "-o", str(out), "--skip-existing", "--model", str(tiny)]) == 0
    assert "done: 1 restored, 2 skipped (output exists), 0 failed" in capsys.readouterr().out
    assert (out / "b.png").is_file()
    assert (out / "a.png").stat().st_mtime == 1 and (out / "a.png").read_bytes() == sentinel
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left


def test_recursive_mirrors_the_tree(tmp_path: Path, tiny: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    write_image(src / "top.png", _rgb(6, 6))
    write_image(src / "sub" / "deep" / "low.jpg", _rgb(6, 6))
    assert main(["restore", str(src), "-o", str(out), "--model", str(tiny)]) == 0
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.*")) == ["top.png"]
    assert (
        main(["restore", str(src), "-o", str(out), "-r", "--ext", "same", "--skip-existing", "--model", str(tiny)]) == 0
    )
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.*")) == ["sub/deep/low.jpg", "top.png"]
    # an output folder inside the input tree is not read back as input, and that is said with a count
    assert main(["restore", str(src), "-o", str(src / "restored"), "-r", "--model", str(tiny)]) == 0
    capsys.readouterr()
    assert main(["restore", str(src), "-o", str(src / "restored"), "-r", "--overwrite", "--model", str(tiny)]) == 0
    cap = capsys.readouterr()
    assert "done: 2 restored" in cap.out.splitlines()[-1]
    assert "2 image(s) inside the output folder" in cap.err


@pytest.mark.parametrize("factor,size", [(2, (22, 14)), (3.5, (38, 24)), (0.5, (6, 4)), (1, (11, 7))])
def test_outscale(tmp_path: Path, tiny: Path, factor: float, size: tuple[int, int]) -> None:
    img, alpha = _rgb(11, 7), np.full((11, 7), 200, np.uint8)
    write_image(tmp_path / "a.png", img, alpha=alpha)
    out = tmp_path / "out"
    assert (
        main(["restore", str(tmp_path / "a.png"), "-o", str(out), "--outscale", str(factor), "--model", str(tiny)]) == 0
    )
    r = read_image(out / "a.png")
    assert r.array.shape[:2] == size and r.alpha is not None and r.alpha.shape == size
    assert np.all(r.alpha == 200)  # a flat alpha stays flat through any resampler
    if factor == 2:  # the model's own scale: no resampling at all
        assert np.array_equal(r.array, restore(swinir.load(tiny, device="cpu"), img, precision="auto"))


def test_jpeg_output_and_16bit_notice(tmp_path: Path, tiny: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_image(tmp_path / "deep.png", _rgb(8, 8, np.uint16), alpha=np.full((8, 8), 65535, np.uint16))
    out = tmp_path / "out"
    assert (
        main(
            [
                "restore",
                str(tmp_path / "deep.png"),
                "-o",
                str(out),
                "--ext",
                "jpg",
                "--quality",
                "80",
                "--model",
                str(tiny),
            ]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert "JPEG holds 8 bits" in err and "no alpha channel" in err
    r = read_image(out / "deep.jpg")
    assert r.bit_depth == 8 and r.alpha is None and r.array.shape == (16, 16, 3)


def test_tiled_cli_equals_api(tmp_path: Path, x2: Path) -> None:
    img = _rgb(40, 36)
    write_image(tmp_path / "a.png", img)
    out = tmp_path / "out"
    args = ["--tile", "16", "--overlap", "8", "--batch-size", "2", "--model", str(x2)]
    assert main(["restore", str(tmp_path / "a.png"), "-o", str(out), *args]) == 0
    expected = restore(swinir.load(x2, device="cpu"), img, tile=16, overlap=8, precision="auto")
    assert np.array_equal(read_image(out / "a.png").array, expected)


def test_argument_and_model_errors_are_one_line(tmp_path: Path, tiny: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_image(tmp_path / "a.png", _rgb(6, 6))
    assert (
        main(["restore", str(tmp_path / "a.png"), "-o", str(tmp_path / "o"), "--model", str(tmp_path / "nope.pth")])
        == 1
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and "nope.pth" in err[-1]
    assert (
        main(
            [
                "restore",
                str(tmp_path / "a.png"),
                "-o",
                str(tmp_path / "o"),
                "--tile",
                "32",
                "--overlap",
                "40",
                "--model",
                str(tiny),
            ]
        )
        == 1
    )
    assert "error: --overlap: overlap (40) must be smaller than the tile (32)" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["restore", str(empty), "-o", str(tmp_path / "o"), "--model", str(tiny)]) == 1
    assert "no images or videos found" in capsys.readouterr().err
    with pytest.raises(SystemExit) as ei:
        main(["restore", str(tmp_path / "a.png"), "-o", str(tmp_path / "o"), "--outscale", "-2"])
    assert ei.value.code == 2


def test_default_model_notice(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_image(tmp_path / "a.png", _rgb(6, 6))
    rc = main(["restore", str(tmp_path / "a.png"), "-o", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert "using built-in model builtin-x4" in err and "--model classical-x4" in err
    if rc == 0:  # the built-in weights ship with this build
        assert read_image(tmp_path / "o" / "a.png").array.shape == (24, 24, 3)
    else:  # not shipped (yet): one clear line naming it
        assert rc == 1 and "builtin-x4" in err.strip().splitlines()[-1] and "Traceback" not in err


def test_help_has_examples(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as ei:
        main(["restore", "--help"])
    assert ei.value.code == 0
    text = capsys.readouterr().out
    assert "examples:" in text and "--skip-existing" in text and "torchrun" in text and "--outscale" in text


def test_torchrun_shards_files_across_ranks(tmp_path: Path, tiny: Path) -> None:
    src = tmp_path / "in"
    for i in range(4):
        write_image(src / f"img{i}.png", _rgb(8 + i, 9))
    (src / "bad.png").write_text("not an image")  # sorted first: rank 0 gets it
    single = tmp_path / "single"
    assert main(["restore", str(src), "-o", str(single), "--model", str(tiny)]) == 1

    multi = tmp_path / "multi"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "swinir",
            "restore",
            str(src),
            "-o",
            str(multi),
            "--model",
            str(tiny),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )
    assert proc.returncode != 0, "a rank's failure must fail the run"
    # each file once, not once per rank; only rank 0 prints the summary
    assert "done: 4 restored, 1 failed across 2 ranks" in proc.stdout, proc.stdout + proc.stderr[-2000:]
    assert proc.stdout.count("done:") == 1
    assert "3 of 5 on rank 0 of 2" in proc.stderr
    assert proc.stderr.count("failed: ") == 1 and "bad.png: not a readable image" in proc.stderr
    names = sorted(p.name for p in multi.iterdir())
    assert names == sorted(p.name for p in single.iterdir()) == [f"img{i}.png" for i in range(4)]
    for n in names:
        assert np.array_equal(read_image(multi / n).array, read_image(single / n).array)
