"""The paper's ablation study as a tool: a sweep of config values, each run trained by the ordinary trainer
with the same seed, data stream, schedule and validation, compared in a table and two plots.

    >>> from swinir.ablate import ablate
    >>> summary = ablate("src/swinir/presets/ablations/rstb-design-cpu.yaml", "runs/ablate-rstb")

``plan`` reads a sweep file and plans its runs, ``runner`` runs them (one process each, N side by side,
resumable), ``report`` writes results.csv / results.md / ablation.png / curves.png.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from swinir.ablate.plan import Run, Sweep, load_sweep, plan_runs
from swinir.ablate.report import write_reports
from swinir.ablate.runner import Outcome, execute, prepare, wait_for_all

__all__ = ["AblateSummary", "Run", "Sweep", "ablate", "load_sweep", "plan_runs", "report_only"]


@dataclass
class AblateSummary:
    out: Path
    runs: list[Run]
    outcomes: list[Outcome]
    reports: list[Path]

    @property
    def complete(self) -> bool:
        return all(o.state in ("done", "kept") for o in self.outcomes) and len(self.outcomes) == len(self.runs)


def _about(runs: list[Run]) -> str:
    cfg = runs[0].config
    t, v = cfg.train, cfg.val
    budget = f"{t.time_limit:g} s of training each" if t.time_limit else f"{t.iterations} iterations each"
    val = f"validation on {v.hr}" + (f" (first {v.max_images} images" if v.max_images else " (all images")
    val += f", centre crops of at most {v.max_size}px)" if v.max_size else ")"
    return f"Budget: {budget}, seed {t.seed}; {val}, every {v.every} iterations."


def ablate(
    sweep_file: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    overrides: list[str] | None = None,
    resume: bool = False,
    parallel: int = 1,
    gpus: list[str] | None = None,
    on_run: Callable[[Outcome, int, int], None] | None = None,
) -> AblateSummary:
    """Plan, run (what is not finished yet) and report a sweep; ``out`` defaults to ``runs/ablate-NAME``.

    Under torchrun each rank runs every WORLD_SIZE-th run (on GPU LOCAL_RANK when there are GPUs) and rank 0
    writes the reports once all runs ended."""
    from swinir.torchrun import from_env

    sweep_path = Path(sweep_file)
    sweep = load_sweep(sweep_path, overrides)
    runs, base_values = plan_runs(sweep)
    out_dir = Path(out) if out is not None else Path("runs") / f"ablate-{sweep.name}"
    dist = from_env()
    since = time.time()
    if dist.main:
        prepare(out_dir, sweep_path, runs, resume)
    else:
        _wait_for_plan(out_dir, since)
    mine = runs[dist.rank :: dist.world] if dist.enabled else runs
    if gpus is None:
        gpus = _gpus(dist.local_rank if dist.enabled else None)
    threads = _threads(parallel, dist.world)
    outcomes = execute(out_dir, sweep, mine, parallel=max(1, parallel), threads=threads, gpus=gpus, report=on_run)
    if not dist.main:
        return AblateSummary(out_dir, mine, outcomes, [])
    if dist.enabled:
        wait_for_all(out_dir, runs, since)
    reports = write_reports(out_dir, sweep, runs, base_values, _about(runs))
    return AblateSummary(out_dir, mine, outcomes, reports)


def report_only(
    sweep_file: str | os.PathLike[str], out: str | os.PathLike[str], overrides: list[str] | None = None
) -> list[Path]:
    """Rewrite the tables and plots of a sweep folder from what its runs hold now (runs may be unfinished)."""
    sweep = load_sweep(Path(sweep_file), overrides)
    runs, base_values = plan_runs(sweep)
    return write_reports(Path(out), sweep, runs, base_values, _about(runs))


def _threads(parallel: int, world: int) -> int:
    """CPU threads per worker when several share the machine (0: torch's default)."""
    share = max(1, parallel) * max(1, world)
    return max(1, (os.cpu_count() or 1) // share) if share > 1 else 0


def _gpus(local_rank: int | None) -> list[str] | None:
    """The GPUs workers may use (as CUDA_VISIBLE_DEVICES entries): this rank's one under torchrun, else all."""
    import torch

    if not torch.cuda.is_available():
        return None
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = [v.strip() for v in visible.split(",") if v.strip()] if visible else []
    ids = ids or [str(i) for i in range(torch.cuda.device_count())]
    return [ids[local_rank % len(ids)]] if local_rank is not None else ids


def _wait_for_plan(out: Path, since: float, timeout: float = 600.0) -> None:
    """Other ranks start once rank 0 wrote (or checked) the plan."""
    plan = out / "plan.json"
    t0 = time.time()
    while not (plan.exists() and plan.stat().st_mtime >= since - 1):
        if time.time() - t0 > timeout:
            from swinir.errors import ConfigError

            raise ConfigError(f"{plan}: rank 0 did not write the sweep plan within {timeout:.0f}s")
        time.sleep(0.5)
