"""Training for every SwinIR task: typed configs and presets, on-the-fly degradations, a resumable,
observable loop, one process or many (torchrun / DDP).

    >>> from swinir.train import load_config, train
    >>> cfg = load_config("builtin-x2", ["train.iterations=1000"])
    >>> result = train(cfg, "runs/builtin-x2")
"""

from __future__ import annotations

from swinir.train.config import Config, ConfigError, build_config, load_config, preset_names, raw_config
from swinir.train.trainer import Trainer, TrainResult, train

__all__ = [
    "Config",
    "ConfigError",
    "Trainer",
    "TrainResult",
    "build_config",
    "load_config",
    "preset_names",
    "raw_config",
    "train",
]
