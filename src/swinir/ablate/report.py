"""A sweep's results, read back from each run's own files (``metrics.jsonl``, ``result.json``), so the tables
and plots can be rebuilt at any time, also while runs are missing or unfinished.

``results.csv`` / ``results.md``: final and best validation PSNR/SSIM, parameters, FLOPs at the sweep's fixed
input, seconds per iteration and peak memory, one row per run. ``ablation.png``: one panel per axis, PSNR
against the axis value, parameters on a second axis (the paper's ablation figure). ``curves.png``:
validation PSNR against iterations of every run on one chart (the paper's convergence plot).
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from swinir.ablate.measure import seconds_per_iteration
from swinir.ablate.plan import Axis, Run, Sweep, format_value
from swinir.ablate.runner import RESULT, run_dir
from swinir.atomic import atomic_path, write_text
from swinir.train.monitor import read_metrics

PANEL_INCHES = (4.6, 3.8)  # ablation.png: per panel
CURVES_INCHES = (9.0, 5.0)
DPI = 100


@dataclass
class RunResult:
    name: str
    values: dict[str, Any]
    state: str  # done, partial (has a checkpoint or metrics), new
    iterations: int | None = None
    final_psnr: float | None = None
    final_ssim: float | None = None
    best_psnr: float | None = None
    best_ssim: float | None = None
    best_iter: int | None = None
    params: int | None = None
    flops: int | None = None
    s_per_iter: float | None = None
    peak_mem_mb: float | None = None
    peak_mem_kind: str = ""
    curve: list[tuple[int, float]] = field(default_factory=list)
    input_psnr: float | None = None


def collect(out: Path, runs: list[Run]) -> list[RunResult]:
    results = []
    for run in runs:
        d = run_dir(out, run)
        recs = read_metrics(d / "metrics.jsonl")
        val = sorted((r for r in recs if r.get("kind") == "val" and r.get("psnr") is not None), key=lambda r: r["iter"])
        done = (d / RESULT).is_file()
        res = RunResult(run.name, run.values, "done" if done else "partial" if recs else "new")
        res.curve = [(int(r["iter"]), float(r["psnr"])) for r in val]
        res.s_per_iter = seconds_per_iteration(recs)
        if val:
            res.final_psnr, res.final_ssim = val[-1]["psnr"], val[-1].get("ssim")
            res.input_psnr = val[0].get("psnr_input")
            trained = [r for r in val if r["iter"] > 0] or val
            best = max(trained, key=lambda r: r["psnr"])
            res.best_psnr, res.best_ssim, res.best_iter = best["psnr"], best.get("ssim"), int(best["iter"])
        its = [int(r["iter"]) for r in recs]
        res.iterations = max(its) if its else None
        if done:
            info = json.loads((d / RESULT).read_text())
            res.iterations = info["iterations"]
            res.params, res.flops = info["params"], info["flops"]
            res.peak_mem_mb, res.peak_mem_kind = info.get("peak_mem_mb"), info.get("peak_mem_kind", "")
        results.append(res)
    return results


COLUMNS = (
    "iterations",
    "final_psnr",
    "final_ssim",
    "best_psnr",
    "best_ssim",
    "best_iter",
    "params",
    "gflops",
    "s_per_iter",
    "peak_mem_mb",
    "peak_mem_kind",
)


def _row(sweep: Sweep, r: RunResult) -> dict[str, Any]:
    def rnd(v: float | None, nd: int) -> Any:
        return "" if v is None else round(float(v), nd)

    row: dict[str, Any] = {"name": r.name, "state": r.state}
    row.update({a.label: format_value(r.values[a.key]) for a in sweep.axes})
    row.update(
        iterations="" if r.iterations is None else r.iterations,
        final_psnr=rnd(r.final_psnr, 4),
        final_ssim=rnd(r.final_ssim, 5),
        best_psnr=rnd(r.best_psnr, 4),
        best_ssim=rnd(r.best_ssim, 5),
        best_iter="" if r.best_iter is None else r.best_iter,
        params="" if r.params is None else r.params,
        gflops=rnd(None if r.flops is None else r.flops / 1e9, 4),
        s_per_iter=rnd(r.s_per_iter, 4),
        peak_mem_mb=rnd(r.peak_mem_mb, 1),
        peak_mem_kind=r.peak_mem_kind,
    )
    return row


def results_csv(sweep: Sweep, results: list[RunResult]) -> str:
    buf = io.StringIO()
    fields = ["name", "state", *(a.label for a in sweep.axes), *COLUMNS]
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    for r in results:
        w.writerow(_row(sweep, r))
    return buf.getvalue()


def results_md(sweep: Sweep, results: list[RunResult], base_values: dict[str, Any], about: str) -> str:
    head = ["run", *(a.label for a in sweep.axes), "iters", "PSNR final", "SSIM final", "PSNR best (iter)"]
    head += ["params", f"GFLOPs @{sweep.flops_input}px", "s/iter", "peak MB"]
    lines = [f"# Ablation sweep `{sweep.name}`", ""]
    if sweep.description:
        lines += [sweep.description, ""]
    base = ", ".join(f"{a.key} = {format_value(base_values[a.key])}" for a in sweep.axes)
    lines += [f"Base: `{sweep.base}` ({base}); axes combine {sweep.mode}. {about}", ""]
    common = ", ".join(f"{k}={format_value(v)}" for k, v in sweep.common.items())
    lines += [f"Common to every run (the sweep's `set` and `--set`): {common or 'nothing'}.", ""]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        row = _row(sweep, r)
        best = f"{row['best_psnr']} ({row['best_iter']})" if row["best_psnr"] != "" else ""
        mem = f"{row['peak_mem_mb']} ({row['peak_mem_kind']})" if row["peak_mem_mb"] != "" else ""
        params = f"{r.params / 1e3:.1f}k" if r.params is not None else ""
        cells = [r.name + ("" if r.state == "done" else f" ({r.state})")]
        cells += [row[a.label] for a in sweep.axes]
        cells += [row["iterations"], row["final_psnr"], row["final_ssim"], best, params, row["gflops"]]
        cells += [row["s_per_iter"], mem]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _key(v: Any) -> str:
    return json.dumps(v, sort_keys=True)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _series(
    sweep: Sweep, axis: Axis, results: list[RunResult], base_values: dict[str, Any]
) -> dict[str, list[RunResult]]:
    """Runs to draw on ``axis``' panel, one line per setting of the other axes (grid) or the line of runs
    whose other axes are at their base values (one at a time)."""
    others = [a for a in sweep.axes if a is not axis]
    lines: dict[str, list[RunResult]] = {}
    for r in results:
        if r.final_psnr is None or r.state != "done":  # unfinished runs: in curves.png only
            continue
        if sweep.mode != "grid" and any(_key(r.values[a.key]) != _key(base_values[a.key]) for a in others):
            continue
        label = ", ".join(f"{a.label}={format_value(r.values[a.key])}" for a in others) if sweep.mode == "grid" else ""
        lines.setdefault(label, []).append(r)
    return lines


def _draw_panel(ax: Any, sweep: Sweep, axis: Axis, results: list[RunResult], base_values: dict[str, Any]) -> None:
    order = [_key(v) for v in axis.values]
    if _key(base_values[axis.key]) not in order:
        order.append(_key(base_values[axis.key]))
    numeric = all(_is_number(json.loads(k)) for k in order)
    twin = ax.twinx()
    for i, (label, runs) in enumerate(_series(sweep, axis, results, base_values).items()):
        runs = sorted(runs, key=lambda r: order.index(_key(r.values[axis.key])))
        xs = [r.values[axis.key] if numeric else order.index(_key(r.values[axis.key])) for r in runs]
        color = f"C{i % 10}"
        ax.plot(xs, [r.final_psnr for r in runs], "o-", color=color, label=label or "PSNR")
        pts = [(x, r.params) for x, r in zip(xs, runs) if r.params is not None]
        if pts:
            twin.plot(*zip(*pts), "s--", color=color, alpha=0.4, ms=4, label=f"params {label}".strip())
    if not numeric:
        ax.set_xticks(range(len(order)))
        ax.set_xticklabels([format_value(json.loads(k)) for k in order], rotation=20 if len(order) > 4 else 0)
    ax.set_xlabel(axis.key)
    ax.set_ylabel("validation PSNR (dB), final")
    twin.set_ylabel("parameters", color="gray")
    twin.tick_params(axis="y", colors="gray")
    ax.grid(alpha=0.3)
    if sweep.mode == "grid" and len(sweep.axes) > 1:
        ax.legend(fontsize=7, loc="best")


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    with atomic_path(path, suffix=".tmp.png") as tmp:
        fig.savefig(tmp, dpi=DPI)
    plt.close(fig)
    return path


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_ablation(path: Path, sweep: Sweep, results: list[RunResult], base_values: dict[str, Any]) -> Path:
    plt = _pyplot()
    n = len(sweep.axes)
    fig, axes = plt.subplots(1, n, figsize=(PANEL_INCHES[0] * n, PANEL_INCHES[1]), squeeze=False)
    for ax, axis in zip(axes[0], sweep.axes):
        _draw_panel(ax, sweep, axis, results, base_values)
    fig.suptitle(f"ablation: {sweep.name}", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def curve_floor(results: list[RunResult], base: float | None) -> float | None:
    """The convergence plot's lower limit: 3 dB under the worst final PSNR (or the input's), or None when
    every point is above that anyway."""
    finals = [r.curve[-1][1] for r in results if r.curve]
    if not finals:
        return None
    floor = min(finals + ([base] if base is not None else [])) - 3.0
    return floor if min(p for r in results for _, p in r.curve) < floor else None


def plot_convergence(path: Path, sweep: Sweep, results: list[RunResult]) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=CURVES_INCHES)
    for i, r in enumerate(results):
        if r.curve:
            its, ps = zip(*r.curve)
            ax.plot(its, ps, "-", marker="." if len(its) < 30 else None, color=f"C{i % 10}", label=r.name)
    base = next((r.input_psnr for r in results if r.input_psnr is not None and math.isfinite(r.input_psnr)), None)
    if base is not None:
        ax.axhline(base, color="gray", ls=":", label="input (bicubic / degraded)")
    ax.set_xlabel("iteration")
    ax.set_ylabel("validation PSNR (dB)")
    title = f"convergence: {sweep.name}"
    floor = curve_floor(results, base)
    if floor is not None:  # the first few points (an untrained model) would squash the part worth reading
        top = max([p for r in results for _, p in r.curve] + ([base] if base is not None else []))
        ax.set_ylim(floor, top + 0.1 * (top - floor))
        title += f" (axis from {floor:.1f} dB: earlier points lie below)"
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return _save(fig, path)


def write_reports(out: Path, sweep: Sweep, runs: list[Run], base_values: dict[str, Any], about: str) -> list[Path]:
    """Write results.csv, results.md, ablation.png and curves.png from what the runs hold now."""
    results = collect(out, runs)
    paths = [
        write_text(out / "results.csv", results_csv(sweep, results)),
        write_text(out / "results.md", results_md(sweep, results, base_values, about)),
    ]
    if any(r.final_psnr is not None for r in results):
        paths.append(plot_ablation(out / "ablation.png", sweep, results, base_values))
        paths.append(plot_convergence(out / "curves.png", sweep, results))
    return paths
