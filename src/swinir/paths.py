"""Where shared data and caches live."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from swinir.errors import SwinIRError

RELEASED_STATE_DICTS = "golden/released_state_dicts.json"
FAMILY_STATE_DICTS = "golden/family/released_state_dicts.json"  # Swin2SR's and HAT's released files


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


def released_configurations(shared: Path | None = None, family: bool = False) -> dict[str, dict[str, Any]]:
    """The release's configurations, by name (``classical_x2``, ``real_L_x4``, ...), from the shared folder's
    ``golden/released_state_dicts.json``: each with ``config`` (the original constructor arguments),
    ``checkpoint_key``, ``state_dict`` (every key's shape) and ``parameters``. With ``family``, the Swin2SR and
    HAT release files instead (``golden/family/released_state_dicts.json``, by file name, each also with its
    ``architecture``). The one reader of those files for the benchmarks and the tests."""
    manifest = FAMILY_STATE_DICTS if family else RELEASED_STATE_DICTS
    root = shared if shared is not None else shared_dir()
    if root is None:
        raise SwinIRError(f"../shared (or $SWINIR_SHARED) not found: the released configurations come from {manifest}")
    path = root / manifest
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SwinIRError(f"{path}: cannot read the released configurations ({exc})") from None
    if not isinstance(data, dict):
        raise SwinIRError(f"{path}: expected a JSON object of configurations")
    return data


def released_configuration(name: str, shared: Path | None = None) -> dict[str, Any]:
    """One of ``released_configurations()``; an unknown name lists the known ones."""
    configs = released_configurations(shared)
    if name not in configs:
        raise SwinIRError(f"unknown released configuration {name!r}; choose from {', '.join(sorted(configs))}")
    entry: dict[str, Any] = configs[name]
    return entry
