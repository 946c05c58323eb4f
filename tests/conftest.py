from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
import types
from pathlib import Path
from typing import NoReturn

import pytest
import torch

from swinir.paths import released_configurations, shared_dir

SHARED = shared_dir()

# CI runs two pytest workers on two cores: one torch thread each avoids oversubscription.
torch.set_num_threads(1)


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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "spandrel_swinir" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.spandrel)


def _skip_without_spandrel(reason: str) -> NoReturn:
    if os.environ.get(REQUIRE_SPANDREL):
        pytest.fail(f"{reason}, although {REQUIRE_SPANDREL} is set")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def spandrel_swinir() -> type:
    """spandrel's SwinIR architecture (its detection and loader) without spandrel/__init__, which imports
    torchvision and einops (absent beside this torch)."""
    if "spandrel" not in sys.modules:  # else already imported (maybe bare, by this test or the benchmark)
        found = importlib.util.find_spec("spandrel")
        if found is None or found.origin is None:
            _skip_without_spandrel("spandrel is not installed (pip install --no-deps spandrel==0.4.2)")
        bare = types.ModuleType("spandrel")
        bare.__path__ = [str(Path(found.origin).parent)]  # submodules import, __init__ does not run
        sys.modules["spandrel"] = bare
    name = "spandrel.architectures.SwinIR"
    if name in sys.modules and not hasattr(sys.modules[name], "SwinIRArch"):
        del sys.modules[name]  # registered bare by the benchmark's shim: import the package itself
    try:
        return importlib.import_module(name).SwinIRArch
    except Exception as exc:  # a spandrel version whose SwinIR module needs more of the package
        _skip_without_spandrel(f"spandrel's SwinIR architecture does not import here ({type(exc).__name__}: {exc})")


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
