"""Degradations shared by evaluation and training (one copy only).

MATLAB-compatible bicubic resize, additive Gaussian noise (paper test protocol and seeded training
noise), OpenCV JPEG. The real-world pipelines (BSRGAN / Real-ESRGAN style, blur kernels) live in their
own modules (``swinir.degrade.bsrgan``, ``.realesrgan``, ``.kernels``); ``make_pipeline`` builds any
pipeline by name from the one registry (``swinir.degrade.registry``).
"""

from __future__ import annotations

from swinir.degrade.jpeg import bgr2y_uint8, jpeg_compress, jpeg_gray_from_color
from swinir.degrade.noise import add_gaussian_noise, add_gaussian_noise_test
from swinir.degrade.registry import PIPELINES, REAL_WORLD, make_pipeline
from swinir.degrade.resize import imresize

__all__ = [
    "PIPELINES",
    "REAL_WORLD",
    "imresize",
    "add_gaussian_noise",
    "add_gaussian_noise_test",
    "jpeg_compress",
    "jpeg_gray_from_color",
    "bgr2y_uint8",
    "make_pipeline",
]
