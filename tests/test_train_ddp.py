"""Two processes with gloo (torchrun, as users launch it) end with the weights of one process with the same
global batch."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from swinir.train import load_config, train


def test_two_gloo_processes_match_one(shared: Path, tmp_path: Path) -> None:
    images = tmp_path / "imgs"
    images.mkdir()
    for f in sorted((shared / "data" / "train" / "BSD400").iterdir())[:8]:
        shutil.copy(f, images / f.name)
    overrides = [
        f"data.train=[{images}]",
        "train.iterations=3",
        "data.batch_size=4",
        "val.hr=null",
        "log.every=1",
        "log.tensorboard=false",
        "log.plot=false",
        "train.grad_clip=0.1",
        "train.threads=1",
    ]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "swinir",
        "train",
        "builtin-x2-tiny",
        "--out",
        str(tmp_path / "ddp"),
        "--no-progress",
    ]
    for o in overrides:
        cmd += ["--set", o]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("outputs in") == 1  # only rank 0 reports and writes

    single = train(load_config("builtin-x2-tiny", overrides + ["log.progress=false"]), tmp_path / "one")
    assert single.iteration == 3
    a = torch.load(tmp_path / "one" / "checkpoints" / "latest.pt", weights_only=True)
    b = torch.load(tmp_path / "ddp" / "checkpoints" / "latest.pt", weights_only=True)
    assert b["world"] == 2 and b["iteration"] == 3
    for k, v in a["model"].items():
        torch.testing.assert_close(b["model"][k], v, rtol=1e-5, atol=1e-6, msg=k)
    for k, v in a["ema"]["module"].items():
        torch.testing.assert_close(b["ema"]["module"][k], v, rtol=1e-5, atol=1e-6, msg=k)
    la = [json.loads(x)["loss"] for x in (tmp_path / "one" / "metrics.jsonl").read_text().splitlines()]
    lb = [json.loads(x)["loss"] for x in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    assert lb == pytest.approx(la, rel=1e-5)  # logged loss is the mean over both processes' halves


def test_time_limit_under_torchrun_stops_both_processes_together(shared: Path, tmp_path: Path) -> None:
    """With a wall-clock budget, rank 0's clock decides re-plans and the stop (collectives at logging
    steps): both processes re-plan alike and end at the same iteration, inside the budget."""
    images = tmp_path / "imgs"
    images.mkdir()
    for f in sorted((shared / "data" / "train" / "BSD400").iterdir())[:8]:
        shutil.copy(f, images / f.name)
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    out = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "swinir",
        "train",
        "builtin-x2-tiny",
        "--out",
        str(out),
        "--no-progress",
    ]
    for o in (
        f"data.train=[{images}]",
        "train.iterations=100000",
        "train.milestones=[50000,90000]",
        "train.time_limit=8",
        "data.batch_size=4",
        "val.hr=null",
        "log.every=2",
        "log.tensorboard=false",
        "log.plot=false",
        "train.threads=1",
        "log.checkpoint_every=100000",
    ):
        cmd += ["--set", o]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = torch.load(out / "checkpoints" / "latest.pt", weights_only=True)
    saved = load_config(out / "config.yaml").train
    assert state["world"] == 2 and 10 < saved.iterations < 100000
    assert state["iteration"] <= saved.iterations and state["train_seconds"] <= 8 * 1.5
    assert state["plan"] == [100000, [50000, 90000]]
    assert "time limit 8s" in (out / "train.log").read_text()
