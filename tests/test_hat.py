"""HAT's own pieces on small networks built here: detection reads back what was built (both residual
connections, other ratios), what the weights cannot show travels in our files' metadata, bad files and
bad arguments are one line. The golden and full-size comparisons are in test_family.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import swinir
from swinir import architectures
from swinir.model.hat import HAT, detect, overlap_position_index
from swinir.spec import SpecError

SMALL = {
    "embed_dim": 12,
    "depths": [2, 1],
    "num_heads": [2, 3],
    "window_size": 4,
    "upscale": 2,
    "mlp_ratio": 2.0,
    "squeeze_factor": 4,
}


def _small(**changes: object) -> HAT:
    torch.manual_seed(0)
    return HAT(**{**SMALL, "img_size": 16, **changes}).eval()  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"compress_ratio": 4, "squeeze_factor": 6, "resi_connection": "identity"},
        {"overlap_ratio": 1.0, "upscale": 3, "in_chans": 1},
    ],
    ids=["defaults", "ratios-identity", "overlap1-x3-gray"],
)
def test_detection_reads_back_what_was_built(changes: dict[str, object]) -> None:
    model = _small(**changes)
    spec = architectures.detect(model.state_dict())
    assert spec.architecture == "hat"
    assert spec.with_(img_size=16) == model.spec  # img_size does not show in the weights
    assert set(spec.extra["guessed"]) == {"img_range", "img_size", "conv_scale"}


def test_overlap_index_wraps_as_the_original_looks_it_up() -> None:
    """The original's OCAB index has negative entries that Python indexing wraps: ours keeps its values
    (for files) and looks up the same rows."""
    raw = overlap_position_index(4, 6)
    assert raw.min() < 0 and raw.shape == (16, 36)
    table = torch.randn(81, 2)
    model = _small()
    ocab = model.layers[0].residual_group.overlap_attn
    with torch.no_grad():
        ocab.relative_position_bias_table.copy_(table)
    want = table[raw.reshape(-1)].view(16, 36, 2).permute(2, 0, 1)
    assert torch.equal(ocab.position_bias()[0], want)


def test_conv_scale_travels_in_our_metadata(tmp_path: Path) -> None:
    """conv_scale does not show in the weights: detection takes the releases' 0.01, and our files say more."""
    model = _small(conv_scale=0.5)
    path = swinir.save(model, tmp_path / "hat.pth")
    again = swinir.load(path)
    assert again.spec.option("conv_scale") == 0.5 and again.spec == model.spec
    assert detect(torch.load(path, weights_only=True)["params"]).option("conv_scale") == 0.01
    x = torch.rand(1, 3, 11, 13)
    with torch.no_grad():
        assert torch.equal(again(x), model(x))


def test_a_hat_missing_its_overlap_attention_names_it() -> None:
    sd = {k: v for k, v in _small().state_dict().items() if ".overlap_attn.relative_position_bias_table" not in k}
    with pytest.raises(SpecError, match=r"closest HAT: missing layers\.0\.residual_group\.overlap_attn\."):
        architectures.detect(sd)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"overlap_ratio": 0.25}, "the overlap must be even"),
        ({"img_size": 4}, "img_size 4 <= window_size 4"),
        ({"upsampler": "pixelshuffledirect"}, "HAT's upsampler must be one of"),
    ],
)
def test_unsupported_arguments_are_one_line(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _small(**changes)
