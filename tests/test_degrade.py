"""Degradations: MATLAB imresize against MATLAB's own Set5 LR images, noise and JPEG protocols."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from swinir import metrics
from swinir.degrade import (
    add_gaussian_noise,
    add_gaussian_noise_test,
    imresize,
    jpeg_compress,
    jpeg_gray_from_color,
)
from swinir.degrade.resize import contributions

# Minimum exact-pixel fraction (issue 3); this implementation measures 100% on all four.
LR_TARGETS = {(2, "uint8"): 0.992, (3, "uint8"): 1.0, (4, "uint8"): 0.999, (8, "float"): 1.0}


def _lr_match(data_dir, scale: int, mode: str) -> tuple[float, int]:
    """Exact-pixel fraction and max abs difference of imresize(HR) vs MATLAB's LR over Set5."""
    total = equal = 0
    worst = 0
    for hr_path in sorted((data_dir / "Set5" / "HR").glob("*.png")):
        hr = cv2.imread(str(hr_path))[:, :, ::-1]
        h, w = hr.shape[:2]
        hr = hr[: h - h % scale, : w - w % scale]
        lr = cv2.imread(str(data_dir / "Set5" / "LR_bicubic" / f"X{scale}" / f"{hr_path.stem}x{scale}.png"))[:, :, ::-1]
        out = imresize(hr, 1.0 / scale, mode=mode)
        if mode == "float":
            assert out.dtype == np.float64
            out = np.clip(np.floor(out + 0.5), 0, 255).astype(np.uint8)
        else:
            assert out.dtype == np.uint8
        assert out.shape == lr.shape
        d = np.abs(out.astype(int) - lr.astype(int))
        total += d.size
        equal += int((d == 0).sum())
        worst = max(worst, int(d.max()))
    return equal / total, worst


@pytest.mark.parametrize("scale,mode", sorted(LR_TARGETS))
def test_set5_lr_reproduced_from_hr(data_dir, scale, mode):
    frac, worst = _lr_match(data_dir, scale, mode)
    assert frac >= LR_TARGETS[(scale, mode)], f"X{scale} {mode}: {frac:.4%} exact"
    assert worst <= 2


def test_rounding_between_passes_matters(data_dir):
    """X8 is exact only without rounding between passes: the two modes really differ."""
    frac_uint8, worst = _lr_match(data_dir, 8, "uint8")
    assert frac_uint8 < 0.99 and worst <= 2


def _keys(x: float) -> float:
    x = abs(x)
    if x <= 1:
        return 1.5 * x**3 - 2.5 * x**2 + 1
    return -0.5 * x**3 + 2.5 * x**2 - 4 * x + 2 if x <= 2 else 0.0


def test_contributions_follow_matlab_rule():
    # x2 downscale of 8 pixels, antialiased: output pixel 1 sits at source 1.5 (1-based); the kernel is
    # stretched to width 8 -> taps at -3..6, the outermost pair has zero weight and is dropped; indices
    # left of the image fold back symmetrically (0 -> 1, -1 -> 2, -2 -> 3).
    w, idx = contributions(8, 4, 0.5)
    assert idx.shape == (4, 8)
    assert idx[0].tolist() == [2, 1, 0, 0, 1, 2, 3, 4]
    expected = np.array([_keys(0.5 * (1.5 - j)) for j in range(-2, 6)])
    assert np.allclose(w[0], expected / expected.sum(), atol=1e-15)
    assert idx[3].tolist() == [3, 4, 5, 6, 7, 7, 6, 5]  # source 7.5: right border mirrored the same way
    assert np.allclose(w.sum(1), 1.0)
    # x2 upscale: plain Keys kernel (no stretching); output pixel 1 at source 0.75; 6 taps from
    # floor(0.75 - 2) = -2, of which the outer two are beyond the kernel's support in every row
    w_up, idx_up = contributions(4, 8, 2.0)
    assert idx_up.shape == (8, 4)
    assert idx_up[0].tolist() == [1, 0, 0, 1]
    exp_up = np.array([_keys(0.75 - j) for j in range(-1, 3)])
    assert np.allclose(w_up[0], exp_up / exp_up.sum(), atol=1e-15)
    assert np.allclose(w_up.sum(1), 1.0)


def test_constant_image_stays_constant_and_sizes():
    img = np.full((17, 23, 3), 77, np.uint8)
    for scale in (0.25, 1 / 3, 0.5, 2, 3, 4):
        out = imresize(img, scale)
        assert out.shape == (int(np.ceil(17 * scale)), int(np.ceil(23 * scale)), 3)
        assert np.all(out == 77)
    out = imresize(img, output_shape=(9, 40))
    assert out.shape == (9, 40, 3) and np.all(out == 77)
    assert imresize(img[:, :, 0], 0.5).shape == (9, 12)


def test_float_mode_and_torch_agree():
    rng = np.random.default_rng(0)
    img = rng.random((19, 26, 3))
    ref = imresize(img, 0.5)
    assert ref.dtype == np.float64 and ref.shape == (10, 13, 3)
    t = torch.from_numpy(img.transpose(2, 0, 1).copy())[None]
    out = imresize(t, 0.5)
    assert isinstance(out, torch.Tensor) and out.shape == (1, 3, 10, 13)
    assert np.allclose(out[0].numpy().transpose(1, 2, 0), ref, atol=1e-12)
    # uint8 input in float mode keeps the 0..255 range, unrounded
    u8 = (img * 255).round().astype(np.uint8)
    f = imresize(u8, 2, mode="float")
    assert f.dtype == np.float64 and f.max() > 200 and not np.allclose(f, f.round())


def test_imresize_bad_arguments():
    img = np.zeros((8, 8), np.uint8)
    with pytest.raises(ValueError, match="exactly one"):
        imresize(img)
    with pytest.raises(ValueError, match="exactly one"):
        imresize(img, 2, output_shape=(4, 4))
    with pytest.raises(ValueError, match="mode"):
        imresize(img, 2, mode="int")
    with pytest.raises(ValueError, match="HxW"):
        imresize(np.zeros((2, 8, 8, 3)), 2)


def test_test_noise_is_the_paper_protocol():
    img = np.random.default_rng(3).random((21, 17, 3)).astype(np.float32)
    noisy = add_gaussian_noise_test(img, 25)
    expected = img + np.random.RandomState(0).normal(0, 25 / 255.0, img.shape)
    assert np.array_equal(noisy, expected)
    assert noisy.dtype == np.float64  # float32 image + float64 noise, as the original
    assert noisy.min() < 0 or noisy.max() > 1  # no clipping
    assert np.array_equal(add_gaussian_noise_test(img, 25), noisy)  # reseeded every call
    np.random.seed(123)
    assert np.array_equal(add_gaussian_noise_test(img, 25), noisy)  # whatever the global state was
    with pytest.raises(TypeError, match="float"):
        add_gaussian_noise_test((img * 255).astype(np.uint8), 25)


def test_training_noise_uses_the_generator():
    img = np.full((64, 64, 3), 0.5, np.float32)
    a = add_gaussian_noise(img, 15, np.random.default_rng(7))
    b = add_gaussian_noise(img, 15, np.random.default_rng(7))
    c = add_gaussian_noise(img, 15, np.random.default_rng(8))
    assert a.dtype == np.float32 and np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.std(a - img) == pytest.approx(15 / 255, rel=0.05)
    clipped = add_gaussian_noise(np.zeros((32, 32), np.float32), 50, np.random.default_rng(0), clip=True)
    assert clipped.min() == 0.0 and clipped.max() <= 1.0


def test_jpeg_color_order_and_quality(data_dir):
    bgr = cv2.imread(str(data_dir / "Set5" / "HR" / "butterfly.png"))
    rgb = np.ascontiguousarray(bgr[:, :, ::-1])
    via_bgr = jpeg_compress(bgr, 20, color_order="bgr")
    via_rgb = jpeg_compress(rgb, 20)
    assert via_rgb.dtype == np.uint8 and via_rgb.shape == rgb.shape
    assert np.array_equal(via_rgb, via_bgr[:, :, ::-1])  # same bytes through OpenCV, channels kept
    # the encoder really is OpenCV's at that quality
    ok, buf = cv2.imencode(".jpg", bgr, [int(cv2.IMWRITE_JPEG_QUALITY), 20])
    assert ok and np.array_equal(cv2.imdecode(buf, cv2.IMREAD_COLOR), via_bgr)
    p10 = metrics.psnr(jpeg_compress(rgb, 10), rgb)
    p40 = metrics.psnr(jpeg_compress(rgb, 40), rgb)
    assert 20 < p10 < p40 < 40
    assert jpeg_compress(rgb[:, :, 0], 30).shape == rgb.shape[:2]
    with pytest.raises(ValueError, match="quality"):
        jpeg_compress(rgb, 101)
    with pytest.raises(TypeError, match="uint8"):
        jpeg_compress(rgb.astype(np.float32), 10)


def test_gray_jpeg_pair_uses_rounded_y(data_dir):
    bgr = cv2.imread(str(data_dir / "Set5" / "HR" / "bird.png"))
    gt, lq = jpeg_gray_from_color(bgr, 10)
    f = bgr.astype(np.float32) / np.float32(255.0)
    y = np.round(f[..., 0] * 24.966 + f[..., 1] * 128.553 + f[..., 2] * 65.481 + 16.0)
    assert gt.dtype == np.uint8 and gt.shape == bgr.shape[:2]
    assert np.abs(gt.astype(int) - y.astype(int)).max() <= 1 and np.mean(gt == y) > 0.999
    assert np.array_equal(gt, metrics.bgr2ycbcr(bgr, y_only=True))
    ok, buf = cv2.imencode(".jpg", gt, [int(cv2.IMWRITE_JPEG_QUALITY), 10])
    assert np.array_equal(lq, cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE))
    gt_rgb, _ = jpeg_gray_from_color(bgr[:, :, ::-1], 10, color_order="rgb")
    assert np.array_equal(gt_rgb, gt)
    gray = cv2.imread(str(data_dir / "classic5" / "lena.bmp"), cv2.IMREAD_UNCHANGED)
    gt2, lq2 = jpeg_gray_from_color(gray, 10)
    assert np.array_equal(gt2, gray) and lq2.shape == gray.shape
