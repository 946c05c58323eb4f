"""torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK) read once, for training and for restore.

No torch import: ``swinir restore`` reads it before deciding whether it needs a process group at all.
Malformed or inconsistent values mean "not under torchrun" rather than a crash in every process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = ["DistInfo", "from_env"]


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def from_env() -> DistInfo:
    """This process's place under torchrun; ``DistInfo()`` (one process) outside it or on malformed values."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError:
        return DistInfo()
    if world < 2 or not 0 <= rank < world or local < 0:
        return DistInfo()
    return DistInfo(rank, world, local)
