"""Process groups under torchrun (gloo on CPU, NCCL on GPU); wrapping and gradient sync are the parallel
plan's (pretrain.train.parallel).

The same config runs on 1 or N processes with the same global batch: there is one global stream of
micro-batches and rank r of N trains on every world-th one (r, r + N, ...), which it alone builds
(``PackedLoader.shard``), so rank r of N trains on exactly the micro-batches a single process would have
accumulated, and the loader state (a global position) is identical on all ranks (one copy is saved).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    mode: str = "none"
    """none, ddp or fsdp."""

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()


def init(mode: str, device_type: str) -> DistInfo:
    """Join the process group torchrun set up (RANK/WORLD_SIZE in the environment); no-op otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        if device_type == "cuda":
            torch.cuda.set_device(local)
        dist.init_process_group(backend=backend)
    return DistInfo(rank, world, local, "fsdp" if mode == "fsdp" else "ddp")


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
