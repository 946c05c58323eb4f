"""`swinir info`: what a checkpoint is, detected from its weights alone (no configuration needed)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from swinir import zoo
from swinir.errors import CheckpointError

EPILOG = """examples:
  swinir info 001_classicalSR_DIV2K_s48w8_SwinIR-M_x2.pth
  swinir info classical-x4            # a zoo name (downloaded on first use)
  swinir info runs/x4/best.safetensors --json
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "info",
        help="show what a checkpoint is (task, scale, architecture)",
        description="Read a checkpoint (.pth/.pt/.safetensors, or a zoo name) and print the architecture "
        "detected from its key names and tensor shapes, after checking that every weight matches it.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("checkpoint", metavar="CHECKPOINT|NAME", help="checkpoint file or model-zoo name")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=run)


def _locate(source: str) -> Path:
    from swinir.checkpoint import SUFFIXES

    p = Path(source).expanduser()
    if p.exists():
        return p
    if os.sep not in source and (zoo.is_known(source) or not source.endswith(SUFFIXES)):
        return zoo.resolve(source)
    raise CheckpointError(f"{p}: no such checkpoint file (and not a zoo name; `swinir models` lists them)")


def describe(path: Path) -> dict[str, Any]:
    """Everything `swinir info` reports, as a dict."""
    from swinir import checkpoint

    obj, meta = checkpoint.read_file(path)
    sd, wrapper = checkpoint.unwrap(obj, path)
    checkpoint.check_sizes(sd, path)
    spec = checkpoint.resolve_spec(sd, meta.get("spec"), path)
    checkpoint.check_zoo_file(path, spec)
    weights = checkpoint.drop_derived(sd)
    entry = zoo.get(path.name) if zoo.is_known(path.name) else None
    return {
        "file": str(path),
        "bytes": path.stat().st_size,
        "sha256": zoo.sha256_of(path),
        "zoo_name": entry.name if entry else None,
        "wrapper_key": wrapper or None,
        "task": spec.task,
        "scale": spec.scale,
        "in_chans": spec.in_chans,
        "out_chans": spec.out_chans,
        "color": spec.color,
        "window_size": spec.window_size,
        "embed_dim": spec.embed_dim,
        "depths": list(spec.depths),
        "num_heads": list(spec.num_heads),
        "mlp_ratio": spec.mlp_ratio,
        "upsampler": spec.upsampler,
        "resi_connection": spec.resi_connection,
        "img_range": spec.img_range,
        "img_size": spec.img_size,
        "rstb_residual": spec.rstb_residual,
        "shift": spec.shift,
        "ape": spec.ape,
        "patch_norm": spec.patch_norm,
        "parameters": int(sum(v.numel() for v in weights.values())),
        "derived_buffers": len(sd) - len(weights),
        "config": spec.kwargs(),
    }


def _switches(info: dict[str, Any]) -> str:
    """The ablation switches: 'released' when all are at the released architecture's values."""
    from swinir.spec import SWITCH_DEFAULTS

    off = [f"{k}={'on' if info[k] else 'off'}" for k, v in SWITCH_DEFAULTS.items() if info[k] != v]
    return (
        ", ".join(off) + " (an ablation variant)"
        if off
        else "as released (rstb_residual, shift, patch_norm on; ape off)"
    )


def run(args: argparse.Namespace) -> int:
    info = describe(_locate(args.checkpoint))
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    rows = [
        ("file", f"{info['file']} ({info['bytes'] / 1e6:.1f} MB)"),
        ("sha256", info["sha256"]),
        ("zoo name", info["zoo_name"] or "-"),
        ("wrapper key", info["wrapper_key"] or "(none: a bare state dict)"),
        ("task", info["task"]),
        ("scale", f"x{info['scale']}"),
        ("channels", f"{info['in_chans']} in, {info['out_chans']} out ({info['color']})"),
        ("window", info["window_size"]),
        ("embed_dim", info["embed_dim"]),
        ("depths", info["depths"]),
        ("heads", info["num_heads"]),
        ("mlp_ratio", f"{info['mlp_ratio']:g}"),
        ("upsampler", info["upsampler"] or "none (same-size restoration)"),
        ("resi", info["resi_connection"]),
        ("img_range", f"{info['img_range']:g}"),
        ("img_size", f"{info['img_size']} (training patch; any input size works)"),
        ("switches", _switches(info)),
        ("parameters", f"{info['parameters']:,}"),
        ("derived buffers", f"{info['derived_buffers']} (attn_mask / relative_position_index: rebuilt, not loaded)"),
    ]
    for key, value in rows:
        print(f"{key + ':':<17}{value}")
    return 0
