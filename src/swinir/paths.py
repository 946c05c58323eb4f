"""Where shared data and caches live."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Weights cache: $SWINIR_CACHE, else $XDG_CACHE_HOME/swinir, else ~/.cache/swinir."""
    env = os.environ.get("SWINIR_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "swinir"


def shared_dir() -> Path | None:
    """The project's read-only shared folder: $SWINIR_SHARED or ../shared beside the repository."""
    env = os.environ.get("SWINIR_SHARED")
    if env:
        p = Path(env).expanduser()
        return p if p.is_dir() else None
    here = Path(__file__).resolve()
    for parent in here.parents:
        cand = parent / "shared"
        if (cand / "golden").is_dir():
            return cand
        cand = parent.parent / "shared"
        if (cand / "golden").is_dir():
            return cand
    cand = Path.cwd().parent / "shared"
    return cand if (cand / "golden").is_dir() else None
