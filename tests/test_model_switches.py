"""The paper's ablation switches (rstb_residual, resi_connection 1x1/none, shift, ape, patch_norm): each one
against the step-by-step reference written the original's way, its weights, detection, save and load."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import swinir
from swinir.checkpoint import save
from swinir.cli import main
from swinir.errors import CheckpointError
from swinir.model import SwinIR
from swinir.reference import ReferenceSwinIR
from swinir.spec import SWITCH_DEFAULTS, detect

BASE = dict(
    upscale=2,
    in_chans=3,
    img_size=16,
    window_size=8,
    depths=[2, 2],
    embed_dim=16,
    num_heads=[2, 2],
    mlp_ratio=2.0,
    upsampler="pixelshuffle",
)
VARIANTS = {
    "released": {},
    "resi 1x1": {"resi_connection": "1x1"},
    "resi none": {"resi_connection": "none"},
    "resi 3conv": {"resi_connection": "3conv"},
    "no RSTB residual": {"rstb_residual": False},
    "no shift": {"shift": False},
    "ape": {"ape": True},
    "no patch norm": {"patch_norm": False},
}


def make(seed: int = 0, **switches: object) -> SwinIR:
    torch.manual_seed(seed)
    m = SwinIR(**BASE, **switches).eval()
    with torch.no_grad():  # LayerNorms away from identity, so that dropping one shows
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return m


@pytest.mark.parametrize("name", list(VARIANTS))
def test_variant_matches_the_reference(name: str) -> None:
    model = make(**VARIANTS[name])
    ref = ReferenceSwinIR.from_model(model)
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))  # img_size: where ape is defined
    with torch.no_grad():
        out, want = model(x), ref(x)
    assert out.shape == (2, 3, 32, 32)
    torch.testing.assert_close(out, want, atol=2e-5, rtol=1e-4)
    if not VARIANTS[name].get("ape"):  # any size, with padding
        x = torch.rand(1, 3, 21, 26)
        with torch.no_grad():
            torch.testing.assert_close(model(x), ref(x), atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("name", [n for n in VARIANTS if n != "released"])
def test_every_switch_changes_the_output(name: str) -> None:
    """Same weights where both have them: the switch itself makes the difference."""
    base, variant = make(), make(**VARIANTS[name])
    own = variant.state_dict()
    shared = {k: v for k, v in base.state_dict().items() if k in own and own[k].shape == v.shape}
    variant.load_state_dict(shared, strict=False)
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert (base(x) - variant(x)).abs().max() > 1e-3


def test_weights_of_each_variant() -> None:
    ref = set(make().state_dict())
    c = BASE["embed_dim"]
    sd = make(resi_connection="1x1").state_dict()
    assert sd["conv_after_body.weight"].shape == (c, c, 1, 1) and sd["layers.1.conv.weight"].shape == (c, c, 1, 1)
    none = set(make(resi_connection="none").state_dict())
    assert none == {k for k in ref if not k.startswith(("conv_after_body.", "layers.0.conv.", "layers.1.conv."))}
    assert set(make(patch_norm=False).state_dict()) == ref - {"patch_embed.norm.weight", "patch_embed.norm.bias"}
    ape = make(ape=True).state_dict()
    assert set(ape) == ref | {"absolute_pos_embed"} and ape["absolute_pos_embed"].shape == (1, 16 * 16, c)
    assert set(make(shift=False).state_dict()) == ref == set(make(rstb_residual=False).state_dict())


def test_released_defaults_unchanged() -> None:
    m = SwinIR(**BASE)
    assert m.spec.switches() == {} and "shift" not in m.spec.kwargs()
    assert "=off" not in m.spec.describe() and "ape" not in m.spec.describe()
    assert SWITCH_DEFAULTS == {"rstb_residual": True, "shift": True, "ape": False, "patch_norm": True}


@pytest.mark.parametrize(
    "switches, seen",
    [
        ({"resi_connection": "1x1"}, {"resi_connection": "1x1"}),
        ({"resi_connection": "none"}, {"resi_connection": "none"}),
        ({"ape": True}, {"ape": True, "img_size": 16}),
        ({"patch_norm": False}, {"patch_norm": False}),
        ({"shift": False}, {}),  # not in the weights: only stored metadata tells
        ({"rstb_residual": False}, {}),
    ],
)
def test_detection_from_the_state_dict(switches: dict, seen: dict) -> None:
    spec = detect(make(**switches).state_dict())
    for key, value in {**{"resi_connection": "1conv"}, **SWITCH_DEFAULTS, **seen}.items():
        assert getattr(spec, key) == value, key


@pytest.mark.parametrize("name", [n for n in VARIANTS if n != "released"])
@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_saved_variant_loads_as_that_variant(tmp_path: Path, name: str, suffix: str) -> None:
    model = make(**VARIANTS[name])
    path = save(model, tmp_path / f"m{suffix}")
    loaded = swinir.load(path)
    assert loaded.spec == model.spec
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), atol=0, rtol=0)


def test_ape_runs_at_other_sizes() -> None:
    """The original adds its embedding at img_size only; here it is resized for other inputs."""
    m = make(ape=True)
    with torch.no_grad():
        out = m(torch.rand(1, 3, 24, 40))
    assert out.shape == (1, 3, 48, 80) and torch.isfinite(out).all()


def test_metadata_cannot_contradict_the_weights(tmp_path: Path) -> None:
    model = make(ape=True)
    path = save(model, tmp_path / "m.pth", spec=model.spec.with_(ape=False))
    with pytest.raises(CheckpointError, match="ape"):
        swinir.load(path)


def test_info_shows_the_switches(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = save(make(shift=False, resi_connection="1x1"), tmp_path / "variant.pth")
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "shift=off (an ablation variant)" in out and "resi:            1x1" in out
    assert main(["info", str(save(make(), tmp_path / "released.pth"))]) == 0
    assert "as released" in capsys.readouterr().out


def test_training_config_takes_the_switches() -> None:
    from swinir.errors import ConfigError
    from swinir.train import load_config

    cfg = load_config("builtin-x2-tiny", ["model.resi_connection=none", "model.shift=false", "model.ape=true"])
    m = SwinIR(**cfg.model.kwargs())
    assert (m.spec.resi_connection, m.spec.shift, m.spec.ape) == ("none", False, True)
    with pytest.raises(ConfigError, match="model.resi_connection: expected one of.*'1x1', 'none'"):
        load_config("builtin-x2-tiny", ["model.resi_connection=2conv"])
