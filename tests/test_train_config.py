"""Training configs: validation errors name the key, presets inherit and carry the paper's settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from swinir.cli import main
from swinir.errors import ConfigError
from swinir.train.config import build_config, load_config, preset_names, raw_config


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "cfg.yaml"
    p.write_text(text)
    return p


BASE = """
name: t
model: {upscale: 2, upsampler: pixelshuffledirect, embed_dim: 16, depths: [2], num_heads: [2]}
data: {train: [{hr: /nowhere}], patch_size: 16}
"""


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.lr=abc", "train.lr: expected a number, got 'abc'"),
        ("model.embed_dimm=3", "model.embed_dimm: unknown key; did you mean 'embed_dim'?"),
        ("train.amp=fp8", "train.amp: expected one of 'none', 'bf16', 'fp16', got 'fp8'"),
        ("data.batch_size=2.5", "data.batch_size: expected an integer, got 2.5"),
        ("data.cache=maybe", "data.cache: expected true or false, got 'maybe'"),
        ("model.depths=4", "model.depths: expected a list"),
        ("model.num_heads=[2,2]", "model.num_heads: has 2 entries but depths has 1"),
        ("model.num_heads=[3]", "model.num_heads[0]: embed_dim 16 is not divisible by 3 heads"),
        ("data.degrade.noise_sigma=[50,10]", "data.degrade.noise_sigma: expected a number or [low, high]"),
        ("train.loss=ssim_loss", "train.loss[0].type: unknown loss 'ssim_loss'"),
        ("train.milestones=[300,100]", "train.milestones: must be increasing"),
        ("val.bogus=1", "val.bogus: unknown key"),
        ("train.betas=[0.9]", "train.betas: expected two numbers"),
        ("model.upscale=1", "model.upscale: upsampler 'pixelshuffledirect' needs upscale >= 2"),
        ("log.keep_models=-1", "log.keep_models: must be >= 0 (0 keeps all), got -1"),
        ("log.checkpoint_every=0", "log.checkpoint_every: must be > 0, got 0"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, override: str, message: str) -> None:
    cfg = _write(tmp_path, BASE)
    with pytest.raises(ConfigError) as exc:
        load_config(cfg, [override])
    assert message in str(exc.value)


def test_list_index_in_error_path(tmp_path: Path) -> None:
    cfg = _write(tmp_path, BASE + "  \n")
    with pytest.raises(ConfigError, match=r"^data\.train\[1\]\.weight: must be > 0, got -1\.0$"):
        load_config(cfg, ["data.train=[{hr: a}, {hr: b, weight: -1}]"])


def test_numbers_yaml_reads_as_strings_are_accepted(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, BASE + "train: {lr: 2e-4, iterations: 5e5}\n"))
    assert cfg.train.lr == pytest.approx(2e-4) and isinstance(cfg.train.lr, float)
    assert cfg.train.iterations == 500000 and isinstance(cfg.train.iterations, int)


def test_shorthands_and_overrides(tmp_path: Path) -> None:
    cfg = load_config(
        _write(tmp_path, BASE),
        ["train.loss=charbonnier", "data.degrade.noise_sigma=25", "data.train=[/a, /b]", "model.depths=[2]"],
    )
    assert [t.type for t in cfg.train.loss] == ["charbonnier"] and cfg.train.loss[0].eps == 1e-9
    assert cfg.data.degrade.noise_sigma == [25.0, 25.0]
    assert [s.hr for s in cfg.data.train] == ["/a", "/b"]
    with pytest.raises(ConfigError, match="--set oops: expected KEY=VALUE"):
        load_config(_write(tmp_path, BASE), ["oops"])


def test_unknown_preset_and_missing_file() -> None:
    with pytest.raises(ConfigError, match="builtin-x3: no such config file or preset; did you mean"):
        load_config("builtin-x3")
    with pytest.raises(ConfigError, match="no such config file"):
        load_config("missing/cfg.yaml")


def test_base_inheritance_and_shared_placeholder(shared: Path) -> None:
    x4 = load_config("builtin-x4")
    x2 = load_config("builtin-x2")
    assert x4.model.upscale == 4 and x2.model.upscale == 2
    assert x4.model.embed_dim == x2.model.embed_dim and x4.train.lr == x2.train.lr
    assert Path(x2.data.train[0].hr) == shared / "data" / "train" / "BSD400"
    assert Path(x2.val.hr) == shared / "data" / "Set5" / "HR"
    assert "base" not in raw_config("builtin-x4")
    # the built-ins never train on benchmark sets
    for name in ("builtin-x2", "builtin-x4", "builtin-denoise"):
        assert all("/train/" in s.hr for s in load_config(name).data.train)


def test_every_preset_validates_and_tiny_ones_exist() -> None:
    names = preset_names()
    for name in names:
        cfg = load_config(name)
        assert cfg.name == name, name
        assert cfg.train.betas == [0.9, 0.99] and cfg.train.gamma == 0.5 and cfg.train.ema_decay == 0.999, name
    tiny = [n for n in names if n.endswith("-tiny")]
    assert {"builtin-x2-tiny", "classical-sr-x2-tiny", "denoise-color-tiny", "jpeg-gray-tiny"} <= set(tiny)
    for name in tiny:
        cfg = load_config(name)
        assert cfg.train.iterations <= 500 and cfg.model.embed_dim <= 24, name


def test_paper_settings() -> None:
    c2 = load_config("classical-sr-x2")
    assert (c2.train.iterations, c2.train.milestones, c2.data.batch_size, c2.data.patch_size, c2.train.lr) == (
        500000,
        [250000, 400000, 450000, 475000],
        32,
        48,
        2e-4,
    )
    assert c2.model.embed_dim == 180 and c2.model.depths == [6] * 6 and c2.model.upsampler == "pixelshuffle"
    assert load_config("classical-sr-df2k-x2").data.patch_size == 64
    for s in (3, 4, 8):
        c = load_config(f"classical-sr-x{s}")
        assert c.model.upscale == s and c.model.init_from == "classical-div2k-x2"
        assert c.train.lr == 1e-4 and c.train.milestones == [125000, 200000, 225000, 237500]
    lw = load_config("lightweight-sr-x2")
    assert (lw.data.patch_size, lw.data.batch_size, lw.model.embed_dim, lw.model.upsampler) == (
        64,
        64,
        60,
        "pixelshuffledirect",
    )
    for color, ch in (("gray", 1), ("color", 3)):
        d = load_config(f"denoise-{color}-15")
        assert d.model.in_chans == ch and d.data.degrade.noise_sigma == [15, 15]
        assert (d.train.iterations, d.train.milestones, d.data.patch_size, d.data.batch_size) == (
            1600000,
            [800000, 1200000, 1400000, 1500000],
            128,
            8,
        )
        assert d.train.loss[0].type == "charbonnier"
        d50 = load_config(f"denoise-{color}-50")
        assert d50.model.init_from == f"denoise-{color}-15" and d50.train.lr == 1e-4
        assert d50.train.milestones == [400000, 600000, 700000, 750000]
        j = load_config(f"jpeg-{color}-40")
        assert (j.model.window_size, j.data.patch_size, j.model.img_range) == (7, 126, 255.0)
        assert j.data.degrade.jpeg_quality == [40, 40] and j.train.iterations == 1600000
        assert load_config(f"jpeg-{color}-10").model.init_from == f"jpeg-{color}-40"
    r = load_config("realsr-m-x4-psnr")
    assert r.model.upsampler == "nearest+conv" and r.data.degrade.pipeline == "bsrgan"


def test_cli_prints_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _write(tmp_path, BASE)
    assert main(["train", str(cfg), "--set", "train.lr=abc"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: train.lr: expected a number, got 'abc'"]
    assert main(["train", "builtin-x2-tiny", "--print-config", "--set", "train.lr=3e-3"]) == 0
    out = capsys.readouterr().out
    assert "lr: 0.003" in out and build_config(__import__("yaml").safe_load(out)).train.lr == 3e-3


@pytest.mark.parametrize(("given", "seconds"), [("5400", 5400.0), ("90m", 5400.0), ("1.5h", 5400.0), ("300s", 300.0)])
def test_cli_time_limit_durations(given: str, seconds: float, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "builtin-x2-tiny", "--print-config", "--time-limit", given]) == 0
    assert build_config(__import__("yaml").safe_load(capsys.readouterr().out)).train.time_limit == seconds


@pytest.mark.parametrize("given", ["abc", "-5m", "0"])
def test_cli_time_limit_rejects_nonsense(given: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["train", "builtin-x2-tiny", "--print-config", "--time-limit", given])
    assert exc.value.code == 2
    assert "--time-limit" in capsys.readouterr().err
