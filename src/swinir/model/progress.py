"""Progress inside a forward: the networks report each finished block and residual group to an optional sink.

A large tile on a CPU takes seconds; reporting per transformer block and per residual group (SwinIR's and
Swin2SR's RSTBs, HAT's RHAGs) lets a progress bar move within one forward, so the tile can be chosen for speed rather than for
how often the bar moves. The sink is context-local (``reporting``) and absent by default: a forward outside
it, or one being traced, exported, compiled or captured into a CUDA graph, reports nothing and its graph
holds no trace of the sink. Reporting never touches the tensors, so outputs are the same with or without it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token

import torch

__all__ = ["GroupSink", "reporting", "report_group", "enter_group", "leave_group", "report_block"]

GroupSink = Callable[[float], None]  # the fraction of the forward done, in (0, 1], growing within a forward
_SINK: ContextVar[GroupSink | None] = ContextVar("swinir_group_sink", default=None)
_GROUP: ContextVar[tuple[int, int] | None] = ContextVar("swinir_group", default=None)  # (index, groups)


@contextmanager
def reporting(sink: GroupSink | None) -> Iterator[None]:
    """Forwards run in this context (this thread or task) report their progress to ``sink``."""
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
    """``done`` of the forward's ``total`` steps (its residual groups, then the reconstruction) have run; a
    no-op without a sink."""
    if torch.compiler.is_compiling():  # first, so that dynamo folds it and never reads the context variable
        return
    sink = _SINK.get()
    if sink is None or _recording():
        return
    sink(done / total)


def enter_group(index: int, total: int) -> Token[tuple[int, int] | None] | None:
    """Group ``index`` of ``total`` starts: its blocks' reports fall between the groups' own. Pair with
    ``leave_group``; None (nothing to undo) when nothing listens."""
    if torch.compiler.is_compiling() or _SINK.get() is None:
        return None
    return _GROUP.set((index, total))


def leave_group(token: Token[tuple[int, int] | None] | None) -> None:
    if token is not None:
        _GROUP.reset(token)


def report_block(done: int, total: int) -> None:
    """``done`` of the running group's ``total`` blocks have run: the forward is that far between the
    group's start and its end (which ``report_group`` reports, after the group's closing convolution)."""
    if torch.compiler.is_compiling():
        return
    sink, group = _SINK.get(), _GROUP.get()
    if sink is None or group is None or _recording():
        return
    index, groups = group
    sink((index + done / (total + 1)) / groups)
