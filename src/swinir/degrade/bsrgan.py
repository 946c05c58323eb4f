"""BSRGAN's practical degradation model (Zhang et al., ICCV 2021), used for SwinIR's real-world models.

One HR image (uint8 RGB) becomes an (LR, HR) pair: LR is HR/scale, uint8, and pixel-aligned with the
HR crop it comes from. Steps, each drawn at random from ``rng`` (a ``np.random.Generator``, so one
seed reproduces one sample):

0. with ``scale2_prob`` (x4 only): halve the image first (OpenCV bilinear/bicubic/area, or MATLAB
   bicubic), then degrade by x2 from there;
1. blur (isotropic or anisotropic Gaussian, random size, width and angle), twice;
2. downsample by a random factor in (1, 2*scale) with a random interpolation, or with
   ``1 - resize_prob`` blur with a shifted Gaussian and keep every ``scale``-th pixel ("nearest");
3. resize to exactly 1/scale of the size before step 2: if step 2 went below that, this is the
   down-up variant;
4. Gaussian noise at a random level: channel-independent, gray, or cross-channel correlated;
5. JPEG at a random quality, with ``jpeg_prob``;
6. camera sensor noise with ``sensor.prob`` (see :func:`add_sensor_noise`: a simplified model);

steps 1-6 in a random order (with ``shuffle_prob``, else in order; step 2 always before step 3),
then a final JPEG. Defaults are the published ones (KAIR ``degradation_bsrgan``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass, replace
from typing import TYPE_CHECKING, TypeVar

import cv2
import numpy as np

from swinir.degrade.jpeg import jpeg_compress
from swinir.degrade.kernels import eigen_gaussian_kernel, filter2d, matlab_gaussian_kernel, shifted_gaussian_kernel
from swinir.degrade.noise import add_gaussian_noise
from swinir.degrade.resize import imresize

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

ConfigT = TypeVar("ConfigT", bound="DataclassInstance")

__all__ = [
    "BSRGANBlurConfig",
    "BSRGANNoiseConfig",
    "SensorNoiseConfig",
    "BSRGANConfig",
    "BSRGANDegradation",
    "degrade_bsrgan",
    "add_jpeg",
    "add_gray_gaussian_noise",
    "add_correlated_gaussian_noise",
    "random_covariance",
    "add_sensor_noise",
    "random_bsrgan_blur",
    "with_overrides",
]

INTERPOLATIONS = {"bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC, "area": cv2.INTER_AREA}


# ---------------------------------------------------------------------------------------------- helpers
def to_float(img: np.ndarray) -> np.ndarray:
    """uint8 HxW[xC] -> float32 HxWx3 in [0, 1] (gray is repeated to three channels)."""
    x = np.asarray(img)
    if x.dtype != np.uint8:
        raise TypeError(f"expected a uint8 image, got {x.dtype}")
    if x.ndim == 2:
        x = x[:, :, None]
    if x.ndim != 3 or x.shape[2] not in (1, 3, 4):
        raise ValueError(f"expected an HxW, HxWx1, HxWx3 or HxWx4 image, got shape {x.shape}")
    x = x[:, :, :3]
    if x.shape[2] == 1:
        x = np.repeat(x, 3, axis=2)
    scaled: np.ndarray = x.astype(np.float32) * np.float32(1.0 / 255.0)
    return scaled


def to_uint8(img: np.ndarray) -> np.ndarray:
    """float [0, 1] -> uint8, rounded and saturated."""
    rounded: np.ndarray = np.clip(np.rint(np.asarray(img, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)
    return rounded


def cv2_resize(img: np.ndarray, size_hw: tuple[int, int], interpolation: str) -> np.ndarray:
    """OpenCV resize of an HxWxC float image to ``size_hw`` (keeps the channel axis)."""
    h, w = max(1, int(size_hw[0])), max(1, int(size_hw[1]))
    out = cv2.resize(img, (w, h), interpolation=INTERPOLATIONS[interpolation])
    return out[:, :, None] if out.ndim == 2 else out


def crop_to_scale(hr: np.ndarray, scale: int) -> np.ndarray:
    """``hr`` as float [0,1], cropped to a multiple of ``scale`` so the LR image aligns with it."""
    img = to_float(hr)
    h, w = img.shape[0] - img.shape[0] % scale, img.shape[1] - img.shape[1] % scale
    if h < scale or w < scale:
        raise ValueError(f"image {img.shape[1]}x{img.shape[0]} is smaller than the scale {scale}")
    return np.ascontiguousarray(img[:h, :w])


def add_jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    """JPEG round trip of a float RGB image (quantised to uint8 first, as a real file would be)."""
    decoded: np.ndarray = jpeg_compress(to_uint8(img), int(quality)).astype(np.float32) * np.float32(1.0 / 255.0)
    return decoded


def add_gray_gaussian_noise(img: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """The same N(0, (sigma/255)^2) draw added to every channel (luminance-only noise), clipped."""
    n = rng.standard_normal(img.shape[:2], dtype=np.float32) * np.float32(sigma / 255.0)
    noisy: np.ndarray = np.clip(img + n[:, :, None], 0.0, 1.0)
    return noisy


def random_covariance(rng: np.random.Generator, level: float, channels: int = 3) -> np.ndarray:
    """``(level/255)^2 U^T D U``: a random channel covariance (U a random rotation, D ~ U(0,1)^3)."""
    d = rng.uniform(size=channels)
    q, r = np.linalg.qr(rng.uniform(size=(channels, channels)))
    u = q * np.sign(np.diag(r))  # orthonormal basis of a random matrix
    cov: np.ndarray = (level / 255.0) ** 2 * (u.T @ np.diag(d) @ u)
    return cov


def add_correlated_gaussian_noise(img: np.ndarray, cov: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Noise correlated across channels: each pixel's RGB noise vector ~ N(0, ``cov``), clipped."""
    w, v = np.linalg.eigh(cov)
    a = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T  # symmetric square root of cov
    z = rng.standard_normal(img.shape, dtype=np.float32)
    noisy: np.ndarray = np.clip(img + z @ a.T.astype(np.float32), 0.0, 1.0)
    return noisy


@dataclass(frozen=True)
class SensorNoiseConfig:
    """Camera sensor noise, a simplified stand-in for BSRGAN's reverse-ISP noise.

    BSRGAN unprocesses sRGB to RAW (inverse tone curve, gamma, colour matrix, white balance,
    mosaicking), adds noise there and runs a camera ISP forward. That camera model is not
    reproduced. Instead the image is linearised by the inverse of a ``gamma`` curve, per-pixel
    heteroscedastic (Poisson-Gaussian) noise of variance ``shot * x + read`` is added per channel, and
    the gamma is re-applied. Shot and read levels follow the joint distribution of Brooks et al.
    (Unprocessing, CVPR 2019): ``log shot ~ U(log lo, log hi)``, ``log read = slope*log shot +
    intercept + N(0, read_log_std^2)``. So dark areas get relatively stronger noise, as on a real
    sensor, but there is no demosaicking correlation or colour-matrix mixing.
    """

    prob: float = 0.25
    shot_range: tuple[float, float] = (1e-4, 1.2e-2)
    read_slope: float = 2.18
    read_intercept: float = 1.2
    read_log_std: float = 0.26
    gamma: float = 2.2


def add_sensor_noise(
    img: np.ndarray,
    rng: np.random.Generator,
    cfg: SensorNoiseConfig = SensorNoiseConfig(),
    shot: float | None = None,
    read: float | None = None,
) -> np.ndarray:
    """Signal-dependent sensor noise in linear light (see :class:`SensorNoiseConfig`); clipped to [0, 1].

    ``shot`` and ``read`` fix the levels (variance = shot * linear + read) instead of drawing them.
    """
    if shot is None:
        log_shot = rng.uniform(math.log(cfg.shot_range[0]), math.log(cfg.shot_range[1]))
        shot = math.exp(log_shot)
    if read is None:
        read = math.exp(cfg.read_slope * math.log(shot) + cfg.read_intercept + rng.normal(0.0, cfg.read_log_std))
    lin = np.power(np.clip(img, 0.0, 1.0), np.float32(cfg.gamma))
    std = np.sqrt(lin * np.float32(shot) + np.float32(read))
    lin = np.clip(lin + std * rng.standard_normal(img.shape, dtype=np.float32), 0.0, 1.0)
    noisy: np.ndarray = np.power(lin, np.float32(1.0 / cfg.gamma))
    return noisy


# ---------------------------------------------------------------------------------------------- configs
@dataclass(frozen=True)
class BSRGANBlurConfig:
    """One blur step. ``sf`` is the current scale factor (4, or 2 after the initial halving).

    Kernel sizes are odd in ``size_range``. Isotropic (``iso_prob``): sigma ~ U(min_sigma, iso_sigma_base +
    iso_sigma_per_scale*sf), i.e. up to 2.8 at x4. Anisotropic: two covariance eigenvalues (variances)
    ~ U(min_var, aniso_var_base + aniso_var_per_scale*sf), i.e. up to 8 at x4, angle ~ U(0, pi).
    The published code draws from 0; the small minima avoid a degenerate kernel.
    """

    size_range: tuple[int, int] = (7, 25)
    iso_prob: float = 0.5
    iso_sigma_base: float = 2.0
    iso_sigma_per_scale: float = 0.2
    aniso_var_base: float = 4.0
    aniso_var_per_scale: float = 1.0
    min_sigma: float = 0.1
    min_var: float = 0.01


@dataclass(frozen=True)
class BSRGANNoiseConfig:
    """Gaussian noise: level ~ U{level_range} (on 0..255); channel-independent with ``color_prob``, gray
    with ``gray_prob``, else correlated across channels with a random covariance scaled by
    ``level_range[1]`` (as published: the correlated case uses the top level, shaped by a random D)."""

    level_range: tuple[int, int] = (2, 25)
    color_prob: float = 0.4
    gray_prob: float = 0.4


@dataclass(frozen=True)
class BSRGANConfig:
    """The whole pipeline; each step's block is configurable, defaults as published."""

    scale: int = 4
    shuffle_prob: float = 1.0
    scale2_prob: float = 0.25
    blur: BSRGANBlurConfig = field(default_factory=BSRGANBlurConfig)
    resize_prob: float = 0.75
    down_factor_max: float = 2.0  # step 2 factor ~ U(1, down_factor_max * sf)
    interpolations: tuple[str, ...] = ("bilinear", "bicubic", "area")
    subsample_kernel_size: int = 25
    subsample_sigma_per_scale: float = 0.6  # "nearest" branch: sigma ~ U(0.1, 0.6 sf)
    noise: BSRGANNoiseConfig = field(default_factory=BSRGANNoiseConfig)
    jpeg_prob: float = 0.9
    jpeg_range: tuple[int, int] = (30, 95)
    sensor: SensorNoiseConfig = field(default_factory=SensorNoiseConfig)
    final_jpeg: bool = True
    lq_patch: int | None = None  # crop an aligned random LR patch (and its HR) after degrading

    def __post_init__(self) -> None:
        if self.scale not in (1, 2, 3, 4, 8):
            raise ValueError(f"BSRGAN scale must be 1, 2, 3, 4 or 8, got {self.scale}")
        bad = set(self.interpolations) - set(INTERPOLATIONS)
        if bad:
            raise ValueError(f"unknown interpolations {sorted(bad)}; use {sorted(INTERPOLATIONS)}")


def random_bsrgan_blur(rng: np.random.Generator, sf: int, cfg: BSRGANBlurConfig = BSRGANBlurConfig()) -> np.ndarray:
    """One random blur kernel of BSRGAN's blur step at scale ``sf``."""
    lo, hi = cfg.size_range
    size = 2 * int(rng.integers((lo - 1) // 2, (hi - 1) // 2 + 1)) + 1
    if rng.uniform() < cfg.iso_prob:
        sigma = max(cfg.min_sigma, float(rng.uniform()) * (cfg.iso_sigma_base + cfg.iso_sigma_per_scale * sf))
        return matlab_gaussian_kernel(size, sigma)
    top = cfg.aniso_var_base + cfg.aniso_var_per_scale * sf
    l1 = max(cfg.min_var, float(rng.uniform()) * top)
    l2 = max(cfg.min_var, float(rng.uniform()) * top)
    return eigen_gaussian_kernel(size, float(rng.uniform()) * math.pi, l1, l2)


def with_overrides(cfg: ConfigT, overrides: Mapping[str, object]) -> ConfigT:
    """``dataclasses.replace`` that also takes nested mappings for nested configs and lists for tuples,
    as a YAML config gives them (``{noise: {gray_prob: 0.5}, jpeg_range: [40, 95]}``)."""
    if not overrides:
        return cfg
    kinds = {f.name: f for f in fields(cfg)}
    changes: dict[str, object] = {}
    for key, value in overrides.items():
        if key not in kinds:
            raise ValueError(f"{type(cfg).__name__} has no option {key!r}; known: {', '.join(kinds)}")
        current = getattr(cfg, key)
        if is_dataclass(current) and not isinstance(current, type) and isinstance(value, Mapping):
            value = with_overrides(current, value)
        elif isinstance(current, tuple) and isinstance(value, list):
            value = tuple(value)
        changes[key] = value
    return replace(cfg, **changes)


# ---------------------------------------------------------------------------------------------- pipeline
class BSRGANDegradation:
    """Callable ``(hr_uint8, rng) -> (lr_uint8, hr_uint8)``; see the module docstring."""

    name = "bsrgan"

    def __init__(self, cfg: BSRGANConfig | None = None, **overrides: object) -> None:
        self.cfg = with_overrides(cfg or BSRGANConfig(), overrides)

    @property
    def scale(self) -> int:
        return self.cfg.scale

    def _noise(self, img: np.ndarray, rng: np.random.Generator, trace: list[str] | None) -> np.ndarray:
        nc = self.cfg.noise
        level = int(rng.integers(nc.level_range[0], nc.level_range[1] + 1))
        r = rng.uniform()
        if r < nc.color_prob:
            _log(trace, f"noise color {level}")
            return add_gaussian_noise(img, level, rng, clip=True)
        if r < nc.color_prob + nc.gray_prob:
            _log(trace, f"noise gray {level}")
            return add_gray_gaussian_noise(img, level, rng)
        _log(trace, f"noise correlated {nc.level_range[1]}")
        return add_correlated_gaussian_noise(img, random_covariance(rng, nc.level_range[1]), rng)

    def _jpeg(self, img: np.ndarray, rng: np.random.Generator, trace: list[str] | None) -> np.ndarray:
        q = int(rng.integers(self.cfg.jpeg_range[0], self.cfg.jpeg_range[1] + 1))
        _log(trace, f"jpeg {q}")
        return add_jpeg(img, q)

    def __call__(
        self, hr: np.ndarray, rng: np.random.Generator, trace: list[str] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Degrade ``hr`` (uint8 HxW[xC]); ``trace``, if given, collects a line per applied step."""
        cfg = self.cfg
        sf0 = cfg.scale
        img = crop_to_scale(hr, sf0)
        h0, w0 = img.shape[:2]
        hq = img
        sf = sf0
        interps = cfg.interpolations
        if sf == 4 and rng.uniform() < cfg.scale2_prob:
            if rng.uniform() < 0.5:
                how = interps[int(rng.integers(len(interps)))]
                img = cv2_resize(img, (h0 // 2, w0 // 2), how)
            else:
                how = "matlab-bicubic"
                img = imresize(img, output_shape=(h0 // 2, w0 // 2), mode="float").astype(np.float32)
            img = np.clip(img, 0.0, 1.0)
            _log(trace, f"halve {how}")
            sf = 2

        order = list(range(7))
        if rng.uniform() < cfg.shuffle_prob:
            order = [int(i) for i in rng.permutation(7)]
        i2, i3 = order.index(2), order.index(3)
        if i2 > i3:
            order[i2], order[i3] = 3, 2
        ref_hw = img.shape[:2]
        for step in order:
            if step in (0, 1):
                k = random_bsrgan_blur(rng, sf, cfg.blur)
                _log(trace, f"blur {k.shape[0]}")
                img = filter2d(img, k.astype(np.float32))
            elif step == 2:
                ref_hw = img.shape[:2]
                if rng.uniform() < cfg.resize_prob:
                    f = float(rng.uniform(1.0, cfg.down_factor_max * sf))
                    how = interps[int(rng.integers(len(interps)))]
                    _log(trace, f"down {f:.2f} {how}")
                    img = cv2_resize(img, (int(ref_hw[0] / f), int(ref_hw[1] / f)), how)
                else:
                    sigma = float(rng.uniform(0.1, cfg.subsample_sigma_per_scale * sf))
                    k = shifted_gaussian_kernel(cfg.subsample_kernel_size, sigma, sf)
                    _log(trace, f"down nearest x{sf} sigma {sigma:.2f}")
                    img = filter2d(img, k.astype(np.float32))[::sf, ::sf]
                img = np.clip(img, 0.0, 1.0)
            elif step == 3:
                how = interps[int(rng.integers(len(interps)))]
                target = (ref_hw[0] // sf, ref_hw[1] // sf)
                _log(trace, f"resize {img.shape[0]}->{target[0]} {how}")
                img = np.clip(cv2_resize(img, target, how), 0.0, 1.0)
            elif step == 4:
                img = self._noise(img, rng, trace)
            elif step == 5:
                if rng.uniform() < cfg.jpeg_prob:
                    img = self._jpeg(img, rng, trace)
            elif step == 6 and rng.uniform() < cfg.sensor.prob:
                _log(trace, "sensor noise")
                img = add_sensor_noise(img, rng, cfg.sensor)
        if cfg.final_jpeg:
            img = self._jpeg(img, rng, trace)
        lr = to_uint8(img)
        hr_out = to_uint8(hq)
        if cfg.lq_patch:
            lr, hr_out = _aligned_crop(lr, hr_out, sf0, cfg.lq_patch, rng)
        return lr, hr_out


def _log(trace: list[str] | None, text: str) -> None:
    if trace is not None:
        trace.append(text)


def _aligned_crop(
    lr: np.ndarray, hr: np.ndarray, scale: int, patch: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    h, w = lr.shape[:2]
    if h < patch or w < patch:
        raise ValueError(f"LR image {w}x{h} is smaller than the requested patch {patch}")
    y = int(rng.integers(0, h - patch + 1))
    x = int(rng.integers(0, w - patch + 1))
    return (lr[y : y + patch, x : x + patch], hr[y * scale : (y + patch) * scale, x * scale : (x + patch) * scale])


def degrade_bsrgan(
    hr: np.ndarray, rng: np.random.Generator, scale: int = 4, cfg: BSRGANConfig | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Functional form of :class:`BSRGANDegradation`."""
    return BSRGANDegradation(cfg or BSRGANConfig(scale=scale))(hr, rng)
