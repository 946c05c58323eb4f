"""Captured forwards: one graph per input shape, replayed for every tile of that shape.

A tiled restore calls the model with one tile shape over and over; so does a folder of equally sized photos.
On a GPU each eager SwinIR forward is hundreds of small kernels, and at 256x256 the H100 run was bound by
their launches (classical x2 M: 88 ms fp32, 68 ms bf16, a few percent of the dense bf16 peak). Capturing the
forward once per (shape, dtype, device) and replaying it removes the launch overhead:

* ``"graph"``: a CUDA graph per key (CUDA only). The input is copied into the graph's static buffer, the
  graph replays, the output is cloned out of its static buffer (the next replay overwrites it).
* ``"compile"``: ``torch.compile(dynamic=False)`` per key, so each shape gets its own specialised code and a
  new shape or dtype compiles afresh instead of falling back to a dynamic-shape kernel.
* ``"off"``: eager.

The cache is bounded (least recently used out), so a folder of many sizes does not keep a graph per size.
``builds`` counts captures: a test or a benchmark can see that a shape or dtype change rebuilt the graph and
that a repeated shape did not.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Literal

import torch
from torch import Tensor, nn

from swinir.errors import SwinIRError
from swinir.options import CAPTURE_NAMES

__all__ = ["CaptureMode", "CapturedForward", "resolve_capture"]

CaptureMode = Literal["off", "graph", "compile"]
Key = tuple[tuple[int, ...], torch.dtype, torch.device, object, object]


def resolve_capture(mode: str, device: torch.device) -> CaptureMode:
    """``auto`` is a CUDA graph on CUDA and eager elsewhere (compiling on a CPU costs more than one image
    gains); an explicit ``graph`` off CUDA is an error rather than a silent eager run."""
    if mode not in CAPTURE_NAMES:
        raise SwinIRError(f"capture mode must be one of {', '.join(CAPTURE_NAMES)}, got {mode!r}")
    if mode == "auto":
        return "graph" if device.type == "cuda" else "off"
    if mode == "graph" and device.type != "cuda":
        raise SwinIRError(f"CUDA graphs need a CUDA device, not {device.type}: use capture 'compile' or 'off'")
    return mode  # type: ignore[return-value]


class _Graph:
    """One CUDA graph with its static input and output."""

    def __init__(self, fn: Callable[[Tensor], Tensor], example: Tensor, warmup: int) -> None:
        self.static_in = example.clone()
        stream = torch.cuda.Stream(device=example.device)  # type: ignore[no-untyped-call]  # unannotated in torch
        stream.wait_stream(torch.cuda.current_stream(example.device))
        with torch.cuda.stream(stream), torch.no_grad():
            for _ in range(warmup):  # lazy inits (cuBLAS handles, our bias caches) must not happen in capture
                fn(self.static_in)
        torch.cuda.current_stream(example.device).wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph), torch.no_grad():
            self.static_out = fn(self.static_in)

    def __call__(self, x: Tensor) -> Tensor:
        self.static_in.copy_(x)
        self.graph.replay()
        return self.static_out.clone()


class CapturedForward:
    """``fn(x)`` through a graph captured (or code compiled) once per input shape, dtype and device."""

    def __init__(
        self,
        fn: Callable[[Tensor], Tensor] | nn.Module,
        mode: CaptureMode,
        *,
        max_entries: int = 4,
        warmup: int = 2,
        compile_backend: str = "inductor",
    ) -> None:
        if mode not in ("off", "graph", "compile"):
            raise SwinIRError(f"capture mode must be off, graph or compile, got {mode!r}")
        if max_entries < 1:
            raise SwinIRError(f"max_entries must be >= 1, got {max_entries}")
        self.fn = fn
        self.mode: CaptureMode = mode
        self.max_entries = max_entries
        self.warmup = warmup
        self.compile_backend = compile_backend
        self.builds = 0
        self._entries: OrderedDict[Key, Callable[[Tensor], Tensor]] = OrderedDict()

    def cached_keys(self) -> list[Key]:
        return list(self._entries)

    def _build(self, x: Tensor) -> Callable[[Tensor], Tensor]:
        self.builds += 1
        if self.mode == "graph":
            if x.device.type != "cuda":
                raise SwinIRError(f"CUDA graphs need a CUDA tensor, got one on {x.device}")
            return _Graph(self.fn, x, self.warmup)
        compiled = torch.compile(self.fn, dynamic=False, backend=self.compile_backend)
        return compiled

    def _key(self, x: Tensor) -> Key:
        """Shape, dtype and device of the input, the autocast dtype in force, and where the weights live: a
        graph replays fixed kernels on fixed addresses, so a cast or moved model must be captured anew."""
        amp = torch.get_autocast_dtype(x.device.type) if torch.is_autocast_enabled(x.device.type) else None
        param = next(iter(self.fn.parameters()), None) if isinstance(self.fn, nn.Module) else None
        weights = None if param is None else (param.data_ptr(), param.dtype)
        return (tuple(x.shape), x.dtype, x.device, amp, weights)

    def __call__(self, x: Tensor) -> Tensor:
        if self.mode == "off":
            return self.fn(x)
        key = self._key(x)
        entry = self._entries.get(key)
        if entry is None:
            entry = self._build(x)
            self._entries[key] = entry
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        else:
            self._entries.move_to_end(key)
        return entry(x)

    def parameters(self) -> Iterator[nn.Parameter]:
        """The wrapped model's parameters (none for a plain function), so callers can read its dtype."""
        return self.fn.parameters() if isinstance(self.fn, nn.Module) else iter(())

    def clear(self) -> None:
        """Drop every graph (their static buffers hold device memory)."""
        self._entries.clear()
