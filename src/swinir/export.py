"""Export a SwinIR network to ONNX with dynamic batch, height and width, and check it with onnxruntime.

The graph comes from ``torch.export`` (symbolic shapes) through ``torch.onnx``. While tracing, the model
takes its shape-generic path (``swinir.model.cpu.tracing()``): the reflect padding is branch-free,
the shifted-window gather index and each window's mask group are computed from the dynamic size with
``arange`` comparisons, and attention is plain MatMul/Softmax with the bias looked up per window. So one
file restores any input of at least one window per side, at any batch size, with the same numbers as
PyTorch. Needs ``onnxscript`` (``pip install -e .[export]``); verification needs ``onnxruntime``.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch

from swinir.atomic import atomic_path
from swinir.errors import SwinIRError
from swinir.model.shared import Restorer

DEFAULT_OPSET = 18
# The opsets that give a file of that opset which onnxruntime runs, measured with torch 2.13, onnxscript 0.7.2,
# onnx 1.23 and onnxruntime 1.32 on a small SwinIR: torch's exporter implements nothing below 18 (it exports
# at 18 and its down-conversion fails on Pad, leaving an opset-18 file), and from 26 up onnxruntime refuses the
# graph (no Gelu kernel registered for opset 26-28; above 28 no opset at all). 18..25 all export and match.
MIN_OPSET = 18
MAX_OPSET = 25
MAX_SIDE = 16384


@dataclass(frozen=True)
class ExportReport:
    """What was written, and how far onnxruntime's output is from PyTorch's at each checked size."""

    path: Path
    opset: int
    min_side: int
    max_abs_diff: dict[tuple[int, int], float] = field(default_factory=dict)

    @property
    def worst(self) -> float:
        return max(self.max_abs_diff.values(), default=0.0)


def _require(module: str, extra: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise SwinIRError(
            f"ONNX export needs the '{module}' package: pip install 'swinir[{extra}]' (or pip install {module})"
        )


class _DropExporterNoise(logging.Filter):
    """The exporter logs one warning per torchvision op it cannot register ("torchvision is not installed.
    Skipping torchvision::nms", four lines): irrelevant to SwinIR, which uses no torchvision op."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "torchvision" not in record.getMessage()


@contextmanager
def _quiet_exporter() -> Iterator[None]:
    noise = _DropExporterNoise()
    loggers = [logging.getLogger(n) for n in ("torch.onnx._internal.exporter._registration", "torch.onnx")]
    for lg in loggers:
        lg.addFilter(noise)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg in loggers:
            lg.removeFilter(noise)


def check_opset(opset: int) -> None:
    """Refuse an opset this export cannot write as asked (before the model is loaded or traced)."""
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= MAX_OPSET:
        raise SwinIRError(
            f"ONNX opset {opset!r} is not supported: use {MIN_OPSET}..{MAX_OPSET} (default {DEFAULT_OPSET}; "
            f"PyTorch's exporter starts at {MIN_OPSET}, onnxruntime runs the graph up to {MAX_OPSET})"
        )


def _file_opset(program: object) -> int | None:
    proto = program.model_proto  # type: ignore[attr-defined]
    return next((int(o.version) for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)


def _check_verify_sizes(sizes: Sequence[tuple[int, int]], ws: int) -> None:
    for h, w in sizes:
        if min(h, w) < ws:
            raise SwinIRError(f"verify size {h}x{w}: the exported graph needs both sides >= the window ({ws})")


def export_onnx(
    model: Restorer,
    path: str | os.PathLike[str],
    opset: int = DEFAULT_OPSET,
    verify_sizes: Sequence[tuple[int, int]] = ((37, 29), (64, 48)),
    tolerance: float = 1e-4,
    progress: Callable[[str], None] | None = None,
) -> ExportReport:
    """Write ``model`` (fp32, CPU) to ``path`` as ONNX with dynamic batch/height/width; verify it.

    ``verify_sizes``: input (height, width) pairs run through onnxruntime and PyTorch (batch 1); a
    difference above ``tolerance`` raises ``SwinIRError`` and nothing is written. Empty: no check.
    ``progress`` is called with a short line as each stage starts (tracing takes ~100 s for an M model).
    """
    say = progress or (lambda _: None)
    check_opset(opset)
    _require("onnxscript", "export")
    out = Path(path)
    if out.suffix.lower() != ".onnx":
        raise SwinIRError(f"{out}: the output file must end in .onnx")
    if not out.parent.is_dir():
        raise SwinIRError(f"{out.parent}: no such folder for the ONNX file")
    model = model.float().cpu().eval()
    ws = model.window_size
    _check_verify_sizes(verify_sizes, ws)
    batch = torch.export.Dim("batch", min=1, max=1024)
    height = torch.export.Dim("height", min=ws, max=MAX_SIDE)
    width = torch.export.Dim("width", min=ws, max=MAX_SIDE)
    # an example that is not a window multiple and has batch 2: no size gets specialised into the graph
    example = torch.rand(2, model.in_chans, 2 * ws + 3, 3 * ws + 1, generator=torch.Generator().manual_seed(0))
    say("tracing the model with torch.export and converting it to ONNX (the slow step)")
    with _quiet_exporter(), torch.no_grad():
        try:
            program = torch.onnx.export(
                model,
                (example,),
                dynamo=True,
                opset_version=opset,
                input_names=["input"],
                output_names=["output"],
                dynamic_shapes={"x": {0: batch, 2: height, 3: width}},
                verbose=False,
            )
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise SwinIRError(f"ONNX export failed ({type(exc).__name__}: {first[:200]})") from exc
    written = _file_opset(program)
    if written != opset:  # the exporter falls back to its own opset when it cannot convert: never report a wrong one
        raise SwinIRError(f"the ONNX exporter wrote opset {written} instead of the requested {opset}; nothing written")
    meta = {
        "swinir_spec": json.dumps(model.spec.to_dict()),
        "scale": str(model.upscale),
        "window_size": str(ws),
        "input_range": "0..1, (N, C, H, W) float32, H and W >= window_size",
    }
    with atomic_path(out, suffix=".onnx") as tmp:  # a failed check raises before the file is replaced
        say("writing the ONNX file")
        _save(program, tmp, meta)
        if verify_sizes:
            say("checking it with onnxruntime at " + ", ".join(f"{h}x{w}" for h, w in verify_sizes))
        report = ExportReport(out, opset, ws, verify(model, tmp, verify_sizes) if verify_sizes else {})
        if report.worst > tolerance:
            raise SwinIRError(f"ONNX output differs from PyTorch by {report.worst:.2e} (> {tolerance:g}); not written")
    return report


def _save(program: object, path: Path, meta: dict[str, str]) -> None:
    import onnx

    proto = program.model_proto  # type: ignore[attr-defined]
    keys = {p.key for p in proto.metadata_props}
    for k, v in meta.items():
        if k not in keys:
            entry = proto.metadata_props.add()
            entry.key, entry.value = k, v
    onnx.save_model(proto, str(path))


def verify(
    model: Restorer, path: str | os.PathLike[str], sizes: Sequence[tuple[int, int]]
) -> dict[tuple[int, int], float]:
    """Max abs difference between onnxruntime and PyTorch on random inputs of each (height, width)."""
    _require("onnxruntime", "export")
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own types (InvalidGraph, Fail, NotImplemented...)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SwinIRError(f"onnxruntime cannot run the exported graph ({first[:200]}); nothing written") from exc
    name = session.get_inputs()[0].name
    gen = torch.Generator().manual_seed(1)
    diffs = {}
    for h, w in sizes:
        x = torch.rand(1, model.in_chans, h, w, generator=gen)
        with torch.no_grad():
            want = model(x).numpy()
        got = session.run(None, {name: x.numpy()})[0]
        if got.shape != want.shape:
            raise SwinIRError(f"ONNX output shape {got.shape} != PyTorch {want.shape} at {h}x{w}")
        diffs[(h, w)] = float(abs(got - want).max())
    return diffs
