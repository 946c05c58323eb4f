"""Stored ``swinir_spec`` metadata is a hint checked against the tensors, never trusted over them.

Regression tests for issue 12 item 3 (metadata built the model before the weights were checked) and
item 6 (a torch UserWarning leaked when a protocol-4 pickle was refused).
"""

from __future__ import annotations

import json
import pickle
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from safetensors.torch import save_file

import swinir
from swinir import checkpoint
from swinir.cli import main
from swinir.errors import CheckpointError
from swinir.model import SwinIR
from swinir.spec import MAX_WINDOW, SpecError, detect, merge_metadata
from test_checkpoint import SMALL  # the small released-layout configuration these checks build on


def _weights() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return {k: v for k, v in SwinIR(**SMALL).state_dict().items()}


def _pth(path: Path, spec: Any) -> Path:
    torch.save({"params": _weights(), checkpoint.SPEC_KEY: spec}, path)
    return path


def _spec(**changes: Any) -> dict[str, Any]:
    return {**swinir.detect(_weights()).to_dict(), **changes}


def _refused(path: Path, *needles: str) -> str:
    with pytest.raises(CheckpointError) as exc:
        swinir.load(path)
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith(str(path)), msg
    for n in needles:
        assert n in msg, msg
    return msg


@pytest.mark.parametrize(
    "field,value",
    [("embed_dim", 4096), ("window_size", 1024), ("depths", [6, 6, 6, 6]), ("num_heads", [8, 8]), ("upscale", 4)],
)
def test_metadata_that_disagrees_with_the_weights_is_refused_before_building(
    tmp_path: Path, field: str, value: Any
) -> None:
    path = _pth(tmp_path / "m.pth", _spec(**{field: value}))
    _refused(path, f"metadata says {field}=", "but the weights have")


def test_metadata_disagreement_allocates_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _pth(tmp_path / "m.pth", _spec(embed_dim=4096))
    built: list[dict[str, Any]] = []
    original = SwinIR.__init__

    def spy(self: SwinIR, *args: Any, **kwargs: Any) -> None:
        built.append({"meta": torch.empty(0).device.type == "meta", **kwargs})
        original(self, *args, **kwargs)

    monkeypatch.setattr(SwinIR, "__init__", spy)
    _refused(path, "embed_dim=4096")
    assert all(b["meta"] for b in built), "a model was allocated before the metadata was checked"


def test_metadata_with_wrong_types_is_one_checkpoint_error(tmp_path: Path) -> None:
    for bad in ({"embed_dim": "big"}, {"depths": "6,6"}, {"img_range": float("nan")}, {"window_size": True}, [1, 2]):
        spec = _spec(**bad) if isinstance(bad, dict) else bad
        _refused(_pth(tmp_path / "m.pth", spec), "metadata")


def test_metadata_that_is_not_json_is_one_checkpoint_error(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    save_file(_weights(), str(path), metadata={checkpoint.SPEC_KEY: "{not json"})
    _refused(path, "not valid JSON")
    assert main(["info", str(path)]) == 1


def test_absurd_img_size_in_metadata_is_refused(tmp_path: Path) -> None:
    _refused(_pth(tmp_path / "m.pth", _spec(img_size=10**6)), "img_size=1000000")


def test_metadata_completes_what_shapes_cannot_show(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    save_file(_weights(), str(path), metadata={checkpoint.SPEC_KEY: json.dumps(_spec(img_range=255.0, img_size=48))})
    model = swinir.load(path)
    assert model.spec.img_range == 255.0 and model.spec.img_size == 48


def test_window_too_large_in_the_weights_themselves_is_refused() -> None:
    shapes = {k: SimpleNamespace(shape=tuple(v.shape)) for k, v in _weights().items()}
    w = MAX_WINDOW + 1
    for i in range(2):
        key = f"layers.{i}.residual_group.blocks.0.attn.relative_position_bias_table"
        shapes[key] = SimpleNamespace(shape=((2 * w - 1) ** 2, shapes[key].shape[1]))
    with pytest.raises(SpecError, match=f"window {w} is larger than {MAX_WINDOW}"):
        detect(shapes)


def test_merge_metadata_keeps_the_detected_shape_fields() -> None:
    detected = detect(_weights())
    assert merge_metadata(detected, _spec()) == detected
    with pytest.raises(SpecError, match="mlp_ratio"):
        merge_metadata(detected, _spec(mlp_ratio=4.0))


def test_refused_protocol4_pickle_emits_no_warning(tmp_path: Path) -> None:
    path = tmp_path / "p4.pth"
    path.write_bytes(pickle.dumps({"params": {"a": [1.0]}}, protocol=4))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(CheckpointError):
            swinir.load(path)
    assert not [w for w in caught if issubclass(w.category, UserWarning)], [str(w.message) for w in caught]


def test_checkpoint_errors_do_not_quote_file_bytes(tmp_path: Path) -> None:
    secret = tmp_path / "notes.txt"
    secret.write_text("api_key=SECRET-0123456789\n")
    link = tmp_path / "model.pth"
    link.symlink_to(secret)
    with pytest.raises(CheckpointError) as exc:
        swinir.load(link)
    assert "SECRET" not in str(exc.value) and "api_key" not in str(exc.value), str(exc.value)
    assert "neither a torch zip archive nor a pickle" in str(exc.value)
