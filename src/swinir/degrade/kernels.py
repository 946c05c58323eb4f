"""Blur kernels for the real-world degradation pipelines (BSRGAN and Real-ESRGAN).

Every kernel is a square, odd-sized float64 array that sums to 1 and is point-symmetric about its
centre (``k == k[::-1, ::-1]``), except the deliberately shifted one used by BSRGAN's
blur-and-subsample step. Apply them with :func:`filter2d` (reflect-101 borders, as both papers' code
pads). Random draws take a ``np.random.Generator`` so one seed reproduces a sample.

Shapes, following the papers:

* Gaussian: ``exp(-1/2 x^T S^-1 x)``, ``S = R diag(sx^2, sy^2) R^T`` rotated by ``theta``.
* generalised Gaussian: ``exp(-1/2 (x^T S^-1 x)^beta)`` (beta < 1 heavy tails, beta > 1 flat top).
* plateau: ``1 / (1 + (x^T S^-1 x)^beta)``.
* sinc (circular low-pass): the ideal disc filter of cut-off ``omega_c`` (radians/pixel),
  ``omega_c J1(omega_c r) / (2 pi r)``, truncated to the kernel size and renormalised.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

__all__ = [
    "bessel_j1",
    "gaussian_kernel",
    "generalized_gaussian_kernel",
    "plateau_kernel",
    "sinc_kernel",
    "matlab_gaussian_kernel",
    "eigen_gaussian_kernel",
    "shifted_gaussian_kernel",
    "MixedKernelConfig",
    "random_mixed_kernel",
    "random_sinc_kernel",
    "filter2d",
    "KERNEL_KINDS",
]

KERNEL_KINDS = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso")


def bessel_j1(x: np.ndarray | float, points: int = 256) -> np.ndarray:
    """Bessel function of the first kind, order 1, from its integral form
    ``J1(x) = 1/(2 pi) * integral_0^{2 pi} cos(t - x sin t) dt``.

    The integrand is periodic and smooth, so the trapezoid rule converges exponentially: with 256
    points it is exact to ~1e-15 for |x| < 150, far beyond the radii a 21x21 kernel needs. Written
    here so the package needs no SciPy at run time.
    """
    xa = np.asarray(x, dtype=np.float64)
    t = np.arange(points, dtype=np.float64) * (2.0 * math.pi / points)
    vals = np.cos(t - xa[..., None] * np.sin(t))
    mean: np.ndarray = vals.mean(axis=-1)
    return mean


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    if size < 1 or size % 2 == 0:
        raise ValueError(f"kernel size must be a positive odd integer, got {size}")
    r = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    yy, xx = np.meshgrid(r, r, indexing="ij")
    return xx, yy


def _inv_cov_quad(
    size: int, sigma_x: float, sigma_y: float, theta: float, shift: tuple[float, float] = (0.0, 0.0)
) -> np.ndarray:
    """``x^T S^-1 x`` on the kernel grid for ``S = R diag(sx^2, sy^2) R^T``."""
    if sigma_x <= 0 or sigma_y <= 0:
        raise ValueError(f"kernel sigmas must be > 0, got {sigma_x}, {sigma_y}")
    xx, yy = _grid(size)
    xx = xx - shift[0]
    yy = yy - shift[1]
    c, s = math.cos(theta), math.sin(theta)
    # coordinates in the kernel's principal axes
    u = c * xx + s * yy
    v = -s * xx + c * yy
    return (u / sigma_x) ** 2 + (v / sigma_y) ** 2


def _normalise(k: np.ndarray) -> np.ndarray:
    total = k.sum()
    if not np.isfinite(total) or total == 0:
        raise ValueError("kernel sums to zero or is not finite")
    normalised: np.ndarray = k / total
    return normalised


def gaussian_kernel(size: int, sigma_x: float, sigma_y: float | None = None, theta: float = 0.0) -> np.ndarray:
    """Bivariate Gaussian (isotropic when ``sigma_y`` is None), rotated by ``theta`` radians."""
    q = _inv_cov_quad(size, sigma_x, sigma_x if sigma_y is None else sigma_y, theta)
    return _normalise(np.exp(-0.5 * q))


def generalized_gaussian_kernel(
    size: int, sigma_x: float, sigma_y: float | None = None, theta: float = 0.0, beta: float = 1.0
) -> np.ndarray:
    """``exp(-1/2 (x^T S^-1 x)^beta)``; beta = 1 is the Gaussian."""
    q = _inv_cov_quad(size, sigma_x, sigma_x if sigma_y is None else sigma_y, theta)
    return _normalise(np.exp(-0.5 * np.power(q, beta)))


def plateau_kernel(
    size: int, sigma_x: float, sigma_y: float | None = None, theta: float = 0.0, beta: float = 1.0
) -> np.ndarray:
    """``1 / (1 + (x^T S^-1 x)^beta)``: a flat top with slowly decaying tails."""
    q = _inv_cov_quad(size, sigma_x, sigma_x if sigma_y is None else sigma_y, theta)
    return _normalise(1.0 / (1.0 + np.power(q, beta)))


def sinc_kernel(size: int, omega_c: float) -> np.ndarray:
    """Circular low-pass (2-D "sinc") kernel with cut-off ``omega_c`` in (0, pi] radians/pixel;
    it makes the ringing and overshoot artefacts of real images."""
    if not 0 < omega_c <= math.pi + 1e-9:
        raise ValueError(f"sinc cut-off must be in (0, pi], got {omega_c}")
    xx, yy = _grid(size)
    r = np.hypot(xx, yy)
    k = np.empty_like(r)
    nz = r > 0
    k[nz] = omega_c * bessel_j1(omega_c * r[nz]) / (2.0 * math.pi * r[nz])
    k[~nz] = omega_c**2 / (4.0 * math.pi)  # the limit at r = 0
    return _normalise(k)


def matlab_gaussian_kernel(size: int, sigma: float) -> np.ndarray:
    """MATLAB ``fspecial('gaussian', size, sigma)``: isotropic Gaussian, entries below eps*max zeroed."""
    k = gaussian_kernel(size, sigma)
    k[k < np.finfo(np.float64).eps * k.max()] = 0.0
    return _normalise(k)


def eigen_gaussian_kernel(size: int, theta: float, l1: float, l2: float) -> np.ndarray:
    """BSRGAN's anisotropic Gaussian: covariance with eigenvalues (variances) ``l1, l2`` and the
    first eigenvector at angle ``theta``."""
    return gaussian_kernel(size, math.sqrt(l1), math.sqrt(l2), theta)


def shifted_gaussian_kernel(size: int, sigma: float, scale: int) -> np.ndarray:
    """Isotropic Gaussian whose centre sits ``(scale-1)/2`` pixels right and down of the array centre.

    Correlating with it and keeping every ``scale``-th pixel from (0, 0) averages each output pixel
    around the centre of its ``scale x scale`` HR block, so the subsampled image stays aligned with
    the HR crop (BSRGAN's "nearest" downsampler).
    """
    s = (scale - 1) / 2.0
    q = _inv_cov_quad(size, sigma, sigma, 0.0, shift=(s, s))
    return _normalise(np.exp(-0.5 * q))


def filter2d(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Correlate each channel of a float image with ``kernel`` (reflect-101 borders).

    For the point-symmetric kernels above, correlation equals convolution.
    """
    x = np.asarray(img)
    out = cv2.filter2D(
        x,
        -1,
        np.asarray(kernel, dtype=np.float32 if x.dtype == np.float32 else np.float64),
        borderType=cv2.BORDER_REFLECT_101,
    )
    if x.ndim == 3 and out.ndim == 2:  # cv2 drops a trailing singleton channel
        out = out[:, :, None]
    return out


@dataclass(frozen=True)
class MixedKernelConfig:
    """Random kernel family of Real-ESRGAN's first (and, with ``sigma_range=(0.2, 1.5)``, second)
    degradation; defaults are the published first-stage settings."""

    kinds: tuple[str, ...] = KERNEL_KINDS
    probs: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    sizes: tuple[int, ...] = tuple(range(7, 22, 2))  # 7, 9, ..., 21
    sigma_range: tuple[float, float] = (0.2, 3.0)
    rotation_range: tuple[float, float] = (-math.pi, math.pi)
    betag_range: tuple[float, float] = (0.5, 4.0)
    betap_range: tuple[float, float] = (1.0, 2.0)
    sinc_prob: float = 0.1

    def __post_init__(self) -> None:
        if len(self.kinds) != len(self.probs):
            raise ValueError("MixedKernelConfig: kinds and probs differ in length")
        unknown = set(self.kinds) - set(KERNEL_KINDS)
        if unknown:
            raise ValueError(f"MixedKernelConfig: unknown kernel kinds {sorted(unknown)}; use {KERNEL_KINDS}")
        if any(s % 2 == 0 for s in self.sizes):
            raise ValueError("MixedKernelConfig: kernel sizes must be odd")


def _split_beta(rng: np.random.Generator, lo: float, hi: float) -> float:
    """Half of the draws below 1 (heavier tails), half above (flatter top), as published."""
    if rng.uniform() < 0.5:
        return float(rng.uniform(lo, 1.0)) if lo < 1.0 else 1.0
    return float(rng.uniform(1.0, hi))


def random_sinc_kernel(
    rng: np.random.Generator, size: int, omega_range: tuple[float, float] | None = None
) -> np.ndarray:
    """A sinc kernel with the published cut-off draw: U(pi/3, pi) for sizes < 13, else U(pi/5, pi)."""
    if omega_range is None:
        omega_range = (math.pi / 3, math.pi) if size < 13 else (math.pi / 5, math.pi)
    return sinc_kernel(size, float(rng.uniform(*omega_range)))


def random_mixed_kernel(rng: np.random.Generator, cfg: MixedKernelConfig = MixedKernelConfig()) -> np.ndarray:
    """One random kernel: sinc with ``cfg.sinc_prob``, else a kind drawn by ``cfg.probs``."""
    size = int(rng.choice(cfg.sizes))
    if rng.uniform() < cfg.sinc_prob:
        return random_sinc_kernel(rng, size)
    p = np.asarray(cfg.probs, dtype=np.float64)
    kind = cfg.kinds[int(rng.choice(len(cfg.kinds), p=p / p.sum()))]
    sx = float(rng.uniform(*cfg.sigma_range))
    if kind.endswith("iso") and not kind.endswith("aniso"):
        sy, theta = sx, 0.0
    else:
        sy = float(rng.uniform(*cfg.sigma_range))
        theta = float(rng.uniform(*cfg.rotation_range))
    if kind in ("iso", "aniso"):
        return gaussian_kernel(size, sx, sy, theta)
    if kind.startswith("generalized"):
        return generalized_gaussian_kernel(size, sx, sy, theta, _split_beta(rng, *cfg.betag_range))
    return plateau_kernel(size, sx, sy, theta, _split_beta(rng, *cfg.betap_range))
