"""Reduced precision: bf16 stays within 45 dB of fp32 on a natural image; fp16 never overflows when safe."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import cv2
import pytest
import torch
from torch.utils.hooks import RemovableHandle

import swinir
from swinir.model import SwinIR


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return 10 * math.log10(1.0 / ((a.float() - b.float()) ** 2).mean().clamp_min(1e-20).item())


@pytest.fixture(scope="module")
def photo(data_dir: Path) -> torch.Tensor:
    """A 40x48 RGB crop of Set5 'baby' (textured skin, edges), float in [0, 1]."""
    bgr = cv2.imread(str(data_dir / "Set5" / "HR" / "baby.png"), cv2.IMREAD_COLOR)
    assert bgr is not None
    rgb = bgr[180:220, 200:248, ::-1].copy()
    return torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255.0


def _load(golden: Path, index: dict, name: str) -> SwinIR:
    return swinir.load(golden / index[name]["checkpoint"])


@pytest.mark.parametrize("name", ("pixelshuffle_x2", "denoise_color", "nearestconv_x4_3conv"))
def test_bf16_psnr_against_fp32(golden: Path, golden_index: dict, photo: torch.Tensor, name: str) -> None:
    model = _load(golden, golden_index, name)
    with torch.inference_mode():
        ref = model(photo)
        pure = copy.deepcopy(model).to(torch.bfloat16)(photo.bfloat16())
        with torch.autocast("cpu", dtype=torch.bfloat16):
            auto = model(photo)
    p_pure, p_auto = _psnr(pure, ref), _psnr(auto, ref)
    print(f"\n{name}: bf16 weights {p_pure:.1f} dB, bf16 autocast {p_auto:.1f} dB vs fp32")
    assert pure.dtype == torch.bfloat16 and pure.shape == ref.shape
    assert p_pure >= 45 and p_auto >= 45


def _provoke_overflow(model: SwinIR, factor: float = 1000.0) -> tuple[list[float], RemovableHandle]:
    """Scale the residual-group convs so that the residual stream outgrows fp16 (max 65504), as the
    released M/L models' stream does. Returns the list the stream's largest magnitude is recorded in."""
    with torch.no_grad():
        for layer in model.layers:
            layer.conv.weight.mul_(factor)
    seen: list[float] = []
    hook = model.layers[-1].register_forward_hook(lambda m, i, o: seen.append(o.abs().max().item()))
    return seen, hook


@pytest.mark.parametrize("name", ("pixelshuffle_x2", "denoise_color"))
def test_fp16_safe_path_stays_finite(golden: Path, golden_index: dict, photo: torch.Tensor, name: str) -> None:
    model = _load(golden, golden_index, name)
    seen, hook = _provoke_overflow(model)
    with torch.inference_mode():
        ref = model(photo)
        hook.remove()
        assert seen[0] > 65504, "the provocation must push the fp32 stream beyond the fp16 range"
        half = copy.deepcopy(model).half()
        assert half.fp16_safe
        safe = half(photo.half())
        half.fp16_safe = False
        naive = half(photo.half())
    assert torch.isfinite(ref).all()
    assert not torch.isfinite(naive).all(), "naive fp16 was expected to overflow"
    assert safe.dtype == torch.float16 and torch.isfinite(safe).all()
    p = _psnr(safe, ref)
    print(f"\n{name}: stream max {seen[0]:.3g}; fp16-safe {p:.1f} dB vs fp32, naive fp16 non-finite")
    assert p >= 45


def test_fp16_safe_under_autocast(golden: Path, golden_index: dict, photo: torch.Tensor) -> None:
    """fp16 autocast (what the engine uses on GPUs) takes the same fp32 islands."""
    model = _load(golden, golden_index, "pixelshuffle_x2")
    _, hook = _provoke_overflow(model)
    hook.remove()
    with torch.inference_mode():
        ref = model(photo)
        with torch.autocast("cpu", dtype=torch.float16):
            safe = model(photo)
            model.fp16_safe = False
            naive = model(photo)
    assert not torch.isfinite(naive).all()
    assert torch.isfinite(safe).all() and _psnr(safe, ref) >= 45
