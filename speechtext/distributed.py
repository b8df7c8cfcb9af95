"""How a training process joins its DDP group, and what the ranks must agree on.

One process per device: ``torchrun`` sets ``WORLD_SIZE`` / ``LOCAL_RANK`` and the processes form a
group (NCCL on GPUs, gloo on CPU); started any other way, a process trains alone.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class Context:
    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed() -> Context:
    """Join the DDP group when started by ``torchrun`` (``WORLD_SIZE`` > 1), else a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Context(dist.get_rank() if world > 1 else 0, world, device)


def rank0_value(value: int, ctx: Context) -> int:
    """Rank 0's ``value`` on every rank (a decision taken from one rank's clock, such as the time
    budget's last step: ranks that decided apart would wait for each other forever)."""
    if ctx.world_size == 1:
        return value
    shared = torch.tensor([value], device=ctx.device)
    dist.broadcast(shared, src=0)
    return int(shared.item())
