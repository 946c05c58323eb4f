from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
import types
from pathlib import Path
from typing import Any, NoReturn

import pytest
import torch

from swinir.paths import released_configurations, shared_dir

SHARED = shared_dir()

# CI runs two pytest workers on two cores: one torch thread each avoids oversubscription.
torch.set_num_threads(1)


@pytest.fixture
def small_kernel_config() -> dict[str, Any]:
    """A small SwinIR whose windows (8x8) and head width (10) fit the C kernels: two residual groups of two
    blocks, so shifted blocks and chunks crossing shift-mask groups are both exercised. A fresh dict each time."""
    return dict(
        upscale=2,
        in_chans=3,
        img_size=32,
        window_size=8,
        embed_dim=30,
        depths=[2, 2],
        num_heads=[3, 3],
        mlp_ratio=2,
        upsampler="pixelshuffledirect",
    )


@pytest.fixture(scope="session")
def shared() -> Path:
    if SHARED is None:
        pytest.skip("../shared (or $SWINIR_SHARED) not found: golden data and benchmark images are absent")
    return SHARED


@pytest.fixture(scope="session")
def golden(shared: Path) -> Path:
    return shared / "golden"


@pytest.fixture(scope="session")
def data_dir(shared: Path) -> Path:
    return shared / "data"


@pytest.fixture(scope="session")
def golden_index(golden: Path) -> dict:
    return json.loads((golden / "models" / "index.json").read_text())


@pytest.fixture(scope="session")
def released_shapes(shared: Path) -> dict:
    return released_configurations(shared)


# -- spandrel (chaiNNer, ComfyUI): installed as the benchmark installs it, `pip install --no-deps spandrel` --
# The README's set-up does not install it, so these tests skip there; .ci/run installs it afterwards and reruns
# the tests marked `spandrel` with SWINIR_REQUIRE_SPANDREL=1, under which a missing spandrel fails instead.
REQUIRE_SPANDREL = "SWINIR_REQUIRE_SPANDREL"
SPANDREL_FIXTURES = ("spandrel_swinir", "spandrel_swin2sr", "spandrel_hat")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if any(f in getattr(item, "fixturenames", ()) for f in SPANDREL_FIXTURES):
            item.add_marker(pytest.mark.spandrel)


def _skip_without_spandrel(reason: str) -> NoReturn:
    if os.environ.get(REQUIRE_SPANDREL):
        pytest.fail(f"{reason}, although {REQUIRE_SPANDREL} is set")
    pytest.skip(reason)


def _spandrel_architecture(package: str, attr: str) -> Any:
    """``spandrel.architectures.<package>.<attr>`` without spandrel/__init__, which imports torchvision and
    einops (absent beside this torch); skips the test when spandrel is absent or does not import."""
    if "spandrel" not in sys.modules:  # else already imported (maybe bare, by this test or the benchmark)
        found = importlib.util.find_spec("spandrel")
        if found is None or found.origin is None:
            _skip_without_spandrel("spandrel is not installed (pip install --no-deps spandrel==0.4.2)")
        bare = types.ModuleType("spandrel")
        bare.__path__ = [str(Path(found.origin).parent)]  # submodules import, __init__ does not run
        sys.modules["spandrel"] = bare
    name = f"spandrel.architectures.{package}"
    if name in sys.modules and not hasattr(sys.modules[name], attr):
        del sys.modules[name]  # registered bare by the benchmark's shim: import the package itself
    try:
        return getattr(importlib.import_module(name), attr)
    except Exception as exc:  # a spandrel version whose module needs more of the package
        _skip_without_spandrel(f"spandrel's {package} architecture does not import here ({type(exc).__name__}: {exc})")


@pytest.fixture(scope="session")
def spandrel_swinir() -> type:
    """spandrel's SwinIR architecture (its detection and loader)."""
    arch: type = _spandrel_architecture("SwinIR", "SwinIRArch")
    return arch


@pytest.fixture(scope="session")
def spandrel_swin2sr() -> type:
    """spandrel 0.4.2's copy of the authors' Swin2SR network class (``models/network_swin2sr.py``)."""
    net: type = _spandrel_architecture("Swin2SR", "Swin2SR")
    return net


@pytest.fixture(scope="session")
def spandrel_hat() -> type:
    """spandrel 0.4.2's copy of the authors' HAT network class (``hat/archs/hat_arch.py``; it needs einops)."""
    net: type = _spandrel_architecture("HAT", "HAT")
    return net


# -- golden/family: Swin2SR and HAT, and Swin2SR in transformers' layout ----------------------------------
@pytest.fixture(scope="session")
def family(golden: Path) -> Path:
    return golden / "family"


@pytest.fixture(scope="session")
def family_index(family: Path) -> dict:
    return json.loads((family / "models" / "index.json").read_text())


@pytest.fixture(scope="session")
def family_released(family: Path) -> dict:
    return released_configurations(family.parent.parent, family=True)


# one small golden SR network per architecture (x2 where the golden set has it), for the tests that run over
# every registered architecture: (its golden folder under golden/, entry of that folder's models/index.json)
GOLDEN_OF = {
    "swinir": (".", "pixelshuffle_x2"),
    "swin2sr": ("family", "swin2sr_pixelshuffle_x2"),
    "hat": ("family", "hat_x2"),
}


@pytest.fixture(scope="session")
def golden_of(golden: Path) -> Any:
    """``golden_of(arch)`` -> (checkpoint path, index entry, the folder its paths are relative to); fails for
    a registered architecture that has no entry in ``GOLDEN_OF`` (add one when registering it)."""

    def find(arch: str) -> tuple[Path, dict, Path]:
        if arch not in GOLDEN_OF:
            pytest.fail(f"registered architecture {arch} has no golden network in conftest.GOLDEN_OF: add one")
        folder, name = GOLDEN_OF[arch]
        base = golden / folder
        entry = json.loads((base / "models" / "index.json").read_text())[name]
        return base / entry["checkpoint"], entry, base

    return find


@pytest.fixture(scope="session")
def hf_index(family: Path) -> dict:
    return json.loads((family / "hf" / "index.json").read_text())["models"]


@pytest.fixture(scope="session")
def tiny_x2_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A very small x2 SwinIR (window 4, one block) saved in the released layout: restores in milliseconds."""
    import torch

    import swinir

    torch.manual_seed(0)
    model = swinir.SwinIR(
        upscale=2,
        in_chans=3,
        img_size=8,
        window_size=4,
        depths=[1],
        embed_dim=8,
        num_heads=[2],
        mlp_ratio=2,
        upsampler="pixelshuffledirect",
    )
    return swinir.save(model, tmp_path_factory.mktemp("tiny") / "tiny_x2.pth")
