"""What ``precision="auto"`` runs, for one model on one device: the one place that decides.

``auto`` (the default of `swinir restore`, of video restoration and of `swinir serve`; never of `swinir eval`
or training) is bf16 on a CPU that computes bf16 natively (AVX512-BF16 or AMX, ``model.cpu.native_bf16``),
where SwinIR runs 2-5x faster than in fp32, and fp32 everywhere else:

- CPUs without native bf16 emulate it, about 5x slower than fp32 (``native_bf16``'s docstring);
- CUDA and MPS keep fp32: autocast there also runs the attention in reduced precision, which the quality
  table below does not measure (the CPU path keeps attention in fp32), and fp32 is what those runs gave
  before auto existed. ``--precision bf16`` / ``fp16`` still ask for it explicitly.

A model whose bf16 output falls under ``MIN_BF16_PSNR_DB`` against its own fp32 output on real photos
(``benchmarks/bf16_quality.py``) runs fp32 under auto, said with the reason; such models are known by the
digest of their weights (``FP32_UNDER_AUTO``). bf16 results differ between machines; fp32 results do not,
which is why every summary says how to get them.
"""

from __future__ import annotations

import hashlib
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

__all__ = [
    "AUTO",
    "MIN_BF16_PSNR_DB",
    "FP32_UNDER_AUTO",
    "FP32_HINT",
    "Choice",
    "choose",
    "fallbacks",
    "weights_digest",
]

AUTO = "auto"
# bf16 output against fp32 output, PSNR over real photos; under this auto keeps fp32 for the model
MIN_BF16_PSNR_DB = 45.0
# weights digest -> (model name, PSNR in dB of bf16 against fp32) for the known models measured under the bar
# by benchmarks/bf16_quality.py. Every built-in measured above it (README, "Precision"), so none is listed.
FP32_UNDER_AUTO: dict[str, tuple[str, float]] = {}
FP32_HINT = "--precision fp32 for results identical on every machine"
_CANONICAL = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16", "half": "fp16"}

_digests: weakref.WeakKeyDictionary[Any, tuple[tuple[Any, ...], str]] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class Choice:
    """The precision that runs (``name``: fp32, bf16 or fp16), whether auto chose it, and why."""

    name: str
    auto: bool = False
    reason: str = ""
    # what runs where the device cannot run an explicit ``name`` (the engine falls back, with a notice:
    # ``engine.resolve_precision``), and ``reason`` says why; empty when ``name`` runs
    runs: str = ""

    def describe(self) -> str:
        """For a run's summary line, e.g. ``bf16 (--precision auto: ...; --precision fp32 for ...)``."""
        if not self.auto:
            return f"{self.runs} (--precision {self.name}: {self.reason})" if self.runs else self.name
        hint = f"; {FP32_HINT}" if self.name != "fp32" else ""
        return f"{self.name} (--precision auto: {self.reason}{hint})"


def weights_digest(model: nn.Module) -> str:
    """sha256 of the model's parameters (names, shapes and fp32 values, in order): the same for a model
    whatever file format or dtype it was loaded from. Cached per model until a weight changes."""
    params = list(model.named_parameters())
    key = tuple((name, p.data_ptr(), p.dtype, -1 if p.is_inference() else p._version) for name, p in params)
    cached = _digests.get(model)
    if cached is not None and cached[0] == key:
        return cached[1]
    h = hashlib.sha256()
    for name, p in params:
        values = p.detach().float().cpu().contiguous()
        h.update(f"{name}:{tuple(values.shape)};".encode())
        h.update(values.numpy().tobytes())
    digest = h.hexdigest()
    _digests[model] = (key, digest)
    return digest


def _device_of(model: nn.Module, device: torch.device | str | None) -> str:
    if device is not None:
        return str(device).split(":")[0]
    p = next(iter(model.parameters()), None)
    return "cpu" if p is None else p.device.type


def fallbacks(name: str, dev: str) -> list[tuple[str, str]]:
    """The steps from an explicit precision (fp32, bf16, fp16) to the one ``dev`` (a device type) runs: each
    (precision, the notice saying why), in order; empty when ``name`` runs as it is. The one place that knows
    them: ``engine.resolve_precision`` runs the last and says each, a run's summary names the last."""
    steps: list[tuple[str, str]] = []
    if name == "fp16" and dev == "cpu":
        name = "bf16"
        steps.append((name, "fp16 is not supported on CPU: using bf16 instead (same speed-up, wider range)"))
    if name == "bf16" and dev == "cpu":
        from swinir.model.cpu import native_bf16

        if not native_bf16():
            why = "this CPU has no native bf16 (AVX512-BF16 or AMX), where bf16 runs ~5x slower than fp32: using fp32"
            steps.append(("fp32", why))
    elif name == "bf16" and dev == "cuda":
        import torch

        if not torch.cuda.is_bf16_supported():
            steps.append(("fp16", "this GPU has no bf16 support: using fp16 (non-finite tiles are recomputed in fp32)"))
    return steps


def choose(requested: str, model: nn.Module, device: torch.device | str | None = None) -> Choice:
    """The precision ``requested`` (fp32, bf16, fp16 or auto, any accepted spelling) runs ``model`` in on
    ``device`` (None: where its weights are). Only auto is decided here; an explicit precision is kept as
    given in ``name`` (the engine falls back where the device cannot run it, with a notice), and what then
    runs is in ``runs``, so that a summary does not name a precision that did not run."""
    key = str(requested).lower()
    if key != AUTO:
        name = _CANONICAL.get(key, key)
        steps = fallbacks(name, _device_of(model, device))
        return Choice(name, False, "; ".join(why for _, why in steps), steps[-1][0] if steps else "")
    from swinir.model.cpu import native_bf16

    dev = _device_of(model, device)
    if dev != "cpu":
        return Choice("fp32", True, f"fp32 on {dev}")
    if not native_bf16():
        return Choice("fp32", True, "this CPU has no native bf16 (AVX512-BF16 or AMX)")
    known = FP32_UNDER_AUTO.get(weights_digest(model))
    if known is not None:
        name, db = known
        return Choice(
            "fp32", True, f"{name}'s bf16 output is {db:.1f} dB from its fp32 output, under {MIN_BF16_PSNR_DB:g} dB"
        )
    return Choice("bf16", True, "this CPU computes bf16 natively")
