"""Additive white Gaussian noise: the paper's fixed test protocol and a seeded generator for training."""

from __future__ import annotations

import numpy as np

__all__ = ["add_gaussian_noise_test", "add_gaussian_noise"]


def add_gaussian_noise_test(img: np.ndarray, sigma: float) -> np.ndarray:
    """The released test protocol, bit for bit: ``np.random.seed(0)`` then
    ``img + np.random.normal(0, sigma/255, img.shape)`` on a float image in [0, 1].

    No clipping and no rounding, so PSNR figures are comparable with the paper's tables. This
    reseeds NumPy's global generator (as the original does) so every image gets the same draw
    sequence regardless of evaluation order.
    """
    x = np.asarray(img)
    if x.dtype == np.uint8:
        raise TypeError("add_gaussian_noise_test expects a float image in [0, 1], got uint8 (divide by 255 first)")
    np.random.seed(0)
    return x + np.random.normal(0, sigma / 255.0, x.shape)


def add_gaussian_noise(img: np.ndarray, sigma: float, rng: np.random.Generator, clip: bool = False) -> np.ndarray:
    """Training noise: ``img`` float in [0, 1] plus N(0, (sigma/255)^2) drawn from ``rng``.

    The result keeps ``img``'s float dtype (float32 stays float32 to save memory). ``clip`` clamps
    to [0, 1]; the paper's pipeline does not clip, so the default is off.
    """
    x = np.asarray(img)
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"add_gaussian_noise expects a float image in [0, 1], got {x.dtype}")
    noisy: np.ndarray = x + rng.normal(0.0, sigma / 255.0, x.shape).astype(x.dtype, copy=False)
    if clip:
        noisy = np.clip(noisy, 0.0, 1.0)
    return noisy
