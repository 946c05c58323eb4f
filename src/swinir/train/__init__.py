"""Training for every SwinIR task: typed configs and presets, on-the-fly degradations, a resumable,
observable loop, one process or many (torchrun / DDP).

    >>> from swinir.train import load_config, train
    >>> cfg = load_config("builtin-x2", ["train.iterations=1000"])
    >>> result = train(cfg, "runs/builtin-x2")
"""

from __future__ import annotations

import os

from swinir.errors import ConfigError
from swinir.train import distributed as dist_utils
from swinir.train.config import Config, build_config, load_config, preset_names, raw_config
from swinir.train.gan_trainer import GANTrainer
from swinir.train.trainer import Trainer, TrainResult

# the loop a config trains with: a ``gan:`` section adds the discriminator stage
TRAINERS: dict[str, type[Trainer]] = {"pixel": Trainer, "gan": GANTrainer}


def trainer_for(cfg: Config) -> type[Trainer]:
    return TRAINERS["gan" if cfg.gan is not None else "pixel"]


def train(
    cfg: Config, out_dir: str | os.PathLike[str], resume: bool = False, progress: bool | None = None
) -> TrainResult:
    """Run a whole training (one process, or this rank of a torchrun group)."""
    info = dist_utils.from_env()
    trainer = trainer_for(cfg)(cfg, out_dir, resume=resume, dist=info, progress=progress)
    try:
        return trainer.fit()
    finally:
        trainer.close()
        dist_utils.cleanup(info)


__all__ = [
    "Config",
    "ConfigError",
    "GANTrainer",
    "TRAINERS",
    "Trainer",
    "TrainResult",
    "build_config",
    "load_config",
    "preset_names",
    "raw_config",
    "train",
    "trainer_for",
]
