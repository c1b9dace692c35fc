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
from datetime import timedelta

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

    def agree(self, ok: bool) -> bool:
        """True on every rank if ``ok`` is true on every rank (one all-reduce of one integer; it also
        synchronises, like a barrier). Lets all ranks act at once on what one rank alone saw fail."""
        if not self.enabled:
            return ok
        # NCCL reduces CUDA tensors only (init() set this process's device); gloo reduces CPU tensors.
        device = f"cuda:{torch.cuda.current_device()}" if dist.get_backend() == "nccl" else "cpu"
        flag = torch.tensor([int(bool(ok))], dtype=torch.int32, device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
        return bool(flag.item())

    def share(self, value, src: int = 0):
        """``value`` of rank ``src`` on every rank (a picklable object)."""
        if not self.enabled:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=src)
        return box[0]


def restart_attempt() -> int:
    """The torchrun restart count of this process (``TORCHELASTIC_RESTART_COUNT``; 0 outside torchrun)."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0)


def init(mode: str, device_type: str, timeout_s: float = 0.0) -> DistInfo:
    """Join the process group torchrun set up (RANK/WORLD_SIZE in the environment); no-op otherwise.
    ``timeout_s`` > 0 bounds every collective (the watchdog sets it); 0 keeps the backend's default."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        if device_type == "cuda":
            torch.cuda.set_device(local)
        kwargs = {"timeout": timedelta(seconds=timeout_s)} if timeout_s > 0 else {}
        dist.init_process_group(backend=backend, store=attempt_store(rank, world), rank=rank, world_size=world,
                                **kwargs)
    return DistInfo(rank, world, local, "fsdp" if mode == "fsdp" else "ddp")


def attempt_store(rank: int, world: int) -> dist.Store:
    """The rendezvous store, its keys under this torchrun attempt's own prefix.

    torchrun keeps one TCP store for the whole job and hands every restart attempt the same
    MASTER_ADDR:MASTER_PORT, while ``init_process_group``'s env:// rendezvous writes its keys (each rank's
    gloo address, the barrier counters) under fixed names. The ranks of attempt 1 then read the
    addresses attempt 0's dead ranks left there and fail ("Gloo connectFullMesh failed ... Connection
    refused") or wait for a peer that never answers, so the first restart died and only the second
    trained. A prefix per attempt gives each attempt a clean namespace.
    """
    host, port = os.environ.get("MASTER_ADDR", "127.0.0.1"), int(os.environ.get("MASTER_PORT", "29500"))
    # Under torchrun the agent hosts the store; a plain env:// launch has rank 0 host it.
    agent = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
    store = dist.TCPStore(host, port, world, is_master=not agent and rank == 0, timeout=timedelta(minutes=10))
    return dist.PrefixStore(f"pretrain/attempt_{restart_attempt()}", store)


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
