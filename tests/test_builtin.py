"""The built-in models ship trained: each beats its classical baseline on benchmark images by a margin
that random or barely trained weights cannot reach."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import swinir
from swinir import zoo
from swinir.evaluate import BICUBIC, Protocol, evaluate

BUILTINS = ["builtin-x2", "builtin-x4", "builtin-denoise"]


@pytest.mark.parametrize("name", BUILTINS)
def test_builtin_ships_small_with_card(name: str) -> None:
    entry = zoo.get(name)
    assert zoo.builtin_available(entry), f"{name} weights are not packaged"
    path = zoo.resolve(name)
    assert path.suffix == ".safetensors" and path.stat().st_size < 4 * 1024 * 1024
    info = zoo.builtin_info(entry)
    assert info is not None and info["metrics"], "the built-in json must carry measured metrics"
    card = zoo.builtin_card(entry)
    assert card is not None
    for needle in ("Training data", "Iterations", "Training time", "swinir eval", "Regenerate"):
        assert needle in card, f"model card of {name} lacks {needle!r}"


@pytest.mark.parametrize("name,scale", [("builtin-x2", 2), ("builtin-x4", 4)])
def test_builtin_sr_beats_bicubic_on_set5(name: str, scale: int, data_dir: Path) -> None:
    model = swinir.load(name, device="cpu")
    assert model.spec.scale == scale and model.spec.in_chans == 3
    proto = Protocol("classical_sr", scale=scale)
    kw = dict(lr_dir=data_dir / "Set5" / "LR_bicubic" / f"X{scale}", limit=3, progress=False)
    ours = evaluate(model, data_dir / "Set5" / "HR", proto, **kw).average()
    base = evaluate(BICUBIC, data_dir / "Set5" / "HR", proto, **kw).average()
    assert ours is not None and base is not None
    # Untrained weights land far below bicubic; the trained model must clear it by a margin.
    assert ours.psnr_y > base.psnr_y + 0.3, (ours.psnr_y, base.psnr_y)
    assert ours.ssim_y > base.ssim_y


def test_builtin_denoise_removes_noise(data_dir: Path) -> None:
    model = swinir.load("builtin-denoise", device="cpu")
    assert model.spec.task == "denoise" and model.spec.in_chans == 3
    report = evaluate(model, data_dir / "McMaster", Protocol("color_dn", noise=25), limit=2, progress=False)
    avg = report.average()
    assert avg is not None and report.average_input_psnr() is not None
    assert avg.psnr > report.average_input_psnr() + 6.0, (avg.psnr, report.average_input_psnr())


def test_models_lists_builtins_first_with_numbers(capsys: pytest.CaptureFixture[str]) -> None:
    from swinir.cli import main

    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    rows = rows["models"]
    names = [r["name"] for r in rows]
    assert names[:3] == ["builtin-x4", "builtin-x2", "builtin-denoise"]
    assert all(r.get("metrics") for r in rows[:3])
