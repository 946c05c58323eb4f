"""`swinir info`: what a checkpoint is (architecture, task, hyperparameters), detected from its weights alone
(no configuration needed)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from swinir import zoo
from swinir.errors import CheckpointError
from swinir.spec import TITLES

EPILOG = """examples:
  swinir info 001_classicalSR_DIV2K_s48w8_SwinIR-M_x2.pth
  swinir info classical-x4            # a zoo name (downloaded on first use)
  swinir info runs/x4/best.safetensors --json
  swinir info swin2SR-classical-sr-x2-64/    # a transformers save_pretrained folder
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "info",
        help="show what a checkpoint is (architecture, task, scale)",
        description="Read a checkpoint (.pth/.pt/.safetensors, a transformers folder, or a zoo name) and print "
        "the architecture detected from its key names and tensor shapes (SwinIR, Swin2SR, ...), after checking "
        "that every weight matches it.",
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
    from swinir import checkpoint, layouts

    loaded = checkpoint.read(path)  # sizes checked, and a cached release file checked against its entry
    spec, weights, origin = loaded.spec, loaded.state_dict, loaded.origin
    data = layouts.folder_weights(path) if path.is_dir() else path
    entry = zoo.get(path.name) if zoo.is_known(path.name) else None
    # a zoo file whose weights read as another task (Real-HAT-GAN: HAT's classical upsampler) is its entry's task
    task = entry.task if entry is not None and entry.weights_task == spec.task else spec.task
    return {
        "file": str(path),
        "bytes": data.stat().st_size,
        "sha256": zoo.sha256_of(data),
        "zoo_name": entry.name if entry else None,
        "architecture": spec.architecture,
        "wrapper_key": origin.wrapper or None,
        "other_weights": list(origin.also),
        "prefix_removed": origin.stripped_prefix or None,
        "layout": origin.layout,
        "weights_dtype": str(next(iter(weights.values())).dtype).replace("torch.", ""),
        "task": task,
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
        "options": dict(spec.options),
        # what the tensors cannot show and no stored metadata set: the released value is assumed
        "guessed": list(spec.extra.get("guessed", ())),
        "parameters": int(sum(v.numel() for v in weights.values())),
        "derived_buffers": len(origin.state_dict) - len(weights),
        "config": spec.kwargs(),
    }


def _switches(info: dict[str, Any]) -> str:
    """The ablation switches: 'released' when all are at the released architecture's values."""
    from swinir.spec import SWITCH_DEFAULTS

    if info["architecture"] != "swinir":
        return "- (SwinIR's ablation switches)"
    off = [f"{k}={'on' if info[k] else 'off'}" for k, v in SWITCH_DEFAULTS.items() if info[k] != v]
    return (
        ", ".join(off) + " (an ablation variant)"
        if off
        else "as released (rstb_residual, shift, patch_norm on; ape off)"
    )


def _layout(info: dict[str, Any]) -> str:
    if info["layout"] == "transformers":
        return "transformers' Swin2SRForImageSuperResolution (names converted to the original's)"
    prefix = f", prefix {info['prefix_removed']!r} removed from every key" if info["prefix_removed"] else ""
    return f"original key names{prefix}"


def _weights(info: dict[str, Any]) -> str:
    where = info["wrapper_key"] or "(no wrapper: a bare state dict)"
    also = f"; the file also holds {', '.join(info['other_weights'])} (not used)" if info["other_weights"] else ""
    return f"{where}, stored as {info['weights_dtype']} (computed in float32){also}"


def _guessed(info: dict[str, Any]) -> str:
    if not info["guessed"]:
        return "- (every value read from the tensors or the file's metadata)"
    return f"{', '.join(info['guessed'])} (not in the file: the releases' values are assumed)"


def run(args: argparse.Namespace) -> int:
    info = describe(_locate(args.checkpoint))
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    rows = [
        ("file", f"{info['file']} ({info['bytes'] / 1e6:.1f} MB)"),
        ("sha256", info["sha256"]),
        ("zoo name", info["zoo_name"] or "-"),
        ("architecture", TITLES.get(info["architecture"], info["architecture"])),
        ("layout", _layout(info)),
        ("weights", _weights(info)),
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
        ("options", ", ".join(f"{k}={v}" for k, v in info["options"].items()) or "-"),
        ("guessed", _guessed(info)),
        ("parameters", f"{info['parameters']:,}"),
        (
            "derived buffers",
            f"{info['derived_buffers']} (shift masks, position indices and tables: rebuilt, not loaded)",
        ),
    ]
    for key, value in rows:
        print(f"{key + ':':<17}{value}")
    return 0
