"""`swinir train --out` that cannot hold a run is one line; the summary names the iteration each
validation ran at. Regression tests for issue 12 items 4 and 6."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import pytest

from swinir.cli import main
from swinir.cli.train import validation_summary
from swinir.train import Trainer, load_config


def _one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_train_out_that_is_an_existing_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    existing = tmp_path / "existing_file"
    existing.write_text("keep me")
    err = _one_line_error(capsys, ["train", "builtin-x2-tiny", "--out", str(existing)])
    assert "exists and is not a folder" in err
    assert existing.read_text() == "keep me"


def test_train_out_that_cannot_be_created_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    err = _one_line_error(capsys, ["train", "builtin-x2-tiny", "--out", str(blocker / "run")])
    assert "cannot write there" in err


class _StopAtThree(Trainer):
    def training_step(self, batch):  # type: ignore[no-untyped-def]
        logs = super().training_step(batch)
        if self.iteration == 2:  # the 3rd step; validation ran at 0 and 2
            os.kill(os.getpid(), signal.SIGTERM)
        return logs


def test_training_summary_names_the_iteration_validation_ran_at(shared: Path, tmp_path: Path) -> None:
    images = tmp_path / "imgs"
    images.mkdir()
    for f in sorted((shared / "data" / "train" / "BSD400").iterdir())[:4]:
        shutil.copy(f, images / f.name)
    cfg = load_config(
        "builtin-x2-tiny",
        [
            f"data.train=[{images}]",
            "val.max_images=1",
            "val.max_size=32",
            "val.every=2",
            "log.progress=false",
            "log.plot=false",
            "log.tensorboard=false",
        ],
    )
    t = _StopAtThree(cfg, tmp_path / "run")
    try:
        res = t.fit()
    finally:
        t.close()
    assert res.interrupted and res.iteration == 3
    assert res.last_val["iter"] == 2
    line = validation_summary(res)
    assert line is not None and line.endswith(f"at iteration 2 (input {res.last_val['psnr_input']:.3f} dB)"), line
    assert "at iteration 3" not in line
