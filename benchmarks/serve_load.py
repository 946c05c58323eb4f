"""Load on `swinir serve`: N concurrent submissions to a queue of Q, then wait for every accepted job.

Starts a real server (`python -m swinir serve --port 0`), fires the submissions from N threads at once, and
prints accepted / rejected (429, each with Retry-After) / finished, the server's peak memory (VmHWM) and the
times. Exit status 0 only when every accepted job finished done, every rejection was a 429 with Retry-After,
and the server still answered at the end. Stops by itself (--deadline).

    python benchmarks/serve_load.py                                   # 50 x Set5 butterfly x4 LR, builtin-x4
    python benchmarks/serve_load.py --image tiny --json               # the test's small mode
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import requests
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def image_bytes(which: str) -> tuple[str, bytes]:
    if which == "tiny":
        rng = np.random.default_rng(0)
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(buf, format="PNG")
        return "tiny.png", buf.getvalue()
    if which == "set5":
        sys.path.insert(0, str(REPO / "src"))
        from swinir.paths import shared_dir

        shared = shared_dir()
        if shared is None:
            raise SystemExit("no shared data folder (set SWINIR_SHARED); use --image tiny or a file")
        which = str(shared / "data" / "Set5" / "LR_bicubic" / "X4" / "butterflyx4.png")
    path = Path(which)
    return path.name, path.read_bytes()


def start_server(queue: int, model: str) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cmd = [sys.executable, "-m", "swinir", "serve", "--port", "0", "--queue", str(queue), "--models", model]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    line = proc.stdout.readline() if proc.stdout else ""
    if "open http://" not in line:
        proc.kill()
        raise SystemExit(f"server did not start: {line}")
    return proc, line.split("open ", 1)[1].split()[0].rstrip("/")


def peak_rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return next(int(x.split()[1]) for x in status.splitlines() if x.startswith("VmHWM:")) / 1024


def run_load(url: str, n: int, model: str, name: str, data: bytes, deadline: float) -> dict:
    def one(i: int) -> requests.Response:
        files = [("files", (f"{i}-{name}", data, "image/png"))]
        return requests.post(f"{url}/api/jobs", files=files, data={"model": model}, timeout=120)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(n) as pool:
        responses = list(pool.map(one, range(n)))
    submit_s = time.perf_counter() - t0
    accepted = [r.json()["jobs"][0]["id"] for r in responses if r.status_code == 202]
    rejected = [r for r in responses if r.status_code == 429]
    states: dict[str, dict] = {}
    while len(states) < len(accepted) and time.monotonic() < deadline:
        for job_id in accepted:
            if job_id not in states:
                job = requests.get(f"{url}/api/jobs/{job_id}", timeout=30).json()
                if job["state"] in ("done", "failed", "cancelled"):
                    states[job_id] = job
        time.sleep(0.1)
    done = [j for j in states.values() if j["state"] == "done"]
    return {
        "submitted": n,
        "accepted": len(accepted),
        "rejected_429": len(rejected),
        "rejected_with_retry_after": sum(1 for r in rejected if r.headers.get("Retry-After", "").isdigit()),
        "other_status": sorted({r.status_code for r in responses} - {202, 429}),
        "finished_done": len(done),
        "failed": [j["error"] for j in states.values() if j["state"] != "done"],
        "unfinished": len(accepted) - len(states),
        "submit_s": round(submit_s, 2),
        "all_done_s": round(time.perf_counter() - t0, 2),
        "mean_job_s": round(sum(j["seconds"] for j in done) / max(1, len(done)), 3),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", default="set5", help="set5 (Set5 butterfly, x4 LR), tiny (16x16) or a file")
    ap.add_argument("--model", default="builtin-x4")
    ap.add_argument("-n", type=int, default=50, help="concurrent submissions (default 50)")
    ap.add_argument("--queue", type=int, default=8, help="server queue size (default 8)")
    ap.add_argument("--deadline", type=float, default=600, help="give up after this many seconds (default 600)")
    ap.add_argument("--json", action="store_true", help="print one JSON line instead of a table")
    args = ap.parse_args()

    deadline = time.monotonic() + args.deadline
    name, data = image_bytes(args.image)
    proc, url = start_server(args.queue, args.model)
    try:
        rss_idle = peak_rss_mib(proc.pid)
        figures = run_load(url, args.n, args.model, name, data, deadline)
        figures["server_alive"] = proc.poll() is None and requests.get(f"{url}/api/models", timeout=30).ok
        figures["peak_rss_mib"] = round(peak_rss_mib(proc.pid), 1)
        figures["idle_rss_mib"] = round(rss_idle, 1)
        figures.update(image=name, model=args.model, queue=args.queue)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
    if args.json:
        print(json.dumps(figures))
    else:
        print("| figure | value |\n|---|---|")
        for k, v in figures.items():
            print(f"| {k} | {v} |")
    ok = (
        figures["finished_done"] == figures["accepted"]
        and figures["rejected_429"] == figures["rejected_with_retry_after"]
        and figures["accepted"] + figures["rejected_429"] == figures["submitted"]
        and figures["server_alive"]
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
