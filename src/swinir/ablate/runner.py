"""Running a sweep's runs: one worker process per run (``swinir.ablate.worker``), N side by side, resumable.

Output folder::

    sweep.yaml      the sweep as given          plan.json   every run's name, axis values and full config
    runs/NAME/      one ordinary training run (config.yaml, metrics.jsonl, checkpoints/, models/, ...)
                    + run.yaml (what the worker trains) and result.json once it finished
    results.csv, results.md, ablation.png, curves.png   (swinir.ablate.report)

A run with ``result.json`` is finished and kept; one with ``checkpoints/latest.pt`` continues from it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from swinir.ablate.plan import Run, Sweep
from swinir.atomic import write_text
from swinir.errors import ConfigError

DIST_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "GROUP_RANK")
RESULT = "result.json"  # written by the worker when its run finished
STATUS = "status.json"  # written by the launching process when a worker exits


@dataclass
class Outcome:
    name: str
    state: str  # done, stopped, failed, kept (finished in an earlier invocation)
    seconds: float = 0.0


def run_dir(out: Path, run: Run) -> Path:
    return out / "runs" / run.name


def is_done(out: Path, run: Run) -> bool:
    return (run_dir(out, run) / RESULT).is_file()


def prepare(out: Path, sweep_file: Path, runs: list[Run], resume: bool) -> None:
    """Check the folder against the plan (before any write), then write the plan and each run's config."""
    plan_path = out / "plan.json"
    if plan_path.exists() and not resume:
        raise ConfigError(
            f"{out} already holds a sweep; add --resume to continue it, or choose another --out"
        ) from None
    if plan_path.exists():
        try:
            old = json.loads(plan_path.read_text())["runs"]
        except (ValueError, KeyError, TypeError):
            raise ConfigError(
                f"{plan_path}: unreadable sweep plan; move the folder away or choose another --out"
            ) from None
        for run in runs:
            if run.name in old and old[run.name]["config"] != json.loads(run.identity()):
                raise ConfigError(
                    f"run {run.name}: its configuration differs from the one in {plan_path}; "
                    "resume with the sweep file it was started with, or choose another --out"
                )
    elif (out / "runs").exists() and any((out / "runs").iterdir()):
        raise ConfigError(f"{out}/runs holds runs of no sweep plan; choose another --out") from None
    plan = {
        "sweep": str(sweep_file),
        "runs": {r.name: {"values": r.values, "config": json.loads(r.identity())} for r in runs},
    }
    write_text(plan_path, json.dumps(plan, indent=1, default=str) + "\n")
    write_text(out / "sweep.yaml", sweep_file.read_text())
    for run in runs:
        write_text(run_dir(out, run) / "run.yaml", run.config.to_yaml())


def worker_env(threads: int, gpu: str | None) -> dict[str, str]:
    """The worker must not see torchrun's variables (it trains alone) and gets its share of the CPU."""
    env = {k: v for k, v in os.environ.items() if k not in DIST_VARS}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpu
    return env


def _command(d: Path, flops_input: int, threads: int, quiet: bool) -> list[str]:
    cmd = [sys.executable, "-m", "swinir.ablate.worker", str(d), "--flops-input", str(flops_input)]
    if (d / "checkpoints" / "latest.pt").exists():
        cmd.append("--resume")
    if threads:
        cmd += ["--threads", str(threads)]
    if quiet:
        cmd.append("--no-progress")
    return cmd


def _state(rc: int) -> str:
    return "done" if rc == 0 else "stopped" if rc in (130, -signal.SIGINT, -signal.SIGTERM) else "failed"


def execute(
    out: Path,
    sweep: Sweep,
    runs: list[Run],
    parallel: int = 1,
    threads: int = 0,
    gpus: list[str] | None = None,
    report: Callable[[Outcome, int, int], None] | None = None,
) -> list[Outcome]:
    """Run every unfinished run, ``parallel`` at a time; a stopped or failed run stops starting new ones.

    Serial runs show the trainer's progress bar; side-by-side runs log to ``runs/NAME/worker.log``."""
    todo = [r for r in runs if not is_done(out, r)]
    outcomes = [Outcome(r.name, "kept") for r in runs if is_done(out, r)]
    quiet = parallel > 1
    active: dict[subprocess.Popen[bytes], tuple[Run, float, str | None]] = {}
    stop = False
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)  # the workers get Ctrl-C, save and stop; we wait
    try:
        while todo or active:
            while todo and len(active) < parallel and not stop:
                run = todo.pop(0)
                d = run_dir(out, run)
                (d / STATUS).unlink(missing_ok=True)
                gpu = _least_busy(gpus, [g for _, _, g in active.values()])
                log = open(d / "worker.log", "ab") if quiet else None  # noqa: SIM115 - closed with the process
                proc = subprocess.Popen(
                    _command(d, sweep.flops_input, threads, quiet),
                    env=worker_env(threads, gpu),
                    stdout=log,
                    stderr=subprocess.STDOUT if log else None,
                )
                if log is not None:
                    log.close()
                active[proc] = (run, time.time(), gpu)
            finished = [p for p in active if p.poll() is not None]
            if not finished:
                time.sleep(0.2)
                continue
            for proc in finished:
                run, t0, _ = active.pop(proc)
                o = Outcome(run.name, _state(proc.returncode), time.time() - t0)
                write_text(run_dir(out, run) / STATUS, json.dumps({"state": o.state, "rc": proc.returncode}) + "\n")
                stop = stop or o.state != "done"
                outcomes.append(o)
                if report is not None:
                    report(o, len(outcomes), len(runs))
            if stop:
                for run in todo:  # so that rank 0 under torchrun does not wait for them
                    write_text(run_dir(out, run) / STATUS, json.dumps({"state": "skipped"}) + "\n")
                todo.clear()
    finally:
        signal.signal(signal.SIGINT, old)
    return outcomes


def _least_busy(gpus: list[str] | None, busy: list[str | None]) -> str | None:
    """The GPU running the fewest workers (several may share one)."""
    return min(gpus, key=busy.count) if gpus else None


def wait_for_all(out: Path, runs: list[Run], since: float, poll: float = 5.0) -> None:
    """Under torchrun, rank 0 waits until every other rank's runs ended (finished, stopped or failed)."""
    while True:
        pending = [
            r
            for r in runs
            if not is_done(out, r)
            and not ((run_dir(out, r) / STATUS).exists() and (run_dir(out, r) / STATUS).stat().st_mtime >= since)
        ]
        if not pending:
            return
        time.sleep(poll)
