"""Package a training run as a built-in model: safetensors weights, a JSON config with measured metrics,
and a model card. The metrics come from ``swinir eval`` (the paper's protocol) run on the packaged file.

    python tools/make_builtin.py builtin-x2 runs/builtin-x2
    python tools/make_builtin.py builtin-x4 runs/builtin-x4
    python tools/make_builtin.py builtin-denoise runs/builtin-denoise

Weights are the EMA weights (``params_ema``) of the run's best checkpoint by validation PSNR.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import shlex
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import torch
import yaml

import swinir
from swinir.checkpoint import read_state_dict, save
from swinir.paths import shared_dir

ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = ROOT / "src" / "swinir" / "builtin"

# name -> list of (label, eval arguments with {D} for the data folder)
EVALS: dict[str, list[tuple[str, str]]] = {
    "builtin-x2": [
        ("Set5 x2", "--task classical_sr --hr {D}/Set5/HR --lr {D}/Set5/LR_bicubic/X2 --scale 2"),
        (
            "bicubic Set5 x2",
            "--task classical_sr --hr {D}/Set5/HR --lr {D}/Set5/LR_bicubic/X2 --scale 2 --model bicubic",
        ),
    ],
    "builtin-x4": [
        ("Set5 x4", "--task classical_sr --hr {D}/Set5/HR --lr {D}/Set5/LR_bicubic/X4 --scale 4"),
        (
            "bicubic Set5 x4",
            "--task classical_sr --hr {D}/Set5/HR --lr {D}/Set5/LR_bicubic/X4 --scale 4 --model bicubic",
        ),
    ],
    "builtin-denoise": [
        ("McMaster sigma25", "--task color_dn --hr {D}/McMaster --noise 25"),
        ("McMaster sigma15", "--task color_dn --hr {D}/McMaster --noise 15 --limit 6"),
        ("McMaster sigma50", "--task color_dn --hr {D}/McMaster --noise 50 --limit 6"),
    ],
}


def run_eval(weights: Path, args: str, data: Path) -> tuple[dict, str]:
    argv = shlex.split(args.format(D=data))
    if "--model" not in argv:
        argv += ["--model", str(weights)]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "r.json"
        cmd = [sys.executable, "-m", "swinir", "eval", *argv, "--quiet", "--json", str(out)]
        subprocess.run(cmd, check=True)
        report = json.loads(out.read_text())
    shown = "swinir eval " + args.format(D="../shared/data")
    if "--model" not in args:
        shown += f" --model {weights.stem}"
    return report, shown


def _portable(obj: object) -> object:
    """Data paths rewritten as ../shared/data/...: the card must not name this machine's folders."""
    if isinstance(obj, dict):
        return {k: _portable(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_portable(v) for v in obj]
    if isinstance(obj, str):
        return re.sub(r"^\S*?/(data/(train|Set5|McMaster|Set12|classic5)\b)", r"../shared/\1", obj)
    return obj


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("name", choices=sorted(EVALS))
    ap.add_argument("run", type=Path, help="training run folder (holds config.yaml, models/, metrics.jsonl)")
    ap.add_argument("--checkpoint", default="models/model_best.pth")
    ap.add_argument("--notes", default="", help="extra lines for the model card")
    ap.add_argument(
        "--machine",
        default=None,
        help="where it was trained (default: this machine's CPU, e.g. 'a shared 2-core AMD EPYC CPU')",
    )
    ap.add_argument(
        "--regenerate",
        action="append",
        default=[],
        help="the exact training command(s) of this run, in order (repeatable)",
    )
    a = ap.parse_args()

    data = (shared_dir() or ROOT.parent / "shared") / "data"
    sd, spec = read_state_dict(a.run / a.checkpoint)  # prefers params_ema
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    weights = OUT_DIR / f"{a.name}.safetensors"
    model = swinir.checkpoint.build(spec, sd)
    save(model, weights, spec=spec, extra={"name": a.name})

    # paths as a reader has them: ../shared/data/... (a GPU run reads a carried copy, .devdata/data/...)
    cfg = _portable(yaml.safe_load((a.run / "config.yaml").read_text()))
    records = [json.loads(line) for line in (a.run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    iters = max((r.get("iter", 0) for r in records), default=0)
    log_text = (a.run / "train.log").read_text()

    metrics: dict[str, dict[str, float]] = {}
    commands: list[str] = []
    for label, args in EVALS[a.name]:
        report, shown = run_eval(weights, args, data)
        avg = report["average"]
        row = {
            "PSNR-Y" if "classical" in args else "PSNR": avg["psnr_y"] if "classical" in args else avg["psnr"],
            "SSIM-Y" if "classical" in args else "SSIM": avg["ssim_y"] if "classical" in args else avg["ssim"],
        }
        if avg.get("input_psnr") is not None and "sigma" in label:
            row["input PSNR"] = avg["input_psnr"]
        metrics[label] = {k: round(float(v), 4) for k, v in row.items()}
        commands.append(shown)
        print(label, metrics[label], flush=True)

    info = {
        "name": a.name,
        "spec": spec.to_dict(),
        "parameters": sum(v.numel() for v in sd.values()),
        "size_bytes": weights.stat().st_size,
        "metrics": metrics,
        "eval_commands": commands,
        "iterations": iters,
        "run_config": cfg,
        "packaged": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    (OUT_DIR / f"{a.name}.json").write_text(json.dumps(info, indent=1) + "\n")

    which = (
        "the best validation checkpoint"
        if "best" in a.checkpoint
        else f"the run's last checkpoint (`{a.checkpoint}`, iteration {iters})"
    )
    machine = a.machine or (f"a shared 2-core AMD EPYC CPU ({platform.machine()}, torch {torch.__version__}), no GPU")
    first = log_text.splitlines()[0][:19] if log_text else "?"
    last = log_text.splitlines()[-1][:19] if log_text else "?"
    rows = "\n".join(
        f"| {k} | " + " / ".join(f"{n} {v:.4f}" if "SSIM" in n else f"{n} {v:.2f}" for n, v in m.items()) + " |"
        for k, m in metrics.items()
    )
    shared = str(shared_dir() or "")
    data_lines = "\n".join(f"  - `{str(d.get('hr', d)).replace(shared, '../shared')}`" for d in cfg["data"]["train"])
    remake = f"python tools/make_builtin.py {a.name} runs/{a.name}" + (
        f" --checkpoint {a.checkpoint}" if a.checkpoint != "models/model_best.pth" else ""
    )
    card = f"""# {a.name}

{spec.task.replace("_", " ")} {"x" + str(spec.scale) + " " if spec.scale > 1 else ""}({spec.color}), a compact SwinIR that ships inside the package.

Trained by the swinir project with its own `swinir train`, from the preset `{cfg["name"]}`.

- Architecture: {spec.describe()}; {info["parameters"] / 1e6:.3f}M parameters, {weights.stat().st_size / 1e6:.2f} MB.
- Training data (open images from the project's shared data; no benchmark image):
{data_lines}
- Iterations: {iters} (batch {cfg["data"]["batch_size"]}, patch {cfg["data"]["patch_size"]}), lr {cfg["train"]["lr"]},
  milestones {cfg["train"]["milestones"]}, loss {cfg["train"]["loss"]}, EMA {cfg["train"]["ema_decay"]}.
  Weights are the EMA weights of {which}.
- Training time: {first} to {last} UTC (wall clock, including interruptions and resumes), on {machine}.
{a.notes}

## Measured (the paper's protocol, `swinir eval`)

| set | result |
|---|---|
{rows}

Commands:

```bash
{chr(10).join(commands)}
```

## Regenerate

```bash
{chr(10).join(a.regenerate) or f"swinir train {cfg['name']}  # see run_config in {a.name}.json"}
{remake}
```
"""
    (OUT_DIR / f"{a.name}.md").write_text(card)
    print(f"wrote {weights} ({weights.stat().st_size / 1e6:.2f} MB), {a.name}.json, {a.name}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
