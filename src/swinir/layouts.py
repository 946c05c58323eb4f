"""File layouts in circulation, unwrapped once before detection: what sits around the state dict.

- Wrappers: the releases' ``params`` / ``params_ema``, BasicSR's and neosr's ``params-ema``, KAIR's and
  traiNNer's ``net`` / ``net_g``, Lightning's ``state_dict``, ``model``, ``model_state_dict``,
  ``generator``, and our own training checkpoints (``ema.module``); nested ones too
  (``{'state_dict': {'params_ema': ...}}``). EMA weights are preferred where a file has both, and
  ``Unwrapped.also`` names the other candidates so that callers can say which one was used.
- Prefixes: ``module.`` (DataParallel) and ``_orig_mod.`` (torch.compile) on any key, and any prefix
  that every key shares (``netG.``, ``model.``, ``generator.module.``).
- HuggingFace transformers' Swin2SR (``Swin2SRForImageSuperResolution``, the ``caidas/swin2SR-*`` Hub
  models): a ``save_pretrained`` folder (``config.json`` + ``model.safetensors``), or the safetensors file
  alone with its ``config.json`` beside it. Its keys are renamed to the original's (query/key/value are
  concatenated into ``qkv``), and ``config.json`` becomes stored metadata that detection checks.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from swinir.errors import CheckpointError

# where the weights sit in a checkpoint, in order of preference (EMA first, as the releases' test scripts
# load ``params_ema`` where they have it)
WRAPPER_KEYS = (
    "params_ema",
    "params-ema",
    "params",
    "net_g_ema",
    "net_g",
    "net",
    "generator",
    "model_state_dict",
    "state_dict",
    "model",
)
EMA_WRAPPERS = ("ema", "params_ema", "params-ema", "net_g_ema")
ALWAYS_STRIPPED = ("module.", "_orig_mod.")
_MAX_DEPTH = 3
TRANSFORMERS_CONFIG = "config.json"
TRANSFORMERS_WEIGHTS = ("model.safetensors", "pytorch_model.bin")


@dataclass
class Unwrapped:
    """The state dict found in a checkpoint object, and where it was."""

    state_dict: dict[str, Tensor]
    wrapper: str = ""  # dotted path of wrapper keys, '' for a bare state dict
    also: tuple[str, ...] = ()  # other wrappers in the same file that hold weights too (not used)
    layout: str = "released"  # "released" (original names) or "transformers"
    stripped_prefix: str = ""  # a prefix every key shared, removed
    stored_spec: Mapping[str, Any] | None = None  # hyperparameters the layout itself states (config.json)
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """Where the weights came from, for ``swinir info`` and notices (e.g. 'params_ema (also: params)')."""
        where = self.wrapper or "the top level (a bare state dict)"
        extra = f" (also in the file: {', '.join(self.also)})" if self.also else ""
        prefix = f", prefix {self.stripped_prefix!r} removed" if self.stripped_prefix else ""
        layout = ", transformers' layout" if self.layout == "transformers" else ""
        return f"{where}{extra}{prefix}{layout}"


def _has_tensors(value: object) -> bool:
    return isinstance(value, Mapping) and any(isinstance(v, Tensor) for v in value.values())


def _find(obj: Mapping[str, Any], depth: int = 0) -> tuple[Mapping[str, Any], str, tuple[str, ...]] | None:
    """(state dict, wrapper path, other wrappers holding tensors) or None when no wrapper holds tensors."""
    ema = obj.get("ema")  # a `swinir train` checkpoint: its EMA weights, as params_ema is preferred
    candidates: list[tuple[str, Mapping[str, Any]]] = []
    module = ema.get("module") if isinstance(ema, Mapping) else None
    if isinstance(module, Mapping) and _has_tensors(module):
        candidates.append(("ema.module", module))
    for key in WRAPPER_KEYS:
        inner = obj.get(key)
        if isinstance(inner, Mapping) and _has_tensors(inner):
            candidates.append((key, inner))
    if candidates:
        first, sd = candidates[0]
        return sd, first, tuple(k for k, _ in candidates[1:])
    if depth < _MAX_DEPTH:
        for key in WRAPPER_KEYS:
            inner = obj.get(key)
            if isinstance(inner, Mapping):
                found = _find(inner, depth + 1)
                if found is not None:
                    return found[0], f"{key}.{found[1]}", found[2]
    return None


def _strip_always(key: str) -> str:
    stripped = True
    while stripped:
        stripped = False
        for prefix in ALWAYS_STRIPPED:
            if key.startswith(prefix):
                key, stripped = key[len(prefix) :], True
    return key


def shared_prefix(keys: list[str]) -> str:
    """The longest run of whole dotted components that every key starts with and that leaves each key at
    least one component (``netG.module.`` for ``netG.module.conv_first.weight``, ...); '' if none."""
    if len(keys) < 2:
        return ""
    parts = keys[0].split(".")[:-1]
    prefix = ""
    for part in parts:
        candidate = f"{prefix}{part}."
        if all(k.startswith(candidate) and len(k) > len(candidate) for k in keys):
            prefix = candidate
        else:
            break
    return prefix


def unwrap(obj: Mapping[str, Any], source: object = "state dict") -> Unwrapped:
    """The state dict inside a checkpoint object (any wrapper, any prefix, transformers' names), with only
    its tensors. Raises ``CheckpointError`` naming the top-level keys when no tensors are found."""
    found = _find(obj)
    if found is None:
        tensors = {k: v for k, v in obj.items() if isinstance(v, Tensor)}
        if not tensors:
            keys = ", ".join(list(map(str, obj))[:6])
            raise CheckpointError(
                f"{source}: expected a SwinIR-family checkpoint (.pth/.pt/.safetensors state dict), found a dict without "
                f"tensors (keys: {keys})"
            )
        inner: Mapping[str, Any] = tensors
        wrapper, also = "", tuple[str, ...]()
    else:
        inner, wrapper, also = found
    sd = {_strip_always(k): v for k, v in inner.items() if isinstance(v, Tensor)}
    prefix = shared_prefix(list(sd))
    if prefix:
        sd = {k[len(prefix) :]: v for k, v in sd.items()}
    out = Unwrapped(sd, wrapper, also, stripped_prefix=prefix)
    if is_transformers(out.state_dict):
        out.state_dict = from_transformers(out.state_dict)
        out.layout = "transformers"
    return out


# ---------------------------------------------------------------------------------------------------
# HuggingFace transformers' Swin2SR
# ---------------------------------------------------------------------------------------------------
_HF_BLOCK = {
    "attention.self.logit_scale": "attn.logit_scale",
    "attention.self.continuous_position_bias_mlp.": "attn.cpb_mlp.",
    "attention.self.query.bias": "attn.q_bias",
    "attention.self.value.bias": "attn.v_bias",
    "attention.self.relative_coords_table": "attn.relative_coords_table",
    "attention.self.relative_position_index": "attn.relative_position_index",
    "attention.output.dense.": "attn.proj.",
    "layernorm_before.": "norm1.",
    "layernorm_after.": "norm2.",
    "intermediate.dense.": "mlp.fc1.",
    "output.dense.": "mlp.fc2.",
}
_HF_TOP = {
    "swin2sr.first_convolution.": "conv_first.",
    "swin2sr.embeddings.patch_embeddings.projection.": "patch_embed.proj.",
    "swin2sr.embeddings.patch_embeddings.layernorm.": "patch_embed.norm.",
    "swin2sr.layernorm.": "norm.",
    "swin2sr.conv_after_body.": "conv_after_body.",
    "upsample.conv_before_upsample.": "conv_before_upsample.0.",
    "upsample.final_convolution.": "conv_last.",
    "upsample.conv_bicubic.": "conv_bicubic.",
    "upsample.conv_aux.": "conv_aux.",
    "upsample.conv_after_aux.": "conv_after_aux.",
    "upsample.conv_up1.": "conv_up1.",
    "upsample.conv_up2.": "conv_up2.",
    "upsample.conv_hr.": "conv_hr.",
    "upsample.upsample.convolution.": "upsample.0.",  # x3
    "upsample.conv.": "upsample.0.",  # pixelshuffledirect
    "final_convolution.": "conv_last.",  # no upsampler (denoising, JPEG)
}


def is_transformers(sd: Mapping[str, Any]) -> bool:
    """Whether ``sd`` has transformers' Swin2SR names (``swin2sr.encoder.stages...``)."""
    return any(k.startswith("swin2sr.") for k in sd)


def _rename(key: str) -> str | None:
    """The original name of one transformers key; None for query/key/value weights (concatenated apart)."""
    if key.startswith("swin2sr.encoder.stages."):
        rest = key[len("swin2sr.encoder.stages.") :]
        stage, _, rest = rest.partition(".")
        if rest.startswith("layers."):
            block, _, rest = rest[len("layers.") :].partition(".")
            if rest in ("attention.self.query.weight", "attention.self.key.weight", "attention.self.value.weight"):
                return None
            for old, new in _HF_BLOCK.items():
                if rest.startswith(old):
                    return f"layers.{stage}.residual_group.blocks.{block}.{new}{rest[len(old) :]}"
            return f"layers.{stage}.residual_group.blocks.{block}.{rest}"
        if rest.startswith("patch_embed.projection."):
            return f"layers.{stage}.patch_embed.proj.{rest[len('patch_embed.projection.') :]}"
        return f"layers.{stage}.{rest}"  # the stage's conv
    if key.startswith("upsample.upsample.convolution_"):
        index, _, rest = key[len("upsample.upsample.convolution_") :].partition(".")
        if index.isdigit():
            return f"upsample.{2 * int(index)}.{rest}"
    for old, new in _HF_TOP.items():
        if key.startswith(old):
            return new + key[len(old) :]
    return key


def from_transformers(sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """transformers' Swin2SR state dict -> the original's names (query, key, value -> one ``qkv``)."""
    out: dict[str, Tensor] = {}
    qkv: dict[str, dict[str, Tensor]] = {}
    for key, value in sd.items():
        new = _rename(key)
        if new is None:
            stem, _, kind = key.rpartition(".self.")
            qkv.setdefault(stem, {})[kind.split(".")[0]] = value
            continue
        out[new] = value
    for stem, parts in qkv.items():
        missing = [p for p in ("query", "key", "value") if p not in parts]
        if missing:
            raise CheckpointError(f"transformers' Swin2SR weights lack {stem}.self.{missing[0]}.weight")
        name = _rename(stem + ".self.logit_scale")
        assert name is not None
        out[name[: -len("logit_scale")] + "qkv.weight"] = torch.cat([parts["query"], parts["key"], parts["value"]])
    return out


def read_transformers_config(path: Path) -> dict[str, Any] | None:
    """Our stored-spec form of a transformers ``config.json`` for Swin2SR; None when it is another model's.
    Raises ``CheckpointError`` for unreadable JSON."""
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: unreadable transformers config ({exc})") from None
    if not isinstance(cfg, dict) or cfg.get("model_type") != "swin2sr":
        return None
    stored: dict[str, Any] = {"architecture": "swin2sr"}
    names = {
        "embed_dim": "embed_dim",
        "depths": "depths",
        "num_heads": "num_heads",
        "window_size": "window_size",
        "upscale": "upscale",
        "img_range": "img_range",
        "upsampler": "upsampler",
        "resi_connection": "resi_connection",
        "num_channels": "in_chans",
        "image_size": "img_size",
        "mlp_ratio": "mlp_ratio",
    }
    for theirs, ours in names.items():
        if theirs in cfg:
            stored[ours] = cfg[theirs]
    if isinstance(stored.get("img_size"), list):
        stored["img_size"] = stored["img_size"][0]
    if isinstance(stored.get("mlp_ratio"), (int, float)) and not isinstance(stored["mlp_ratio"], bool):
        stored["mlp_ratio"] = float(stored["mlp_ratio"])
    if isinstance(stored.get("img_range"), int) and not isinstance(stored["img_range"], bool):
        stored["img_range"] = float(stored["img_range"])
    if not stored.get("upsampler"):
        stored["upscale"] = 1
    # transformers' head reads the raw input in the two heads that take the input (see Swin2SR)
    if stored.get("upsampler") in ("pixelshuffle_aux", ""):
        stored["options"] = {"transformers_head": True}
    return stored


def transformers_files(path: Path) -> tuple[Path, Path] | None:
    """(weights file, config.json) of a transformers layout at ``path`` (a ``save_pretrained`` folder, or a
    weights file with ``config.json`` beside it), or None."""
    if path.is_dir():
        config = path / TRANSFORMERS_CONFIG
        for name in TRANSFORMERS_WEIGHTS:
            if (path / name).is_file():
                return path / name, config
        return None
    config = path.parent / TRANSFORMERS_CONFIG
    return (path, config) if config.is_file() else None


def folder_weights(path: Path) -> Path:
    """The weights file of a ``save_pretrained`` folder, or a ``CheckpointError`` saying what is missing."""
    found = transformers_files(path)
    if found is None:
        names = " or ".join(TRANSFORMERS_WEIGHTS)
        raise CheckpointError(
            f"{path}: is a folder without {names}; give a checkpoint file, or a transformers save_pretrained "
            f"folder ({TRANSFORMERS_CONFIG} + model.safetensors)"
        )
    if not found[1].is_file():
        raise CheckpointError(f"{path}: has {found[0].name} but no {TRANSFORMERS_CONFIG} beside it")
    return found[0]


def stored_config(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The transformers config beside (or inside) ``path`` as stored spec metadata, if there is one."""
    found = transformers_files(Path(path))
    if found is None or not found[1].is_file():
        return None
    return read_transformers_config(found[1])
