"""The C heap's policy for one-shot runs: keep freed memory for the next allocation instead of giving it back.

Why: a whole-image CPU forward allocates and frees full-size activations group after group (a 1600x1200
input makes 90-370 MB tensors). glibc's malloc serves blocks above 32 MB with a fresh ``mmap`` and returns
them with ``munmap`` on free, so the kernel page-faults and zeroes every such block again on its next use:
builtin-x4 on an 800x600 photo took 487k page faults and 1.3 s of system time in a 6 s run (2 threads).
With large blocks served from the heap (``M_MMAP_MAX`` 0) and the heap's top not trimmed
(``M_TRIM_THRESHOLD``), the next block reuses those pages: 0.5-0.6 s of system time and 15-20% less wall
time there. The cost is memory: the process keeps its peak heap until it exits (peak RSS 25-40% higher,
fragmentation included), which suits the ``swinir restore`` program (one run, then exit; applied only when
the process is that program, ``swinir.cli.running_as_program``), not a long-lived server or a host process.

glibc only (``mallopt``); elsewhere nothing changes. ``SWINIR_KEEP_FREED_MEMORY=0`` turns it off.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys

__all__ = ["keep_freed_memory", "ENV"]

ENV = "SWINIR_KEEP_FREED_MEMORY"
# mallopt's parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
# the largest trim threshold mallopt takes (an int): free memory at the heap's top up to 2 GiB stays
_TRIM_THRESHOLD = 2**31 - 1


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to serve every block from the heap and never trim it, for the rest of the
    process; True when applied (glibc, not switched off by ``SWINIR_KEEP_FREED_MEMORY=0``)."""
    if os.environ.get(ENV, "1") == "0" or not sys.platform.startswith("linux"):
        return False
    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_MAX, 0) == 1 and mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD) == 1)
