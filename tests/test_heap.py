"""swinir.heap: after keep_freed_memory(), a large block freed and allocated again reuses its pages instead of
being page-faulted in afresh, which is what makes whole-image forwards cheaper. Each check runs in a fresh
interpreter: the malloc policy is process-wide."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

SRC = str(Path(__file__).resolve().parents[1] / "src")
PRELUDE = """
import resource, sys
from swinir.heap import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "keep" else False
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
"""
# one 64 MB block (above glibc's largest mmap threshold) allocated, freed and allocated again; numpy's
# huge-page advice off, so that every fresh page is one fault
BLOCK = """
import numpy as np
np._core.multiarray._set_madvise_hugepage(False)
x = np.ones(1 << 24, np.float32)
del x
before = faults()
x = np.ones(1 << 24, np.float32)
print(applied, faults() - before)
"""
# a real forward's full-size activations: builtin-x4 at 256x384, one thread; the second forward's faults
FORWARD = """
import torch, swinir
torch.set_num_threads(1)
model = swinir.load("builtin-x4", device="cpu")
x = torch.rand(1, 3, 256, 384)
with torch.inference_mode():
    model(x)
    before = faults()
    model(x)
print(applied, faults() - before)
"""

glibc_only = pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's"
)


def _faults(code: str, mode: str, **env: str) -> tuple[bool, int]:
    full_env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), **env}
    res = subprocess.run(
        [sys.executable, "-c", PRELUDE + code, mode], capture_output=True, text=True, env=full_env, timeout=300
    )
    assert res.returncode == 0, res.stderr[-2000:]
    applied, faults = res.stdout.split()
    return applied == "True", int(faults)


@glibc_only
def test_a_freed_large_block_is_reused_without_page_faults() -> None:
    applied, kept = _faults(BLOCK, "keep")
    _, default = _faults(BLOCK, "default")
    assert applied
    assert default >= 16_000  # glibc's default: munmap on free, then 16k fresh 4 KiB pages
    assert kept < 100


@glibc_only
def test_a_second_forward_faults_in_far_fewer_pages() -> None:
    _, kept = _faults(FORWARD, "keep")
    _, default = _faults(FORWARD, "default")
    assert default > 20_000
    assert kept < 0.75 * default  # measured 0.08-0.35 of it: torch's own blocks are not all reused


@glibc_only
def test_the_environment_turns_it_off() -> None:
    applied, faults = _faults(BLOCK, "keep", SWINIR_KEEP_FREED_MEMORY="0")
    assert not applied and faults >= 16_000
