"""Parallel plans: how the model is wrapped, gradients synchronised, and model + optimizer state saved.

``none`` (one process), ``ddp`` (replicated, gradients all-reduced) and ``fsdp`` (FSDP2 ``fully_shard``
per block then the root; parameters, gradients and optimizer state are DTensor shards). The trainer
only calls the plan; nothing else in the loop depends on the mode.

Checkpoints: every plan saves ``{"model", "optim"}`` with torch.distributed.checkpoint (DCP) under
``dcp/``, keyed by parameter names (``get_state_dict``), so each rank writes only what it holds (FSDP
shards are never gathered) and a checkpoint written under one plan and world size loads under any other:
DCP reshards on load. Plans other than FSDP also write ``model.safetensors`` (rank 0), which tools read.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from pretrain.train.distributed import DistInfo


class ParallelPlan:
    name = "none"
    local_grads = True
    """Gradients of a non-final micro-batch are this rank's own full gradients (used by the GNS)."""
    writes_full_weights = True
    """Step checkpoints also get model.safetensors (rank 0 holds every full tensor)."""
    precision_map = True
    """fp32 modules may run outside autocast (FSDP's mixed-precision policy owns dtypes instead)."""
    collective_forward = False
    """A forward pass needs every rank (FSDP gathers parameters): evaluation runs on all ranks."""

    def __init__(self, info: DistInfo, device: torch.device, precision: str, reduce_dtype: str):
        self.info, self.device, self.precision, self.reduce_dtype = info, device, precision, reduce_dtype

    def wrap(self, model: nn.Module, blocks: list[nn.Module]) -> nn.Module:
        return model

    @contextlib.contextmanager
    def no_sync(self, model: nn.Module, sync: bool):
        """Skip the gradient reduction on accumulation micro-steps that are not the last one."""
        yield

    def all_reduce_sum(self, t: torch.Tensor) -> torch.Tensor:
        if self.info.enabled:
            dist.all_reduce(t)
        return t

    def clip_grad_norm(self, params: list[torch.Tensor], max_norm: float) -> torch.Tensor:
        """Global gradient norm before clipping, as a device scalar (no host sync)."""
        gn = torch.nn.utils.clip_grad_norm_(params, max_norm, foreach=True)
        return gn.full_tensor() if hasattr(gn, "full_tensor") else gn

    def full_state_dict(self, raw: nn.Module) -> dict[str, torch.Tensor]:
        """Every tensor whole, on every rank (final model and averaging only; never per step)."""
        return {k: v.detach() for k, v in raw.state_dict().items()}

    def load_full_state_dict(self, raw: nn.Module, sd: dict[str, torch.Tensor]) -> None:
        raw.load_state_dict(sd)

    def all_finite(self, raw: nn.Module) -> bool:
        bad = torch.zeros((), device=self.device)
        for p in raw.parameters():
            local = p.to_local() if hasattr(p, "to_local") else p
            bad += (~torch.isfinite(local.detach())).sum().float()
        return float(self.all_reduce_sum(bad)) == 0.0

    # ---- checkpoints (collective: every rank calls these)
    def save(self, raw: nn.Module, optimizers: list, directory: Path, background: bool = False):
        """Write model + optimizer into ``directory/dcp``. ``background``: copy the state to host memory
        now, write it in a thread, and return a future that completes when the files are written."""
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_state_dict

        msd, osd = get_state_dict(raw, optimizers)
        state, where = {"model": msd, "optim": osd}, str(directory / "dcp")
        # No fsync here: the checkpoint's manifest step fsyncs every file of the directory, all at once
        # (pretrain.train.checkpoint), and DCP's own fsyncs, one file after another, came on top of those.
        writer = dcp.FileSystemWriter(where, sync_files=False)
        with _quiet():
            if not background:
                dcp.save(state, storage_writer=writer, no_dist=not self.info.enabled)
                return None
            if self.info.enabled and getattr(self, "_async_group", None) is None:
                # The writer thread's collectives need a CPU backend of their own, apart from training's.
                self._async_group = dist.new_group(backend="gloo")
            resp = dcp.async_save(state, storage_writer=writer, process_group=getattr(self, "_async_group", None),
                                  no_dist=not self.info.enabled)
        return getattr(resp, "upload_completion", resp)

    def load(self, raw: nn.Module, optimizers: list, directory: Path) -> None:
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

        msd, osd = get_state_dict(raw, optimizers)  # this plan's layout: DCP reshards into it
        holder = {"model": msd, "optim": osd}
        try:
            with _quiet():
                dcp.load(holder, checkpoint_id=str(directory / "dcp"), no_dist=not self.info.enabled)
            set_state_dict(raw, optimizers, model_state_dict=holder["model"], optim_state_dict=holder["optim"])
        except (RuntimeError, ValueError, KeyError, dcp.api.CheckpointException) as exc:
            # Another model or optimizer than the one saved. DCP wraps each rank's error with its
            # traceback: keep the last line, the error itself.
            lines = [x.strip() for x in str(exc).strip().splitlines() if x.strip()] or [type(exc).__name__]
            first = lines[-1] if isinstance(exc, dcp.api.CheckpointException) else lines[0]
            raise ValueError(f"{directory / 'dcp'}: does not fit this model and optimizer "
                             f"({type(exc).__name__}: {first[:300]})") from None


class DDPPlan(ParallelPlan):
    name = "ddp"

    def wrap(self, model: nn.Module, blocks: list[nn.Module]) -> nn.Module:
        from torch.nn.parallel import DistributedDataParallel as DDP

        # An MoE step may route no token to some expert: its parameters get no gradient that step.
        moe = getattr(getattr(getattr(model, "cfg", None), "moe", None), "n_experts", 0)
        return DDP(model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                   find_unused_parameters=bool(moe))

    @contextlib.contextmanager
    def no_sync(self, model: nn.Module, sync: bool):
        if sync:
            yield
        else:
            with model.no_sync():
                yield


class FSDPPlan(ParallelPlan):
    name = "fsdp"
    local_grads = False
    writes_full_weights = False
    precision_map = False
    collective_forward = True

    def wrap(self, model: nn.Module, blocks: list[nn.Module]) -> nn.Module:
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        from pretrain.train.precision import DTYPES

        kw = {}
        if self.precision != "fp32":
            # Parameters are gathered in low precision for compute; gradients reduce in reduce_dtype;
            # the sharded master parameters and the optimizer state stay fp32.
            kw["mp_policy"] = MixedPrecisionPolicy(param_dtype=DTYPES[self.precision],
                                                   reduce_dtype=DTYPES[self.reduce_dtype])
        for block in blocks:
            fully_shard(block, **kw)
        fully_shard(model, **kw)
        return model

    @contextlib.contextmanager
    def no_sync(self, model: nn.Module, sync: bool):
        model.set_requires_gradient_sync(sync)  # forward and backward both run inside (FSDP decides in backward)
        yield

    def full_state_dict(self, raw: nn.Module) -> dict[str, torch.Tensor]:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        sd = get_model_state_dict(raw, options=StateDictOptions(full_state_dict=True))
        return {k: v.detach().to("cpu") for k, v in sd.items()}

    def load_full_state_dict(self, raw: nn.Module, sd: dict[str, torch.Tensor]) -> None:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

        # Copies: set_model_state_dict turns what it is given into DTensors, and callers keep using ``sd``.
        own = {k: v.detach().clone() for k, v in sd.items()}
        for m in raw.modules():  # an eval forward leaves the root's parameters unsharded; load into shards
            if hasattr(m, "reshard"):
                m.reshard()
        set_model_state_dict(raw, own, options=StateDictOptions(full_state_dict=True))


@contextlib.contextmanager
def _quiet():
    """One process on purpose: DCP's "assuming the intent is to save in a single process" is noise."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.distributed is disabled.*")
        yield


PLANS = {"none": ParallelPlan, "ddp": DDPPlan, "fsdp": FSDPPlan}


def make_plan(info: DistInfo, device: torch.device, precision: str, reduce_dtype: str) -> ParallelPlan:
    return PLANS[info.mode if info.enabled else "none"](info, device, precision, reduce_dtype)
