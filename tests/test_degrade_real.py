"""Real-world degradations: kernel shapes, per-step statistics, sizes, alignment and seeding."""

from __future__ import annotations

import math
from dataclasses import replace

import cv2
import numpy as np
import pytest

from swinir.degrade import imresize
from swinir.degrade.bsrgan import (
    BSRGANBlurConfig,
    BSRGANConfig,
    BSRGANDegradation,
    BSRGANNoiseConfig,
    SensorNoiseConfig,
    add_correlated_gaussian_noise,
    add_gray_gaussian_noise,
    add_jpeg,
    add_sensor_noise,
    random_bsrgan_blur,
    random_covariance,
    to_float,
)
from swinir.degrade.kernels import (
    MixedKernelConfig,
    bessel_j1,
    gaussian_kernel,
    generalized_gaussian_kernel,
    plateau_kernel,
    random_mixed_kernel,
    shifted_gaussian_kernel,
    sinc_kernel,
)
from swinir.degrade.noise import add_gaussian_noise
from swinir.degrade.realesrgan import RealESRGANConfig, RealESRGANDegradation, add_poisson_noise


def _rgb(path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert img is not None, path
    return np.ascontiguousarray(img[:, :, ::-1])


@pytest.fixture(scope="module")
def butterfly(data_dir) -> np.ndarray:
    return _rgb(data_dir / "Set5" / "HR" / "butterfly.png")  # 256x256


# ------------------------------------------------------------------------------------------- kernels
def test_every_kernel_sums_to_one_and_is_point_symmetric():
    ks = [
        gaussian_kernel(21, 2.0),
        gaussian_kernel(15, 1.0, 3.0, 0.7),
        generalized_gaussian_kernel(13, 1.5, 0.8, -1.2, beta=0.6),
        generalized_gaussian_kernel(13, 1.5, 0.8, 2.0, beta=3.5),
        plateau_kernel(21, 2.0, 1.0, 0.3, beta=1.7),
        sinc_kernel(21, math.pi / 4),
    ]
    rng = np.random.default_rng(0)
    ks += [random_mixed_kernel(rng) for _ in range(40)]
    ks += [random_bsrgan_blur(rng, sf) for sf in (2, 4) for _ in range(20)]
    for k in ks:
        assert k.ndim == 2 and k.shape[0] == k.shape[1] and k.shape[0] % 2 == 1
        assert abs(k.sum() - 1.0) < 1e-9
        np.testing.assert_allclose(k, k[::-1, ::-1], atol=1e-12)


def test_isotropic_kernels_are_symmetric_and_gaussian_has_the_requested_variance():
    for k in (
        gaussian_kernel(31, 2.5),
        generalized_gaussian_kernel(21, 2.0, beta=2.0),
        plateau_kernel(21, 2.0, beta=1.5),
        sinc_kernel(21, 1.1),
    ):
        np.testing.assert_allclose(k, k.T, atol=1e-12)
        np.testing.assert_allclose(k, k[::-1], atol=1e-12)
    k = gaussian_kernel(41, 2.5)
    x = np.arange(41) - 20
    var_x = float((k.sum(axis=0) * x**2).sum())
    assert abs(var_x - 2.5**2) < 1e-3
    # generalized Gaussian with beta = 1 is the Gaussian
    np.testing.assert_allclose(
        generalized_gaussian_kernel(15, 1.3, 2.1, 0.4, beta=1.0), gaussian_kernel(15, 1.3, 2.1, 0.4), atol=1e-12
    )


def test_anisotropic_gaussian_axes_and_rotation():
    k = gaussian_kernel(41, 1.0, 4.0, 0.0)  # sigma 1 along x, 4 along y
    x = np.arange(41) - 20
    assert abs((k.sum(axis=0) * x**2).sum() - 1.0) < 1e-3
    assert abs((k.sum(axis=1) * x**2).sum() - 16.0) < 0.05
    assert not np.allclose(k, k.T, atol=1e-6)
    np.testing.assert_allclose(gaussian_kernel(41, 1.0, 4.0, math.pi / 2), k.T, atol=1e-12)


def test_sinc_kernel_is_a_low_pass_at_its_cutoff():
    omega = math.pi / 2
    k = sinc_kernel(21, omega)
    resp = np.abs(np.fft.fft2(k, s=(256, 256)))
    w = np.fft.fftfreq(256) * 2 * math.pi  # radians/pixel
    wr = np.hypot(w[:, None], w[None, :])
    passband = resp[wr < 0.7 * omega]  # a 21-tap sinc ripples (Gibbs) ~15% around 1
    assert abs(passband.mean() - 1.0) < 0.1 and passband.min() > 0.8
    assert resp[(wr > 1.3 * omega) & (wr <= math.pi)].max() < 0.1


def test_bessel_j1_matches_scipy():
    special = pytest.importorskip("scipy.special")
    x = np.linspace(0, 60, 2001)
    np.testing.assert_allclose(bessel_j1(x), special.j1(x), atol=1e-13)


def test_shifted_kernel_centre_sits_on_the_hr_block_centre():
    for sf in (2, 3, 4):
        k = shifted_gaussian_kernel(25, 1.2, sf)
        r = np.arange(25) - 12
        assert abs((k.sum(axis=0) * r).sum() - (sf - 1) / 2) < 1e-6
        assert abs((k.sum(axis=1) * r).sum() - (sf - 1) / 2) < 1e-6


def test_mixed_kernel_sizes_follow_the_config():
    rng = np.random.default_rng(3)
    cfg = MixedKernelConfig(sizes=(9,), sinc_prob=0.0)
    assert {random_mixed_kernel(rng, cfg).shape for _ in range(20)} == {(9, 9)}
    with pytest.raises(ValueError):
        MixedKernelConfig(kinds=("iso", "bogus"), probs=(0.5, 0.5))


# ------------------------------------------------------------------------------------------- noise / JPEG
FLAT = np.full((256, 256, 3), 0.5, np.float32)


@pytest.mark.parametrize("sigma", [5.0, 15.0, 25.0])
def test_channel_independent_and_gray_noise_have_the_requested_sigma(sigma):
    rng = np.random.default_rng(1)
    d = add_gaussian_noise(FLAT, sigma, rng, clip=True) - FLAT
    assert abs(d.std() * 255 / sigma - 1) < 0.02
    assert abs(np.corrcoef(d[..., 0].ravel(), d[..., 1].ravel())[0, 1]) < 0.02
    g = add_gray_gaussian_noise(FLAT, sigma, rng) - FLAT
    assert abs(g.std() * 255 / sigma - 1) < 0.02
    np.testing.assert_array_equal(g[..., 0], g[..., 2])


def test_correlated_noise_follows_its_covariance():
    rng = np.random.default_rng(2)
    cov = random_covariance(rng, 25.0)
    assert np.all(np.linalg.eigvalsh(cov) >= -1e-12)
    assert np.trace(cov) <= 3 * (25 / 255) ** 2
    d = (add_correlated_gaussian_noise(FLAT, cov, rng) - FLAT).reshape(-1, 3).astype(np.float64)
    est = np.cov(d.T)
    np.testing.assert_allclose(est, cov, atol=0.04 * np.abs(cov).max())


def test_sensor_noise_is_signal_dependent_in_linear_light():
    cfg = SensorNoiseConfig()
    rng = np.random.default_rng(4)
    shot, read = 0.01, 1e-4
    for level in (0.3, 0.8):
        img = np.full((256, 256, 3), level, np.float32)
        out = add_sensor_noise(img, rng, cfg, shot=shot, read=read)
        lin_in = level**cfg.gamma
        std = (out.astype(np.float64) ** cfg.gamma - lin_in).std()
        assert abs(std / math.sqrt(shot * lin_in + read) - 1) < 0.03
    # drawn levels: the random read noise follows the shot noise
    a = add_sensor_noise(FLAT, np.random.default_rng(5), cfg)
    assert 0 < np.abs(a - FLAT).mean() < 0.2


def test_poisson_noise_variance_is_proportional_to_intensity():
    ramp = np.tile(np.arange(256, dtype=np.float32) / 255.0, (512, 1))
    img = np.repeat(ramp[:, :, None], 3, axis=2)  # 256 grey levels -> 256 Poisson levels
    rng = np.random.default_rng(6)
    d = add_poisson_noise(img, 1.0, rng) - img
    for col in (64, 128, 200):
        x = col / 255.0
        std = d[:, col - 2 : col + 3].std()
        assert abs(std / math.sqrt(x / 256.0) - 1) < 0.08
    g = add_poisson_noise(img, 2.0, rng, gray=True) - img
    np.testing.assert_array_equal(g[..., 0], g[..., 1])
    assert g[:, 128].std() > 1.5 * d[:, 128].std()  # scale 2 vs 1


def test_lower_jpeg_quality_gives_larger_error(butterfly):
    img = to_float(butterfly)
    errs = [float(np.abs(add_jpeg(img, q) - img).mean()) for q in (95, 70, 40, 10)]
    assert errs == sorted(errs) and errs[0] > 0 and errs[-1] > 2 * errs[0]


# ------------------------------------------------------------------------------------------- pipelines
PIPES = [
    ("bsrgan", 4, lambda s: BSRGANDegradation(scale=s)),
    ("bsrgan", 2, lambda s: BSRGANDegradation(scale=s)),
    ("realesrgan", 4, lambda s: RealESRGANDegradation(scale=s)),
    ("realesrgan", 2, lambda s: RealESRGANDegradation(scale=s)),
]


@pytest.mark.parametrize("name,scale,make", PIPES, ids=[f"{p[0]}-x{p[1]}" for p in PIPES])
def test_pipeline_sizes_dtype_and_seeding(name, scale, make, data_dir):
    pipe = make(scale)
    img = _rgb(data_dir / "Set5" / "HR" / "woman.png")[:203, :150]  # odd size: mod-cropped
    h, w = 203 - 203 % scale, 150 - 150 % scale
    for seed in range(6):
        lr, hr = pipe(img, np.random.default_rng(seed))
        assert lr.dtype == np.uint8 and hr.dtype == np.uint8
        assert hr.shape == (h, w, 3) and lr.shape == (h // scale, w // scale, 3)
        np.testing.assert_array_equal(hr, img[:h, :w])
    a1, _ = pipe(img, np.random.default_rng(11))
    a2, _ = pipe(img, np.random.default_rng(11))
    b, _ = pipe(img, np.random.default_rng(12))
    np.testing.assert_array_equal(a1, a2)
    assert not np.array_equal(a1, b)


def test_bsrgan_steps_blur_twice_down_before_resize_and_shuffle(butterfly):
    pipe = BSRGANDegradation(sensor=SensorNoiseConfig(prob=1.0), jpeg_prob=1.0)
    orders = set()
    for seed in range(20):
        trace: list[str] = []
        pipe(butterfly, np.random.default_rng(seed), trace)
        names = [t.split()[0] for t in trace if t.split()[0] != "halve"]
        assert names.count("blur") == 2 and names.count("noise") == 1 and names.count("sensor") == 1
        assert names.count("jpeg") == 2 and names[-1] == "jpeg"
        assert names.index("down") < names.index("resize")
        orders.add(tuple(names))
    assert len(orders) > 10
    fixed = BSRGANDegradation(shuffle_prob=0.0, scale2_prob=0.0, jpeg_prob=1.0, sensor=SensorNoiseConfig(prob=1.0))
    trace = []
    fixed(butterfly, np.random.default_rng(0), trace)
    assert [t.split()[0] for t in trace] == ["blur", "blur", "down", "resize", "noise", "jpeg", "sensor", "jpeg"]


@pytest.mark.parametrize("resize_prob", [0.0, 1.0], ids=["nearest", "resize"])
@pytest.mark.parametrize("scale2_prob", [0.0, 1.0], ids=["x4", "halve-then-x2"])
def test_bsrgan_lr_stays_aligned_with_its_hr(butterfly, resize_prob, scale2_prob):
    """Without noise/JPEG and with mild blur, every downsampler ('nearest' with its shifted kernel,
    random-factor resize incl. down-up, the initial halving) keeps the LR centred on its HR blocks:
    the sub-pixel shift to MATLAB's bicubic downscale is ~0 (an unshifted 'nearest' kernel gives
    ~0.15-0.25 LR pixels)."""
    cfg = BSRGANConfig(
        blur=BSRGANBlurConfig(iso_prob=1.0, iso_sigma_base=0.3, iso_sigma_per_scale=0.0),
        noise=BSRGANNoiseConfig(level_range=(0, 0)),
        jpeg_prob=0.0,
        final_jpeg=False,
        sensor=SensorNoiseConfig(prob=0.0),
        resize_prob=resize_prob,
        scale2_prob=scale2_prob,
    )
    pipe = BSRGANDegradation(cfg)
    ref = imresize(butterfly, scale=0.25, mode="float").mean(axis=2)
    shifts = []
    for seed in range(8):
        lr, _ = pipe(butterfly, np.random.default_rng(seed))
        (dx, dy), _ = cv2.phaseCorrelate(ref, lr.astype(np.float64).mean(axis=2))
        shifts.append((dx, dy))
    assert np.all(np.abs(np.median(np.array(shifts), axis=0)) < 0.08), shifts


def test_bsrgan_lq_patch_crops_aligned_pairs(butterfly):
    pipe = BSRGANDegradation(lq_patch=32, jpeg_prob=0.0, final_jpeg=False)
    lr, hr = pipe(butterfly, np.random.default_rng(0))
    assert lr.shape == (32, 32, 3) and hr.shape == (128, 128, 3)
    # the HR crop is a real window of the input
    found = cv2.matchTemplate(butterfly, hr, cv2.TM_SQDIFF)
    y, x = np.unravel_index(found.argmin(), found.shape)
    np.testing.assert_array_equal(butterfly[y : y + 128, x : x + 128], hr)
    assert y % 4 == 0 and x % 4 == 0


def test_realesrgan_final_order_is_random_and_configurable(butterfly):
    pipe = RealESRGANDegradation()
    firsts = set()
    for seed in range(12):
        trace: list[str] = []
        pipe(butterfly, np.random.default_rng(seed), trace)
        tail = [t for t in trace if t.startswith("final")]
        assert len(tail) == 2
        firsts.add(tail[0].split()[1])
        assert sum(t.startswith("1st jpeg") for t in trace) == 1 and sum(t.startswith("2nd jpeg") for t in trace) == 1
    assert firsts == {"resize", "jpeg"}
    plain = RealESRGANDegradation(RealESRGANConfig(final_sinc_prob=0.0))
    trace = []
    plain(butterfly, np.random.default_rng(0), trace)
    assert not any("sinc" in t for t in trace if t.startswith("final"))
    assert replace(RealESRGANConfig(), scale=2).scale == 2


def test_pipelines_run_on_real_world_images(data_dir):
    folder = data_dir / "RealSRSet+5images"
    rng = np.random.default_rng(0)
    for name in ("0014.jpg", "chip.png", "oldphoto2.png"):
        img = _rgb(folder / name)
        for pipe in (BSRGANDegradation(), RealESRGANDegradation()):
            lr, hr = pipe(img, rng)
            assert lr.shape[0] == hr.shape[0] // 4 and lr.shape[1] == hr.shape[1] // 4
            # degraded but still the same picture: correlates with a plain downscale
            ref = cv2.resize(hr, (lr.shape[1], lr.shape[0]), interpolation=cv2.INTER_AREA).astype(np.float64)
            assert np.corrcoef(ref.ravel(), lr.astype(np.float64).ravel())[0, 1] > 0.6
    gray = cv2.imread(str(data_dir / "Set12" / "01.png"), cv2.IMREAD_GRAYSCALE)
    lr, hr = BSRGANDegradation()(gray, rng)
    assert lr.shape == (64, 64, 3) and hr.shape == (256, 256, 3)


def test_pipelines_take_nested_options_as_a_yaml_config_gives_them():
    d = BSRGANDegradation(scale=2, jpeg_prob=0.5, noise={"gray_prob": 0.1}, jpeg_range=[40, 90])
    assert d.cfg.scale == 2 and d.cfg.jpeg_prob == 0.5 and d.cfg.jpeg_range == (40, 90)
    assert d.cfg.noise == BSRGANNoiseConfig(gray_prob=0.1)
    r = RealESRGANDegradation(second={"blur_prob": 0.5, "kernel": {"sinc_prob": 0.2}})
    assert r.cfg.second.blur_prob == 0.5 and r.cfg.second.kernel.sinc_prob == 0.2
    assert r.cfg.second.kernel.sigma_range == (0.2, 1.5)  # the rest of the second stage is kept
    with pytest.raises(ValueError, match="no option 'bogus'"):
        BSRGANDegradation(bogus=1)
    with pytest.raises(ValueError, match="unknown kernel kinds"):
        RealESRGANDegradation(first={"kernel": {"kinds": ["iso", "nope"], "probs": [0.5, 0.5]}})
