"""Pixel losses in a registry of factories that take plain keyword arguments (as BasicSR's ``build_loss``),
so other trainers (e.g. GAN fine-tuning) add theirs by name. Knows nothing of the config schema."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from swinir.errors import ConfigError

# name -> factory(**options) -> module computing loss(output, target)
LOSSES: dict[str, Callable[..., nn.Module]] = {}


def register_loss(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    def deco(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        LOSSES[name] = factory
        return factory

    return deco


def loss_options(name: str) -> tuple[str, ...]:
    """The keyword arguments the factory of loss ``name`` takes."""
    return tuple(inspect.signature(LOSSES[name]).parameters)


def build_loss(name: str, **options: Any) -> nn.Module:
    """One loss module by registry name; unknown names and options are a ``ConfigError``."""
    if name not in LOSSES:
        raise ConfigError(f"unknown loss {name!r}; known: {', '.join(sorted(LOSSES))}")
    unknown = sorted(set(options) - set(loss_options(name)))
    if unknown:
        raise ConfigError(f"loss {name!r} takes no option {unknown[0]!r}; it takes: {', '.join(loss_options(name))}")
    return LOSSES[name](**options)


class CharbonnierLoss(nn.Module):
    """mean(sqrt(diff^2 + eps)): a differentiable L1 (eps is added to the square, as SwinIR's options)."""

    def __init__(self, eps: float = 1e-9) -> None:
        super().__init__()
        self.eps = float(eps)

    def forward(self, out: Tensor, target: Tensor) -> Tensor:
        diff = out - target
        return torch.sqrt(diff * diff + self.eps).mean()


register_loss("l1")(nn.L1Loss)
register_loss("l2")(nn.MSELoss)
register_loss("charbonnier")(CharbonnierLoss)


class WeightedLoss(NamedTuple):
    """One term of a ``PixelLoss``: a registry name, its weight and its factory's keyword arguments."""

    name: str
    weight: float = 1.0
    options: Mapping[str, Any] = {}


class PixelLoss(nn.Module):
    """Weighted sum of the terms; ``forward`` returns (total, {name: value})."""

    def __init__(self, terms: Sequence[WeightedLoss]) -> None:
        super().__init__()
        self.names = [t.name for t in terms]
        self.weights = [float(t.weight) for t in terms]
        self.fns = nn.ModuleList(build_loss(t.name, **t.options) for t in terms)

    def forward(self, out: Tensor, target: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        total: Tensor | None = None
        parts: dict[str, Tensor] = {}
        for name, w, fn in zip(self.names, self.weights, self.fns):
            v = fn(out.float(), target.float())
            parts[name] = v.detach()
            total = w * v if total is None else total + w * v
        assert total is not None
        return total, parts
