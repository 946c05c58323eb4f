"""SwinIR image restoration: super-resolution, denoising and JPEG artifact removal.

>>> import swinir
>>> model = swinir.load("classical-x4")          # zoo name, file path, or state dict
>>> out = swinir.restore(model, image, tile=256)  # numpy uint8/uint16/float or tensor
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from swinir.checkpoint import load, save
from swinir.errors import CheckpointError, ImageReadError, SwinIRError, ZooError
from swinir.model import SwinIR
from swinir.spec import ModelSpec, detect

__version__ = "0.1.0"

__all__ = [
    "SwinIR",
    "ModelSpec",
    "detect",
    "load",
    "save",
    "restore",
    "interpolate",
    "SwinIRError",
    "CheckpointError",
    "ImageReadError",
    "ZooError",
    "__version__",
]


def restore(*args: Any, **kwargs: Any) -> Any:
    """See ``swinir.engine.restore``."""
    from swinir.engine import restore as _restore

    return _restore(*args, **kwargs)


def interpolate(*args: Any, **kwargs: Any) -> Any:
    """See ``swinir.blend.interpolate``: a model with weights ``(1 - alpha) * a + alpha * b``."""
    from swinir.blend import interpolate as _interpolate

    return _interpolate(*args, **kwargs)


if TYPE_CHECKING:  # pragma: no cover
    from swinir.blend import interpolate
    from swinir.engine import restore
