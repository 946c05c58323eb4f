"""Same model, two checkouts: the forward time of one tree's SwinIR against another's, alternating.

Each measurement is a fresh process that imports ``swinir`` from the given tree (``PYTHONPATH=TREE/src``),
builds a released configuration with seeded random weights and times the forward of one seeded input (one
thread, process CPU time, median of ``--repeats`` after a warm-up). The two trees alternate case by case,
so machine load hits both alike; the outputs of both are compared too (same weights, same input).

    git worktree add --detach ../before 0bed3b0
    python benchmarks/before_after.py ../before .            # before vs after, the default cases
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

CASES = (("classical_x2", 64), ("lightweight_x4", 128), ("color_dn", 96), ("real_L_x4", 64))


def child(config: str, size: int, repeats: int, out: str) -> None:
    import torch

    from swinir.model import SwinIR
    from swinir.paths import released_configuration

    torch.set_num_threads(1)
    entry = released_configuration(config)
    torch.manual_seed(0)
    model = SwinIR(**entry["config"]).eval()
    x = torch.rand(1, entry["config"]["in_chans"], size, size, generator=torch.Generator().manual_seed(0))
    times = []
    with torch.inference_mode():
        y = model(x)
        for _ in range(repeats):
            t0 = time.process_time()
            model(x)
            times.append(1000 * (time.process_time() - t0))
    torch.save(y, out)
    print(json.dumps({"ms": statistics.median(times)}))


def run(tree: Path, config: str, size: int, repeats: int, out: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree.resolve() / "src")}
    cmd = [sys.executable, __file__, "--child", config, str(size), str(repeats), str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return float(json.loads(proc.stdout.strip().splitlines()[-1])["ms"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("before", type=Path, nargs="?")
    p.add_argument("after", type=Path, nargs="?")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        config, size, repeats, out = a.child
        child(config, int(size), int(repeats), out)
        return
    import torch

    print("| configuration | input | before ms | after ms | after/before | max abs diff |")
    print("|---|---|---|---|---|---|")
    tmp = Path(os.environ.get("TMPDIR", "/tmp"))
    for config, size in CASES:
        ob, oa = tmp / f"ba_before_{os.getpid()}.pt", tmp / f"ba_after_{os.getpid()}.pt"
        before = run(a.before, config, size, a.repeats, ob)
        after = run(a.after, config, size, a.repeats, oa)
        diff = (torch.load(ob) - torch.load(oa)).abs().max().item()
        print(
            f"| {config} | {size}x{size} | {before:.0f} | {after:.0f} | {after / before:.2f} | {diff:.1e} |", flush=True
        )
        ob.unlink()
        oa.unlink()


if __name__ == "__main__":
    main()
