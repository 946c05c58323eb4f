"""The evaluation protocol and `swinir eval` / `swinir compare`, end to end on ../shared/data."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import swinir
from swinir import metrics
from swinir.cli import main
from swinir.errors import SwinIRError
from swinir.evaluate import (
    BICUBIC,
    Protocol,
    comparison_sheet,
    evaluate,
    load_sample,
    pad_like_release,
    restore_sample,
)


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny networks: one thread is faster than two fighting a loaded 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# Classic Set5 bicubic figures (Y channel, border = scale), published long ago.
BICUBIC_SET5 = {2: (33.66, 0.9299), 3: (30.39, 0.8682), 4: (28.42, 0.8104), 8: (24.40, 0.6580)}


@pytest.mark.parametrize("scale", sorted(BICUBIC_SET5))
def test_bicubic_baseline_on_set5(data_dir, scale):
    psnr_ref, ssim_ref = BICUBIC_SET5[scale]
    report = evaluate(
        BICUBIC,
        data_dir / "Set5" / "HR",
        Protocol("classical_sr", scale),
        lr_dir=data_dir / "Set5" / "LR_bicubic" / f"X{scale}",
        progress=False,
    )
    avg = report.average()
    assert len(report.images) == 5
    assert abs(avg.psnr_y - psnr_ref) <= 0.02, avg
    assert abs(avg.ssim_y - ssim_ref) <= 0.001, avg


def test_bicubic_baseline_with_own_lr(data_dir):
    """LR made here by MATLAB-compatible bicubic gives the classic figure too (Set5 LR is reproduced)."""
    own = evaluate(BICUBIC, data_dir / "Set5" / "HR", Protocol("classical_sr", 4), progress=False).average()
    assert abs(own.psnr_y - BICUBIC_SET5[4][0]) <= 0.02 and abs(own.ssim_y - BICUBIC_SET5[4][1]) <= 0.001


def test_release_padding_always_adds():
    x = torch.arange(16.0 * 5).reshape(1, 1, 16, 5)
    p = pad_like_release(x, 8)
    assert p.shape == (1, 1, 24, 8)  # 16 is a multiple of 8, yet a whole window is added
    assert torch.equal(p[0, 0, 16:, :5], x[0, 0, 8:].flip(0))  # rows: mirror flip, edge row repeated
    assert torch.equal(p[0, 0, :, 5:], p[0, 0, :, 2:5].flip(1))  # then columns, the same way
    y = torch.rand(1, 3, 19, 27)
    assert pad_like_release(y, 7).shape == (1, 3, 21, 28)
    tiny = torch.rand(1, 1, 3, 3)
    assert pad_like_release(tiny, 8).shape == (1, 1, 6, 6)  # shorter; the model pads the rest itself


def test_samples_follow_the_released_degradations(data_dir):
    sigma = 25
    gray = load_sample(data_dir / "Set12" / "01.png", Protocol("gray_dn", noise=sigma))
    gt = cv2.imread(str(data_dir / "Set12" / "01.png"), cv2.IMREAD_GRAYSCALE)
    noise = np.random.RandomState(0).normal(0, sigma / 255.0, gt.shape)
    assert np.array_equal(gray.gt[:, :, 0], gt)
    assert np.allclose(gray.lq[:, :, 0], gt.astype(np.float32) / 255.0 + noise, atol=1e-7)
    # colour noise is drawn in OpenCV's BGR layout, then handed over as RGB
    color = load_sample(data_dir / "McMaster" / "1.tif", Protocol("color_dn", noise=sigma))
    bgr = cv2.imread(str(data_dir / "McMaster" / "1.tif"))
    noise = np.random.RandomState(0).normal(0, sigma / 255.0, bgr.shape)
    assert np.array_equal(color.gt, bgr[:, :, ::-1])
    assert np.allclose(color.lq[:, :, ::-1], bgr.astype(np.float32) / 255.0 + noise, atol=1e-7)
    # SR: ground truth cropped to LR size x scale (woman is 228x344: x3 LR 76x114)
    sr = load_sample(
        data_dir / "Set5" / "HR" / "woman.png",
        Protocol("classical_sr", 3),
        lr_dir=data_dir / "Set5" / "LR_bicubic" / "X3",
    )
    assert sr.lq.shape == (114, 76, 3) and sr.gt.shape == (342, 228, 3)
    # colour JPEG: OpenCV at the given quality on the BGR image
    car = load_sample(data_dir / "McMaster" / "2.tif", Protocol("color_jpeg_car", jpeg=30))
    bgr2 = cv2.imread(str(data_dir / "McMaster" / "2.tif"))
    ok, buf = cv2.imencode(".jpg", bgr2, [int(cv2.IMWRITE_JPEG_QUALITY), 30])
    assert np.array_equal((car.lq * 255).round().astype(np.uint8)[:, :, ::-1], cv2.imdecode(buf, 1))


def test_restore_sample_crops_clamps_rounds(golden):
    model = swinir.load(golden / "models" / "pixelshuffle_x2.pth")
    lq = np.random.default_rng(0).random((13, 21, 3)).astype(np.float32)
    out = restore_sample(model, lq, 2)
    assert out.dtype == np.uint8 and out.shape == (26, 42, 3)
    with torch.inference_mode():
        x = pad_like_release(torch.from_numpy(lq.transpose(2, 0, 1).copy())[None], 8)
        ref = model(x)[0, :, :26, :42].clamp(0, 1).numpy()
    assert np.array_equal(out, (ref * 255.0).round().astype(np.uint8).transpose(1, 2, 0))


def _crops(src: list[Path], dst: Path, size: int, ext: str) -> Path:
    """Top-left crops written as real image files (keeps the end-to-end tests fast)."""
    dst.mkdir(parents=True, exist_ok=True)
    for p in src:
        img = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
        assert cv2.imwrite(str(dst / f"{p.stem}{ext}"), img[:size, :size])
    return dst


def _run_cli(capsys, argv: list[str]) -> tuple[int, str, str]:
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def _check_outputs(save: Path, names: list[str], scored: bool) -> dict:
    data = json.loads((save / "results.json").read_text())
    assert data["count"] == len(names) == len(data["images"])
    assert [r["name"] for r in data["images"]] == names
    with open(save / "results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["name"] for r in rows] == names + (["average"] if scored else [])
    for r in data["images"]:
        assert Path(r["output"]).is_file()
        if scored:
            assert math.isfinite(r["psnr"]) and 0 < r["ssim"] <= 1
    if scored:
        mean = sum(r["psnr"] for r in data["images"]) / len(names)
        assert data["average"]["psnr"] == pytest.approx(mean)
    return data


def _table_rows(stdout: str, names: list[str]) -> list[str]:
    rows = [line for line in stdout.splitlines() if line.split(" ")[0] in names]
    assert len(rows) == len(names), stdout
    return rows


def test_eval_classical_sr_cli(data_dir, golden, tmp_path, capsys):
    save = tmp_path / "out"
    code, out, err = _run_cli(
        capsys,
        [
            "eval",
            "--task",
            "classical_sr",
            "--model",
            str(golden / "models" / "pixelshuffle_x2.pth"),
            "--hr",
            str(data_dir / "Set5" / "HR"),
            "--lr",
            str(data_dir / "Set5" / "LR_bicubic" / "X2"),
            "--scale",
            "2",
            "--limit",
            "2",
            "--save",
            str(save),
            "--sheet",
        ],
    )
    assert code == 0, err
    _table_rows(out, ["baby", "bird"])
    assert "-- Average PSNR_Y/SSIM_Y:" in out and "eval classical_sr x2" in err  # tqdm bar on stderr
    data = _check_outputs(save, ["baby", "bird"], scored=True)
    assert data["border"] == 2 and all(r["psnr_y"] is not None for r in data["images"])
    saved = cv2.imread(str(save / "baby_SwinIR.png"))
    assert saved.shape == (512, 512, 3)
    hr = cv2.imread(str(data_dir / "Set5" / "HR" / "baby.png"))
    assert metrics.psnr(saved, hr, 2, True, color_order="bgr") == pytest.approx(data["images"][0]["psnr_y"], abs=1e-9)
    sheet = cv2.imread(str(save / "sheets" / "baby_sheet.png"))
    assert sheet.shape[1] > 3 * 256 and sheet.shape[0] > 256


def test_eval_lightweight_sr_without_lr_folder(data_dir, golden, tmp_path, capsys):
    json_path, csv_path = tmp_path / "r.json", tmp_path / "r.csv"
    code, out, err = _run_cli(
        capsys,
        [
            "eval",
            "--model",
            str(golden / "models" / "pixelshuffledirect_x2.pth"),
            "--hr",
            str(data_dir / "Set5" / "HR"),
            "--limit",
            "2",
            "--quiet",
            "--json",
            str(json_path),
            "--csv",
            str(csv_path),
        ],
    )
    assert code == 0, err
    data = json.loads(json_path.read_text())
    assert data["task"] == "lightweight_sr" and data["protocol"]["scale"] == 2  # both from the checkpoint
    assert len(data["images"]) == 2 and csv_path.is_file()
    assert out.startswith("-- Average PSNR/SSIM(RGB)")  # --quiet: averages only


def test_eval_real_sr_saves_outputs_and_sheets(data_dir, golden, tmp_path, capsys):
    src = _crops([data_dir / "RealSRSet+5images" / n for n in ("chip.png", "comic1.png")], tmp_path / "in", 48, ".png")
    save = tmp_path / "out"
    code, out, err = _run_cli(
        capsys,
        [
            "eval",
            "--task",
            "real_sr",
            "--model",
            str(golden / "models" / "nearestconv_x4_1conv.pth"),
            "--hr",
            str(src),
            "--save",
            str(save),
            "--sheet",
        ],
    )
    assert code == 0, err
    _table_rows(out, ["chip", "comic1"])
    data = _check_outputs(save, ["chip", "comic1"], scored=False)
    assert data["average"] is None and all(r["psnr"] is None for r in data["images"])
    assert cv2.imread(str(save / "chip_SwinIR.png")).shape == (192, 192, 3)
    sheet = cv2.imread(str(save / "sheets" / "chip_sheet.png"))
    assert sheet.shape[1] >= 2 * 192  # input (enlarged) | output, whole images


@pytest.mark.parametrize("sigma", [15, 50])
def test_eval_gray_denoising(data_dir, golden, tmp_path, capsys, sigma):
    src = _crops([data_dir / "Set12" / "01.png", data_dir / "Set12" / "02.png"], tmp_path / "in", 96, ".png")
    save = tmp_path / "out"
    code, out, err = _run_cli(
        capsys,
        [
            "eval",
            "--task",
            "gray_dn",
            "--model",
            str(golden / "models" / "denoise_gray.pth"),
            "--hr",
            str(src),
            "--noise",
            str(sigma),
            "--save",
            str(save),
        ],
    )
    assert code == 0, err
    _table_rows(out, ["01", "02"])
    data = _check_outputs(save, ["01", "02"], scored=True)
    assert data["border"] == 0 and data["images"][0]["psnr_y"] is None  # gray: no Y columns
    theory = 20 * math.log10(255 / sigma)
    for r in data["images"]:  # unclipped noise: the input PSNR is the theoretical one
        assert abs(r["input_psnr"] - theory) < 0.25
    assert cv2.imread(str(save / "01_SwinIR.png"), cv2.IMREAD_UNCHANGED).shape == (96, 96)


def test_eval_color_denoising(data_dir, golden, tmp_path, capsys):
    src = _crops([data_dir / "McMaster" / "1.tif", data_dir / "McMaster" / "2.tif"], tmp_path / "in", 80, ".png")
    save = tmp_path / "out"
    code, out, err = _run_cli(
        capsys,
        [
            "eval",
            "--task",
            "color_dn",
            "--model",
            str(golden / "models" / "denoise_color.pth"),
            "--hr",
            str(src),
            "--noise",
            "25",
            "--save",
            str(save),
        ],
    )
    assert code == 0, err
    data = _check_outputs(save, ["1", "2"], scored=True)
    assert all(abs(r["input_psnr"] - 20 * math.log10(255 / 25)) < 0.25 for r in data["images"])
    assert all(r["psnr_y"] is not None and r["psnr_b"] is None for r in data["images"])


def test_eval_gray_jpeg(data_dir, golden, tmp_path, capsys):
    src = _crops([data_dir / "classic5" / "lena.bmp"], tmp_path / "in", 72, ".bmp")
    save = tmp_path / "out"
    code, out, err = _run_cli(
        capsys,
        [
            "eval",
            "--task",
            "jpeg_car",
            "--model",
            str(golden / "models" / "jpeg_gray_w7.pth"),
            "--hr",
            str(src),
            "--jpeg",
            "10",
            "--save",
            str(save),
        ],
    )
    assert code == 0, err
    assert "-- Average PSNRB:" in out
    data = _check_outputs(save, ["lena"], scored=True)
    r = data["images"][0]
    assert math.isfinite(r["psnr_b"]) and r["psnr_b"] <= r["psnr"] + 1e-9
    assert 20 < r["input_psnr"] < 40  # quality-10 JPEG of a natural image


def test_eval_color_jpeg(data_dir, golden, tmp_path, capsys):
    src = _crops([data_dir / "McMaster" / "3.tif"], tmp_path / "in", 64, ".png")
    save = tmp_path / "out"
    code, out, err = _run_cli(
        capsys,
        [
            "eval",
            "--task",
            "color_jpeg_car",
            "--model",
            str(golden / "models" / "jpeg_color_w7.pth"),
            "--hr",
            str(src),
            "--jpeg",
            "20",
            "--save",
            str(save),
        ],
    )
    assert code == 0, err
    assert "-- Average PSNRB_Y:" in out
    data = _check_outputs(save, ["3"], scored=True)
    r = data["images"][0]
    assert all(math.isfinite(r[k]) for k in ("psnr_b", "psnr_b_y", "psnr_y", "ssim_y"))


def test_eval_tile_and_ensemble_through_the_engine(data_dir, golden):
    pytest.importorskip("swinir.engine")
    model = swinir.load(golden / "models" / "denoise_color.pth")
    img = cv2.imread(str(data_dir / "McMaster" / "4.tif"))[:64, :64, ::-1].astype(np.float32) / 255.0
    plain = restore_sample(model, img)
    tiled = restore_sample(model, img, tile=32, overlap=8)
    ens = restore_sample(model, img, ensemble=True)
    assert tiled.shape == ens.shape == plain.shape == (64, 64, 3)
    ref = (img * 255).round().astype(np.uint8)
    # a tiny random net: the variants differ, but stay close to the untiled output
    assert metrics.psnr(tiled, plain) > 25 and metrics.psnr(ens, plain) > 20
    assert math.isfinite(metrics.psnr(ens, ref))


def test_eval_errors_are_one_line(data_dir, golden, tmp_path, capsys):
    gray_model = str(golden / "models" / "denoise_gray.pth")
    cases = [
        (
            ["--task", "color_dn", "--model", gray_model, "--hr", str(data_dir / "McMaster"), "--noise", "15"],
            "1-channel",
        ),
        (["--task", "gray_dn", "--model", gray_model, "--hr", str(data_dir / "Set12")], "--noise"),
        (["--model", "bicubic", "--hr", str(data_dir / "Set5" / "HR")], "--scale"),
        (["--task", "gray_dn", "--model", "bicubic", "--hr", str(data_dir / "Set12"), "--noise", "15"], "SR tasks"),
        (["--model", "bicubic", "--scale", "2", "--hr", str(tmp_path / "missing")], "does not exist"),
        (
            [
                "--model",
                "bicubic",
                "--scale",
                "3",
                "--hr",
                str(data_dir / "Set5" / "HR"),
                "--lr",
                str(data_dir / "Set5" / "LR_bicubic" / "X2"),
            ],
            "no LR image",
        ),
        (["--model", "bicubic", "--scale", "2", "--hr", str(data_dir / "Set5" / "HR"), "--sheet"], "--save"),
    ]
    for argv, needle in cases:
        code, out, err = _run_cli(capsys, ["eval", *argv])
        assert code == 1, argv
        assert needle in err and err.count("\n") == 1 and "Traceback" not in err, err


def test_compare_cli_and_sheet(data_dir, tmp_path, capsys):
    lr = data_dir / "Set5" / "LR_bicubic" / "X4" / "birdx4.png"
    hr = data_dir / "Set5" / "HR" / "bird.png"
    out = tmp_path / "sheet.png"
    code, stdout, err = _run_cli(
        capsys, ["compare", str(lr), str(hr), "-o", str(out), "--crop", "10,20,100", "--labels", "LR", "HR"]
    )
    assert code == 0, err
    sheet = cv2.imread(str(out))
    assert sheet.shape == (100 + 22, 2 * 100 + 4, 3)
    # the HR panel is exactly the requested crop of HR (below the caption band)
    assert np.array_equal(sheet[22:, 104:], cv2.imread(str(hr))[10:110, 20:120])
    code, _, err = _run_cli(capsys, ["compare", str(lr), "-o", str(tmp_path / "x.jpg")])
    assert code == 1 and "PNG" in err
    sheet2 = comparison_sheet([("a", np.zeros((10, 10), np.uint8)), ("b", np.zeros((20, 20, 3), np.uint8))], crop=None)
    assert sheet2.shape == (20 + 22, 2 * 20 + 4, 3)


def test_protocol_validation():
    with pytest.raises(SwinIRError, match="unknown task"):
        Protocol("deblur")
    with pytest.raises(SwinIRError, match="scale"):
        Protocol("classical_sr")
    with pytest.raises(SwinIRError, match="quality"):
        Protocol("jpeg_car", jpeg=120)
    assert Protocol("classical_sr", 3).border == 3 and Protocol("color_dn", noise=15).border == 0
