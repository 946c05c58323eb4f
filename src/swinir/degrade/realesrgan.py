"""Real-ESRGAN's second-order degradation (Wang et al., ICCVW 2021) on the CPU with NumPy/OpenCV.

Two rounds of: blur (Gaussian, generalised Gaussian, plateau or sinc kernels, random size, shape and
angle) -> resize up/down/keep by a random factor with a random interpolation -> Gaussian or Poisson
noise, gray or colour -> JPEG at a random quality. Then, in a random order (50/50), either
[resize to HR/scale + final sinc filter, then JPEG] or [JPEG, then resize + final sinc]; the final
sinc filter is applied with ``final_sinc_prob``. The result is rounded to uint8 and is exactly
HR/scale. Defaults are the published ones (``train_realesrnet_x4plus.yml``). Differences from the
original GPU pipeline, on purpose: JPEG is OpenCV's libjpeg at an integer quality (the original uses
a differentiable re-implementation that takes a float quality); resizes use OpenCV's kernels; no USM
sharpening of the ground truth and no training-pair queue (those belong to the data loader).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from swinir.degrade.bsrgan import add_gray_gaussian_noise, add_jpeg, crop_to_scale, cv2_resize, to_uint8, with_overrides
from swinir.degrade.kernels import MixedKernelConfig, filter2d, random_mixed_kernel, sinc_kernel
from swinir.degrade.noise import add_gaussian_noise

__all__ = [
    "RealESRGANStageConfig",
    "RealESRGANConfig",
    "RealESRGANDegradation",
    "degrade_realesrgan",
    "add_poisson_noise",
]


def add_poisson_noise(img: np.ndarray, scale: float, rng: np.random.Generator, gray: bool = False) -> np.ndarray:
    """Shot (Poisson) noise, clipped to [0, 1].

    The image is quantised to 8 bits, the number of distinct levels ``n`` is rounded up to a power of
    two ``v``, and ``noise = Poisson(x * v) / v - x`` is scaled by ``scale`` (as published). With
    ``gray`` the noise is drawn on the BT.601 luma and added to all channels.
    """
    x8 = to_uint8(img)
    if gray:
        luma = np.rint(x8.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32))
        x8 = np.clip(luma, 0, 255).astype(np.uint8)[:, :, None]
    levels = int(np.count_nonzero(np.bincount(x8.ravel(), minlength=256)))
    v = float(2 ** math.ceil(math.log2(max(levels, 1)))) if levels > 1 else 2.0
    x = x8.astype(np.float64) / 255.0
    noise = rng.poisson(x * v) / v - x
    noisy: np.ndarray = np.clip(img + (noise * scale).astype(np.float32), 0.0, 1.0)
    return noisy


@dataclass(frozen=True)
class RealESRGANStageConfig:
    """One degradation round; defaults are the published first round."""

    kernel: MixedKernelConfig = field(default_factory=MixedKernelConfig)
    blur_prob: float = 1.0
    resize_probs: tuple[float, float, float] = (0.2, 0.7, 0.1)  # up, down, keep
    resize_range: tuple[float, float] = (0.15, 1.5)
    gaussian_noise_prob: float = 0.5  # else Poisson
    noise_range: tuple[float, float] = (1.0, 30.0)  # Gaussian sigma on 0..255
    poisson_scale_range: tuple[float, float] = (0.05, 3.0)
    gray_noise_prob: float = 0.4
    jpeg_range: tuple[float, float] = (30.0, 95.0)


SECOND_STAGE = RealESRGANStageConfig(
    kernel=MixedKernelConfig(sigma_range=(0.2, 1.5)),
    blur_prob=0.8,
    resize_probs=(0.3, 0.4, 0.3),
    resize_range=(0.3, 1.2),
    noise_range=(1.0, 25.0),
    poisson_scale_range=(0.05, 2.5),
)


@dataclass(frozen=True)
class RealESRGANConfig:
    """Both rounds plus the final sinc/JPEG; defaults as published for x4."""

    scale: int = 4
    first: RealESRGANStageConfig = field(default_factory=RealESRGANStageConfig)
    second: RealESRGANStageConfig = SECOND_STAGE
    interpolations: tuple[str, ...] = ("area", "bilinear", "bicubic")
    final_sinc_prob: float = 0.8
    final_sinc_sizes: tuple[int, ...] = tuple(range(7, 22, 2))
    final_sinc_omega: tuple[float, float] = (math.pi / 3, math.pi)
    resize_then_jpeg_prob: float = 0.5

    def __post_init__(self) -> None:
        if self.scale < 1:
            raise ValueError(f"Real-ESRGAN scale must be >= 1, got {self.scale}")


class RealESRGANDegradation:
    """Callable ``(hr_uint8, rng) -> (lr_uint8, hr_uint8)``; see the module docstring."""

    name = "realesrgan"

    def __init__(self, cfg: RealESRGANConfig | None = None, **overrides: object) -> None:
        self.cfg = with_overrides(cfg or RealESRGANConfig(), overrides)

    @property
    def scale(self) -> int:
        return self.cfg.scale

    def _interp(self, rng: np.random.Generator) -> str:
        return self.cfg.interpolations[int(rng.integers(len(self.cfg.interpolations)))]

    def _round(
        self,
        img: np.ndarray,
        st: RealESRGANStageConfig,
        rng: np.random.Generator,
        size_of: tuple[int, int] | None,
        trace: list[str] | None,
        tag: str,
    ) -> np.ndarray:
        """One round; ``size_of`` is the reference (H, W) the resize factor applies to (None: current)."""
        if rng.uniform() < st.blur_prob:
            k = random_mixed_kernel(rng, st.kernel)
            _log(trace, f"{tag} blur {k.shape[0]}")
            img = filter2d(img, k.astype(np.float32))
        r = rng.uniform()
        if r < st.resize_probs[0]:
            f = float(rng.uniform(1.0, st.resize_range[1]))
        elif r < st.resize_probs[0] + st.resize_probs[1]:
            f = float(rng.uniform(st.resize_range[0], 1.0))
        else:
            f = 1.0
        how = self._interp(rng)
        ref = size_of or img.shape[:2]
        target = (max(1, int(ref[0] * f)), max(1, int(ref[1] * f)))
        _log(trace, f"{tag} resize {f:.2f} {how}")
        img = np.clip(cv2_resize(img, target, how), 0.0, 1.0)
        gray = rng.uniform() < st.gray_noise_prob
        if rng.uniform() < st.gaussian_noise_prob:
            sigma = float(rng.uniform(*st.noise_range))
            _log(trace, f"{tag} gaussian {'gray' if gray else 'color'} {sigma:.1f}")
            img = add_gray_gaussian_noise(img, sigma, rng) if gray else add_gaussian_noise(img, sigma, rng, clip=True)
        else:
            s = float(rng.uniform(*st.poisson_scale_range))
            _log(trace, f"{tag} poisson {'gray' if gray else 'color'} {s:.2f}")
            img = add_poisson_noise(img, s, rng, gray=gray)
        q = int(round(float(rng.uniform(*st.jpeg_range))))
        _log(trace, f"{tag} jpeg {q}")
        return add_jpeg(img, q)

    def __call__(
        self, hr: np.ndarray, rng: np.random.Generator, trace: list[str] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Degrade ``hr`` (uint8 HxW[xC]); ``trace``, if given, collects a line per applied step."""
        cfg = self.cfg
        sf = cfg.scale
        img = crop_to_scale(hr, sf)
        h, w = img.shape[:2]
        hq = img
        img = self._round(img, cfg.first, rng, None, trace, "1st")
        img = self._round(img, cfg.second, rng, (h // sf, w // sf), trace, "2nd")
        # final sinc kernel (or none), drawn up front as published
        sinc = None
        if rng.uniform() < cfg.final_sinc_prob:
            size = int(rng.choice(cfg.final_sinc_sizes))
            sinc = sinc_kernel(size, float(rng.uniform(*cfg.final_sinc_omega))).astype(np.float32)
        resize_first = rng.uniform() < cfg.resize_then_jpeg_prob
        how = self._interp(rng)
        q = int(round(float(rng.uniform(*cfg.second.jpeg_range))))

        def resize_sinc(x: np.ndarray) -> np.ndarray:
            x = np.clip(cv2_resize(x, (h // sf, w // sf), how), 0.0, 1.0)
            _log(trace, f"final resize {how}" + (f" + sinc {sinc.shape[0]}" if sinc is not None else ""))
            return filter2d(x, sinc) if sinc is not None else x

        if resize_first:
            img = resize_sinc(img)
            _log(trace, f"final jpeg {q}")
            img = add_jpeg(img, q)
        else:
            _log(trace, f"final jpeg {q}")
            img = resize_sinc(add_jpeg(img, q))
        return to_uint8(img), to_uint8(hq)


def _log(trace: list[str] | None, text: str) -> None:
    if trace is not None:
        trace.append(text)


def degrade_realesrgan(
    hr: np.ndarray, rng: np.random.Generator, scale: int = 4, cfg: RealESRGANConfig | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Functional form of :class:`RealESRGANDegradation`."""
    return RealESRGANDegradation(cfg or RealESRGANConfig(scale=scale))(hr, rng)
