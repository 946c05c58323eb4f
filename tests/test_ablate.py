"""`swinir ablate`: planning (grid / one at a time, names, errors), a real 2x2 tiny sweep end to end, its
table and plots against the runs' own metrics, and resuming after a real Ctrl-C."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from swinir.ablate import load_sweep, plan_runs
from swinir.ablate.plan import format_value
from swinir.cli import main
from swinir.errors import ConfigError

COMMON = {
    "train.iterations": 8,
    "val.every": 4,
    "val.max_images": 1,
    "val.max_size": 48,
    "log.every": 2,
    "log.checkpoint_every": 4,
    "log.tensorboard": False,
    "log.progress": False,
    "log.plot": False,
}


@pytest.fixture(scope="module")
def images(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ablate_imgs")
    for f in sorted((shared / "data" / "train" / "BSD400").iterdir())[:6]:
        shutil.copy(f, out / f.name)
    return out


def write_sweep(path: Path, axes: dict, mode: str = "grid", **common: object) -> Path:
    doc = {"name": path.stem, "base": "builtin-x2-tiny", "mode": mode, "set": {**COMMON, **common}, "axes": axes}
    doc["flops_input"] = 32
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


# -- planning --------------------------------------------------------------------------------------
def test_grid_and_one_at_a_time_plans(tmp_path: Path) -> None:
    axes = {"model.embed_dim": [8, 16], "data.patch_size": [8, 16, 24], "model.depths": [[2], [2, 2]]}
    grid, base = plan_runs(load_sweep(write_sweep(tmp_path / "g.yaml", axes)))
    assert len(grid) == 2 * 3 * 2
    assert base == {"model.embed_dim": 16, "data.patch_size": 16, "model.depths": [2]}
    names = [r.name for r in grid]
    assert len(set(names)) == len(names)
    assert names[0] == "embed_dim=8,patch_size=8,depths=2"
    r = next(r for r in grid if r.name == "embed_dim=8,patch_size=24,depths=2-2")
    assert (r.config.model.embed_dim, r.config.data.patch_size, r.config.model.depths) == (8, 24, [2, 2])
    assert r.config.train.iterations == 8 and r.config.train.seed == grid[0].config.train.seed
    # one at a time: 2 + 3 + 2 variations of the base, minus the two repeats of the base itself
    oat, _ = plan_runs(load_sweep(write_sweep(tmp_path / "o.yaml", axes, mode="one-at-a-time")))
    assert len(oat) == 2 + 3 + 2 - 2
    for run in oat:
        off_base = [k for k, v in run.values.items() if v != base[k]]
        assert len(off_base) <= 1, run.name
    assert sum(all(v == base[k] for k, v in r.values.items()) for r in oat) == 1


def test_values_format_into_names() -> None:
    assert format_value([6, 6, 6]) == "6-6-6"
    assert format_value(1e-4) == "0.0001"
    assert format_value(True) == "true"
    assert format_value("") == "empty"


@pytest.mark.parametrize(
    "axes, message",
    [
        ({"model.no_such_key": [1, 2]}, "no_such_key"),
        ({"model.embed_dim": [9]}, "run embed_dim=9: model.num_heads[0]: embed_dim 9 is not divisible by 2"),
        ({"model.embed_dim": []}, "axes.model.embed_dim: expected a non-empty list"),
        ({"model.embed_dim": [8, 8]}, "lists a value twice"),
    ],
)
def test_bad_sweeps_fail_with_the_key(tmp_path: Path, axes: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        plan_runs(load_sweep(write_sweep(tmp_path / "bad.yaml", axes)))


def test_unknown_sweep_key(tmp_path: Path) -> None:
    p = write_sweep(tmp_path / "s.yaml", {"model.embed_dim": [8]})
    p.write_text(p.read_text() + "axis: {}\n")
    with pytest.raises(ConfigError, match="unknown key.*axis"):
        load_sweep(p)


def test_shipped_sweeps_plan() -> None:
    from swinir.ablate.plan import shipped_sweep, shipped_sweeps

    names = shipped_sweeps()
    from swinir.cli.ablate import SHIPPED

    assert set(names) == set(SHIPPED)  # --help names them all
    for name in names:
        runs, _ = plan_runs(load_sweep(shipped_sweep(name)))
        assert len(runs) >= 3, name


# -- a real sweep ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def grid_sweep(images: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("grid")
    sweep = write_sweep(
        d / "grid.yaml", {"model.embed_dim": [8, 16], "data.patch_size": [8, 16]}, **{"data.train": [str(images)]}
    )
    assert main(["ablate", str(sweep), "--out", str(d / "out"), "--parallel", "2"]) == 0
    return d / "out"


def test_grid_sweep_runs_every_variant(grid_sweep: Path) -> None:
    runs = sorted(p.name for p in (grid_sweep / "runs").iterdir())
    assert runs == sorted(f"embed_dim={e},patch_size={p}" for e in (8, 16) for p in (8, 16))
    for name in runs:
        cfg = yaml.safe_load((grid_sweep / "runs" / name / "config.yaml").read_text())
        want = dict(kv.split("=") for kv in name.split(","))
        assert cfg["model"]["embed_dim"] == int(want["embed_dim"]) and cfg["data"]["patch_size"] == int(
            want["patch_size"]
        )
        assert cfg["train"]["seed"] == 0 and cfg["val"]["max_images"] == 1 and cfg["train"]["iterations"] == 8


def test_table_holds_the_runs_own_metrics(grid_sweep: Path) -> None:
    rows = list(csv.DictReader((grid_sweep / "results.csv").open()))
    assert len(rows) == 4
    params = {}
    for row in rows:
        d = grid_sweep / "runs" / row["name"]
        recs = [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()]
        val = [r for r in recs if r["kind"] == "val"]
        assert [r["iter"] for r in val] == [0, 4, 8]
        assert float(row["final_psnr"]) == pytest.approx(val[-1]["psnr"], abs=1e-4)
        assert float(row["final_ssim"]) == pytest.approx(val[-1]["ssim"], abs=1e-5)
        best = max(val[1:], key=lambda r: r["psnr"])
        assert (
            float(row["best_psnr"]) == pytest.approx(best["psnr"], abs=1e-4) and int(row["best_iter"]) == best["iter"]
        )
        assert row["state"] == "done" and int(row["iterations"]) == 8
        result = json.loads((d / "result.json").read_text())
        assert int(row["params"]) == result["params"] > 0
        assert float(row["s_per_iter"]) > 0 and float(row["peak_mem_mb"]) > 50
        params[row["embed_dim"], row["patch_size"]] = (int(row["params"]), float(row["gflops"]))
    # parameters and FLOPs follow the model, not the training patch
    assert params["8", "8"] == params["8", "16"] and params["16", "8"] == params["16", "16"]
    assert params["16", "8"][0] > 2 * params["8", "8"][0] and params["16", "8"][1] > 2 * params["8", "8"][1]
    md = (grid_sweep / "results.md").read_text()
    for row in rows:
        assert f"| {row['name']} | {row['embed_dim']} | {row['patch_size']} | 8 | {row['final_psnr']} |" in md


def test_plots_are_pngs_of_the_expected_size(grid_sweep: Path) -> None:
    from swinir.ablate.report import CURVES_INCHES, DPI, PANEL_INCHES

    assert png_size(grid_sweep / "ablation.png") == (round(2 * PANEL_INCHES[0] * DPI), round(PANEL_INCHES[1] * DPI))
    assert png_size(grid_sweep / "curves.png") == (round(CURVES_INCHES[0] * DPI), round(CURVES_INCHES[1] * DPI))
    import cv2

    img = cv2.imread(str(grid_sweep / "ablation.png"))
    assert img is not None and img.std() > 10  # drawn, not blank


def test_rerun_without_resume_refuses(grid_sweep: Path) -> None:
    sweep = grid_sweep / "sweep.yaml"
    with pytest.raises(ConfigError, match="already holds a sweep; add --resume"):
        main(["--debug", "ablate", str(sweep), "--out", str(grid_sweep)])


# -- resume after Ctrl-C ------------------------------------------------------------------------------
def test_resume_keeps_finished_runs_and_continues_the_interrupted_one(images: Path, tmp_path: Path) -> None:
    sweep = write_sweep(
        tmp_path / "oat.yaml",
        {"model.embed_dim": [8, 16]},
        mode="one-at-a-time",
        **{"data.train": [str(images)], "train.iterations": 12},
    )
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "swinir", "ablate", str(sweep), "--out", str(out)]
    # the harness holds the second run after step 6 (its step-4 checkpoint saved) until the Ctrl-C lands
    harness = Path(__file__).parent / "harness"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(harness), os.environ.get("PYTHONPATH")]))}
    env["SWINIR_TEST_HOLD"] = "embed_dim=16:6"
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    second = out / "runs" / "embed_dim=16"
    deadline = time.time() + 240
    while not (second / "held").exists():
        assert proc.poll() is None and time.time() < deadline, proc.communicate()[0].decode()[-2000:]
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: reaches the sweep and its worker
    log = proc.communicate(timeout=120)[0].decode()
    assert proc.returncode == 130, log
    assert "embed_dim=16: stopped" in log and "continue with --resume" in log
    first = out / "runs" / "embed_dim=8"
    kept = {p: p.stat().st_mtime_ns for p in (first / "result.json", first / "metrics.jsonl")}
    stopped_at = max(json.loads(line)["iter"] for line in (second / "metrics.jsonl").read_text().splitlines())
    assert (second / "checkpoints" / "latest.pt").exists()
    assert 4 <= stopped_at < 12 and not (second / "result.json").exists()
    rows = list(csv.DictReader((out / "results.csv").open()))  # partial results are reported too
    assert [r["state"] for r in rows] == ["done", "partial"]

    r = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stdout + r.stderr
    assert {p: p.stat().st_mtime_ns for p in kept} == kept  # the finished run was not touched
    assert "resumed from" in (second / "train.log").read_text()
    val_iters = [json.loads(x)["iter"] for x in (second / "metrics.jsonl").read_text().splitlines()]
    assert val_iters == sorted(val_iters) and val_iters[-1] == 12  # no duplicated history after the resume
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [(r["name"], r["state"], r["iterations"]) for r in rows] == [
        ("embed_dim=8", "done", "12"),
        ("embed_dim=16", "done", "12"),
    ]


def test_max_images_limits_the_training_set(images: Path) -> None:
    """data.max_images: the paper's training-image-number axis."""
    from swinir.train import load_config
    from swinir.train.data import TrainSet

    cfg = load_config("builtin-x2-tiny", [f"data.train=[{images}]", "data.max_images=3"])
    train_set = TrainSet(cfg.data, 2, 3)
    assert [r.hr.name for r in train_set.records] == sorted(p.name for p in images.iterdir())[:3]
    with pytest.raises(ConfigError, match="data.max_images: must be >= 0"):
        load_config("builtin-x2-tiny", ["data.max_images=-1"])


def test_convergence_axis_starts_where_the_runs_are_worth_reading() -> None:
    """An untrained model's first validation (~10 dB) would squash the curves into a flat line at the top:
    the axis starts 3 dB below the worst final PSNR (or the input's) when points lie below that."""
    from swinir.ablate.report import RunResult, curve_floor

    a = RunResult("a", {}, "done", curve=[(0, 12.0), (100, 31.0), (200, 35.5)])
    b = RunResult("b", {}, "done", curve=[(0, 9.5), (100, 33.0), (200, 36.1)])
    assert curve_floor([a, b], None) == pytest.approx(32.5)
    assert curve_floor([a, b], 34.0) == pytest.approx(31.0)  # the bicubic line stays in view
    late = RunResult("c", {}, "done", curve=[(100, 34.0), (200, 35.0)])
    assert curve_floor([late], None) is None  # nothing below: matplotlib's own limits
    assert curve_floor([RunResult("d", {}, "new")], None) is None
