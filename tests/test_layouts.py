"""Every file layout in circulation, for every registered architecture: one test per (architecture,
layout), each made from that architecture's golden checkpoint and checked against the authors' output.

Layouts: the wrappers of the releases and of common trainers (``params``, ``params_ema``, ``params-ema``,
``model``, ``state_dict``, ``net``, ``net_g``, ``model_state_dict``), a ``{'metadata': ..., 'params': ...}``
file, a flat state dict, a prefix on every key (``module.``, ``netG.``, and Lightning's ``state_dict`` of a
``netG`` attribute), derived buffers present, absent or made for another ``img_size``, fp16-stored weights,
safetensors with a metadata header, and a file with both ``params`` and ``params_ema``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file

import swinir
from swinir import architectures
from swinir.io import SwinIRNotice
from swinir.model.layout import shift_mask

WRAPPERS = ("params", "params_ema", "params-ema", "model", "state_dict", "net", "net_g", "model_state_dict")

Sd = dict[str, torch.Tensor]


def _other_img_size(sd: Sd) -> Sd:
    """Shift masks as a file made for twice the img_size carries them (4x the windows)."""
    out = dict(sd)
    for k, v in sd.items():
        if k.endswith("attn_mask"):
            windows, n = v.shape[0], v.shape[1]
            ws = math.isqrt(n)
            side = 2 * math.isqrt(windows) * ws
            out[k] = shift_mask(side, side, ws, ws // 2)
    return out


def _wrapped(wrapper: str, sd: Sd, derived: tuple[str, ...]) -> dict[str, Sd]:
    return {wrapper: sd}


# layout name -> (what to save, from the golden state dict and its architecture's derived suffixes;
# suffix; the wrapper the loader must report)
LAYOUTS: dict[str, tuple[Callable[[Sd, tuple[str, ...]], Any], str, str]] = {
    **{f"wrapper {w}": (partial(_wrapped, w), ".pth", w) for w in WRAPPERS},
    "metadata and params": (
        lambda sd, d: {"metadata": {"epoch": 7, "note": "trained"}, "params": sd},
        ".pth",
        "params",
    ),
    "flat": (lambda sd, d: dict(sd), ".pth", ""),
    "nested state_dict.params_ema": (lambda sd, d: {"state_dict": {"params_ema": sd}}, ".pth", "state_dict.params_ema"),
    "prefix module.": (lambda sd, d: {f"module.{k}": v for k, v in sd.items()}, ".pth", ""),
    "prefix netG.": (lambda sd, d: {"params": {f"netG.{k}": v for k, v in sd.items()}}, ".pth", "params"),
    "lightning netG.module.": (
        lambda sd, d: {"state_dict": {f"netG.module.{k}": v for k, v in sd.items()}, "epoch": 3},
        ".ckpt",
        "state_dict",
    ),
    "derived absent": (lambda sd, d: {k: v for k, v in sd.items() if not k.endswith(d)}, ".pth", ""),
    "derived for another img_size": (lambda sd, d: {"params": _other_img_size(sd)}, ".pth", "params"),
    "fp16 stored": (
        lambda sd, d: {"params": {k: v.half() if v.is_floating_point() else v for k, v in sd.items()}},
        ".pth",
        "params",
    ),
    "safetensors with metadata": (lambda sd, d: {k: v.clone().contiguous() for k, v in sd.items()}, ".safetensors", ""),
}


def _params() -> list[Any]:
    return [pytest.param(a, name, id=f"{a}-{name}") for a in architectures.names() for name in LAYOUTS]


def _golden(golden_of: Any, arch: str) -> tuple[Sd, dict[str, Any], Path]:
    path, entry, base = golden_of(arch)
    sd = torch.load(path, weights_only=True)[entry["checkpoint_key"]]
    return sd, entry, base


def _write(obj: Any, path: Path) -> Path:
    if path.suffix == ".safetensors":
        meta = {"format": "pt", "modelspec.title": "a community upload", "license": "apache-2.0"}
        save_file(obj, str(path), metadata=meta)
    else:
        torch.save(obj, path)
    return path


@pytest.mark.parametrize("arch, layout", _params())
def test_layout_loads_and_computes_the_authors_output(golden_of: Any, tmp_path: Path, arch: str, layout: str) -> None:
    sd, entry, base = _golden(golden_of, arch)
    make, suffix, wrapper = LAYOUTS[layout]
    derived = architectures.get(arch).derived
    path = _write(make(sd, derived), tmp_path / f"model{suffix}")
    with warnings.catch_warnings():
        warnings.simplefilter("error", SwinIRNotice)  # one weight set: nothing to say
        model = swinir.load(path)
    assert model.spec.architecture == arch and model.origin.wrapper == wrapper
    assert all(p.dtype == torch.float32 for p in model.parameters())  # fp16 files too: computed in fp32
    case = torch.load(base / entry["cases"][0]["file"], weights_only=True)
    with torch.no_grad():
        out = model(case["input"])
    if layout == "fp16 stored":  # the rounded weights, computed in fp32: equal to fp32 on rounded weights
        rounded = {k: v.half().float() if v.is_floating_point() else v for k, v in sd.items()}
        with torch.no_grad():
            want = swinir.load(rounded)(case["input"])
        assert torch.allclose(out, want, atol=1e-6)
        assert (out - case["output"]).abs().max().item() < 1e-2
    else:
        assert (out - case["output"]).abs().max().item() <= 1e-5


@pytest.mark.parametrize("arch", architectures.names())
def test_params_and_params_ema_say_which_was_used(golden_of: Any, tmp_path: Path, arch: str) -> None:
    """BasicSR and our trainer save both: the EMA weights are used, and the loader says so."""
    sd, entry, base = _golden(golden_of, arch)
    other = {k: v + 0.05 if v.is_floating_point() else v for k, v in sd.items()}
    path = _write({"params": other, "params_ema": sd}, tmp_path / "both.pth")
    with pytest.warns(SwinIRNotice, match=r"both\.pth holds params_ema and params: using params_ema$"):
        model = swinir.load(path)
    assert model.origin.wrapper == "params_ema" and model.origin.also == ("params",)
    case = torch.load(base / entry["cases"][0]["file"], weights_only=True)
    with torch.no_grad():
        assert (model(case["input"]) - case["output"]).abs().max().item() <= 1e-5


@pytest.mark.parametrize("arch", architectures.names())
def test_fp16_weights_stay_fp16_when_asked(golden_of: Any, tmp_path: Path, arch: str) -> None:
    sd, _, _ = _golden(golden_of, arch)
    path = _write({"params": {k: v.half() if v.is_floating_point() else v for k, v in sd.items()}}, tmp_path / "h.pth")
    model = swinir.load(path, dtype=torch.bfloat16)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
