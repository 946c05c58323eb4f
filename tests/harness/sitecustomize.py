"""Test harness loaded by child processes through PYTHONPATH: holds a training run at a given iteration.

A test that stops a run with a real Ctrl-C must not race the run's end: with ``SWINIR_TEST_HOLD=NAME:ITER``
the trainer of the run whose output folder is named NAME waits after step ITER, writes ``held`` there and
keeps waiting until a signal stops it, so the signal always lands mid-run however fast the machine is."""

from __future__ import annotations

import os

_HOLD = os.environ.get("SWINIR_TEST_HOLD")

if _HOLD:
    import time
    from pathlib import Path
    from typing import Any

    from swinir.train import trainer as _trainer

    _name, _at = _HOLD.rsplit(":", 1)
    _step = _trainer.Trainer.training_step

    def _held_step(self: Any, batch: Any) -> Any:
        out = _step(self, batch)
        if Path(self.out).name == _name and self.iteration + 1 == int(_at):
            (Path(self.out) / "held").write_text(str(self.iteration + 1))
            while not self._stop:
                time.sleep(0.05)
        return out

    _trainer.Trainer.training_step = _held_step  # type: ignore[method-assign]
