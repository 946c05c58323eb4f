"""DistributedDataParallel set-up from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_*).

One process per device: nccl on CUDA, gloo on CPU. Without those variables training runs in one process.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from swinir.device import resolve_device
from swinir.torchrun import DistInfo, from_env

__all__ = ["DistInfo", "from_env", "setup", "barrier", "broadcast_flag", "cleanup"]


def setup(info: DistInfo, device_name: str = "auto") -> torch.device:
    """Pick this process's device and join the process group (if any)."""
    device = resolve_device(None if device_name == "auto" else device_name)
    if device.type == "cuda":
        index = info.local_rank if info.enabled else (device.index or 0)
        torch.cuda.set_device(index)
        device = torch.device("cuda", index)
    if info.enabled and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        device_id = device if device.type == "cuda" else None
        dist.init_process_group(backend=backend, rank=info.rank, world_size=info.world, device_id=device_id)
    return device


def barrier(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.barrier()


def broadcast_flag(info: DistInfo, value: bool, device: torch.device) -> bool:
    """Rank 0's boolean, on every rank (e.g. 'stop now')."""
    if not (info.enabled and dist.is_initialized()):
        return value
    t = torch.tensor([1 if value else 0], device=device)
    dist.broadcast(t, 0)
    return bool(t.item())


def cleanup(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
