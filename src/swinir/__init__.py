"""SwinIR image restoration: super-resolution, denoising and JPEG artifact removal, with SwinIR and its
family (Swin2SR).

>>> import swinir
>>> model = swinir.load("classical-x4")          # zoo name, file path, transformers folder, or state dict
>>> model = swinir.load("swin2sr-classical-x2")  # the architecture is detected from the weights
>>> out = swinir.restore(model, image, tile=256)  # numpy uint8/uint16/float or tensor
>>> opts = swinir.RestoreOptions(tile=256, precision="bf16")  # validated once, passed whole
>>> out = swinir.restore(model, image, opts)

Importing ``swinir`` does not import torch (0.02 s instead of about 2 s): the names below and the
submodules (``swinir.io``, ``swinir.zoo``, ...) load on first use, so ``swinir --help`` stays instant.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from swinir.errors import CheckpointError, ImageReadError, SwinIRError, ZooError

__version__ = "0.1.0"

__all__ = [
    "SwinIR",
    "Swin2SR",
    "ModelSpec",
    "detect",
    "load",
    "save",
    "restore",
    "RestoreOptions",
    "interpolate",
    "SwinIRError",
    "CheckpointError",
    "ImageReadError",
    "ZooError",
    "__version__",
]

# public name -> module that defines it (imported on first access)
_LAZY = {
    "SwinIR": "swinir.model",
    "Swin2SR": "swinir.model",
    "ModelSpec": "swinir.spec",
    "detect": "swinir.architectures",  # every registered architecture, tried in order
    "load": "swinir.checkpoint",
    "save": "swinir.checkpoint",
    "restore": "swinir.engine",
    "RestoreOptions": "swinir.options",
    "interpolate": "swinir.blend",  # a model with weights (1 - alpha) * a + alpha * b
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    try:  # a submodule: `import swinir; swinir.io.read_image(...)`
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{name}":
            raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


if TYPE_CHECKING:  # pragma: no cover
    from swinir.architectures import detect
    from swinir.blend import interpolate
    from swinir.checkpoint import load, save
    from swinir.engine import restore
    from swinir.model import Swin2SR, SwinIR
    from swinir.options import RestoreOptions
    from swinir.spec import ModelSpec
