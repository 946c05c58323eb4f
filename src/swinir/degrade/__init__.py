"""Degradations shared by evaluation and training (one copy only).

MATLAB-compatible bicubic resize, additive Gaussian noise (paper test protocol and seeded training
noise), OpenCV JPEG. Real-world degradation pipelines (BSRGAN / Real-ESRGAN style) live beside these.
"""

from __future__ import annotations

from swinir.degrade.jpeg import bgr2y_uint8, jpeg_compress, jpeg_gray_from_color
from swinir.degrade.noise import add_gaussian_noise, add_gaussian_noise_test
from swinir.degrade.resize import imresize

__all__ = [
    "imresize",
    "add_gaussian_noise",
    "add_gaussian_noise_test",
    "jpeg_compress",
    "jpeg_gray_from_color",
    "bgr2y_uint8",
]

# Real-world pipelines (added by their own modules; optional until they land).
try:  # pragma: no cover - depends on the other modules being present
    from swinir.degrade.kernels import *  # noqa: F401,F403
except ModuleNotFoundError as _exc:
    if _exc.name != "swinir.degrade.kernels":
        raise
try:  # pragma: no cover
    from swinir.degrade.bsrgan import *  # noqa: F401,F403
except ModuleNotFoundError as _exc:
    if _exc.name != "swinir.degrade.bsrgan":
        raise
try:  # pragma: no cover
    from swinir.degrade.realesrgan import *  # noqa: F401,F403
except ModuleNotFoundError as _exc:
    if _exc.name != "swinir.degrade.realesrgan":
        raise
