"""One registry of degradation pipelines, by name: training (``data.degrade.pipeline``) and
``swinir degrade`` build theirs here.

A pipeline is a callable ``(hr_uint8, rng, trace=None) -> (lq_uint8, hr_uint8)``: every random choice is
drawn from ``rng`` (one seed, one sample), ``trace`` (a list, if given) collects a line per applied step,
and the returned HR is the crop the LQ is aligned with. ``random`` on a pipeline says whether two seeds
give different samples. The real-world pipelines import their modules only when built.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

Pipeline = Callable[..., tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Bicubic:
    """MATLAB bicubic 1/scale of the image cropped to a multiple of the scale (the paper's SR inputs)."""

    scale: int
    random = False

    def __call__(
        self, img: np.ndarray, rng: np.random.Generator, trace: list[str] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        from swinir.degrade.resize import imresize

        h, w = img.shape[0] - img.shape[0] % self.scale, img.shape[1] - img.shape[1] % self.scale
        if h < 1 or w < 1:
            raise ValueError(f"image {img.shape[1]}x{img.shape[0]} is smaller than the scale {self.scale}")
        hr = img[:h, :w]
        if trace is not None:
            trace.append(f"matlab bicubic 1/{self.scale}")
        return imresize(hr, scale=1.0 / self.scale, mode="uint8"), hr


@dataclass(frozen=True)
class GaussianNoise:
    """Additive Gaussian noise, sigma (0..255) uniform in ``sigma`` per sample, clipped to uint8."""

    sigma: tuple[float, float] = (25.0, 25.0)
    random = True

    def __call__(
        self, img: np.ndarray, rng: np.random.Generator, trace: list[str] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        from swinir.degrade.bsrgan import to_uint8
        from swinir.degrade.noise import add_gaussian_noise

        lo, hi = self.sigma
        s = float(rng.uniform(lo, hi)) if lo != hi else lo
        if trace is not None:
            trace.append(f"gaussian noise sigma {s:.2f}")
        return to_uint8(add_gaussian_noise(img.astype(np.float32) / 255.0, s, rng, clip=True)), img


@dataclass(frozen=True)
class JPEG:
    """OpenCV JPEG at a quality drawn uniformly (integers) from ``quality`` per sample."""

    quality: tuple[int, int] = (40, 40)

    @property
    def random(self) -> bool:
        return self.quality[0] != self.quality[1]

    def __call__(
        self, img: np.ndarray, rng: np.random.Generator, trace: list[str] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        from swinir.degrade.jpeg import jpeg_compress

        lo, hi = self.quality
        q = int(rng.integers(lo, hi + 1)) if lo != hi else lo
        if trace is not None:
            trace.append(f"jpeg quality {q}")
        return jpeg_compress(img, q), img


def _bsrgan(scale: int = 4, **options: Any) -> Pipeline:
    from swinir.degrade.bsrgan import BSRGANDegradation

    return BSRGANDegradation(scale=scale, **options)


def _realesrgan(scale: int = 4, **options: Any) -> Pipeline:
    from swinir.degrade.realesrgan import RealESRGANDegradation

    return RealESRGANDegradation(scale=scale, **options)


def _noise(sigma: tuple[float, float] = (25.0, 25.0)) -> Pipeline:
    return GaussianNoise((float(sigma[0]), float(sigma[1])))


def _jpeg(quality: tuple[float, float] = (40, 40)) -> Pipeline:
    return JPEG((int(round(quality[0])), int(round(quality[1]))))


@dataclass(frozen=True)
class PipelineEntry:
    summary: str
    build: Callable[..., Pipeline]
    real_world: bool  # a whole real-world model (blur, resize, noise, JPEG) at a scale: a training pipeline
    keeps_size: bool


PIPELINES: dict[str, PipelineEntry] = {
    "bsrgan": PipelineEntry(
        "BSRGAN practical degradation (blur x2, resize, noise, JPEG, sensor noise)", _bsrgan, True, False
    ),
    "realesrgan": PipelineEntry(
        "Real-ESRGAN second-order degradation (2 rounds + final sinc/JPEG)", _realesrgan, True, False
    ),
    "bicubic": PipelineEntry("MATLAB bicubic downscaling", Bicubic, False, False),
    "noise": PipelineEntry("additive Gaussian noise", _noise, False, True),
    "jpeg": PipelineEntry("OpenCV JPEG compression", _jpeg, False, True),
}
REAL_WORLD = tuple(name for name, entry in PIPELINES.items() if entry.real_world)


def make_pipeline(name: str, **options: Any) -> Pipeline:
    """Build pipeline ``name`` with its options (``scale``; ``sigma``; ``quality``; the real-world ones also
    take their config's fields). Unknown names and bad options raise ``ValueError`` with one line."""
    entry = PIPELINES.get(name)
    if entry is None:
        raise ValueError(f"unknown pipeline {name!r}; known: {', '.join(PIPELINES)}")
    try:
        return entry.build(**options)
    except (TypeError, ValueError) as exc:  # an option it does not take, or a value out of range
        raise ValueError(f"{name}: {exc}") from None


def is_random(pipeline: Pipeline) -> bool:
    """Whether two seeds give different samples (the real-world pipelines always do)."""
    return bool(getattr(pipeline, "random", True))
