"""`swinir models`: list the model zoo (built-ins with their measured numbers, then the released checkpoints
of each architecture)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from swinir import paths, zoo
from swinir.spec import TITLES
from swinir.tasks import MODEL_TASKS

EPILOG = """examples:
  swinir models                      # everything: built-ins first, then the released checkpoints
  swinir models --task denoise       # only denoisers
  swinir models --architecture swin2sr   # only Swin2SR's released checkpoints
  swinir models --architecture hat   # HAT's ten files: where to get each one, where to put it
  swinir models --json               # machine-readable, with cache status and URLs
  swinir restore photo.jpg -o out/ --model classical-x4   # use one (downloaded on first use)
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "models",
        help="list the model zoo",
        description="List the models `--model` accepts: the compact built-ins shipped with swinir (offline), "
        "then the released checkpoints of each architecture (SwinIR, Swin2SR, HAT), downloaded on first use "
        "into the cache folder ($SWINIR_CACHE); HAT's are put there by hand from its authors' page. A checkpoint path works wherever a name does.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--task", choices=MODEL_TASKS, help="only models for this task")
    p.add_argument("--architecture", choices=sorted(TITLES), help="only models of this architecture")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--cache-dir", default=None, help="weights cache folder (default: $SWINIR_CACHE or ~/.cache/swinir)")
    p.set_defaults(func=run)


def _metrics(info: dict[str, Any] | None) -> dict[str, float]:
    """Numeric metrics from a built-in's json, flattened to 'a b' -> value."""
    found = (info or {}).get("metrics")
    out: dict[str, float] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, bool):
            return
        if isinstance(value, (int, float)):
            out[prefix] = float(value)
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix} {k}".strip(), v)

    walk("", found)
    return out


def _row(entry: zoo.ZooEntry, cache: str | None) -> dict[str, Any]:
    d = entry.to_dict()
    d["level"] = entry.level
    if entry.builtin:
        d["available"] = zoo.builtin_available(entry)
        d["metrics"] = _metrics(zoo.builtin_info(entry))
    else:
        d["cached"] = zoo.is_cached(entry, cache)
        d["path"] = str(zoo.cached_path(entry, cache))
    return d


def run(args: argparse.Namespace) -> int:
    entries = zoo.list_entries(args.task, args.architecture)
    cache = args.cache_dir
    rows = [_row(e, cache) for e in entries]
    cache_folder = str(zoo.cached_path(zoo.RELEASED[0], cache).parent) if cache else str(paths.cache_dir())
    if args.json:
        body = {"cache_dir": cache_folder, "release": zoo.RELEASE_PAGE, "releases": zoo.RELEASE_PAGES, "models": rows}
        print(json.dumps(body, indent=2))
        return 0

    builtins = [r for r in rows if r["builtin"]]
    released = [r for r in rows if not r["builtin"]]
    if builtins:
        print("Built-in models (shipped with swinir, work offline):")
        for r in builtins:
            kind = f"{r['task']} {r['level']}"
            if not r["available"]:
                print(f"  {r['name']:<17} {kind:<18} not shipped in this build")
                continue
            numbers = ", ".join(f"{k} {v:.2f}" for k, v in list(r["metrics"].items())[:4]) or "no measured numbers"
            print(f"  {r['name']:<17} {kind:<18} {numbers}  ({r['description']})")
        print()
    for arch in dict.fromkeys(r["architecture"] for r in released):
        group = [r for r in released if r["architecture"] == arch]
        page = zoo.RELEASE_PAGES.get(arch, "")
        if all(r["url"] for r in group):
            print(f"Released {TITLES.get(arch, arch)} checkpoints ({page}),")
            print(f"downloaded on first use into {cache_folder}:")
        else:  # published without a direct URL (HAT's Google Drive folder)
            print(f"Released {TITLES.get(arch, arch)} checkpoints, no direct download: get each FILE from {page}")
            print(f"and put it into {cache_folder} (or pass the file's path instead of the name):")
        print(f"  {'NAME':<22} {'TASK':<15} {'LEVEL':<9} {'COLOR':<6} {'CACHED':<7} FILE")
        for r in group:
            color = "color" if r["color"] else "gray"
            cached = "yes" if r["cached"] else "no"
            print(f"  {r['name']:<22} {r['task']:<15} {r['level']:<9} {color:<6} {cached:<7} {r['filename']}")
        print()
    if not rows:
        print(f"no models for task {args.task}")
    return 0
