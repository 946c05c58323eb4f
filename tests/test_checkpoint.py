"""Checkpoint reading and writing: wrappers, prefixes, formats, strictness, and one-line errors."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import swinir
from swinir import checkpoint
from swinir.checkpoint import read_state_dict, save, unwrap, with_derived
from swinir.cli import main
from swinir.errors import CheckpointError
from swinir.model import SwinIR

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
    upsampler="pixelshuffledirect",
    resi_connection="1conv",
)


class NotAWeight:
    """A custom object: pickling it needs arbitrary code at load time."""

    def __init__(self) -> None:
        self.note = "trust me"


def _model(seed: int = 0, **overrides: Any) -> SwinIR:
    torch.manual_seed(seed)
    return SwinIR(**{**SMALL, **overrides}).eval()


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# -- unwrapping -----------------------------------------------------------------------------------------


def test_params_ema_is_preferred_over_params() -> None:
    ema, raw = _model(1), _model(2)
    obj = {"params": raw.state_dict(), "params_ema": ema.state_dict(), "iter": 1000}
    sd, key = unwrap(obj)
    assert key == "params_ema"
    assert torch.equal(sd["conv_first.weight"], ema.state_dict()["conv_first.weight"])
    assert _same_weights(swinir.load(obj), ema)
    # order in the file does not matter
    assert unwrap({"params_ema": ema.state_dict(), "params": raw.state_dict()})[1] == "params_ema"


@pytest.mark.parametrize("wrapper", ["params", "state_dict", "model", ""])
def test_wrappers_and_raw_dicts(wrapper: str, tmp_path: Path) -> None:
    model = _model(3)
    sd = model.state_dict()
    obj = {wrapper: sd, "optimizer": {"lr": 1e-4}, "epoch": 7} if wrapper else dict(sd)
    got, key = unwrap(obj)
    assert key == wrapper and got.keys() == sd.keys()
    path = tmp_path / "ckpt.pth"
    torch.save(obj, path)
    assert _same_weights(swinir.load(path), model)


@pytest.mark.parametrize("prefix", ["module.", "module.module.", "_orig_mod."])
def test_dataparallel_and_compile_prefixes_are_stripped(prefix: str) -> None:
    model = _model(4)
    obj = {"params": {prefix + k: v for k, v in model.state_dict().items()}}
    sd, _ = unwrap(obj)
    assert all(not k.startswith(("module.", "_orig_mod.")) for k in sd)
    assert _same_weights(swinir.load(obj), model)


def test_derived_buffers_are_dropped_before_strict_loading(golden: Path, golden_index: dict) -> None:
    path = golden / golden_index["pixelshuffle_x2"]["checkpoint"]
    raw = torch.load(path, weights_only=True)["params"]
    sd, spec = read_state_dict(path)
    dropped = set(raw) - set(sd)
    assert dropped and all(k.endswith(("attn_mask", "relative_position_index")) for k in dropped)
    assert spec.img_size == golden_index["pixelshuffle_x2"]["config"]["img_size"]


# -- saving and formats ---------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".pth", ".pt", ".safetensors"])
def test_save_load_round_trip(suffix: str, tmp_path: Path) -> None:
    model = _model(5, upsampler="", upscale=1, window_size=7, img_size=21, img_range=255.0, in_chans=1)
    path = save(model, tmp_path / f"m{suffix}")
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"m{suffix}"]  # no temp file left behind
    loaded = swinir.load(path)
    assert _same_weights(loaded, model)
    assert loaded.spec == model.spec  # img_size and img_range travel in our metadata
    assert not loaded.training
    x = torch.rand(1, 1, 9, 10)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_pth_uses_the_released_layout(tmp_path: Path) -> None:
    model = _model(6)
    path = save(model, tmp_path / "m.pth", key="params_ema")
    raw = torch.load(path, weights_only=True)
    assert "params_ema" in raw
    assert raw["params_ema"].keys() == with_derived(model.state_dict(), model.spec).keys()
    assert raw["params_ema"].keys() > model.state_dict().keys()  # + relative_position_index, attn_mask
    plain = save(model.state_dict(), tmp_path / "plain.pth")
    assert list(torch.load(plain, weights_only=True)) == ["params", "swinir_spec"]  # the spec detected


def test_save_replaces_an_existing_file_atomically(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    save(_model(7), path)
    save(_model(8), path)
    assert _same_weights(swinir.load(path), _model(8))
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


def test_weights_only_is_the_default() -> None:
    for fn in (checkpoint.load, checkpoint.read_state_dict, checkpoint.read_file):
        assert inspect.signature(fn).parameters["weights_only"].default is True


# -- strictness and errors ------------------------------------------------------------------------------


def test_missing_weight_is_reported(tmp_path: Path) -> None:
    sd = dict(_model(9).state_dict())
    del sd["layers.1.residual_group.blocks.1.mlp.fc2.bias"]
    path = tmp_path / "missing.pth"
    torch.save({"params": sd}, path)
    with pytest.raises(CheckpointError, match=r"missing.*layers\.1\.residual_group\.blocks\.1\.mlp\.fc2\.bias") as err:
        swinir.load(path)
    assert str(path) in str(err.value)


def test_unexpected_weight_is_reported() -> None:
    sd = dict(_model(10).state_dict())
    sd["extra_head.weight"] = torch.zeros(3)
    with pytest.raises(CheckpointError, match=r"unexpected.*extra_head\.weight"):
        swinir.load(sd)


def test_weight_of_the_wrong_shape_is_reported(tmp_path: Path) -> None:
    """Detection reads layer 0; a later layer with another shape must still give a clear error."""
    sd = dict(_model(11).state_dict())
    sd["layers.1.residual_group.blocks.1.mlp.fc1.weight"] = torch.zeros(30, 12)
    path = tmp_path / "wrong_shape.pth"
    torch.save({"params": sd}, path)
    with pytest.raises(CheckpointError, match="wrong_shape.pth"):
        swinir.load(path)
    assert main(["info", str(path)]) == 1


def _write_bad_files(folder: Path, golden: Path, golden_index: dict) -> dict[str, Path]:
    files: dict[str, Path] = {}
    p = folder / "notes.pth"
    p.write_text("these are my notes, not a checkpoint\n")
    files["text renamed .pth"] = p

    data = (golden / golden_index["pixelshuffle_x4"]["checkpoint"]).read_bytes()
    p = folder / "half.pth"
    p.write_bytes(data[: len(data) // 2])
    files["truncated .pth"] = p

    p = folder / "code.pth"
    torch.save({"params": _model(12).state_dict(), "extra": NotAWeight()}, p)
    files["pickle needing code"] = p

    p = folder / "garbage.safetensors"
    p.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all" + bytes(range(256)))
    files["garbage safetensors"] = p

    p = folder / "cnn.pth"
    torch.save({"params": nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 3, 3)).state_dict()}, p)
    files["non-SwinIR state dict"] = p

    p = folder / "random.pth"
    p.write_bytes(bytes((i * 151 + 7) % 251 for i in range(4096)))  # deterministic noise
    files["random bytes .pth"] = p

    p = folder / "empty.pth"
    p.write_bytes(b"")
    files["empty file"] = p

    p = folder / "list.pt"
    torch.save([torch.zeros(2)], p)
    files["not a dict"] = p

    p = folder / "no_tensors.pth"
    torch.save({"params": {"lr": 0.1}, "epoch": 3}, p)
    files["dict without tensors"] = p
    return files


BAD = [
    "text renamed .pth",
    "truncated .pth",
    "pickle needing code",
    "garbage safetensors",
    "random bytes .pth",
    "non-SwinIR state dict",
    "empty file",
    "not a dict",
    "dict without tensors",
]
EXPECTED_WORDS = {
    "text renamed .pth": "neither a torch zip archive nor a pickle",
    "truncated .pth": "truncated",
    "pickle needing code": f"needs arbitrary code to load ({NotAWeight.__module__}.NotAWeight)",
    "random bytes .pth": "neither a torch zip archive nor a pickle",
    "garbage safetensors": "safetensors",
    "non-SwinIR state dict": "not the weights of any known architecture (tried HAT, Swin2SR, SwinIR",
    "empty file": "empty",
    "not a dict": "not a dict",
    "dict without tensors": "without tensors",
}


@pytest.mark.parametrize("kind", BAD)
def test_bad_files_give_one_clear_line(
    kind: str, tmp_path: Path, golden: Path, golden_index: dict, capsys: pytest.CaptureFixture
) -> None:
    path = _write_bad_files(tmp_path, golden, golden_index)[kind]
    with pytest.raises(CheckpointError) as err:
        swinir.load(path)
    msg = str(err.value)
    assert msg.startswith(str(path)) and "expected a SwinIR-family checkpoint" in msg, msg
    assert EXPECTED_WORDS[kind] in msg, msg
    assert "\n" not in msg and len(msg) < 400

    capsys.readouterr()
    assert main(["info", str(path)]) == 1
    out, errtext = capsys.readouterr()
    lines = errtext.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(path) in lines[0], errtext
    assert "Traceback" not in errtext and out == ""


def test_trusted_pickle_loads_with_weights_only_false(tmp_path: Path) -> None:
    model = _model(12)
    path = tmp_path / "code.pth"
    torch.save({"params": model.state_dict(), "extra": NotAWeight()}, path)
    with pytest.raises(CheckpointError, match="weights_only=False"):
        swinir.load(path)
    assert _same_weights(swinir.load(path, weights_only=False), model)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        swinir.load(tmp_path / "absent.pth")
    with pytest.raises(CheckpointError, match="folder"):
        swinir.load(tmp_path)


def test_cli_info_on_a_good_checkpoint(golden: Path, golden_index: dict, capsys: pytest.CaptureFixture) -> None:
    path = golden / golden_index["nearestconv_x4_3conv"]["checkpoint"]
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    for expected in ("real_sr", "x4", "nearest+conv", "3conv", "params_ema", "206,679"):
        assert expected in out
