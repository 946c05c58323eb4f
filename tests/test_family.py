"""The SwinIR family against its authors' code: golden outputs (golden/family), transformers' layout, the
released manifests' detection, full-size networks against spandrel 0.4.2's copies, and files we write
loading strictly into the authors' classes.

Entries of an architecture that is not registered (should the golden set gain one before its registry
entry lands) are strict expected failures: they must fail (so no other architecture claims those files),
and they turn into ordinary tests by themselves once ``swinir.architectures.REGISTRY`` has the architecture.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

import swinir
from swinir import architectures, kernels
from swinir.checkpoint import SPEC_KEY, with_derived
from swinir.errors import CheckpointError
from swinir.model.swin2sr import Swin2SR
from swinir.paths import released_configurations, shared_dir
from swinir.spec import ModelSpec, SpecError

TOL = 1e-5  # the issue's bound against the authors' outputs
SHARED = shared_dir()
FAMILY = SHARED / "golden" / "family" if SHARED else None


def _json(rel: str) -> dict[str, Any]:
    if FAMILY is None or not (FAMILY / rel).is_file():
        return {}
    data: dict[str, Any] = json.loads((FAMILY / rel).read_text())
    return data


INDEX = _json("models/index.json")
HF = _json("hf/index.json").get("models", {})
RELEASED = (
    released_configurations(SHARED, family=True)
    if FAMILY is not None and (FAMILY / "released_state_dicts.json").is_file()
    else {}
)


def _registered(arch: str) -> list[Any]:
    """Marks for a case of ``arch``: a strict expected failure while the registry lacks it."""
    missing = arch not in architectures.names()
    return [pytest.mark.xfail(missing, reason=f"{arch} is not registered yet", strict=True)]


def _cases() -> list[Any]:
    return [
        pytest.param(name, k, id=f"{name}-case{k}", marks=_registered(entry["architecture"]))
        for name, entry in INDEX.items()
        for k in range(len(entry["cases"]))
    ]


def _same_config(spec: ModelSpec, config: dict[str, Any], unseen: tuple[str, ...] = ()) -> None:
    """``spec`` has ``config``'s values, except the ``unseen`` keys (what the file cannot show)."""
    kw = spec.kwargs()
    for key, want in config.items():
        if key in unseen:
            continue
        got = kw.get(key, getattr(spec, key, None))
        got = list(got) if isinstance(got, tuple) else got
        assert got == want or (key == "upscale" and not config.get("upsampler")), (key, got, want)


def test_golden_family_is_complete() -> None:
    if not INDEX:
        pytest.skip("golden/family is absent (../shared or $SWINIR_SHARED)")
    upsamplers = {e["config"]["upsampler"] for e in INDEX.values() if e["architecture"] == "swin2sr"}
    assert upsamplers == {"pixelshuffle", "pixelshuffledirect", "pixelshuffle_aux", "nearest+conv", ""}
    assert {e["architecture"] for e in INDEX.values()} == {"swin2sr", "hat"}


@pytest.mark.parametrize("name, case", _cases())
def test_golden_output_equals_the_authors(family: Path, name: str, case: int) -> None:
    """Loaded without being told the configuration; the CPU inference path (chunked, C kernel where it
    fits) and the plain PyTorch path (training, export, other devices) both within 1e-5."""
    entry = INDEX[name]
    model = swinir.load(family / entry["checkpoint"])
    assert model.spec.architecture == entry["architecture"]
    # HAT files hold no shift masks, so img_size (above the window, only a threshold for the shifts) does
    # not show in them: its detection names it as guessed, and the release value (64) is taken
    raw = torch.load(family / entry["checkpoint"], weights_only=True)[entry["checkpoint_key"]]
    unseen = tuple(k for k in architectures.detect(raw).extra.get("guessed", ()) if k == "img_size")
    _same_config(model.spec, entry["config"], unseen)
    data = torch.load(family / entry["cases"][case]["file"], weights_only=True)
    with torch.no_grad():
        fast = model(data["input"])
        with kernels.disabled():
            torch_only = model(data["input"])
    with torch.enable_grad():
        plain = model(data["input"]).detach()
    for out in (fast, torch_only, plain):
        assert out.shape == data["output"].shape
        assert (out - data["output"]).abs().max().item() <= TOL


@pytest.mark.parametrize("name", list(HF), ids=list(HF))
@pytest.mark.parametrize("form", ["folder", "safetensors"])
def test_transformers_layout_equals_transformers(family: Path, name: str, form: str) -> None:
    """A save_pretrained folder, or its model.safetensors alone with config.json beside it: the outputs
    are transformers' own ``Swin2SRForImageSuperResolution`` outputs."""
    entry = HF[name]
    folder = family / entry["folder"]
    model = swinir.load(folder if form == "folder" else folder / "model.safetensors")
    assert model.spec.architecture == "swin2sr" and model.origin.layout == "transformers"
    cfg = entry["config"]
    assert (model.embed_dim, model.window_size, model.upscale, model.upsampler) == (
        cfg["embed_dim"],
        cfg["window_size"],
        cfg["upscale"],
        cfg["upsampler"],
    )
    for case in entry["cases"]:
        data = torch.load(family / case["file"], weights_only=True)
        with torch.no_grad():
            out = model(data["input"])
        assert (out - data["output"]).abs().max().item() <= TOL


def test_transformers_head_is_what_makes_its_compressed_sr_differ(family: Path) -> None:
    """transformers' compressed-SR head reads the raw input: without that option the same weights give the
    authors' output, which differs from transformers' by far more than the tolerance."""
    entry = HF["hf_swin2sr_pixelshuffle_aux_x4"]
    model = swinir.load(family / entry["folder"])
    assert model.spec.option("transformers_head") is True
    authors = swinir.checkpoint.build(model.spec.with_(options=()), model.state_dict()).eval()
    data = torch.load(family / entry["cases"][0]["file"], weights_only=True)
    with torch.no_grad():
        assert (authors(data["input"]) - data["output"]).abs().max().item() > 1e-3


def test_a_folder_without_weights_or_config_is_one_line(tmp_path: Path, family: Path) -> None:
    with pytest.raises(CheckpointError, match="folder without model.safetensors"):
        swinir.load(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(
        (family / "hf/hf_swin2sr_pixelshuffle_x2/model.safetensors").read_bytes()
    )
    with pytest.raises(CheckpointError, match="no config.json beside it"):
        swinir.load(tmp_path)


# -- the released files' manifest ------------------------------------------------------------------------
def _meta_state_dict(entry: dict[str, Any]) -> dict[str, torch.Tensor]:
    return {k: torch.empty(s, device="meta") for k, s in entry["state_dict"].items()}


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=_registered(e["architecture"])) for n, e in RELEASED.items()] or [None]
)
def test_detection_reads_every_released_file(name: str | None) -> None:
    """Architecture, scale, width, depths, heads and window of the 16 released files, from their keys and
    shapes alone (meta tensors: nothing allocated)."""
    if name is None:
        pytest.skip("golden/family is absent")
    entry = RELEASED[name]
    cfg = entry["config"]
    spec = architectures.detect(_meta_state_dict(entry))
    assert spec.architecture == entry["architecture"]
    assert spec.upscale == (cfg["upscale"] if cfg["upsampler"] else 1)
    assert spec.embed_dim == cfg["embed_dim"] and list(spec.depths) == cfg["depths"]
    assert list(spec.num_heads) == cfg["num_heads"] and spec.window_size == cfg["window_size"]
    assert spec.upsampler == cfg["upsampler"] and spec.in_chans == cfg["in_chans"]
    assert spec.img_range == cfg["img_range"] and spec.img_size == cfg["img_size"]
    expected = architectures.expected_shapes(spec)
    weights = architectures.get(spec.architecture).drop_derived(entry["state_dict"])
    assert {k: tuple(v) for k, v in weights.items()} == expected
    assert sum(torch.Size(s).numel() for s in weights.values()) == entry["parameters"]


def test_unknown_weights_name_the_architectures_tried_and_the_closest() -> None:
    sd = {"conv_first.weight": torch.zeros(8, 3, 3, 3), "body.0.weight": torch.zeros(8, 8, 3, 3)}
    with pytest.raises(SpecError) as err:
        architectures.detect(sd)
    msg = str(err.value)
    assert msg.startswith("not the weights of any known architecture (tried ")
    assert all(a.title in msg for a in architectures.REGISTRY)
    assert "closest SwinIR: missing layers.0.residual_group.blocks.0" in msg
    # a Swin2SR file that lost a block's CPB MLP: Swin2SR is the closest, and its first missing key is named
    model = Swin2SR(embed_dim=8, depths=[2], num_heads=[2], window_size=4, upscale=2, upsampler="pixelshuffledirect")
    broken = {
        k: v for k, v in model.state_dict().items() if not k.startswith("layers.0.residual_group.blocks.0.attn.cpb")
    }
    with pytest.raises(
        SpecError, match=r"closest Swin2SR: missing layers\.0\.residual_group\.blocks\.0\.attn\.cpb_mlp"
    ):
        architectures.detect(broken)


# -- files we write ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(RELEASED) or [None])
def test_released_layout_of_every_file(name: str | None) -> None:
    """Keys, order and shapes that ``swinir.save`` writes equal the released file's, derived buffers too."""
    if name is None:
        pytest.skip("golden/family is absent")
    entry = RELEASED[name]
    spec = ModelSpec.from_kwargs(entry["config"], entry["architecture"])
    weights = architectures.get(spec.architecture).drop_derived(_meta_state_dict(entry))
    out = with_derived(weights, spec)
    assert list(out) == list(entry["state_dict"])
    assert {k: list(v.shape) for k, v in out.items()} == entry["state_dict"]


def test_derived_buffers_equal_the_authors(family: Path) -> None:
    """Values, not only shapes: the buffers the authors' code wrote into the golden files."""
    for name, entry in INDEX.items():
        raw = torch.load(family / entry["checkpoint"], weights_only=True)[entry["checkpoint_key"]]
        ours = with_derived(raw, ModelSpec.from_kwargs(entry["config"], entry["architecture"]))
        assert list(ours) == list(raw), name
        for k, v in raw.items():
            assert ours[k].dtype == v.dtype and torch.equal(ours[k], v), (name, k)


@pytest.mark.parametrize("name", ["swin2sr_pixelshuffle_aux_x4", "swin2sr_jpeg_gray_w7"])
def test_saved_files_load_strictly_into_the_authors_class(
    family: Path, tmp_path: Path, spandrel_swin2sr: type, name: str
) -> None:
    """spandrel 0.4.2 carries the authors' network_swin2sr.py: our .pth loads into it with strict=True and
    computes the same output; our .safetensors (weights only) reloads as the same model."""
    entry = INDEX[name]
    model = swinir.load(family / entry["checkpoint"])
    path = swinir.save(model, tmp_path / "saved.pth", key=entry["checkpoint_key"])
    raw = torch.load(path, weights_only=True)
    assert raw[SPEC_KEY]["architecture"] == "swin2sr"
    authors = spandrel_swin2sr(**entry["config"]).eval()
    authors.load_state_dict(raw[entry["checkpoint_key"]], strict=True)
    data = torch.load(family / entry["cases"][0]["file"], weights_only=True)
    with torch.no_grad():
        assert (authors(data["input"]) - data["output"]).abs().max().item() <= TOL
        again = swinir.load(swinir.save(model, tmp_path / "saved.safetensors"))
        assert again.spec == model.spec
        assert torch.equal(again(data["input"]), model(data["input"]))


# -- full size -----------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n, e in RELEASED.items() if e["architecture"] == "swin2sr"] or [None])
def test_full_size_random_weights_equal_spandrels_copy(name: str | None, spandrel_swin2sr: type) -> None:
    """Each released Swin2SR configuration at full size (11.8-12.2M parameters), random weights with
    non-trivial logit scales and biases, against spandrel 0.4.2's copy of the authors' network."""
    if name is None:
        pytest.skip("golden/family is absent")
    cfg = RELEASED[name]["config"]
    gen = torch.Generator().manual_seed(0)
    peer = spandrel_swin2sr(**cfg).eval()
    with torch.no_grad():
        for key, p in peer.state_dict().items():
            if key.endswith(("attn_mask", "relative_position_index", "relative_coords_table")):
                continue
            if key.endswith("logit_scale"):
                p.copy_(torch.rand(p.shape, generator=gen) * 4.0)  # exp: 1..55, a few clamped at 100
            elif p.dtype.is_floating_point:
                p.add_(torch.randn(p.shape, generator=gen) * 0.02)
    ours = swinir.load(peer.state_dict())
    assert ours.spec.architecture == "swin2sr" and ours.spec.img_size == cfg["img_size"]
    side = 2 * cfg["window_size"] + 3  # not a window multiple: the networks pad
    x = torch.rand(1, cfg["in_chans"], side, side + cfg["window_size"], generator=gen)
    with torch.no_grad():
        want = peer(x)
        got = ours(x)
    assert got.shape == want.shape
    err = (got - want).abs().max().item()
    print(f"\n{name}: max abs difference to spandrel's copy {err:.2e}")
    assert err <= TOL


# HAT-S, HAT and HAT-L (x4, x3, x2: every upsampler path and both depths); Real_HAT_GAN_SRx4 and the other
# scales share these configurations
HAT_FULL_SIZE = ("HAT-S_SRx4", "HAT_SRx3", "HAT-L_SRx2_ImageNet-pretrain")


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in HAT_FULL_SIZE if n in RELEASED] or [None])
def test_full_size_random_hat_equals_spandrels_copy(name: str | None, spandrel_hat: type) -> None:
    """HAT-S (9.6M parameters), HAT (20.8M) and HAT-L (40.7M) at full size with random weights (position
    tables and the channel-attention branch included), against spandrel 0.4.2's copy of the authors' network
    (which reflect-pads to a window multiple inside, as the authors' test code does outside)."""
    if name is None:
        pytest.skip("golden/family is absent")
    cfg = RELEASED[name]["config"]
    gen = torch.Generator().manual_seed(0)
    peer = spandrel_hat(**cfg).eval()
    with torch.no_grad():
        for key, p in peer.state_dict().items():
            if p.dtype.is_floating_point and not key.startswith("relative_position_index"):
                p.add_(torch.randn(p.shape, generator=gen) * 0.02)
    ours = swinir.load(peer.state_dict())
    assert ours.spec.architecture == "hat" and ours.spec.kwargs()["compress_ratio"] == cfg["compress_ratio"]
    ws = cfg["window_size"]
    x = torch.rand(1, cfg["in_chans"], ws + 5, 2 * ws + 3, generator=gen)  # not window multiples: both pad
    with torch.no_grad():
        want = peer(x)
        got = ours(x)
        with kernels.disabled():
            plain = ours(x)
    assert got.shape == want.shape == plain.shape
    err = max((got - want).abs().max().item(), (plain - want).abs().max().item())
    print(f"\n{name}: max abs difference to spandrel's copy {err:.2e}")
    assert err <= TOL


def test_saved_hat_file_loads_strictly_into_the_authors_class(family: Path, tmp_path: Path, spandrel_hat: type) -> None:
    """Our .pth of a HAT holds the original's keys in its order, both position indices included: spandrel's
    copy of the authors' class loads it with strict=True and computes the golden output."""
    entry = INDEX["hat_x3"]
    model = swinir.load(family / entry["checkpoint"])
    path = swinir.save(model, tmp_path / "saved.pth", key=entry["checkpoint_key"])
    raw = torch.load(path, weights_only=True)
    assert raw[SPEC_KEY]["architecture"] == "hat"
    released = torch.load(family / entry["checkpoint"], weights_only=True)[entry["checkpoint_key"]]
    assert list(raw[entry["checkpoint_key"]]) == list(released)
    authors = spandrel_hat(**entry["config"]).eval()
    authors.load_state_dict(raw[entry["checkpoint_key"]], strict=True)
    data = torch.load(family / entry["cases"][1]["file"], weights_only=True)
    with torch.no_grad():
        assert (authors(data["input"]) - data["output"]).abs().max().item() <= TOL
