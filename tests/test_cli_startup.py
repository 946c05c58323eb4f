"""`swinir --help` answers without importing torch; `import swinir` gives every submodule.

Regression tests for issue 13 (--help took 5-6 s because torch was imported before argparse ran) and
issue 12 item 6 (after `import swinir`, `swinir.io` raised AttributeError). Each runs a fresh
interpreter, since this test process has torch loaded already.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from swinir.cli import COMMANDS

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _python(code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_help_does_not_import_torch(command: str) -> None:
    argv = [command, "--help"] if command else ["--help"]
    res = _python(
        "import sys\n"
        "from swinir.cli import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit as exc:\n"
        "    assert exc.code == 0, exc.code\n"
        "print('TORCH' if 'torch' in sys.modules else 'LIGHT')\n"
    )
    assert res.returncode == 0, res.stderr
    assert "usage: swinir" in res.stdout
    assert res.stdout.strip().endswith("LIGHT"), "torch was imported to print --help"


def test_import_swinir_then_submodules_work() -> None:
    res = _python(
        "import sys, swinir\n"
        "assert 'torch' not in sys.modules\n"
        "print(swinir.io.read_image.__module__, swinir.zoo.__name__, swinir.evaluate.__name__)\n"
        "print(swinir.load.__module__, swinir.SwinIR.__name__, swinir.detect.__module__)\n"
        "try:\n"
        "    swinir.no_such_thing\n"
        "except AttributeError as exc:\n"
        "    print('AttributeError', exc)\n"
    )
    assert res.returncode == 0, res.stderr
    assert "swinir.io swinir.zoo swinir.evaluate" in res.stdout
    assert "swinir.checkpoint SwinIR swinir.architectures" in res.stdout  # detect tries every architecture
    assert "has no attribute 'no_such_thing'" in res.stdout


def test_the_program_exits_with_mains_code_after_atexit_handlers_and_buffered_output() -> None:
    """run_program skips the interpreter's teardown (os._exit), so what an exit must do is checked here:
    atexit handlers run, buffered stdout reaches the pipe, main's code is the exit status, and a live
    non-daemon thread gets the normal exit that waits for it."""
    prelude = "import atexit, sys, threading, time\nfrom swinir.cli import run_program\n"
    ok = _python(
        prelude + "import swinir.cli as cli\n"
        "print('before', cli.running_as_program())\n"
        "atexit.register(lambda: print('handler ran', cli.running_as_program()))\nrun_program(['models'])\n"
    )
    assert ok.returncode == 0, ok.stderr
    assert "before False" in ok.stdout  # main() alone (in-process callers) is not the program
    assert "builtin-x4" in ok.stdout and ok.stdout.rstrip().endswith("handler ran True")
    bad = _python(prelude + "run_program(['info', '/nonexistent/model.pth'])\n")
    assert bad.returncode == 1 and bad.stderr.startswith("error:")
    waited = _python(
        prelude + "t = threading.Thread(target=lambda: (time.sleep(0.5), print('thread done')))\n"
        "t.start()\nrun_program(['models'])\n"
    )
    assert waited.returncode == 0 and "thread done" in waited.stdout
