"""benchmarks/inference.py in its small mode: it runs, prints a parseable table, and the outputs agree, with
spandrel as the peer or, without it, swinir.reference."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "inference.py"


@pytest.mark.spandrel  # passes without spandrel (peer: swinir.reference); .ci/run reruns it with spandrel as the peer
def test_inference_benchmark_small_mode(shared: Path, tmp_path: Path) -> None:
    out_md = tmp_path / "table.md"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--small", "--without-kernels", "--output", str(out_md)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = [dict(zip(header, (c.strip() for c in ln.strip("|").split("|")))) for ln in lines[2:]]
    assert {"implementation", "precision", "ms/image", "MP/s (input)", "peak MiB", "max abs diff"} <= set(header)
    # the peer is spandrel's SwinIR when spandrel imports, else swinir.reference (which starts with "swinir"
    # too): the header names it
    peer_name = proc.stdout.splitlines()[0].split(" Peer: ", 1)[1].split(". ", 1)[0]
    assert peer_name.startswith("spandrel ") or peer_name == "swinir.reference"
    if os.environ.get("SWINIR_REQUIRE_SPANDREL"):
        assert peer_name.startswith("spandrel "), proc.stderr[-2000:]
    plain = [r for r in rows if r["implementation"].startswith("swinir, CPU kernels off")]
    peers = [r for r in rows if r["implementation"] == peer_name]
    assert len(rows) == len(peers) + len(plain) + len([r for r in rows if r["implementation"] == "swinir"])
    ours = {r["precision"]: r for r in rows if r["implementation"] == "swinir"}
    assert len(peers) == 1 and peers[0]["precision"] == "fp32" and float(peers[0]["max abs diff"]) == 0.0
    from swinir.model import native_bf16

    # without native bf16 the engine runs bf16 requests in fp32 (emulated bf16 is ~5x slower): no bf16 row
    assert set(ours) == ({"fp32", "bf16"} if native_bf16() else {"fp32"})
    for r in rows:
        assert float(r["ms/image"]) > 0 and float(r["MP/s (input)"]) > 0 and float(r["peak MiB"]) >= 0
        assert float(r["GFLOP/s"]) > 0 and 0 < float(r["of SGEMM peak"].rstrip("%")) < 1000
        # the case's own peak, measured between its repeats, is what its share is of (the table rounds)
        share = float(r["GFLOP/s"]) / float(r["SGEMM peak"])
        assert abs(100 * share - float(r["of SGEMM peak"].rstrip("%"))) <= 0.5 + 100 * share / float(r["SGEMM peak"])
    assert float(ours["fp32"]["max abs diff"]) <= 1e-4  # same weights, same input: same output
    assert "bf16" not in ours or float(ours["bf16"]["PSNR dB"]) >= 45
    assert out_md.read_text().count("| swinir |") == len(ours)
    assert "SGEMM peak (2048^3 fp32 matmul):" in proc.stdout.splitlines()[0]
    assert "minimum vs peer fp32, swinir fp32: " in proc.stdout
    # the limit of any implementation doing the same FLOPs: the peer's rate against the SGEMM peak
    ceiling = next(ln for ln in proc.stdout.splitlines() if ln.startswith("ceiling for fp32 at the SGEMM peak"))
    of_peak = float(peers[0]["of SGEMM peak"].rstrip("%")) / 100
    value = float(ceiling.split(": ")[1].split("x")[0])
    assert 1 / (of_peak + 0.005) - 0.01 <= value <= 1 / (of_peak - 0.005) + 0.01  # the table rounds to 1%
    # the PyTorch-only path is there for comparison whenever the CPU kernel is in use, with the same output
    from swinir import kernels

    # chunked blocks with PyTorch's attention (the ARM/macOS path) and whole-size blocks
    assert len(plain) == (2 if kernels.available() else 0)
    assert all(float(r["max abs diff"]) <= 1e-4 for r in plain)
    assert "swinir CPU kernel:" in proc.stdout.splitlines()[0]


def test_inference_benchmark_family_rows(shared: Path) -> None:
    """Swin2SR rows against spandrel's copy of the authors' network: same weights, same output."""
    import importlib.util

    import pytest

    try:  # another test may have registered a bare spandrel package (without __spec__) in this process
        missing = "spandrel" not in sys.modules and importlib.util.find_spec("spandrel") is None
    except ValueError:
        missing = False
    if missing:
        pytest.skip("spandrel (the Swin2SR rows' peer) is not installed: pip install --no-deps spandrel==0.4.2")
    args = ["--configs", "swin2sr_lightweight_x2", "--sizes", "32", "--repeats", "1", "--precisions", "fp32"]
    proc = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = [dict(zip(header, (c.strip() for c in ln.strip("|").split("|")))) for ln in lines[2:]]
    assert [r["implementation"] for r in rows] == ["spandrel 0.4.2", "swinir"]
    assert all(r["configuration"] == "Swin2SR lightweight SR x2" and float(r["peak MiB"]) >= 0 for r in rows)
    assert float(rows[1]["max abs diff"]) <= 1e-4
    assert "minimum vs peer fp32, swinir fp32 (swin2sr): " in proc.stdout


PHOTO = Path(__file__).resolve().parents[1] / "benchmarks" / "photo.py"


@pytest.mark.spandrel  # the original's side runs over spandrel's network; without it, --skip-original
def test_photo_benchmark_small_mode(shared: Path) -> None:
    """benchmarks/photo.py --small: `swinir restore` end to end on a real file, the original's tiled script
    beside it, and sane figures (seconds, MP/s, peak RSS, the share of the SGEMM peak, e2e / forward)."""
    import importlib.util

    have_spandrel = "spandrel" in sys.modules or importlib.util.find_spec("spandrel") is not None
    args = ["--small", "--models", "builtin-x4", *([] if have_spandrel else ["--skip-original"])]
    proc = subprocess.run([sys.executable, str(PHOTO), *args], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("# 96x64 photo;") and "SGEMM peak" in lines[0]
    start = lines.index(next(ln for ln in lines if ln.startswith("| model | run |")))  # rows come first, as run
    table = [ln for ln in lines[start:] if ln.startswith("| ")]
    header = [c.strip() for c in table[0].strip("|").split("|")]
    rows = [dict(zip(header, (c.strip() for c in ln.strip("|").split("|")))) for ln in table[1:]]
    assert [r["run"] for r in rows] == ["swinir restore", *(["original tiled"] if have_spandrel else [])]
    for r in rows:
        assert r["model"] == "builtin-x4"
        assert 0 < float(r["seconds"]) < 900 and float(r["MP/s"]) > 0 and float(r["CPU s"]) > 0
        assert 50 < float(r["peak RSS MiB"]) < 64 * 1024  # a torch process, not a runaway one
        assert 0 < float(r["of SGEMM peak"].rstrip("%")) < 1000
    ours = rows[0]
    assert ours["tiles"] == "1 of 64x96"  # auto: the whole 96x64 photo in one tile
    if have_spandrel:
        for column in ("vs original", "vs original (CPU s)"):
            assert ours[column].endswith("x") and float(ours[column].rstrip("x")) > 0
    note = next(ln for ln in lines if ln.startswith("builtin-x4: "))
    ratio = float(note.split("e2e / forward ")[1].split(" ")[0])
    assert 0 < ratio <= 1.5  # a whole run cannot beat its own forward by much
    without = float(note.split("without it e2e / forward ")[1].split(" ")[0])
    assert without > ratio  # the start-up (a 32x32 restore) is part of the whole run
    assert "precision " in note


def test_attention_kernel_benchmark_small_mode() -> None:
    """benchmarks/attention_kernel.py --small: both tables, the kernel's old and new paths timed and, in fp32,
    within 1e-5 of each other on the built-in model (bf16: within a bf16 step of the output's range)."""
    from swinir import kernels

    if not kernels.available():
        pytest.skip(f"CPU kernels not used here: {kernels.status()}")
    script = SCRIPT.with_name("attention_kernel.py")
    proc = subprocess.run([sys.executable, str(script), "--small"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [[c.strip() for c in ln.strip("|").split("|")] for ln in proc.stdout.splitlines() if ln.startswith("| ")]
    calls = [r for r in rows if r[0] == "4 x 12"]
    models = {r[1]: r for r in rows if r[0].startswith("builtin-x4")}
    assert len(calls) == 1 and all(float(c) > 0 for c in (calls[0][1], calls[0][2], calls[0][5], calls[0][6]))
    assert set(models) == {"fp32", "bf16 autocast"}
    assert float(models["fp32"][5]) <= 1e-5
    assert float(models["bf16 autocast"][5]) <= 2e-2
