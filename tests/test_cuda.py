"""Checks that need a CUDA GPU: they skip elsewhere (CI has none) and run on a lent GPU with
``python -m pytest tests/test_cuda.py -q -s``. They cover what the CPU cannot: real fp16 kernels on the
released M/L shapes, the tiled engine on the GPU, and a training run on the GPU."""

from __future__ import annotations

import copy
import math
import shutil
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import swinir
from swinir.io import SwinIRNotice
from swinir.model import SwinIR

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here (these checks need one)")
DEV = torch.device("cuda")


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return 10 * math.log10(1.0 / ((a.float() - b.float()) ** 2).mean().clamp_min(1e-20).item())


@pytest.fixture(scope="module")
def photo(data_dir: Path) -> torch.Tensor:
    """A 64x64 RGB crop of Set5 'baby', float in [0, 1], on the GPU."""
    bgr = cv2.imread(str(data_dir / "Set5" / "HR" / "baby.png"), cv2.IMREAD_COLOR)
    rgb = bgr[180:244, 200:264, ::-1].copy()
    return (torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255.0).to(DEV)


@pytest.fixture(autouse=True)
def _no_tf32():
    """Exact fp32 on the GPU (TF32 convolutions are cuDNN's default) for the equality checks."""
    old = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old


@pytest.mark.parametrize("name", ("pixelshuffle_x2", "nearestconv_x4_3conv", "denoise_color", "jpeg_gray_w7"))
def test_golden_outputs_on_cuda(golden: Path, golden_index: dict, name: str) -> None:
    """The original release code's outputs, reproduced on the GPU (fp32, TF32 off)."""
    entry = golden_index[name]
    model = swinir.load(golden / entry["checkpoint"]).to(DEV).eval()
    for case in entry["cases"]:
        data = torch.load(golden / case["file"], weights_only=True)
        with torch.inference_mode():
            out = model(data["input"].to(DEV)).cpu()
        err = (out - data["output"]).abs().max().item()
        print(f"\n{name} {tuple(data['input'].shape)}: max abs error on CUDA {err:.2e}")
        assert err <= 1e-4


def _released(released_shapes: dict, name: str, provoke: float) -> SwinIR:
    torch.manual_seed(0)
    model = SwinIR(**released_shapes[name]["config"]).eval()
    with torch.no_grad():  # push the residual stream beyond fp16's 65504, as trained M/L models can
        for layer in model.layers:  # '3conv' models close each group with a small conv stack
            conv = layer.conv[-1] if isinstance(layer.conv, torch.nn.Sequential) else layer.conv
            conv.weight.mul_(provoke)
    return model.to(DEV)


@pytest.mark.parametrize("name", ("classical_x2", "real_L_x4", "color_dn"))
def test_fp16_on_cuda_released_shapes(released_shapes: dict, photo: torch.Tensor, name: str) -> None:
    model = _released(released_shapes, name, 1000.0)
    seen: list[float] = []
    hook = model.layers[-1].register_forward_hook(lambda m, i, o: seen.append(o.abs().max().item()))
    with torch.inference_mode():
        ref = model(photo)
        hook.remove()
        half = copy.deepcopy(model).half()
        safe = half(photo.half())
        with torch.autocast("cuda", dtype=torch.float16):
            auto = model(photo)
        half.fp16_safe = False
        naive = half(photo.half())
    print(
        f"\n{name}: stream max {seen[0]:.3g}; fp16 weights {_psnr(safe, ref):.1f} dB, fp16 autocast "
        f"{_psnr(auto, ref):.1f} dB vs fp32; naive fp16 finite: {bool(torch.isfinite(naive).all())}"
    )
    assert seen[0] > 65504, "the provocation must push the stream beyond the fp16 range"
    assert not torch.isfinite(naive).all(), "plain fp16 was expected to overflow here"
    assert torch.isfinite(safe).all() and torch.isfinite(auto).all()
    assert _psnr(safe, ref) >= 45 and _psnr(auto, ref) >= 45


def test_engine_fp16_tiled_on_cuda(released_shapes: dict, data_dir: Path) -> None:
    """The engine's fp16 path on the GPU: tiles, no fall-back to fp32 (which it would announce)."""
    model = _released(released_shapes, "classical_x2", 1000.0)
    img = cv2.imread(str(data_dir / "Set5" / "HR" / "bird.png"), cv2.IMREAD_COLOR)[:, :, ::-1].copy()
    ref = swinir.restore(model, img, precision="fp32", tile=96, device="cuda")
    with warnings.catch_warnings():
        warnings.simplefilter("error", SwinIRNotice)
        out = swinir.restore(model, img, precision="fp16", tile=96, device="cuda")
    assert out.shape == ref.shape == (img.shape[0] * 2, img.shape[1] * 2, 3) and out.dtype == np.uint8
    diff = np.abs(out.astype(np.int16) - ref.astype(np.int16))
    print(f"\nengine fp16 tiled vs fp32: max diff {diff.max()} levels, mean {diff.mean():.3f}")
    assert diff.mean() < 0.5


@pytest.mark.parametrize("amp", ("bf16", "fp16"))
def test_training_on_cuda(shared: Path, tmp_path: Path, amp: str) -> None:
    from swinir.train import load_config, train

    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for f in sorted((shared / "data" / "train" / "BSD400").iterdir())[:8]:
        shutil.copy(f, imgs / f.name)
    cfg = load_config(
        "builtin-x2-tiny",
        [
            f"data.train=[{imgs}]",
            "val.max_images=2",
            "val.max_size=64",
            "log.progress=false",
            "train.iterations=60",
            "val.every=0",
            "log.every=10",
            f"train.amp={amp}",
            "train.device=cuda",
        ],
    )
    res = train(cfg, tmp_path / "run")
    assert res.iteration == 60 and res.last_val["psnr"] > res.first_val["psnr"] + 5
    assert "device cuda" in (tmp_path / "run" / "train.log").read_text()


@pytest.mark.parametrize("name", ("classical_x2", "lightweight_x4"))
def test_cuda_graph_equals_eager_and_rebuilds_on_shape_or_dtype(released_shapes: dict, name: str) -> None:
    """One captured graph per (shape, dtype): fp32 replay equals eager to 1e-6 with TF32 off."""
    from swinir.capture import CapturedForward

    torch.manual_seed(0)
    model = SwinIR(**released_shapes[name]["config"]).eval().to(DEV)
    captured = CapturedForward(model, "graph")
    gen = torch.Generator().manual_seed(1)
    with torch.inference_mode():
        for shape in ((1, 3, 64, 64), (1, 3, 64, 64), (2, 3, 48, 80)):
            x = torch.rand(*shape, generator=gen).to(DEV)
            err = (captured(x) - model(x)).abs().max().item()
            print(f"\n{name} {shape}: graph vs eager {err:.1e}")
            assert err <= 1e-6
        assert captured.builds == 2  # the repeated shape replayed, the new one captured
        half = CapturedForward(model.half(), "graph")
        x = torch.rand(1, 3, 64, 64, generator=gen).to(DEV).half()
        assert (half(x).float() - model(x).float()).abs().max().item() <= 1e-3
        assert half.builds == 1 and half.cached_keys()[0][1] == torch.float16
        model.float()
