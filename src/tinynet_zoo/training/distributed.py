"""Running under torchrun: joining the process group, the device (and autocast dtype) each rank uses, reductions
and broadcasts."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from ..system import cpu_has_fast_bf16

if TYPE_CHECKING:
    import torch
    import torch.nn as nn


@dataclass
class Dist:
    """This process's place in a (possibly one-process) run."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    started_here: bool = False

    @property
    def main(self) -> bool:
        """Whether this is rank 0 (the process that writes files and prints)."""
        return self.rank == 0


def init_distributed() -> Dist:
    """Join the process group torchrun describes in the environment (gloo on CPU, nccl on CUDA)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch
    import torch.distributed as dist

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    started = False
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend)
        started = True
    return Dist(dist.get_rank(), dist.get_world_size(), local_rank, started)


def finish_distributed(dist_info: Dist) -> None:
    """Leave the process group if this run joined it."""
    if dist_info.started_here:
        import torch.distributed as dist
        dist.destroy_process_group()


def barrier(dist_info: Dist) -> None:
    """Wait for every rank (a no-op in a one-process run)."""
    if dist_info.world > 1:
        import torch.distributed as dist
        dist.barrier()


def device_for(dist_info: Dist) -> "torch.device":
    """The rank's CUDA device when there is one, else the CPU."""
    import torch

    return torch.device(f"cuda:{dist_info.local_rank}") if torch.cuda.is_available() else torch.device("cpu")


def sync_buffers(model: "nn.Module", ema: Any, dist_info: Dist) -> None:
    """Give every rank rank 0's batch-norm statistics, so evaluation and the saved weights agree exactly."""
    if dist_info.world == 1:
        return
    import torch.distributed as dist

    for module in (model, ema.module if ema is not None else None):
        for buffer in module.buffers() if module is not None else ():
            dist.broadcast(buffer, 0)


def all_sum(values: Sequence[float], dist_info: Dist, device: "torch.device") -> list[float]:
    """Element-wise sums over every rank (exact in float64)."""
    if dist_info.world == 1:
        return list(values)
    import torch
    import torch.distributed as dist

    tensor = torch.tensor(list(values), dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def amp_dtype(mode: str, device: "torch.device") -> "torch.dtype | None":
    """The autocast dtype a mode means on a device; 'auto' picks what helps there (None: full precision)."""
    import torch

    if mode == "off":
        return None
    if mode == "fp16":
        return torch.float16
    if mode == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if cpu_has_fast_bf16() else None
