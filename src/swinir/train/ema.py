"""Exponential moving average of the weights (the released ``params_ema``)."""

from __future__ import annotations

import copy
from typing import TypedDict

import torch
from torch import Tensor, nn


class EMAState(TypedDict):
    """What ``EMA.state_dict`` saves in a training checkpoint."""

    module: dict[str, Tensor]
    updates: int
    decay: float


class EMA:
    """``ema = d * ema + (1 - d) * weights`` after every step. With ``warmup`` the decay is
    ``min(decay, (1 + n) / (10 + n))``, so that a short run's average is not dominated by the random
    initialisation; it reaches 0.999 after ~9k steps, leaving long runs unchanged."""

    def __init__(self, model: nn.Module, decay: float = 0.999, warmup: bool = True) -> None:
        self.decay = float(decay)
        self.warmup = warmup
        self.updates = 0
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    def current_decay(self) -> float:
        if not self.warmup:
            return self.decay
        return min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = self.current_decay()
        src = dict(model.named_parameters())
        named = list(self.module.named_parameters())
        mine: list[Tensor] = [p for _, p in named]
        theirs = [src[name].detach() for name, _ in named]
        # two fused multi-tensor kernels instead of two small ones per parameter (it matters on GPUs)
        torch._foreach_mul_(mine, d)
        torch._foreach_add_(mine, theirs, alpha=1.0 - d)
        src_b = dict(model.named_buffers())
        for name, b in self.module.named_buffers():
            if name in src_b:
                b.copy_(src_b[name])
        self.updates += 1

    def state_dict(self) -> EMAState:
        return {"module": self.module.state_dict(), "updates": self.updates, "decay": self.decay}

    def load_state_dict(self, state: EMAState) -> None:
        self.module.load_state_dict(state["module"])
        self.updates = int(state["updates"])
