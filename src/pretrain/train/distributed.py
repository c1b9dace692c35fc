"""Process groups and model wrapping for DDP and FSDP2 under torchrun (gloo on CPU, NCCL on GPU).

The same config runs on 1 or N processes with the same global batch: there is one global stream of
micro-batches and rank r of N trains on every world-th one (r, r + N, ...), which it alone builds
(``PackedLoader.shard``), so rank r of N trains on exactly the micro-batches a single process would have
accumulated, and the loader state (a global position) is identical on all ranks (one copy is saved).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


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


def wrap(model: nn.Module, info: DistInfo, device: torch.device, precision: str, reduce_dtype: str,
         blocks: list[nn.Module]) -> nn.Module:
    """DDP wrapper, or FSDP2 ``fully_shard`` on each block then the root (parameters become DTensors)."""
    if not info.enabled:
        return model
    if info.mode == "ddp":
        from torch.nn.parallel import DistributedDataParallel as DDP

        # An MoE step may route no token to some expert: its parameters get no gradient that step.
        moe = getattr(getattr(getattr(model, "cfg", None), "moe", None), "n_experts", 0)
        return DDP(model, device_ids=[device.index] if device.type == "cuda" else None,
                   find_unused_parameters=bool(moe))
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    from pretrain.train.precision import DTYPES

    mp = None
    if precision != "fp32":
        # Parameters are gathered in low precision for compute; gradients reduce in reduce_dtype;
        # the sharded master parameters and the optimizer state stay fp32.
        mp = MixedPrecisionPolicy(param_dtype=DTYPES[precision], reduce_dtype=DTYPES[reduce_dtype])
    kw = {"mp_policy": mp} if mp is not None else {}
    for block in blocks:
        fully_shard(block, **kw)
    fully_shard(model, **kw)
    return model


@contextlib.contextmanager
def no_grad_sync(model: nn.Module, info: DistInfo, sync: bool):
    """Skip the gradient all-reduce on accumulation micro-steps that are not the last one."""
    if not info.enabled or sync:
        if info.mode == "fsdp" and info.enabled:
            model.set_requires_gradient_sync(True)
        yield
        return
    if info.mode == "ddp":
        with model.no_sync():
            yield
    else:
        model.set_requires_gradient_sync(False)
        yield


def all_reduce_sum(values: list[float], info: DistInfo, device: torch.device) -> list[float]:
    if not info.enabled:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()
