"""Degradations shared by evaluation and training (one copy only).

MATLAB-compatible bicubic resize, additive Gaussian noise (paper test protocol and seeded training
noise), OpenCV JPEG. Real-world degradation pipelines (BSRGAN / Real-ESRGAN style, blur kernels) live
in sibling modules; whatever they list in ``__all__`` is re-exported here too.
"""

from __future__ import annotations

import importlib as _importlib

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

_CORE = set(__all__)
for _name in ("kernels", "bsrgan", "realesrgan"):
    _full = f"swinir.degrade.{_name}"
    try:
        _mod = _importlib.import_module(_full)
    except ModuleNotFoundError as _exc:  # an optional pipeline not present: the core still works
        if _exc.name != _full:
            raise
        continue
    for _attr in getattr(_mod, "__all__", ()):
        if _attr not in _CORE:  # never shadow the shared protocol functions above
            globals()[_attr] = getattr(_mod, _attr)
            __all__.append(_attr)
