"""What a run costs: parameters, FLOPs of one forward at a fixed input, seconds per iteration, peak memory.

FLOPs are counted by ``torch.utils.flop_counter`` on the plain PyTorch path (grad enabled: the CPU inference
kernels are C code it cannot see), 2 FLOPs per multiply-add as the counter does, so ``FLOPs / 2`` is MACs.
"""

from __future__ import annotations

import statistics
import sys
from typing import Any

import torch
from torch import nn


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module, in_chans: int, size: int) -> int:
    """FLOPs of one forward of a (1, in_chans, size, size) input."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    x = torch.rand(1, in_chans, size, size, generator=torch.Generator().manual_seed(0))
    device = next(model.parameters()).device
    try:
        with torch.enable_grad(), FlopCounterMode(display=False) as counter:
            model(x.to(device))
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())


def seconds_per_iteration(records: list[dict[str, Any]]) -> float | None:
    """The median over logging windows of 1 / it_per_s: windows that hold a validation or a checkpoint
    are slower, the median leaves them out."""
    rates = [r["it_per_s"] for r in records if r.get("kind") == "train" and r.get("it_per_s")]
    return 1.0 / statistics.median(rates) if rates else None


def peak_memory_mb(device: torch.device) -> tuple[float | None, str]:
    """(megabytes, what was measured): CUDA's peak allocation, else this process' peak resident set."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "cuda-alloc"
    try:
        import resource
    except ImportError:  # Windows
        return None, "n/a"
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (2**20 if sys.platform == "darwin" else 2**10), "rss"
