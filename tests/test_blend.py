"""Network interpolation (swinir.interpolate) and level -> pair-of-models mapping, on small checkpoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import swinir
from swinir.blend import JPEG_QUALITIES, NOISE_LEVELS, Blend, for_level, level_pair
from swinir.checkpoint import build, save
from swinir.spec import ModelSpec

SMALL = ModelSpec(
    upscale=1, in_chans=3, embed_dim=12, depths=(1,), num_heads=(2,), window_size=8, mlp_ratio=2.0,
    upsampler="", resi_connection="1conv",
)  # fmt: skip


def small(seed: int, spec: ModelSpec = SMALL) -> swinir.SwinIR:
    torch.manual_seed(0)
    model = build(spec)  # one initialisation, then a per-seed nudge: like models fine-tuned from one base
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.02)
    return model.eval()


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    folder = tmp_path_factory.mktemp("levels")
    return {lv: save(small(lv), folder / f"dn-{lv}.safetensors") for lv in NOISE_LEVELS}


def image() -> np.ndarray:
    return np.random.default_rng(0).random((24, 24, 3), dtype=np.float32)


def test_alpha_ends_give_back_each_model_exactly(checkpoints: dict[int, Path]) -> None:
    a, b = swinir.load(checkpoints[15]), swinir.load(checkpoints[25])
    for alpha, ref in ((0.0, a), (1.0, b)):
        mixed = swinir.interpolate(checkpoints[15], checkpoints[25], alpha)
        for (k, v), w in zip(mixed.state_dict().items(), ref.state_dict().values()):
            assert torch.equal(v, w), k
        np.testing.assert_array_equal(swinir.restore(mixed, image()), swinir.restore(ref, image()))


def test_weights_are_the_linear_mix_and_output_lies_between(checkpoints: dict[int, Path]) -> None:
    a, b = swinir.load(checkpoints[15]), swinir.load(checkpoints[25])
    mixed = swinir.interpolate(a, b, 0.3)
    key = "conv_first.weight"
    expected = 0.7 * a.state_dict()[key].double() + 0.3 * b.state_dict()[key].double()
    torch.testing.assert_close(mixed.state_dict()[key].double(), expected, rtol=0, atol=1e-7)
    ya, yb, ym = (swinir.restore(m, image()) for m in (a, b, mixed))
    assert np.abs(ya - yb).mean() > 1e-3  # the two models really differ
    lo, hi = np.minimum(ya, yb), np.maximum(ya, yb)
    slack = 0.1 * np.abs(ya - yb).max()  # a non-linear network: between, give or take
    assert np.mean((ym >= lo - slack) & (ym <= hi + slack)) > 0.99
    assert np.abs(ym - ya).mean() < np.abs(yb - ya).mean()  # closer to a at alpha 0.3


def test_different_architectures_are_refused(checkpoints: dict[int, Path]) -> None:
    other = small(1, ModelSpec(**{**SMALL.kwargs(), "embed_dim": 16}))  # type: ignore[arg-type]
    with pytest.raises(swinir.SwinIRError, match="different architectures.*embed_dim 12 vs 16"):
        swinir.interpolate(checkpoints[15], other, 0.5)
    with pytest.raises(swinir.SwinIRError, match="alpha must be in"):
        swinir.interpolate(checkpoints[15], checkpoints[25], 1.5)


@pytest.mark.parametrize(
    "level, levels, blend",
    [
        (15, NOISE_LEVELS, Blend(15, 15, 0.0)),
        (20, NOISE_LEVELS, Blend(15, 25, 0.5)),
        (25, NOISE_LEVELS, Blend(25, 25, 0.0)),
        (40, NOISE_LEVELS, Blend(25, 50, 0.6)),
        (50, NOISE_LEVELS, Blend(50, 50, 0.0)),
        (35, JPEG_QUALITIES, Blend(30, 40, 0.5)),
        (12, JPEG_QUALITIES, Blend(10, 20, 0.2)),
    ],
)
def test_level_maps_to_the_right_pair_and_alpha(level: float, levels: tuple[int, ...], blend: Blend) -> None:
    got = level_pair(level, levels)
    assert (got.low, got.high) == (blend.low, blend.high) and got.alpha == pytest.approx(blend.alpha)


def test_level_outside_the_trained_range_is_refused() -> None:
    with pytest.raises(swinir.SwinIRError, match="outside the trained range 15..50"):
        level_pair(60, NOISE_LEVELS)
    with pytest.raises(swinir.SwinIRError, match="10..40"):
        for_level("jpeg", 5)


def test_for_level_builds_the_blend_and_says_which(checkpoints: dict[int, Path]) -> None:
    model, line = for_level("noise", 40, sources=checkpoints)
    assert line == "sigma 40: 0.4 x dn-25.safetensors + 0.6 x dn-50.safetensors"
    ref = swinir.interpolate(checkpoints[25], checkpoints[50], 0.6)
    for v, w in zip(model.state_dict().values(), ref.state_dict().values()):
        assert torch.equal(v, w)
    exact, line = for_level("noise", 15, sources=checkpoints)
    assert line == "sigma 15: dn-15.safetensors alone"
    assert torch.equal(exact.conv_first.weight, swinir.load(checkpoints[15]).conv_first.weight)


def test_offline_a_level_between_two_released_models_names_both_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--noise-level 35` needs the sigma 25 and 50 models: offline, one message names both, each with its URL
    and the path to put it at (it named only the first). With one of them cached, the other alone is asked for."""
    from swinir import zoo
    from swinir.errors import ZooError

    cache, base = tmp_path / "cache", "http://127.0.0.1:9/release"  # port 9: connection refused
    monkeypatch.setenv("SWINIR_CACHE", str(cache))
    monkeypatch.setenv(zoo.URL_ENV, base)
    with pytest.raises(ZooError) as err:
        for_level("noise", 35)
    msg = str(err.value)
    assert msg.startswith("sigma 35 needs denoise-color-25 and denoise-color-50; could not download 2 of them")
    for name in ("denoise-color-25", "denoise-color-50"):
        entry = zoo.get(name)
        assert f"{name} from {base}/{entry.filename} (Connection refused): put it at {cache / entry.filename}" in msg
    assert "\n" not in msg
    assert not cache.exists() or not any(cache.iterdir())  # nothing half-written
    with pytest.raises(ZooError, match=r"^quality 15 needs jpeg-gray-10 and jpeg-gray-20; .*jpeg-gray-20 from "):
        for_level("jpeg", 15, color=False)
    # the sigma 25 model in the cache (a stand-in of its architecture): only sigma 50 is missing
    stand_in = ModelSpec(**{**SMALL.to_dict(), "embed_dim": 180, "num_heads": (6,), "depths": (1,)})
    save(build(stand_in), cache / zoo.get("denoise-color-25").filename)
    with pytest.raises(ZooError) as err:
        for_level("noise", 35)
    msg = str(err.value)
    assert msg.startswith("sigma 35 needs denoise-color-25 and denoise-color-50 (denoise-color-25 is here); ")
    assert "could not download it, download by hand: denoise-color-50 from " in msg and "noise25.pth (" not in msg
