"""spec.detect: every hyperparameter from key names and shapes alone; clear SpecError otherwise."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from torch import nn

from swinir.model import SwinIR
from swinir.spec import ModelSpec, SpecError, detect

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
EXPECTED_TASK = {
    "classical": "classical_sr",
    "lightweight": "lightweight_sr",
    "real": "real_sr",
    "gray_dn": "denoise",
    "color_dn": "denoise",
    "gray_jpeg": "jpeg",
    "color_jpeg": "jpeg",
}


def _shapes_only(state_dict: dict[str, list[int]]) -> dict[str, Any]:
    """Objects that only have a .shape: detect must not need tensor data (a pure function of shapes)."""
    return {k: SimpleNamespace(shape=tuple(v)) for k, v in state_dict.items()}


SMALL = dict(
    upscale=2,
    in_chans=3,
    img_size=16,
    window_size=8,
    img_range=1.0,
    depths=[2, 2],
    embed_dim=12,
    num_heads=[2, 3],
    mlp_ratio=2,
    upsampler="pixelshuffle",
    resi_connection="1conv",
)


def _small_model(**overrides: Any) -> SwinIR:
    with torch.device("meta"):
        return SwinIR(**{**SMALL, **overrides})


def _small_sd(**overrides: Any) -> dict[str, torch.Tensor]:
    return dict(_small_model(**overrides).state_dict())


@pytest.mark.parametrize("name", RELEASED)
def test_detect_every_released_configuration(released_shapes: dict, name: str) -> None:
    entry = released_shapes[name]
    spec = detect(_shapes_only(entry["state_dict"]))
    assert spec == ModelSpec.from_kwargs(entry["config"])
    assert spec.kwargs() == {**entry["config"], "mlp_ratio": float(entry["config"]["mlp_ratio"])}
    key = next(k for k in EXPECTED_TASK if name.startswith(k))
    assert spec.task == EXPECTED_TASK[key]
    if spec.task == "jpeg":
        assert (spec.window_size, spec.img_range, spec.img_size) == (7, 255.0, 126)


@pytest.mark.parametrize("name", RELEASED)
def test_detect_on_meta_tensors_without_derived_buffers(released_shapes: dict, name: str) -> None:
    """A state dict saved without attn_mask (as we save) still detects everything but img_size."""
    entry = released_shapes[name]
    sd = {k: torch.empty(v, device="meta") for k, v in entry["state_dict"].items() if not k.endswith("attn_mask")}
    spec = detect(sd)
    assert spec.with_(img_size=entry["config"]["img_size"]) == ModelSpec.from_kwargs(entry["config"])


@pytest.mark.parametrize(
    "overrides",
    [
        dict(upsampler="pixelshuffle", upscale=3),
        dict(upsampler="pixelshuffle", upscale=8, depths=[2], num_heads=[2]),
        dict(upsampler="pixelshuffledirect", upscale=4, in_chans=1),
        dict(upsampler="nearest+conv", upscale=2),
        dict(upsampler="nearest+conv", upscale=4, resi_connection="3conv", embed_dim=16, num_heads=[2, 4]),
        dict(upsampler="", upscale=1, window_size=7, img_size=14, img_range=255.0, in_chans=1),
        dict(upsampler="", upscale=1, mlp_ratio=4, depths=[2, 4, 2], num_heads=[2, 2, 4]),
        dict(upsampler="", upscale=1, mlp_ratio=1.5),
        dict(upsampler="pixelshuffle", upscale=2, window_size=4),
    ],
)
def test_detect_round_trips_constructor_arguments(overrides: dict) -> None:
    model = _small_model(**overrides)
    # img_size is only recoverable from attn_mask buffers, which state_dict() does not hold
    assert detect(dict(model.state_dict())) == model.spec.with_(img_size=64)
    with_masks = {
        **model.state_dict(),
        "layers.0.residual_group.blocks.1.attn_mask": torch.empty(
            ((48 // model.window_size) ** 2, model.window_size**2, model.window_size**2), device="meta"
        ),
    }
    assert detect(with_masks) == model.spec.with_(img_size=48 // model.window_size * model.window_size)


def test_spec_helpers_round_trip() -> None:
    spec = detect(_small_sd(upsampler="pixelshuffledirect", upscale=3))
    assert ModelSpec.from_kwargs(spec.kwargs()) == spec
    assert ModelSpec.from_kwargs(json.loads(json.dumps(spec.to_dict()))) == spec
    assert (spec.scale, spec.out_chans, spec.color, spec.task) == (3, 3, "color", "lightweight_sr")
    assert "lightweight_sr x3" in spec.describe()
    gray = detect(_small_sd(upsampler="", upscale=1, in_chans=1))
    assert (gray.scale, gray.color, gray.task) == (1, "gray", "denoise")


def _cnn_state_dict() -> dict[str, torch.Tensor]:
    net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 3, 3, padding=1))
    return dict(net.state_dict())


def _without(sd: dict, pred: Any) -> dict:
    return {k: v for k, v in sd.items() if not pred(k)}


def _with(sd: dict, **shapes: tuple[int, ...]) -> dict:
    out = dict(sd)
    for k, shape in shapes.items():
        out[k.replace("__", ".")] = torch.empty(shape, device="meta")
    return out


def _tables(sd: dict, rows: int) -> dict:
    """Every relative-position table resized to ``rows`` rows."""
    return {
        k: torch.empty((rows, v.shape[1]), device="meta") if k.endswith("relative_position_bias_table") else v
        for k, v in sd.items()
    }


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda sd: {}, "conv_first"),
        (lambda sd: _cnn_state_dict(), "conv_first"),
        (lambda sd: _without(sd, lambda k: k.startswith("layers.")), "residual_group"),
        (lambda sd: _without(sd, lambda k: k.startswith("layers.0.")), "numbered"),
        (lambda sd: _without(sd, lambda k: k.startswith("layers.1.residual_group.blocks.0.attn.relative")), "missing"),
        (lambda sd: _tables(sd, 224), "window"),
        (lambda sd: _tables(sd, 196), "window"),
        (lambda sd: _without(sd, lambda k: k.startswith("conv_after_body")), "conv_after_body"),
        (lambda sd: _with(sd, upsample__0__weight=(320, 64, 3, 3)), "4x or 9x"),
    ],
    ids=[
        "empty",
        "cnn",
        "no-layers",
        "gap-in-layers",
        "no-bias-table",
        "non-square-table",
        "even-table-side",
        "no-conv-after-body",
        "bad-upsample",
    ],
)
def test_bad_state_dicts_raise_spec_error(make: Any, match: str) -> None:
    with pytest.raises(SpecError, match=match):
        detect(make(_small_sd()))


def test_bad_pixelshuffledirect_output_count() -> None:
    sd = _with(_small_sd(upsampler="pixelshuffledirect", upscale=2), upsample__0__weight=(13, 12, 3, 3))
    with pytest.raises(SpecError, match="scale"):
        detect(sd)
