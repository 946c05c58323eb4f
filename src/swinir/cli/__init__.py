"""`swinir` command line: argument parsing and printing only; each subcommand lives in its own module.

Each module in ``COMMANDS`` defines ``register(subparsers) -> None`` (adds its parser and sets
``func=run``) and ``run(args) -> int``. Every one is imported to build the parser, so a command module
imports nothing heavy at its top (no torch, no swinir.model/engine/checkpoint/evaluate/train): those go
inside ``run``. That keeps ``swinir --help`` at 0.5 s instead of 5 s (tests/test_cli_startup.py).
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import importlib
import os
import sys
import threading
from typing import NoReturn

from swinir import parameter_limit
from swinir.errors import SwinIRError

# subcommand name -> module under swinir.cli
COMMANDS: dict[str, str] = {
    "restore": "swinir.cli.restore",
    "models": "swinir.cli.models",
    "info": "swinir.cli.info",
    "eval": "swinir.cli.eval",
    "compare": "swinir.cli.compare",
    "train": "swinir.cli.train",
    "export": "swinir.cli.export",
    "degrade": "swinir.cli.degrade",
    "ablate": "swinir.cli.ablate",
    "serve": "swinir.cli.serve",
}

# the subcommands that load checkpoints: they take --max-parameters
LOADING_COMMANDS = ("restore", "info", "eval", "export", "train", "ablate", "serve")

EPILOG = """examples:
  swinir restore photo.jpg -o out/                 # built-in x4 model, offline
  swinir restore photos/ -o out/ --model classical-x4 --tile 256
  swinir eval --task classical_sr --model classical-x2 --hr Set5/HR --scale 2
  swinir models
  swinir serve                                     # web app + HTTP API on http://127.0.0.1:8000/
  swinir info 001_classicalSR_DIV2K_s48w8_SwinIR-M_x2.pth
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="swinir",
        description="SwinIR image restoration: super-resolution, denoising, JPEG artifact removal.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for modname in COMMANDS.values():
        importlib.import_module(modname).register(sub)
    for name in LOADING_COMMANDS:
        _add_parameter_limit(sub.choices[name])
    return parser


def _parameter_count(text: str) -> int:
    try:
        return parameter_limit.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_parameter_limit(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--max-parameters",
        type=_parameter_count,
        default=None,
        metavar="N",
        help=f"refuse checkpoints of more than N parameters, checked before anything is allocated (default "
        f"{parameter_limit.DEFAULT // 10**6}M or ${parameter_limit.ENV}; {parameter_limit.LARGEST_KNOWN}); "
        "raise it for a real larger model, e.g. 300M",
    )


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    if getattr(args, "max_parameters", None) is not None:  # for this process and the ones it starts
        os.environ[parameter_limit.ENV] = str(args.max_parameters)
    try:
        return int(args.func(args) or 0)
    except SwinIRError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `swinir models | head`
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


_PROGRAM = False  # set by ``run_program``: this process is the ``swinir`` program, not a caller of ``main``


def running_as_program() -> bool:
    """Whether this process is the ``swinir`` program itself (one command, then exit), so that a command may
    change process-wide settings (``swinir.heap``) that an in-process caller of ``main`` would keep."""
    return _PROGRAM


def run_program(argv: list[str] | None = None) -> NoReturn:
    """The ``swinir`` program (``python -m swinir`` too): ``main``, then the process ends without the
    interpreter's teardown. With torch loaded that teardown (freeing every module, torch's static
    destructors) took 0.4-0.5 s after the work was done, on every command. What an exit must do still
    happens: the ``atexit`` handlers run and the standard streams are flushed; outputs are already closed
    and in place (every write is atomic). While another non-daemon thread is alive, the normal exit,
    which waits for it. ``main`` itself returns, for callers in the same process."""
    global _PROGRAM
    _PROGRAM = True
    code = main(argv)
    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed or broken pipe: nothing more can reach it
            stream.flush()
    os._exit(code)
