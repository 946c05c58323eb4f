"""Captured forwards (swinir.capture) on the CPU: the compile path, the per-shape cache and its bounds.

The CUDA-graph path needs a GPU and is checked in tests/test_cuda.py; here the same cache logic runs through
``torch.compile`` (the ``aot_eager`` backend traces and partitions the graph like inductor does, without a
C++ build, so the test stays fast)."""

from __future__ import annotations

import pytest
import torch

from swinir.capture import CapturedForward, resolve_capture
from swinir.errors import SwinIRError
from swinir.model import SwinIR


@pytest.fixture(scope="module")
def tiny() -> SwinIR:
    torch.manual_seed(0)
    model = SwinIR(
        upscale=2,
        img_size=16,
        window_size=4,
        depths=[2],
        embed_dim=16,
        num_heads=[2],
        mlp_ratio=2,
        upsampler="pixelshuffle",
    )
    return model.eval()


def test_compiled_forward_equals_eager_and_is_built_once_per_shape(tiny: SwinIR) -> None:
    captured = CapturedForward(tiny, "compile", compile_backend="aot_eager")
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        eager = tiny(x)
        first = captured(x)
        again = captured(torch.rand(1, 3, 16, 16))
    assert (first - eager).abs().max().item() <= 1e-6
    assert again.shape == first.shape and not torch.equal(again, first)
    assert captured.builds == 1


def test_shape_and_dtype_changes_rebuild(tiny: SwinIR) -> None:
    captured = CapturedForward(tiny, "compile", compile_backend="aot_eager")
    with torch.no_grad():
        captured(torch.rand(1, 3, 16, 16))
        out = captured(torch.rand(1, 3, 12, 20))  # another tile shape
        assert captured.builds == 2 and out.shape == (1, 3, 24, 40)
        captured(torch.rand(1, 3, 16, 16).double().float())  # same key again: no rebuild
        assert captured.builds == 2
        model64 = CapturedForward(tiny.double(), "compile", compile_backend="aot_eager")
        model64(torch.rand(1, 3, 16, 16, dtype=torch.float64))
        tiny.float()
    keys = captured.cached_keys()
    assert [k[0] for k in keys] == [(1, 3, 12, 20), (1, 3, 16, 16)]  # most recently used last
    assert model64.cached_keys()[0][1] == torch.float64 and model64.builds == 1


def test_cache_is_bounded_least_recently_used_out(tiny: SwinIR) -> None:
    captured = CapturedForward(tiny, "compile", compile_backend="eager", max_entries=2)
    with torch.no_grad():
        for side in (8, 12, 8, 16):
            captured(torch.rand(1, 3, side, side))
    assert [k[0][-1] for k in captured.cached_keys()] == [8, 16]  # 12 was least recently used
    assert captured.builds == 3
    captured.clear()
    assert captured.cached_keys() == []


def test_off_mode_is_the_plain_forward(tiny: SwinIR) -> None:
    captured = CapturedForward(tiny, "off")
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(captured(x), tiny(x))
    assert captured.builds == 0 and captured.cached_keys() == []


def test_resolve_capture_per_device() -> None:
    assert resolve_capture("auto", torch.device("cpu")) == "off"
    assert resolve_capture("auto", torch.device("cuda", 0)) == "graph"
    assert resolve_capture("compile", torch.device("cpu")) == "compile"
    with pytest.raises(SwinIRError, match="CUDA graphs need a CUDA device"):
        resolve_capture("graph", torch.device("cpu"))
    with pytest.raises(SwinIRError, match="capture mode must be one of"):
        resolve_capture("fast", torch.device("cpu"))


def test_graph_mode_refuses_cpu_tensors(tiny: SwinIR) -> None:
    captured = CapturedForward(tiny, "graph")
    with pytest.raises(SwinIRError, match="CUDA graphs need a CUDA tensor"):
        captured(torch.rand(1, 3, 8, 8))


def test_autocast_and_moved_weights_are_new_keys(tiny: SwinIR) -> None:
    captured = CapturedForward(tiny, "compile", compile_backend="eager")
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        captured(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            captured(x)
        assert captured.builds == 2 and captured.cached_keys()[-1][3] == torch.bfloat16
        # the first weights kept alive, so that the float weights below cannot land at their addresses again
        # (a freed block reused in place would rightly give the same key)
        first = [p.data for p in tiny.parameters()]
        tiny.double()  # the weights now live elsewhere: a graph over the old addresses would read stale memory
        captured(x.double())
        tiny.float()
        captured(x)  # float again, but new storage again
    assert captured.builds == 4
    del first


def test_tiled_restore_with_capture_builds_once_per_tile_shape(tiny: SwinIR) -> None:
    """A tiled restore replays one capture per distinct tile shape, and the result equals the eager run."""
    import numpy as np

    import swinir
    from swinir import engine

    img = np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    eager = swinir.restore(tiny, img, tile=16, overlap=4)
    captured = swinir.restore(tiny, img, tile=16, overlap=4, capture="compile")
    diff = np.abs(captured.astype(np.int16) - eager.astype(np.int16))
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01  # float results 1e-6 apart, rounded to uint8
    fwd = engine._CAPTURED[tiny]
    shapes = {k[0] for k in fwd.cached_keys()}
    tiles = len(engine.plan_axis(40, 16, 4, 4)) * len(engine.plan_axis(56, 16, 4, 4))
    assert tiles > 4 and fwd.builds == len(shapes) < tiles  # many tiles, one capture per shape
    swinir.restore(tiny, img, tile=16, overlap=4, capture="compile")  # the next image of that size: replays
    assert fwd.builds == len(shapes)
    fwd.clear()


def test_capture_option_is_validated() -> None:
    from swinir.options import OptionsError, RestoreOptions

    assert RestoreOptions(capture="AUTO").capture == "auto"
    with pytest.raises(OptionsError, match="unknown capture mode 'fast'"):
        RestoreOptions(capture="fast")


def test_a_failed_capture_is_said_once_and_not_retried(tiny: SwinIR) -> None:
    """A capture that cannot be built (here: an unknown compile backend) fails: every image still restores
    eagerly, with one notice, and the capture is not tried again."""
    import warnings

    import numpy as np

    import swinir
    from swinir import engine
    from swinir.io import SwinIRNotice

    img = np.random.default_rng(1).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    eager = swinir.restore(tiny, img)
    engine._CAPTURED[tiny] = CapturedForward(tiny, "compile", compile_backend="no-such-backend")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SwinIRNotice)
        outs = [swinir.restore(tiny, img, capture="compile") for _ in range(2)]
    notes = [w for w in caught if "capturing the forward failed" in str(w.message)]
    assert len(notes) == 1 and all(np.array_equal(o, eager) for o in outs)
    assert engine._CAPTURED[tiny] is None
    del engine._CAPTURED[tiny]
