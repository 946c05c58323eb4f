"""Files we write are in the released layout: strict loaders (the original test script, KAIR, BasicSR) and
spandrel's detection read them, and our own loader still ignores the derived buffers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors import safe_open

import swinir
from swinir.checkpoint import DERIVED_META, SPEC_KEY, layout_img_size, with_derived
from swinir.model import SwinIR
from swinir.reference import ReferenceSwinIR
from swinir.spec import ModelSpec

TINY = {"embed_dim": 12, "depths": [2, 2], "num_heads": [2, 3], "window_size": 8, "mlp_ratio": 2.0}


def tiny_model(**kw: object) -> SwinIR:
    torch.manual_seed(0)
    return SwinIR(**{**TINY, "img_size": 16, "upscale": 2, "upsampler": "pixelshuffledirect", **kw}).eval()


def weights_only(shapes: dict[str, list[int]]) -> dict[str, torch.Tensor]:
    return {
        k: torch.empty(s, device="meta")
        for k, s in shapes.items()
        if not k.endswith(("attn_mask", "relative_position_index"))
    }


def test_layout_matches_every_released_configuration(released_shapes: dict) -> None:
    """Keys, order, shapes and dtypes of the 13 released files (weights as meta tensors: nothing allocated)."""
    for name, entry in released_shapes.items():
        spec = ModelSpec.from_kwargs(entry["config"])
        out = with_derived(weights_only(entry["state_dict"]), spec)
        assert list(out) == list(entry["state_dict"]), name
        assert {k: list(v.shape) for k, v in out.items()} == entry["state_dict"], name
        derived = [v for k, v in out.items() if k.endswith("attn_mask")]
        assert derived and all(v.dtype == torch.float32 for v in derived), name
        index = [v for k, v in out.items() if k.endswith("relative_position_index")]
        assert len(index) == sum(entry["config"]["depths"]) and index[0].dtype == torch.int64, name


def test_derived_buffers_equal_the_originals(golden: Path, golden_index: dict) -> None:
    """Values, not only shapes: the buffers the original code wrote into the golden files (window 8 and 7,
    img_size 16, 14 and 64)."""
    for name, entry in golden_index.items():
        raw = torch.load(golden / entry["checkpoint"], weights_only=True)[entry["checkpoint_key"]]
        ours = with_derived(raw, ModelSpec.from_kwargs(entry["config"]))
        assert list(ours) == list(raw), name
        for k, v in raw.items():
            assert ours[k].dtype == v.dtype and torch.equal(ours[k], v), (name, k)


def strict_reference(sd: dict[str, torch.Tensor], spec: ModelSpec) -> ReferenceSwinIR:
    ref = ReferenceSwinIR(**spec.kwargs())
    ref.load_state_dict(sd, strict=True)  # raises on any missing or unexpected key
    return ref.eval()


def test_save_pth_loads_strictly_into_the_original_architecture(golden: Path, golden_index: dict, tmp_path) -> None:
    entry = golden_index["pixelshuffle_x2"]
    torch.manual_seed(0)
    model = SwinIR(**entry["config"]).eval()
    path = swinir.save(model, tmp_path / "x2.pth")
    raw = torch.load(path, weights_only=True)
    released = torch.load(golden / entry["checkpoint"], weights_only=True)["params"]
    assert set(raw["params"]) == set(released)
    assert raw[SPEC_KEY]["img_size"] == 16
    masks = [v for k, v in raw["params"].items() if k.endswith("attn_mask")]
    assert len(masks) == 2 and masks[0].data_ptr() == masks[1].data_ptr()  # stored once, shared by the blocks
    ref = strict_reference(raw["params"], model.spec)
    x = torch.rand(1, 3, 16, 24)
    with torch.no_grad():
        assert torch.allclose(ref(x), model(x), atol=1e-5)
    # our loader ignores the buffers on read and gives back the same model
    again = swinir.load(path)
    assert again.spec == model.spec
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in again.state_dict().items())


def test_saving_a_plain_state_dict_detects_its_spec(tmp_path: Path) -> None:
    model = tiny_model(upscale=3)
    path = swinir.save(model.state_dict(), tmp_path / "sd.pth", key="params_ema")
    raw = torch.load(path, weights_only=True)
    assert raw[SPEC_KEY]["upscale"] == 3
    assert raw[SPEC_KEY]["img_size"] == 64  # not in the weights: the original's default
    strict_reference(raw["params_ema"], ModelSpec.from_kwargs(raw[SPEC_KEY]))


def test_img_size_the_original_cannot_be_built_with_is_rounded(tmp_path: Path) -> None:
    model = tiny_model(img_size=20)  # not a window multiple: the original's mask construction would fail
    assert layout_img_size(model.spec) == 24
    raw = torch.load(swinir.save(model, tmp_path / "m.pth"), weights_only=True)
    assert raw["params"]["layers.0.residual_group.blocks.1.attn_mask"].shape == (9, 64, 64)
    assert raw[SPEC_KEY]["img_size"] == 24
    strict_reference(raw["params"], swinir.load(tmp_path / "m.pth").spec)


def test_safetensors_keep_only_weights_and_say_so(tmp_path: Path) -> None:
    model = tiny_model()
    path = swinir.save(model, tmp_path / "m.safetensors")
    with safe_open(str(path), framework="pt") as f:
        keys, meta = set(f.keys()), f.metadata()
    assert not any(k.endswith(("attn_mask", "relative_position_index")) for k in keys)
    assert meta[DERIVED_META].startswith("omitted")
    assert swinir.load(path).spec == model.spec


@pytest.mark.parametrize(
    "kw",
    [
        {"upscale": 2, "upsampler": "pixelshuffledirect", "img_size": 16},
        {"upscale": 4, "upsampler": "pixelshuffle", "img_size": 32, "depths": [2, 2, 2], "num_heads": [2, 2, 3]},
        {"upscale": 1, "upsampler": "", "img_size": 14, "window_size": 7, "in_chans": 1, "img_range": 255.0},
    ],
)
def test_spandrel_detects_our_files(kw: dict, tmp_path: Path, spandrel_swinir: type) -> None:
    arch = spandrel_swinir()
    model = tiny_model(**kw)
    sd = torch.load(swinir.save(model, tmp_path / "m.pth"), weights_only=True)["params"]
    assert arch.detect(sd)
    desc = arch.load(dict(sd))  # builds spandrel's SwinIR and loads the state dict strictly
    hp = desc.model.hyperparameters
    assert desc.scale == model.spec.upscale
    assert (hp["embed_dim"], list(hp["depths"]), hp["window_size"]) == (
        12,
        list(model.spec.depths),
        kw.get("window_size", 8),
    )
    assert hp["img_size"] == kw["img_size"]
    x = torch.rand(1, model.spec.in_chans, 16, 16)
    with torch.no_grad():
        assert torch.allclose(desc.model.eval()(x), model(x), atol=1e-4)


def test_the_shipped_safetensors_say_they_omit_the_derived_buffers() -> None:
    from importlib import resources

    files = sorted(p for p in (resources.files("swinir") / "builtin").iterdir() if p.name.endswith(".safetensors"))
    assert len(files) == 3
    for f in files:
        with safe_open(str(f), framework="pt") as st:
            assert st.metadata()[DERIVED_META].startswith("omitted"), f.name
