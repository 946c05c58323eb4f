"""The training package: no import cycles between its modules; its optional packages (the [train] extra)."""

from __future__ import annotations

import ast
from pathlib import Path

import swinir.train

ROOT = Path(swinir.train.__file__).parent


def imports_of(path: Path) -> set[str]:
    """The ``swinir.train.*`` modules that ``path`` imports anywhere (function bodies included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("swinir.train"):
            if node.module == "swinir.train":  # `from swinir.train import distributed`: submodules by name
                found |= {f"swinir.train.{a.name}" for a in node.names if (ROOT / f"{a.name}.py").exists()}
            else:
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("swinir.train.")}
    return found


def test_no_import_cycles_in_the_training_modules() -> None:
    graph = {f"swinir.train.{p.stem}": imports_of(p) for p in ROOT.glob("*.py") if p.stem != "__init__"}

    def reach(start: str) -> set[str]:
        seen: set[str] = set()
        todo = [start]
        while todo:
            for nxt in graph.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    cycles = sorted(m for m in graph if m in reach(m))
    assert not cycles, f"modules on an import cycle: {cycles}"
    # the package picks the trainer: no module below it imports the package's own __init__ for that
    assert "swinir.train.gan_trainer" not in reach("swinir.train.trainer")
    assert "swinir.train.losses" in reach("swinir.train.config")


def test_training_outputs_without_the_train_extra(tmp_path: Path, monkeypatch, caplog) -> None:
    """matplotlib and tensorboard are the [train] extra: without them a run still logs its metrics, and
    says what it skipped and how to get it."""
    import json
    import logging
    import sys

    from swinir.train.monitor import Monitor, plot_curves

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with caplog.at_level(logging.WARNING, logger="swinir.train"):
        mon = Monitor(tmp_path, tensorboard=True)
        mon.scalars(5, {"loss": 0.5})
        mon.close()
        assert plot_curves(tmp_path / "metrics.jsonl", tmp_path / "curves.png") is None
    assert mon.writer is None and not (tmp_path / "curves.png").exists()
    assert json.loads((tmp_path / "metrics.jsonl").read_text())["loss"] == 0.5
    text = caplog.text
    assert "tensorboard is not installed (pip install 'swinir[train]')" in text
    assert "matplotlib is not installed (pip install 'swinir[train]'): no curves.png" in text
