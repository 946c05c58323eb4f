"""Pixel losses in a registry, so other trainers (e.g. GAN fine-tuning) add theirs by name."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from swinir.train.config import LossTerm

# name -> factory(term) -> module computing loss(output, target)
LOSSES: dict[str, Callable[[LossTerm], nn.Module]] = {}


def register_loss(name: str) -> Callable[[Callable[[LossTerm], nn.Module]], Callable[[LossTerm], nn.Module]]:
    def deco(factory: Callable[[LossTerm], nn.Module]) -> Callable[[LossTerm], nn.Module]:
        LOSSES[name] = factory
        return factory

    return deco


class CharbonnierLoss(nn.Module):
    """mean(sqrt(diff^2 + eps)): a differentiable L1 (eps is added to the square, as SwinIR's options)."""

    def __init__(self, eps: float = 1e-9) -> None:
        super().__init__()
        self.eps = float(eps)

    def forward(self, out: Tensor, target: Tensor) -> Tensor:
        diff = out - target
        return torch.sqrt(diff * diff + self.eps).mean()


@register_loss("l1")
def _l1(term: LossTerm) -> nn.Module:
    return nn.L1Loss()


@register_loss("l2")
def _l2(term: LossTerm) -> nn.Module:
    return nn.MSELoss()


@register_loss("charbonnier")
def _charbonnier(term: LossTerm) -> nn.Module:
    return CharbonnierLoss(term.eps)


class PixelLoss(nn.Module):
    """Weighted sum of the configured terms; ``forward`` returns (total, {name: value})."""

    def __init__(self, terms: list[LossTerm]) -> None:
        super().__init__()
        self.names = [t.type for t in terms]
        self.weights = [float(t.weight) for t in terms]
        self.fns = nn.ModuleList(LOSSES[t.type](t) for t in terms)

    def forward(self, out: Tensor, target: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        total: Tensor | None = None
        parts: dict[str, Tensor] = {}
        for name, w, fn in zip(self.names, self.weights, self.fns):
            v = fn(out.float(), target.float())
            parts[name] = v.detach()
            total = w * v if total is None else total + w * v
        assert total is not None
        return total, parts
