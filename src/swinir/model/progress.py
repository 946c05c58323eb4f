"""Progress inside a forward: the networks report each finished residual group to an optional sink.

A large tile on a CPU takes seconds; reporting per residual group (SwinIR's and Swin2SR's RSTBs, HAT's
RHAGs) lets a progress bar move within one forward, so the tile can be chosen for speed rather than for
how often the bar moves. The sink is context-local (``reporting``) and absent by default: a forward outside
it, or one being traced, exported, compiled or captured into a CUDA graph, reports nothing and its graph
holds no trace of the sink. Reporting never touches the tensors, so outputs are the same with or without it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch

__all__ = ["GroupSink", "reporting", "report_group"]

GroupSink = Callable[[float], None]  # the fraction of the forward's residual groups done, in (0, 1]
_SINK: ContextVar[GroupSink | None] = ContextVar("swinir_group_sink", default=None)


@contextmanager
def reporting(sink: GroupSink | None) -> Iterator[None]:
    """Forwards run in this context (this thread or task) report their residual groups to ``sink``."""
    token = _SINK.set(sink)
    try:
        yield
    finally:
        _SINK.reset(token)


def _recording() -> bool:
    """A graph is being recorded (dynamo, export, JIT tracing, CUDA graph capture): report nothing."""
    if torch.compiler.is_compiling() or torch.jit.is_tracing():  # type: ignore[attr-defined,no-untyped-call]
        return True
    return torch.cuda.is_available() and torch.cuda.is_current_stream_capturing()


def report_group(done: int, total: int) -> None:
    """``done`` of the forward's ``total`` residual groups have run; a no-op without a sink."""
    if torch.compiler.is_compiling():  # first, so that dynamo folds it and never reads the context variable
        return
    sink = _SINK.get()
    if sink is None or _recording():
        return
    sink(done / total)
