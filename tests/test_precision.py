"""Reduced precision: bf16 stays within 45 dB of fp32 on a natural image; fp16 never overflows when safe;
``--precision auto`` (swinir.precision) is the default of restore and serve, and follows the CPU."""

from __future__ import annotations

import argparse
import copy
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.utils.hooks import RemovableHandle

import swinir
from swinir import precision
from swinir.model import SwinIR, cpu


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


# ---------------------------------------------------------------------------------------------------
# --precision auto: the default of restore, video and serve; never of eval or training
# ---------------------------------------------------------------------------------------------------
def _parse(*argv: str) -> argparse.Namespace:
    from swinir.cli import build_parser

    return build_parser().parse_args(list(argv))


def test_auto_is_the_default_of_restore_and_serve_only() -> None:
    from swinir.serve.restore_call import JobOptions
    from swinir.train.config import OptimConfig

    assert _parse("restore", "a.png", "-o", "out").precision == "auto"  # images and videos share the flag
    assert JobOptions().precision == "auto" and "--precision auto" in " ".join(JobOptions().cli_args())
    assert _parse("eval", "--task", "classical_sr", "--hr", "h", "--scale", "2", "--model", "m").precision == "fp32"
    with pytest.raises(SystemExit):
        _parse("eval", "--task", "classical_sr", "--hr", "h", "--scale", "2", "--model", "m", "--precision", "auto")
    assert swinir.RestoreOptions().precision == "fp32"  # the library (and evaluate) stay fp32
    assert OptimConfig().amp == "none"  # training: fp32 unless its config asks


@pytest.mark.parametrize("native", (True, False))
def test_auto_follows_the_cpu(monkeypatch: pytest.MonkeyPatch, tiny_x2_checkpoint: Path, native: bool) -> None:
    monkeypatch.setattr(cpu, "native_bf16", lambda: native)
    model = swinir.load(tiny_x2_checkpoint, device="cpu")
    choice = precision.choose("auto", model)
    assert choice.auto and choice.name == ("bf16" if native else "fp32")
    if native:
        assert choice.describe() == (
            "bf16 (--precision auto: this CPU computes bf16 natively; "
            "--precision fp32 for results identical on every machine)"
        )
    else:
        assert "no native bf16" in choice.describe() and "--precision fp32 for" not in choice.describe()
    assert precision.choose("fp32", model) == precision.Choice("fp32")
    assert precision.choose("BFloat16", model).name == "bf16"
    assert precision.choose("auto", model, "cuda:1").describe() == "fp32 (--precision auto: fp32 on cuda)"


def test_auto_keeps_fp32_for_a_model_known_to_lose_in_bf16(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_x2_checkpoint: Path
) -> None:
    monkeypatch.setattr(cpu, "native_bf16", lambda: True)
    model = swinir.load(tiny_x2_checkpoint, device="cpu")
    digest = precision.weights_digest(model)
    as_safetensors = swinir.save(model, tmp_path / "tiny.safetensors")
    assert precision.weights_digest(swinir.load(as_safetensors, device="cpu")) == digest  # any file format
    monkeypatch.setitem(precision.FP32_UNDER_AUTO, digest, ("tiny-x2", 41.25))
    choice = precision.choose("auto", model)
    assert choice.name == "fp32"
    assert "tiny-x2's bf16 output is 41.2 dB from its fp32 output, under 45 dB" in choice.describe()
    with torch.no_grad():
        next(model.parameters()).add_(1.0)  # other weights: another digest, bf16 again
    assert precision.choose("auto", model).name == "bf16"


@pytest.mark.parametrize("native", (True, False))
def test_restore_summary_says_what_ran(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    tiny_x2_checkpoint: Path,
    capsys: pytest.CaptureFixture[str],
    native: bool,
) -> None:
    from swinir.cli import main
    from swinir.io import read_image, write_image

    monkeypatch.setattr(cpu, "native_bf16", lambda: native)
    image = np.random.default_rng(0).integers(0, 256, (12, 10, 3), dtype=np.uint8)
    write_image(tmp_path / "a.png", image)
    assert (
        main(["restore", str(tmp_path / "a.png"), "-o", str(tmp_path / "auto"), "--model", str(tiny_x2_checkpoint)])
        == 0
    )
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert summary.startswith("done: 1 restored, 0 failed")
    if native:
        assert summary.endswith(
            "; precision bf16 (--precision auto: this CPU computes bf16 natively; "
            "--precision fp32 for results identical on every machine)"
        )
    else:
        assert summary.endswith("; precision fp32 (--precision auto: this CPU has no native bf16 (AVX512-BF16 or AMX))")
        argv = ["restore", str(tmp_path / "a.png"), "-o", str(tmp_path / "fp32"), "--model", str(tiny_x2_checkpoint)]
        assert main([*argv, "--precision", "fp32"]) == 0
        assert capsys.readouterr().out.strip().endswith("; precision fp32")
        auto, fp32 = read_image(tmp_path / "auto" / "a.png").array, read_image(tmp_path / "fp32" / "a.png").array
        assert np.array_equal(auto, fp32)
    # an explicit precision the CPU cannot run: the summary names what ran instead, and why
    for asked, ran in (("bf16", "bf16"), ("fp16", "bf16")):
        argv = ["restore", str(tmp_path / "a.png"), "-o", str(tmp_path / asked), "--model", str(tiny_x2_checkpoint)]
        assert main([*argv, "--precision", asked]) == 0
        summary = capsys.readouterr().out.strip().splitlines()[-1]
        if not native:  # fp16 falls back twice: to bf16 on a CPU, then to fp32; each step says why
            fp16_step = "fp16 is not supported on CPU: using bf16 instead (same speed-up, wider range); "
            assert summary.endswith(
                f"; precision fp32 (--precision {asked}: {fp16_step if asked == 'fp16' else ''}this CPU has no native "
                "bf16 (AVX512-BF16 or AMX), where bf16 runs ~5x slower than fp32: using fp32)"
            )
        elif asked == "fp16":
            assert summary.endswith(
                "; precision bf16 (--precision fp16: fp16 is not supported on CPU: using bf16 instead (same speed-up, "
                "wider range))"
            )
        else:
            assert summary.endswith(f"; precision {ran}")


def test_library_auto_runs_what_choose_says(monkeypatch: pytest.MonkeyPatch, tiny_x2_checkpoint: Path) -> None:
    """``restore(..., precision="auto")`` (the server's path) runs bf16 autocast exactly where choose says bf16."""
    model = swinir.load(tiny_x2_checkpoint, device="cpu")
    image = torch.rand(3, 16, 16)
    fp32 = swinir.restore(model, image, precision="fp32")
    monkeypatch.setattr(cpu, "native_bf16", lambda: False)
    assert torch.equal(swinir.restore(model, image, precision="auto"), fp32)
    if cpu.ONEDNN_BF16:  # bf16 really runs only where the CPU has it
        monkeypatch.setattr(cpu, "native_bf16", lambda: True)
        bf16 = swinir.restore(model, image, precision="bf16")
        auto = swinir.restore(model, image, precision="auto")
        assert torch.equal(auto, bf16) and not torch.equal(auto, fp32)


def test_a_bf16_first_call_does_not_change_later_fp32_results() -> None:
    """The cached attention bias is made outside CPU autocast: Swin2SR's CPB MLP used to leave a bf16-rounded
    bias behind when the first call ran under bf16 autocast (auto's bf16), and later fp32 calls kept it."""
    from swinir.model.swin2sr import Swin2SR

    torch.manual_seed(0)
    model = Swin2SR(embed_dim=8, depths=[2], num_heads=[2], window_size=4, upscale=2, upsampler="pixelshuffledirect")
    fresh = copy.deepcopy(model).eval()
    model.eval()
    x = torch.rand(1, 3, 12, 12)
    with torch.inference_mode():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            model(x)  # the first call, in bf16
        assert torch.equal(model(x), fresh(x))
