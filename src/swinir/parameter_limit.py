"""The largest model a checkpoint may ask for, before anything is allocated for it.

A checkpoint's shapes decide how much memory loading it takes, and a file can claim far more than it
holds: a 12.7 KB ``.pth`` of zero-stride (expanded) tensors once loaded as a 571M-parameter network that
ran at 3.7 GB, and one claiming 5.1G parameters reached 6.7 GB before it failed. The largest known
configuration of the family, HAT-L, has about 41M parameters (the released SwinIR-L 28.0M, SwinIR-M 11.5-12.0M), so a model
beyond ``DEFAULT`` (100M) is refused with a message that says how to lift the limit for a real large model:
``max_parameters=`` in the API, ``$SWINIR_MAX_PARAMETERS`` for a whole process (the CLI's
``--max-parameters`` sets it, so worker processes inherit it).

Torch-free, so that the CLI can parse the flag without importing torch.
"""

from __future__ import annotations

import math
import os
import re

from swinir.errors import CheckpointError

DEFAULT = 100_000_000
ENV = "SWINIR_MAX_PARAMETERS"
LARGEST_KNOWN = "HAT-L, the largest known configuration, has about 41M"
_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9}


def parse(text: str) -> int:
    """A parameter count: ``250000000``, ``250_000_000``, ``250M``, ``1.5G`` or ``2.5e8``."""
    m = re.fullmatch(r"\s*([0-9][0-9_]*(?:\.[0-9]+)?(?:e[0-9]+)?)\s*([kmg]?)\s*", text.lower())
    value = float(m.group(1).replace("_", "")) * _UNITS[m.group(2)] if m else math.nan
    if not (math.isfinite(value) and value >= 1):
        raise ValueError(f"expected a positive parameter count such as 200M or 250000000, got {text!r}")
    return int(value)


def resolve(max_parameters: int | None = None) -> int:
    """The limit in force: ``max_parameters`` when given, else ``$SWINIR_MAX_PARAMETERS``, else ``DEFAULT``."""
    if max_parameters is not None:
        if isinstance(max_parameters, bool) or not isinstance(max_parameters, int) or max_parameters < 1:
            raise CheckpointError(f"max_parameters must be a positive integer, got {max_parameters!r}")
        return max_parameters
    text = os.environ.get(ENV, "").strip()
    if not text:
        return DEFAULT
    try:
        return parse(text)
    except ValueError as exc:
        raise CheckpointError(f"${ENV}: {exc}") from None


def describe(count: int) -> str:
    """``571,234,567`` as ``571.2M``: for messages."""
    return f"{count / 1e9:.2f}G" if count >= 10**9 else f"{count / 1e6:.1f}M"


def lift_hint() -> str:
    """How to raise the limit, for the end of a message."""
    return f"if it is a real model this large, raise the limit: --max-parameters N on the command line, max_parameters=N in the API, or ${ENV}=N"


def too_many(found: int, limit: int) -> str:
    """The message for a model over the limit (after "expected ..., "): the limit and how to lift it."""
    return (
        f"found a model of {found:,} parameters ({describe(found)}), over the limit of {limit:,} ({LARGEST_KNOWN}); "
        + lift_hint()
    )
