"""Device choice: cuda, then mps, then cpu, unless the user names one."""

from __future__ import annotations

import torch

from swinir.errors import SwinIRError


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    if device is None or str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda", "mps"):
        raise SwinIRError(f"unknown device {str(device)!r}; use cpu, cuda, cuda:N (a GPU index) or mps")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SwinIRError(f"device {device!r} requested but CUDA is not available; use the cpu device")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise SwinIRError(f"device {device!r} requested but MPS is not available; use the cpu device")
    return dev
