"""Progress inside a forward (issue 26): each transformer block and residual group reports to a context-local
sink, which the engine turns into fractional tile counts and the CLI into a bar that fills within one tile."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import swinir
from swinir.cli import main
from swinir.engine import restore
from swinir.io import write_image
from swinir.model.hat import HAT
from swinir.model.progress import reporting
from swinir.model.swin2sr import Swin2SR

SMALL = {"embed_dim": 12, "depths": [1, 2, 1], "num_heads": [2, 2, 2], "window_size": 4, "upscale": 2}
# group g of 3 with n blocks: block i reports (g + i / (n + 1)) / 4, the group itself (g + 1) / 4; the
# reconstruction after the groups is the fourth step (pixelshuffledirect: no report inside it)
REPORTS = [1 / 8, 1 / 4, 1 / 3, 5 / 12, 1 / 2, 5 / 8, 3 / 4]


def _small(kind: str) -> nn.Module:
    torch.manual_seed(0)
    if kind == "swinir":
        return swinir.SwinIR(**SMALL, upsampler="pixelshuffledirect").eval()  # type: ignore[arg-type]
    if kind == "swin2sr":
        return Swin2SR(**SMALL, upsampler="pixelshuffledirect").eval()  # type: ignore[arg-type]
    return HAT(**SMALL, img_size=16, squeeze_factor=4).eval()  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["swinir", "swin2sr", "hat"])
@pytest.mark.parametrize("grad", [False, True])
def test_each_block_and_residual_group_reports_and_the_output_is_unchanged(kind: str, grad: bool) -> None:
    model = _small(kind)
    x = torch.rand(1, 3, 20, 13)
    with torch.set_grad_enabled(grad):
        plain = model(x)
        seen: list[float] = []
        with reporting(seen.append):
            reported = model(x)
        assert seen == pytest.approx(REPORTS)  # each block, then its group, in order, growing
        after: list[float] = []
        model(x)  # outside the context: no sink
        assert after == [] and seen == pytest.approx(REPORTS)
    assert torch.equal(plain, reported)  # bit-identical
    if grad:  # training: the same gradients with a sink
        g_plain = torch.autograd.grad(plain.sum(), list(model.parameters()))
        g_rep = torch.autograd.grad(reported.sum(), list(model.parameters()))
        assert all(torch.equal(a, b) for a, b in zip(g_plain, g_rep))


@pytest.mark.parametrize("upscale", [2, 4])
def test_nearest_conv_reports_its_convolutions_at_the_output_size(upscale: int) -> None:
    """real-world SR's upsampler runs 64-channel convolutions at 2x and 4x the input: seconds on a large tile,
    so each reports as a step after the groups (what ``swinir.fit`` bounds the tile by)."""
    torch.manual_seed(0)
    model = swinir.SwinIR(**{**SMALL, "upscale": upscale}, upsampler="nearest+conv").eval()  # type: ignore[arg-type]
    x = torch.rand(1, 3, 12, 12)
    seen: list[float] = []
    with torch.no_grad(), reporting(seen.append):
        reported = model(x)
    steps = 3 if upscale == 4 else 2
    assert seen == pytest.approx(REPORTS + [(3 + i / (steps + 1)) / 4 for i in range(1, steps + 1)])
    with torch.no_grad():
        assert torch.equal(model(x), reported)


@pytest.mark.filterwarnings("ignore:`torch.jit.trace:DeprecationWarning")
def test_tracing_and_compiling_record_no_report() -> None:
    model = _small("swinir")
    x = torch.rand(1, 3, 16, 16)
    seen: list[float] = []
    with reporting(seen.append), torch.no_grad():
        traced = torch.jit.trace(model, x, check_trace=False)
        assert seen == []  # tracing: not called, and nothing of the sink in the graph
        traced(x)
        assert seen == []
        compiled = torch.compile(model, backend="eager", fullgraph=True)  # a graph break would raise here
        torch.testing.assert_close(compiled(x), model(x), rtol=1e-4, atol=1e-5)  # the compiled path may differ
    assert seen == pytest.approx(REPORTS)  # only the eager forward reported


def _parts(model: nn.Module, img: np.ndarray, **options: object) -> tuple[np.ndarray, list[tuple[float, int]]]:
    calls: list[tuple[float, int]] = []
    out = restore(model, img, on_progress=lambda done, total: calls.append((done, total)), **options)
    return out, calls


@pytest.mark.parametrize(
    ("options", "batches"),
    [({"tile": 16, "overlap": 4}, [1, 2, 3, 4, 5, 6]), ({"tile": 16, "overlap": 4, "batch_size": 2}, [2, 3, 5, 6])],
)
def test_restore_reports_tile_fractions_monotone_to_each_whole_tile(
    options: dict[str, object], batches: list[int]
) -> None:
    model = _small("swinir")
    img = np.random.default_rng(0).integers(0, 256, size=(28, 40, 3)).astype(np.uint8)
    out, calls = _parts(model, img, device="cpu", precision="fp32", **options)
    assert np.array_equal(out, restore(model, img, device="cpu", precision="fp32", **options))  # bit-identical
    total = calls[0][1]
    assert total == 2 * 3 and all(t == total for _, t in calls)
    done = [d for d, _ in calls]
    assert done == sorted(done) and done[-1] == total  # monotone, to every tile
    assert any(d != int(d) for d in done)  # within a tile, not only per tile
    assert set(batches) <= {d for d in done if d == int(d)}  # each batch (3 columns: 2 + 1 a row) to its whole count
    first = done[: done.index(float(batches[0]))]
    assert first == pytest.approx([batches[0] * f for f in REPORTS])  # its blocks and groups, in tile units


def test_the_ensemble_passes_share_a_batch() -> None:
    model = _small("swinir")
    img = np.random.default_rng(1).integers(0, 256, size=(16, 16, 3)).astype(np.uint8)
    _, calls = _parts(model, img, device="cpu", precision="fp32", ensemble=True)
    done = [d for d, _ in calls]
    per_pass = len(REPORTS)  # 8 passes of 4 blocks and 3 groups, then the tile
    assert done == sorted(done) and done[-1] == 1.0 and len(done) == 8 * per_pass + 1
    assert done[per_pass - 1] == pytest.approx(REPORTS[-1] / 8) and done[-2] == pytest.approx((7 + REPORTS[-1]) / 8)


def test_cli_bar_fills_within_one_tile_and_counts_whole_images(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt = swinir.save(_small("swinir"), tmp_path / "three_groups.pth")
    write_image(tmp_path / "one.png", np.random.default_rng(2).integers(0, 256, size=(24, 24, 3)).astype(np.uint8))
    args = ["--tile", "0", "--device", "cpu", "--model", str(ckpt)]
    assert main(["restore", str(tmp_path / "one.png"), "-o", str(tmp_path / "o"), *args]) == 0
    err = capsys.readouterr().err
    assert re.search(r"restore:\s+1[23]%\|[^|]*\| 0/1 \[", err), err  # the first block of the only tile
    counts = re.findall(r"\| (\S+)/1 \[", err)
    assert counts and set(counts) <= {"0", "1"}, counts
