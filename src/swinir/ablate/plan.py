"""A sweep file and the runs it plans: every run is the base config plus the sweep's common settings plus
its axis values, validated before anything is written.

    name: channels
    base: classical-sr-x2-tiny          # a preset or a config file (relative to this file)
    mode: one-at-a-time                 # or grid
    set: {train.iterations: 400, val.every: 100}   # common to every run: budget, validation
    axes:
      model.embed_dim: [8, 16, 32]
      model.depths: [[4], [4, 4]]       # num_heads follows (the base's heads per RSTB) unless it is an axis
    flops_input: 64                     # FLOPs are counted on one 64x64 low-quality input
"""

from __future__ import annotations

import itertools
import json
import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from swinir.errors import ConfigError
from swinir.train.config import Config, apply_overrides, build_config, raw_config

MODES = ("grid", "one-at-a-time")
SWEEP_KEYS = ("name", "description", "base", "mode", "set", "axes", "flops_input")


@dataclass(frozen=True)
class Axis:
    key: str  # dotted config key, e.g. model.embed_dim
    values: tuple[Any, ...]
    label: str  # the key's last part, or the whole key where two axes end alike


@dataclass(frozen=True)
class Sweep:
    name: str
    description: str
    base: str
    mode: Literal["grid", "one-at-a-time"]
    common: dict[str, Any]  # dotted key -> value, applied to every run
    axes: tuple[Axis, ...]
    flops_input: int = 64


@dataclass(frozen=True)
class Run:
    name: str
    values: dict[str, Any]  # axis key -> the value this run has (axis or base value)
    overrides: dict[str, Any]  # dotted key -> value on top of the base: common settings + axis values
    config: Config

    def identity(self) -> str:
        """What makes two runs of the same name the same run (checked on --resume)."""
        return json.dumps(self.config.to_dict(), sort_keys=True, default=str)


def _fail(source: str, msg: str) -> ConfigError:
    return ConfigError(f"{source}: {msg}")


def _axes(raw: Any, source: str) -> tuple[Axis, ...]:
    if not isinstance(raw, dict) or not raw:
        raise _fail(source, "axes: give at least one axis, e.g. `model.embed_dim: [30, 60, 90]`")
    keys = [str(k) for k in raw]
    lasts = [k.rsplit(".", 1)[-1] for k in keys]
    axes = []
    for key, last in zip(keys, lasts):
        values = raw[key]
        if not isinstance(values, list) or not values:
            raise _fail(source, f"axes.{key}: expected a non-empty list of values, got {values!r}")
        if len({json.dumps(v, sort_keys=True) for v in values}) != len(values):
            raise _fail(source, f"axes.{key}: lists a value twice: {values}")
        axes.append(Axis(key, tuple(values), key if lasts.count(last) > 1 else last))
    return tuple(axes)


def shipped_sweeps() -> list[str]:
    root = resources.files("swinir") / "presets" / "ablations"
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".yaml"))


def shipped_sweep(name: str) -> Path:
    """A sweep file: a path as given, else a shipped sweep of that name (presets/ablations/NAME.yaml)."""
    p = Path(name)
    if p.is_file():
        return p
    f = resources.files("swinir") / "presets" / "ablations" / f"{name}.yaml"
    if p.suffix in (".yaml", ".yml") or os.sep in name or not f.is_file():
        raise ConfigError(f"{name}: no such sweep file or shipped sweep (shipped: {', '.join(shipped_sweeps())})")
    return Path(str(f))


def load_sweep(path: str | Path, overrides: list[str] | None = None) -> Sweep:
    """Read and check a sweep file (see the module docstring); the base is resolved next to the file.
    ``overrides`` (``KEY=VALUE``, as ``swinir train --set``) join the sweep's ``set``."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{path}: no such sweep file")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise _fail(str(p), f"not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise _fail(str(p), "expected a YAML mapping with base, axes and (optionally) mode, set, flops_input")
    unknown = sorted(set(data) - set(SWEEP_KEYS))
    if unknown:
        raise _fail(str(p), f"unknown key(s) {', '.join(unknown)}; a sweep has {', '.join(SWEEP_KEYS)}")
    base = data.get("base")
    if not isinstance(base, str) or not base:
        raise _fail(str(p), "base: give a preset name or a config file")
    if (p.parent / base).is_file():
        base = str((p.parent / base).resolve())
    mode = str(data.get("mode", "grid")).replace("_", "-")
    if mode not in MODES:
        raise _fail(str(p), f"mode: expected grid or one-at-a-time, got {data.get('mode')!r}")
    common = data.get("set") or {}
    if not isinstance(common, dict):
        raise _fail(str(p), "set: expected a mapping of dotted keys to values, e.g. {train.iterations: 500}")
    flops_input = data.get("flops_input", 64)
    if not isinstance(flops_input, int) or isinstance(flops_input, bool) or flops_input < 1:
        raise _fail(str(p), f"flops_input: expected a positive integer (pixels), got {flops_input!r}")
    return Sweep(
        name=str(data.get("name") or p.stem),
        description=str(data.get("description") or ""),
        base=base,
        mode=mode,  # type: ignore[arg-type]
        common={**{str(k): v for k, v in common.items()}, **_parse_overrides(overrides or [])},
        axes=_axes(data.get("axes"), str(p)),
        flops_input=flops_input,
    )


def _parse_overrides(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item}: expected KEY=VALUE, e.g. train.iterations=100")
        try:
            out[key.strip()] = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            out[key.strip()] = text
    return out


def format_value(value: Any) -> str:
    """A value as it appears in a run name and a table: 6-6-6 for [6, 6, 6], 1e-04 for 0.0001."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (list, tuple)):
        return "-".join(format_value(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value) if str(value) else "empty"


def run_name(axes: tuple[Axis, ...], values: dict[str, Any]) -> str:
    text = ",".join(f"{a.label}={format_value(values[a.key])}" for a in axes)
    return re.sub(r"[^A-Za-z0-9_.,=+-]", "_", text)


def dotted(data: dict[str, Any], key: str) -> Any:
    node: Any = data
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(key)
        node = node[part]
    return node


def _with(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``overrides`` (dotted keys) applied through the same code as ``swinir train --set`` (JSON is YAML)."""
    return apply_overrides(data, [f"{k}={json.dumps(v)}" for k, v in overrides.items()])


def _combinations(sweep: Sweep, base_values: dict[str, Any]) -> list[dict[str, Any]]:
    if sweep.mode == "grid":
        keys = [a.key for a in sweep.axes]
        return [dict(zip(keys, combo)) for combo in itertools.product(*(a.values for a in sweep.axes))]
    combos = []
    for axis in sweep.axes:
        for v in axis.values:
            combos.append({**base_values, axis.key: v})
    return combos


def plan_runs(sweep: Sweep) -> tuple[list[Run], dict[str, Any]]:
    """Every run of the sweep (duplicates merged, in order) and each axis' base value; all configs checked."""
    base = _with(raw_config(sweep.base), sweep.common)
    base_cfg = _build(base, f"{sweep.base} with the sweep's `set`")
    base_dict = base_cfg.to_dict()
    base_values = {}
    for axis in sweep.axes:
        try:
            base_values[axis.key] = dotted(base_dict, axis.key)
        except KeyError:
            raise ConfigError(f"axes.{axis.key}: no such config key (see `swinir train --print-config`)") from None
    runs: dict[str, Run] = {}
    for values in _combinations(sweep, base_values):
        name = run_name(sweep.axes, values)
        if name in runs:
            continue
        changed = _follow_depths(base, dict(values))
        cfg = _build(_with(base, changed), f"run {name}")
        cfg.name = f"{sweep.name}/{name}"
        runs[name] = Run(name, dict(values), {**sweep.common, **changed}, cfg)
    return list(runs.values()), base_values


def _follow_depths(base: dict[str, Any], changed: dict[str, Any]) -> dict[str, Any]:
    """An axis over ``model.depths`` (the RSTB number) keeps the base's heads per RSTB for every RSTB,
    unless ``model.num_heads`` is an axis too."""
    depths = changed.get("model.depths")
    heads = base.get("model", {}).get("num_heads")
    if isinstance(depths, list) and "model.num_heads" not in changed and isinstance(heads, list) and heads:
        changed["model.num_heads"] = [heads[0]] * len(depths)
    return changed


def _build(data: dict[str, Any], what: str) -> Config:
    try:
        return build_config(data)
    except ConfigError as exc:
        raise ConfigError(f"{what}: {exc}") from None
