"""HAT's release files in use: its authors publish them through Google Drive only, so a user puts one into
the cache folder by hand; from there its zoo name loads it, `swinir info` describes it, and `swinir eval`
scores it with the task its entry names. A file's stored metadata sets what HAT's weights cannot show."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import swinir
from swinir import zoo
from swinir.cli import main
from swinir.io import write_image
from swinir.model.hat import HAT

# released width and window (what a cached file is checked against), one small group
RELEASED_WIDTH_X4 = dict(
    upscale=4,
    embed_dim=180,
    depths=[1],
    num_heads=[6],
    window_size=16,
    img_size=32,
    compress_ratio=3,
    squeeze_factor=30,
    mlp_ratio=2,
)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    folder.mkdir()
    monkeypatch.setenv("SWINIR_CACHE", str(folder))
    monkeypatch.delenv(zoo.URL_ENV, raising=False)
    return folder


@pytest.fixture(scope="module")
def hat_x4() -> HAT:
    torch.manual_seed(0)
    return HAT(**RELEASED_WIDTH_X4).eval()


def _run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _put_released(model: HAT, path: Path) -> Path:
    """As the authors' files are: ``{'params_ema': state_dict}``, no metadata."""
    sd = {k: v for k, v in model.state_dict().items()}
    torch.save({"params_ema": sd}, path)
    return path


def test_a_file_put_into_the_cache_loads_by_its_zoo_name(cache: Path, hat_x4: HAT) -> None:
    _put_released(hat_x4, cache / "HAT_SRx4.pth")
    for name in ("hat-classical-x4", "HAT_SRx4", "HAT_SRx4.pth"):
        model = swinir.load(name)
        assert model.spec.architecture == "hat" and model.spec.scale == 4 and model.spec.window_size == 16
    x = torch.rand(1, 3, 21, 18, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(model(x), hat_x4(x))


def test_info_on_a_hat_file(cache: Path, hat_x4: HAT, capsys: pytest.CaptureFixture) -> None:
    """The zoo name, the architecture, HAT's options, and what the file cannot show (assumed as released)."""
    _put_released(hat_x4, cache / "HAT_SRx4.pth")
    code, out, err = _run(capsys, "info", "hat-classical-x4", "--json")
    info = json.loads(out)
    assert code == 0 and err == ""
    assert (info["zoo_name"], info["architecture"], info["task"], info["scale"]) == (
        "hat-classical-x4",
        "hat",
        "classical_sr",
        4,
    )
    assert info["wrapper_key"] == "params_ema" and info["file"] == str(cache / "HAT_SRx4.pth")
    assert info["options"] == {"compress_ratio": 3, "conv_scale": 0.01, "overlap_ratio": 0.5, "squeeze_factor": 30}
    assert set(info["guessed"]) == {"img_range", "img_size", "conv_scale"}
    assert info["parameters"] == sum(p.numel() for p in hat_x4.parameters())
    code, out, _ = _run(capsys, "info", str(cache / "HAT_SRx4.pth"))
    fields = {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in out.splitlines())}
    assert code == 0 and fields["architecture"] == "HAT" and fields["window"] == "16"
    assert fields["guessed"].startswith("img_range, img_size, conv_scale (not in the file")
    # our own file stores them: nothing is guessed
    swinir.save(swinir.load(cache / "HAT_SRx4.pth"), cache.parent / "ours.pth")
    assert json.loads(_run(capsys, "info", str(cache.parent / "ours.pth"), "--json")[1])["guessed"] == []


def test_real_hat_gan_is_real_world_sr_by_its_name(cache: Path, hat_x4: HAT, capsys: pytest.CaptureFixture) -> None:
    """Real_HAT_GAN_SRx4 has HAT's classical upsampler: its weights read as classical SR, its entry says
    real-world SR, and `info` and `eval` by its zoo name follow the entry (eval: outputs, no scores)."""
    _put_released(hat_x4, cache / "Real_HAT_GAN_SRx4.pth")
    assert swinir.load("hat-realsr-x4").spec.task == "classical_sr"
    assert json.loads(_run(capsys, "info", "hat-realsr-x4", "--json")[1])["task"] == "real_sr"
    lr = cache.parent / "lr"
    write_image(lr / "a.png", np.full((20, 24, 3), 120, np.uint8))
    report = cache.parent / "r.json"
    args = ["eval", "--model", "hat-realsr-x4", "--lr", str(lr), "--save", str(cache.parent / "out")]
    code, _, _ = _run(capsys, *args, "--json", str(report), "--quiet")
    assert code == 0 and json.loads(report.read_text())["task"] == "real_sr"
    # the same weights under another name are scored as what they read as
    path = _put_released(hat_x4, cache.parent / "mine.pth")
    hr = cache.parent / "hr"
    write_image(hr / "a.png", np.random.default_rng(0).integers(0, 256, (40, 48, 3), dtype=np.uint8))
    code, _, _ = _run(capsys, "eval", "--model", str(path), "--hr", str(hr), "--json", str(report), "--quiet")
    assert code == 0 and json.loads(report.read_text())["task"] == "classical_sr"


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_metadata_sets_what_hat_weights_cannot_show(tmp_path: Path, suffix: str) -> None:
    """conv_scale (a multiplier), img_range and img_size are not in a HAT state dict: the released values are
    assumed for the authors' files, and our files store them, so a model trained otherwise reloads as itself."""
    torch.manual_seed(2)
    kw = {**RELEASED_WIDTH_X4, "embed_dim": 24, "num_heads": [2], "window_size": 8, "squeeze_factor": 4}
    model = HAT(**{**kw, "conv_scale": 0.5, "img_range": 255.0, "img_size": 48}).eval()
    again = swinir.load(swinir.save(model, tmp_path / f"m{suffix}"))
    assert again.spec == model.spec and again.spec.option("conv_scale") == 0.5
    assert (again.spec.img_range, again.spec.img_size) == (255.0, 48)
    x = torch.rand(1, 3, 12, 17, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert torch.equal(again(x), model(x))
    # the same tensors without the metadata read as the release's values, so they compute something else
    bare = swinir.load({k: v for k, v in model.state_dict().items()})
    assert bare.spec.option("conv_scale") == 0.01 and bare.spec.img_range == 1.0
