"""The network against the original release code: golden outputs, released key layout, any input size."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import swinir
from swinir.checkpoint import DERIVED_SUFFIXES
from swinir.model import SwinIR, shift_mask

GOLDEN = (
    "pixelshuffle_x2",
    "pixelshuffle_x3",
    "pixelshuffle_x4",
    "pixelshuffle_x8",
    "pixelshuffledirect_x2",
    "pixelshuffledirect_x3",
    "pixelshuffledirect_x4",
    "nearestconv_x4_1conv",
    "nearestconv_x4_3conv",
    "denoise_gray",
    "denoise_color",
    "jpeg_gray_w7",
    "jpeg_color_w7",
)
RELEASED = (
    "classical_x2",
    "classical_x3",
    "classical_x4",
    "classical_x8",
    "lightweight_x2",
    "lightweight_x3",
    "lightweight_x4",
    "real_M_x4",
    "real_L_x4",
    "gray_dn",
    "color_dn",
    "gray_jpeg",
    "color_jpeg",
)
TOLERANCE = 1e-4
_models: dict[str, SwinIR] = {}


def _golden_model(golden: Path, index: dict, name: str) -> SwinIR:
    if name not in _models:
        _models[name] = swinir.load(golden / index[name]["checkpoint"])
    return _models[name]


def test_golden_set_is_complete(golden_index: dict) -> None:
    assert set(golden_index) == set(GOLDEN)
    assert all(len(v["cases"]) == 3 for v in golden_index.values())


@pytest.mark.parametrize("case", range(3))
@pytest.mark.parametrize("name", GOLDEN)
def test_golden_output_matches_original(golden: Path, golden_index: dict, name: str, case: int) -> None:
    """Loaded without being told its configuration, each network reproduces the original's output."""
    model = _golden_model(golden, golden_index, name)
    data = torch.load(golden / golden_index[name]["cases"][case]["file"], weights_only=True)
    with torch.no_grad():
        out = model(data["input"])
    assert out.shape == data["output"].shape
    err = (out - data["output"]).abs().max().item()
    print(f"\ngolden {name} case{case} input {tuple(data['input'].shape)}: max abs err {err:.3e}")
    assert err < TOLERANCE


@pytest.mark.parametrize("name", GOLDEN)
def test_detected_spec_equals_golden_config(golden: Path, golden_index: dict, name: str) -> None:
    entry = golden_index[name]
    model = _golden_model(golden, golden_index, name)
    assert model.spec.kwargs() == entry["config"]
    assert not model.training
    # the model describes itself
    cfg = entry["config"]
    assert (model.scale, model.in_chans, model.window_size) == (cfg["upscale"], cfg["in_chans"], cfg["window_size"])
    assert model.task == {
        "pixelshuffle": "classical_sr",
        "pixelshuffledirect": "lightweight_sr",
        "nearest+conv": "real_sr",
    }.get(cfg["upsampler"], "jpeg" if "jpeg" in name else "denoise")
    assert model.task in model.spec.describe()


@pytest.mark.parametrize("name", RELEASED)
def test_parameter_names_and_shapes_match_the_release(released_shapes: dict, name: str) -> None:
    entry = released_shapes[name]
    with torch.device("meta"):
        model = SwinIR(**entry["config"])
    want = {k: tuple(v) for k, v in entry["state_dict"].items() if not k.endswith(DERIVED_SUFFIXES)}
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert got == want
    assert sum(p.numel() for p in model.parameters()) == entry["parameters"]
    # the derived tables exist as buffers but are not persistent state
    buffers = [k for k, _ in model.named_buffers() if k.endswith(DERIVED_SUFFIXES)]
    assert buffers and not any(k.endswith(DERIVED_SUFFIXES) for k in model.state_dict())
    assert len([k for k in entry["state_dict"] if k.endswith(DERIVED_SUFFIXES)]) > 0


def test_many_input_sizes_in_a_row(golden: Path, golden_index: dict) -> None:
    """Sizes below one window, odd sizes and repeats all work; cached masks never leak between sizes."""
    for name, scale, chans in (("pixelshuffle_x3", 3, 3), ("jpeg_gray_w7", 1, 1), ("nearestconv_x4_3conv", 4, 3)):
        model = _golden_model(golden, golden_index, name)
        torch.manual_seed(1)
        sizes = [(3, 5), (1, 1), (8, 8), (19, 27), (17, 9), (7, 7), (3, 5), (19, 27)]
        inputs = {s: torch.rand(1, chans, *s) for s in set(sizes)}
        first: dict[tuple[int, int], torch.Tensor] = {}
        with torch.no_grad():
            for s in sizes:
                out = model(inputs[s])
                assert out.shape == (1, chans, s[0] * scale, s[1] * scale), (name, s)
                assert torch.isfinite(out).all()
                if s in first:
                    assert torch.equal(out, first[s]), (name, s)
                first[s] = out
            fresh = swinir.load(golden / golden_index[name]["checkpoint"])
            for s in ((17, 9), (1, 1)):
                assert torch.allclose(fresh(inputs[s]), first[s], atol=1e-6, rtol=0), (name, s)


def test_batch_and_dtype_round_trip(golden: Path, golden_index: dict) -> None:
    model = _golden_model(golden, golden_index, "pixelshuffledirect_x2")
    x = torch.rand(3, 3, 10, 13)
    with torch.no_grad():
        batched = model(x)
        single = torch.cat([model(x[i : i + 1]) for i in range(3)])
    assert batched.shape == (3, 3, 20, 26)
    assert torch.allclose(batched, single, atol=1e-5, rtol=0)


def test_attn_mask_from_another_img_size_still_loads(golden: Path, golden_index: dict, tmp_path: Path) -> None:
    """A checkpoint trained at img_size 48 carries (36, N, N) masks; they are ignored and rebuilt per input."""
    name = "pixelshuffle_x2"
    raw = torch.load(golden / golden_index[name]["checkpoint"], weights_only=True)
    sd = dict(raw["params"])
    ws = golden_index[name]["config"]["window_size"]
    masks = [k for k in sd if k.endswith("attn_mask")]
    assert masks and all(sd[k].shape[0] == 4 for k in masks)  # made for img_size 16
    for k in masks:
        sd[k] = shift_mask(48, 48, ws, ws // 2)
    path = tmp_path / "other_img_size.pth"
    torch.save({"params": sd}, path)
    model = swinir.load(path)
    assert model.spec.img_size == 48
    data = torch.load(golden / golden_index[name]["cases"][0]["file"], weights_only=True)
    with torch.no_grad():
        assert (model(data["input"]) - data["output"]).abs().max().item() < TOLERANCE


def test_load_state_dict_strict_accepts_derived_buffers(golden: Path, golden_index: dict) -> None:
    name = "nearestconv_x4_1conv"
    raw = torch.load(golden / golden_index[name]["checkpoint"], weights_only=True)[golden_index[name]["checkpoint_key"]]
    assert any(k.endswith("relative_position_index") for k in raw) and any(k.endswith("attn_mask") for k in raw)
    model = SwinIR(**golden_index[name]["config"]).eval()
    result = model.load_state_dict(raw, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    data = torch.load(golden / golden_index[name]["cases"][2]["file"], weights_only=True)
    with torch.no_grad():
        assert (model(data["input"]) - data["output"]).abs().max().item() < TOLERANCE
    # a real weight missing is still reported by strict loading
    del raw["conv_hr.bias"]
    with pytest.raises(RuntimeError, match="conv_hr.bias"):
        SwinIR(**golden_index[name]["config"]).load_state_dict(raw, strict=True)


def test_training_mode_matches_eval_numerically(golden: Path, golden_index: dict) -> None:
    """Dropout/drop-path are identities here, so train() changes nothing numerically (no stale bias cache)."""
    model = swinir.load(golden / golden_index["denoise_color"]["checkpoint"])
    x = torch.rand(1, 3, 12, 20)
    with torch.no_grad():
        ref = model(x)
    model.train()
    out = model(x)
    assert torch.allclose(out, ref, atol=1e-6, rtol=0)
    out.mean().backward()
    assert model.conv_first.weight.grad is not None


def test_flops_of_one_block_by_hand() -> None:
    """classical M's block (dim 180, window 8, MLP 2x) on a 64x64 map, counted by hand."""
    from swinir.model.flops import block

    tokens = 64 * 64
    qkv = 2 * tokens * 180 * 540
    scores = 2 * 4096 * 64 * 180  # each token against the 64 of its window, 6 heads x 30 dims
    weighted = 2 * 4096 * 64 * 180
    proj = 2 * tokens * 180 * 180
    mlp = 2 * tokens * 180 * 360 * 2
    assert block(180, 8, 2.0, tokens) == qkv + scores + weighted + proj + mlp == 2_312_110_080


@pytest.mark.parametrize(
    "kw",
    [
        dict(upscale=2, upsampler="pixelshuffle"),
        dict(upscale=3, upsampler="pixelshuffle"),
        dict(upscale=4, upsampler="pixelshuffledirect"),
        dict(upscale=4, upsampler="nearest+conv", resi_connection="3conv"),
        dict(upscale=1, upsampler=""),
        dict(upscale=2, upsampler="pixelshuffle", resi_connection="1x1"),  # the ablation variants
        dict(upscale=1, upsampler="", resi_connection="none"),
    ],
)
def test_flops_equal_torch_flop_counter_on_the_reference(kw: dict) -> None:
    """The counter against torch's FlopCounterMode on the plain reference forward (every conv and matmul),
    at a size that needs padding to the window."""
    from torch.utils.flop_counter import FlopCounterMode

    from swinir.model import flops
    from swinir.reference import ReferenceSwinIR

    cfg = dict(img_size=16, window_size=8, embed_dim=24, depths=[2, 1], num_heads=[2, 3], mlp_ratio=2, **kw)
    model = SwinIR(**cfg)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        ReferenceSwinIR(**cfg).eval()(torch.rand(1, 3, 16, 24))
    assert flops(model, 13, 21) == flops(model.spec, 16, 24) == counter.get_total_flops() > 0


def test_unknown_keyword_arguments_are_rejected() -> None:
    with pytest.raises(TypeError, match="embed_dimm"):
        SwinIR(embed_dimm=60)  # type: ignore[call-arg]


def test_execution_path_is_chosen_on_placement() -> None:
    """The backend's allowance follows .to()/.bfloat16(); a forward reads it instead of re-checking."""
    model = SwinIR(upscale=1, embed_dim=12, depths=[2], num_heads=[2], window_size=8, mlp_ratio=2)
    assert model.placement.cpu and model.placement.dtype == torch.float32 and model.placement.kernel_shapes
    model.bfloat16()
    assert model.placement.dtype == torch.bfloat16
    model.float()
    assert model.placement.dtype == torch.float32
    wide = SwinIR(upscale=1, embed_dim=72, depths=[2], num_heads=[1], window_size=8, mlp_ratio=2)
    assert not wide.placement.kernel_shapes  # head dim 72 is past the C kernel's 32
