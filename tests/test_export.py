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

    from swinir.export import _quiet_exporter, export_onnx
    from swinir.model import SwinIR

    model = SwinIR(upscale=2, window_size=8, depths=[2], embed_dim=12, num_heads=[2], mlp_ratio=2, upsampler="")
    stages: list[str] = []
    export_onnx(model, tmp_path / "tiny.onnx", verify_sizes=[(8, 8)], progress=stages.append)
    assert [s.split()[0] for s in stages] == ["tracing", "writing", "checking"] and "8x8" in stages[2]
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
