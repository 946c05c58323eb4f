"""`swinir degrade` run in-process on real images from ../shared/data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from swinir.cli import main
from swinir.degrade.jpeg import jpeg_compress


def _read(p: Path, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    img = cv2.imread(str(p), flags)
    assert img is not None, p
    return img


def test_bsrgan_samples_sheet_and_seeds(tmp_path, data_dir, capsys):
    inputs = [data_dir / "Set5" / "HR" / "woman.png", data_dir / "RealSRSet+5images" / "0014.jpg"]
    out = tmp_path / "a"
    assert (
        main(
            [
                "degrade",
                "--pipeline",
                "bsrgan",
                "-n",
                "3",
                "--seed",
                "5",
                "--crop",
                "128",
                *map(str, inputs),
                "-o",
                str(out),
            ]
        )
        == 0
    )
    assert "wrote 6 bsrgan sample(s) of 2 image(s)" in capsys.readouterr().out
    recs = json.loads((out / "samples.json").read_text())
    assert [r["seed"] for r in recs] == [[5, i, k] for i in range(2) for k in range(3)]
    for r in recs:
        hr = _read(Path(r["input"]))
        lr = _read(out / r["output"])
        assert lr.shape == (hr.shape[0] // 4, hr.shape[1] // 4, 3)
        assert r["lr_size"] == [lr.shape[1], lr.shape[0]]
        assert any(s.startswith("blur") for s in r["steps"]) and r["steps"][-1].startswith("jpeg")
    sheet = _read(out / "sheet.png")
    # two rows of HR + 3 samples, 128-pixel panels with a 22-pixel caption, 4-pixel gaps
    assert sheet.shape == (2 * (128 + 22) + 6, 4 * 128 + 3 * 4, 3)
    # same seed -> same bytes; another seed -> other samples
    again = tmp_path / "b"
    assert (
        main(
            [
                "degrade",
                "--pipeline",
                "bsrgan",
                "-n",
                "2",
                "--seed",
                "5",
                "--no-sheet",
                *map(str, inputs),
                "-o",
                str(again),
            ]
        )
        == 0
    )
    assert not (again / "sheet.png").exists()
    for name in ("woman_bsrgan_0.png", "woman_bsrgan_1.png", "0014_bsrgan_1.png"):
        assert (again / name).read_bytes() == (out / name).read_bytes()
    other = tmp_path / "c"
    assert main(["degrade", "--pipeline", "bsrgan", "-n", "1", "--seed", "6", str(inputs[0]), "-o", str(other)]) == 0
    assert not np.array_equal(_read(other / "woman_bsrgan_0.png"), _read(out / "woman_bsrgan_0.png"))


def test_realesrgan_x2_on_a_folder(tmp_path, data_dir):
    src = tmp_path / "in"
    src.mkdir()
    for name in ("chip.png", "dog.png"):
        shutil.copy(data_dir / "RealSRSet+5images" / name, src / name)
    out = tmp_path / "out"
    assert main(["degrade", "--pipeline", "realesrgan", "--scale", "2", "-n", "2", str(src), "-o", str(out)]) == 0
    for name in ("chip", "dog"):
        hr = _read(src / f"{name}.png")
        for k in range(2):
            assert _read(out / f"{name}_realesrgan_{k}.png").shape == (hr.shape[0] // 2, hr.shape[1] // 2, 3)
    assert sorted(p.name for p in src.iterdir()) == ["chip.png", "dog.png"]  # inputs untouched


def test_bicubic_reproduces_the_matlab_benchmark_inputs(tmp_path, data_dir):
    out = tmp_path / "lr"
    assert (
        main(
            [
                "degrade",
                "--pipeline",
                "bicubic",
                "--scale",
                "4",
                "-n",
                "5",
                str(data_dir / "Set5" / "HR"),
                "-o",
                str(out),
            ]
        )
        == 0
    )
    recs = json.loads((out / "samples.json").read_text())
    assert len(recs) == 5  # deterministic: one sample per image whatever -n says
    for name in ("baby", "bird", "butterfly", "head", "woman"):
        ours = _read(out / f"{name}_bicubic_0.png")
        ref = _read(data_dir / "Set5" / "LR_bicubic" / "X4" / f"{name}x4.png")
        np.testing.assert_array_equal(ours, ref)


def test_noise_has_the_requested_sigma_and_jpeg_matches_the_codec(tmp_path, data_dir):
    gray = data_dir / "Set12" / "05.png"
    out = tmp_path / "n"
    assert main(["degrade", "--pipeline", "noise", "--sigma", "10", "-n", "2", str(gray), "-o", str(out)]) == 0
    clean = _read(gray, cv2.IMREAD_UNCHANGED).astype(np.float64)
    assert clean.ndim == 2
    noisy = [_read(out / f"05_noise_{k}.png", cv2.IMREAD_UNCHANGED).astype(np.float64) for k in range(2)]
    assert noisy[0].shape == clean.shape
    mid = (clean > 40) & (clean < 215)  # away from clipping
    for x in noisy:
        assert abs((x - clean)[mid].std() / 10.0 - 1) < 0.06
    assert not np.array_equal(noisy[0], noisy[1])

    color = data_dir / "Set5" / "HR" / "bird.png"
    out = tmp_path / "j"
    assert main(["degrade", "--pipeline", "jpeg", "--quality", "15", str(color), "-o", str(out)]) == 0
    rgb = np.ascontiguousarray(_read(color)[:, :, ::-1])
    np.testing.assert_array_equal(_read(out / "bird_jpeg_0.png")[:, :, ::-1], jpeg_compress(rgb, 15))


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["--pipeline", "noise", "--scale", "2"], "--scale does not apply"),
        (["--pipeline", "jpeg", "--quality", "0-150"], "--quality must be"),
        (["--pipeline", "noise", "--sigma", "abc"], "--sigma must be"),
        (["--pipeline", "bsrgan", "-n", "0"], "-n must be at least 1"),
        (["--pipeline", "bsrgan", "--seed", "-1"], "--seed must be an integer in 0..4294967295, got -1"),
        (["--pipeline", "noise", "--seed", str(2**32)], "--seed must be an integer in 0..4294967295"),
    ],
)
def test_bad_options_are_one_line_errors(tmp_path, data_dir, capsys, argv, needle):
    code = main(["degrade", *argv, str(data_dir / "Set5" / "HR" / "bird.png"), "-o", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 1 and needle in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()  # refused before anything is written


def test_missing_input_and_overwriting_an_input_are_refused(tmp_path, data_dir, capsys):
    assert main(["degrade", "--pipeline", "jpeg", str(tmp_path / "nope.png"), "-o", str(tmp_path / "o")]) == 1
    assert "no such file or folder" in capsys.readouterr().err
    # an input whose name is what the output would be, in the output folder itself
    victim = tmp_path / "x_jpeg_0.png"
    shutil.copy(data_dir / "Set5" / "HR" / "bird.png", tmp_path / "x.png")
    shutil.copy(data_dir / "Set5" / "HR" / "bird.png", victim)
    before = victim.read_bytes()
    code = main(["degrade", "--pipeline", "jpeg", str(tmp_path / "x.png"), str(victim), "-o", str(tmp_path)])
    assert code == 1 and "refusing to overwrite the input" in capsys.readouterr().err
    assert victim.read_bytes() == before
