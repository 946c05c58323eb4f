"""A file in the model cache under a released model's name is used only if it is that model: its detected
architecture must be the entry's (task, scale, channels, window, width), and its sha256 the release's where
that is known. Otherwise one line says which file, what it is, what was expected and what to do."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import swinir
from swinir import zoo
from swinir.checkpoint import zoo_fields
from swinir.cli import main
from swinir.errors import ZooError
from swinir.io import write_image
from swinir.spec import ModelSpec

TINY_X2 = dict(
    upscale=2,
    in_chans=3,
    img_size=16,
    window_size=8,
    depths=[1],
    embed_dim=16,
    num_heads=[2],
    mlp_ratio=2,
    upsampler="pixelshuffledirect",
)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    folder.mkdir()
    monkeypatch.setenv("SWINIR_CACHE", str(folder))
    monkeypatch.setenv(zoo.URL_ENV, "http://127.0.0.1:9/release")  # nothing may be downloaded
    return folder


def _put(cache: Path, name: str, **config: object) -> Path:
    torch.manual_seed(0)
    return swinir.save(swinir.SwinIR(**{**TINY_X2, **config}), cache / zoo.get(name).filename)


def test_another_model_at_a_released_name_is_refused_in_one_line(cache: Path, tmp_path: Path) -> None:
    """The issue's case: a different model at classical-x4's path ran silently."""
    path = _put(cache, "classical-x4")
    with pytest.raises(ZooError) as err:
        swinir.load("classical-x4")
    msg = str(err.value)
    assert msg.startswith(f"{path}: the cached file for classical-x4 is another model (SwinIR lightweight_sr x2")
    assert "architecture=swinir, task=lightweight_sr, scale=2, in_chans=3, window_size=8, embed_dim=16;" in msg
    assert "expected architecture=swinir, task=classical_sr, scale=4, in_chans=3, window_size=8, embed_dim=180)" in msg
    assert "delete it and run again to download classical-x4 anew from http://127.0.0.1:9/release/" in msg
    assert "\n" not in msg
    with pytest.raises(ZooError, match="is another model"):  # the same file named by its path
        swinir.load(path)
    outside = tmp_path / path.name  # the same file outside the cache is the user's own: it loads
    outside.write_bytes(path.read_bytes())
    assert swinir.load(outside).scale == 2


def test_the_cli_refuses_it_before_any_output(cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _put(cache, "classical-x4")
    img = tmp_path / "in.png"
    write_image(img, np.full((12, 12, 3), 90, np.uint8))
    env = {**os.environ, "SWINIR_CACHE": str(cache), zoo.URL_ENV: "http://127.0.0.1:9/release"}
    argv = ["restore", str(img), "-o", str(tmp_path / "out"), "--model", "classical-x4"]
    proc = subprocess.run([sys.executable, "-m", "swinir", *argv], capture_output=True, text=True, env=env)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[-1].startswith("error: ") and "the cached file for classical-x4 is another model" in lines[-1]
    assert not (tmp_path / "out" / "in.png").exists()
    assert main(["info", "classical-x4"]) == 1  # `swinir info` does not report it as classical-x4 either
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "the cached file for classical-x4 is another model" in err
    assert err.count("\n") == 1


def test_a_medium_model_at_the_large_models_name_is_refused_by_its_width(cache: Path) -> None:
    """realsr-x4 and realsr-x4-large share task, scale, channels and window: only the width tells them apart."""
    _put(cache, "realsr-x4-large", upscale=4, embed_dim=180, num_heads=[6], upsampler="nearest+conv")
    with pytest.raises(ZooError, match=r"is another model .*embed_dim=180; expected .*embed_dim=240\)"):
        swinir.load("realsr-x4-large")


def test_a_file_of_the_right_architecture_but_another_sha256_is_refused(cache: Path) -> None:
    """Where the release's sha256 is known (classical-x2), a matching architecture is not enough."""
    entry = zoo.get("classical-x2")
    assert entry.sha256 == "2032ebf8f401dd3ce2fae5f3852117cb72101ec6ed8358faa64c2a3fa09ed4ac"
    path = _put(cache, "classical-x2", embed_dim=180, num_heads=[6], upsampler="pixelshuffle")
    digest = zoo.sha256_of(path)
    with pytest.raises(ZooError) as err:
        swinir.load("classical-x2")
    assert str(err.value).startswith(f"{path}: the cached file for classical-x2 has sha256 {digest}, not the release's")
    assert "delete it and run again" in str(err.value)
    # with the digest the release would have, the same file is accepted
    zoo.check_cached(
        dataclasses.replace(entry, sha256=digest),
        path,
        {
            "architecture": "swinir",
            "task": "classical_sr",
            "scale": 2,
            "in_chans": 3,
            "window_size": 8,
            "embed_dim": 180,
        },
        "SwinIR classical_sr x2 color",
    )


def test_every_released_entry_expects_the_configuration_of_its_release(released_shapes: dict) -> None:
    """The expectations come from the entries and their file names; the released configurations (golden) must
    meet them, or a genuine download would be refused."""
    golden_of = {
        "classical_sr": lambda e: f"classical_x{e.scale}",
        "lightweight_sr": lambda e: f"lightweight_x{e.scale}",
        "real_sr": lambda e: "real_L_x4" if "SwinIR-L" in e.filename else "real_M_x4",
        "denoise": lambda e: f"{'color' if e.color else 'gray'}_dn",
        "jpeg": lambda e: f"{'color' if e.color else 'gray'}_jpeg",
    }
    for entry in (*zoo.RELEASED, *zoo.EXTRA):
        config = released_shapes[golden_of[entry.task](entry)]["config"]
        spec = ModelSpec.from_kwargs({**config, "upscale": entry.scale} if entry.task == "real_sr" else config)
        detected = zoo_fields(spec)
        want = zoo.expected_config(entry)
        assert set(want) == set(detected), entry.name  # every released file name states its window and width
        assert want == detected, entry.name


def test_every_family_entry_expects_the_configuration_of_its_release(shared: Path) -> None:
    """The same for the other architectures' release files (Swin2SR's, HAT's): what their entries expect is
    what the weights of the released files show."""
    from swinir import architectures
    from swinir.paths import released_configurations

    released = released_configurations(shared, family=True)
    entries = [e for e in zoo.list_entries() if not e.builtin and e.architecture != "swinir"]
    assert {e.architecture for e in entries} == {"swin2sr", "hat"}
    for entry in entries:
        shapes = released[entry.filename.removesuffix(".pth")]["state_dict"]
        meta = {k: torch.empty(v, device="meta") for k, v in shapes.items()}
        detected = zoo_fields(architectures.detect(meta))
        want = zoo.expected_config(entry)
        assert {k: detected[k] for k in want} == want, entry.name


def test_a_model_of_another_architecture_at_a_released_name_is_refused(cache: Path) -> None:
    """A SwinIR file of the right task and scale under a Swin2SR release name is still another model."""
    _put(cache, "swin2sr-classical-x2", embed_dim=16, upsampler="pixelshuffle")
    with pytest.raises(ZooError, match=r"is another model .*architecture=swinir.*; expected architecture=swin2sr"):
        swinir.load("swin2sr-classical-x2")


def test_another_model_at_a_hat_name_says_where_the_right_file_is(cache: Path) -> None:
    """HAT's files cannot be downloaded again: the refusal says which file to put there instead, from where."""
    path = _put(cache, "hat-classical-x4", upscale=4, upsampler="pixelshuffle")
    with pytest.raises(ZooError) as err:
        swinir.load("hat-classical-x4")
    msg = str(err.value)
    assert msg.startswith(f"{path}: the cached file for hat-classical-x4 is another model (SwinIR classical_sr x4")
    assert "expected architecture=hat, task=classical_sr, scale=4, in_chans=3, window_size=16, embed_dim=180)" in msg
    assert msg.endswith(f"replace it with HAT_SRx4.pth from {zoo.HAT_PAGE}") and "download" not in msg


def test_known_sha256_are_only_where_recorded() -> None:
    known = {e.name for e in zoo.list_entries() if e.sha256}
    assert known == {
        "classical-x2",
        "classical-x4",
        "lightweight-x2",
        "realsr-x4",
        "realsr-x4-large",
        "realsr-x2",
        "denoise-color-15",
        "jpeg-color-10",
    }
    assert all(len(e.sha256 or "") == 64 for e in zoo.list_entries() if e.sha256)
