"""SwinIR image restoration: super-resolution, denoising and JPEG artifact removal.

>>> import swinir
>>> model = swinir.load("classical-x4")          # zoo name, file path, or state dict
>>> out = swinir.restore(model, image, tile=256)  # numpy uint8/uint16/float or tensor
>>> opts = swinir.RestoreOptions(tile=256, precision="bf16")  # validated once, passed whole
>>> out = swinir.restore(model, image, opts)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from swinir.checkpoint import load, save
from swinir.errors import CheckpointError, ImageReadError, SwinIRError, ZooError
from swinir.model import SwinIR
from swinir.options import RestoreOptions
from swinir.spec import ModelSpec, detect

__version__ = "0.1.0"

__all__ = [
    "SwinIR",
    "ModelSpec",
    "detect",
    "load",
    "save",
    "restore",
    "RestoreOptions",
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


if TYPE_CHECKING:  # pragma: no cover
    from swinir.engine import restore
