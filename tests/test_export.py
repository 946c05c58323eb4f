"""`swinir export --onnx`: one graph for every batch, height and width, equal to PyTorch (onnxruntime)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import swinir
from swinir.cli import main

onnx = pytest.importorskip("onnx", reason="ONNX export needs onnx (pip install -e .[test])")
ort = pytest.importorskip("onnxruntime", reason="ONNX checks need onnxruntime (pip install -e .[test])")
pytest.importorskip("onnxscript", reason="torch.onnx's exporter needs onnxscript (pip install -e .[test])")

NAME = "pixelshuffle_x2"  # golden: x2 pixelshuffle, window 8, shifted blocks in 2 residual groups


@pytest.fixture(scope="module")
def exported(golden: Path, golden_index: dict, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    ckpt = golden / golden_index[NAME]["checkpoint"]
    out = tmp_path_factory.mktemp("onnx") / "model.onnx"
    assert main(["export", str(ckpt), "--onnx", str(out), "--verify-sizes", "24x32"]) == 0
    return ckpt, out


def test_onnx_graph_has_dynamic_batch_height_width(exported: tuple[Path, Path]) -> None:
    _, path = exported
    graph = onnx.load(str(path)).graph
    dims = graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param != "" for d in dims] == [True, False, True, True]  # N, C fixed, H, W
    assert dims[1].dim_value == 3
    assert not list(path.parent.glob(".*.onnx")), "no temporary file left behind"


def test_onnxruntime_equals_pytorch_at_two_sizes(exported: tuple[Path, Path]) -> None:
    """Sizes that differ from the export example and from each other, one not a window multiple, batch 2."""
    ckpt, path = exported
    model = swinir.load(ckpt)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    torch.manual_seed(0)
    for shape in ((1, 3, 16, 40), (2, 3, 29, 19)):
        x = torch.rand(*shape)
        with torch.no_grad():
            want = model(x).numpy()
        got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
        assert got.shape == want.shape == (shape[0], 3, 2 * shape[2], 2 * shape[3])
        err = float(np.abs(got - want).max())
        print(f"\nonnxruntime vs PyTorch at {shape}: max abs diff {err:.2e}")
        assert err <= 1e-4


def test_export_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", str(tmp_path / "missing.pth"), "--onnx", str(tmp_path / "m.onnx")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "missing.pth" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "m.onnx").exists()


def test_export_reports_progress_and_drops_the_torchvision_noise(tmp_path: Path) -> None:
    """Tracing takes ~100 s for an M model: each stage says when it starts. The exporter's four
    "torchvision is not installed" warnings are dropped; its other log lines pass."""
    import logging

    from swinir.export import MAX_OPSET, _quiet_exporter, export_onnx
    from swinir.model import SwinIR

    model = SwinIR(upscale=2, window_size=8, depths=[2], embed_dim=12, num_heads=[2], mlp_ratio=2, upsampler="")
    stages: list[str] = []
    report = export_onnx(model, tmp_path / "tiny.onnx", MAX_OPSET, verify_sizes=[(8, 8)], progress=stages.append)
    assert [s.split()[0] for s in stages] == ["tracing", "writing", "checking"] and "8x8" in stages[2]
    # the highest opset of the stated range: the file has it, and onnxruntime ran it (verify_sizes)
    assert report.opset == MAX_OPSET == [o.version for o in onnx.load(str(report.path)).opset_import if not o.domain][0]
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    logger = logging.getLogger("torch.onnx._internal.exporter._registration")
    handler = Keep()
    logger.addHandler(handler)
    try:
        with _quiet_exporter():
            logger.warning("torchvision is not installed. Skipping torchvision::nms")
            logger.warning("something else")
        logger.warning("torchvision outside the export")
    finally:
        logger.removeHandler(handler)
    assert seen == ["something else", "torchvision outside the export"]


@pytest.mark.parametrize("opset", ["0", "1", "17", "26", "99"])
def test_an_opset_outside_the_range_is_one_line_before_the_model_loads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], opset: str
) -> None:
    """`--opset 1` was a traceback, exit 0 and a report of "opset 1" for an opset-18 file; 99 a traceback."""
    from swinir.export import MAX_OPSET, MIN_OPSET

    code = main(["export", str(tmp_path / "missing.pth"), "--onnx", str(tmp_path / "m.onnx"), "--opset", opset])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1  # refused before the (missing) checkpoint is read
    assert f"error: ONNX opset {opset} is not supported: use {MIN_OPSET}..{MAX_OPSET}" in err
    assert not (tmp_path / "m.onnx").exists()


def test_the_help_states_the_opset_range() -> None:
    from swinir.cli import build_parser
    from swinir.export import MAX_OPSET, MIN_OPSET

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert f"ONNX opset, {MIN_OPSET}..{MAX_OPSET}" in sub.choices["export"].format_help()  # type: ignore[attr-defined]


@pytest.mark.parametrize("edge", ["below", "above"])
def test_the_opset_range_is_what_the_exporter_and_onnxruntime_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, edge: str
) -> None:
    """Just outside the range (range check lifted) nothing is written, and the message is true: for 17 the
    exporter writes opset 18, for 26 it writes 18 or onnxruntime refuses the graph. When a newer torch or
    onnxruntime passes here, widen MIN_OPSET / MAX_OPSET."""
    from swinir import export
    from swinir.errors import SwinIRError
    from swinir.model import SwinIR

    opset = export.MIN_OPSET - 1 if edge == "below" else export.MAX_OPSET + 1
    monkeypatch.setattr(export, "MIN_OPSET", 1)
    monkeypatch.setattr(export, "MAX_OPSET", 99)
    model = SwinIR(upscale=2, window_size=4, depths=[1], embed_dim=8, num_heads=[2], mlp_ratio=2, upsampler="")
    out = tmp_path / "m.onnx"
    # above: depending on the graph, the down-conversion from torch's opset fails (an opset-18 file) or
    # onnxruntime refuses the converted graph (no Gelu kernel for opset 26)
    want = f"wrote opset 18 instead of the requested {opset}" + ("" if edge == "below" else "|onnxruntime cannot run")
    with pytest.raises(SwinIRError, match=want):
        export.export_onnx(model, out, opset, verify_sizes=[(8, 8)])
    assert not out.exists() and not list(tmp_path.iterdir())
