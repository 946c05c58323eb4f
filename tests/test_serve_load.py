"""Load: 50 concurrent submissions to a queue of 8 (benchmarks/serve_load.py in its small mode)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the [serve] extra is not installed")
pytest.importorskip("requests")

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "serve_load.py"


def test_fifty_concurrent_submissions_to_a_queue_of_eight() -> None:
    cmd = [sys.executable, str(SCRIPT), "--image", "tiny", "-n", "50", "--queue", "8", "--deadline", "240", "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)  # stops by itself
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    print(figures)
    assert proc.returncode == 0, (figures, proc.stderr[-2000:])
    assert figures["accepted"] + figures["rejected_429"] == 50 and figures["other_status"] == []
    assert figures["accepted"] >= 8 and figures["rejected_429"] >= 1  # the queue filled up and said so
    assert figures["rejected_with_retry_after"] == figures["rejected_429"]
    assert figures["finished_done"] == figures["accepted"] and figures["unfinished"] == 0
    assert figures["server_alive"]
    # bounded: 50 requests cost little beyond the loaded model (idle ~0.5 GiB with torch)
    assert figures["peak_rss_mib"] < figures["idle_rss_mib"] + 600, figures
