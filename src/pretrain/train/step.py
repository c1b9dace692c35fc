"""One optimizer step: draw the micro-batches, accumulate exact gradients, clip, ask the callbacks, apply.

  1. the global batch for this step (batch ramp) is split into micro-batches of one global stream; rank
     r of N trains on micro-batches r, r + N, ..., so 1 and N processes see the same data in the same
     steps. A loader with ``shard()`` (PackedLoader) builds only this rank's and counts every rank's
     targets from document lengths (``round_targets``, pretrain.data.loader); any other loader is read
     whole on every rank and the rest dropped;
  2. each micro-batch's objective is ``ce_sum / T + (aux + mtp) * n / T`` where T is the number of
     target tokens in the *whole* step (all micro-batches, all ranks): the accumulated gradient is
     exactly that of one big batch, however it is cut (not the mean of per-micro-batch means);
  3. gradients are clipped; callbacks see loss and grad norm (on_before_update) and may veto the update.

:class:`TrainStep` owns all of it and returns a :class:`StepResult`; the loop (trainer.py) decides which
step to run and what to tell the callbacks afterwards. Nothing here reads a value back to the host:
losses and norms stay device tensors in the result (the loop reads them back on logged steps).
Per-domain losses are computed on logged steps only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from pretrain.train.clipping import GradClipper
from pretrain.train.precision import autocast
from pretrain.train.watchdog import beat


@dataclass
class StepInputs:
    """What the loop decides for one step: which step, how much data, at what LR, and what to log."""

    step: int
    """1-based number of the step."""
    stage: Any
    """The stage (pretrain.train.stages.Stage) the step belongs to."""
    loader: Any
    """The stage's data stream (next_batch(); shard()ed loaders also give round_targets)."""
    per_rank_data: bool
    """The loader builds only this rank's micro-batches."""
    micro_batches: int
    """Micro-batches in the step, all ranks together."""
    batch: int
    """Global batch in sequences at train.seq_len (after the batch ramp)."""
    lr_factor: float
    """Multiplier of train.lr for this step (schedule x batch scaling)."""
    progress: float
    """Fraction of the run done before this step (for curricula and the MTP weight)."""
    log_step: bool
    """The step's metrics are read back and logged (per-domain losses are computed only then)."""


@dataclass
class StepResult:
    """One step's outcome. Losses and the gradient norm are device tensors (floats once read back); the
    same values are in ``metrics``, the dict callbacks receive and the metrics writer logs."""

    step: int
    tokens: int
    """Input tokens in the step, every rank's."""
    targets: int
    """Target tokens in the step, every rank's."""
    loss: Any
    grad_norm: Any
    skipped: bool
    """The update was not applied (skipped batches, or a callback vetoed it)."""
    metrics: dict[str, Any] = field(default_factory=dict)


# (hook name, *hook arguments after the context) -> None: the loop's callback dispatch.
Fire = Callable[..., None]


class TrainStep:
    """Forward, backward, accumulation and the update of one optimizer step, for a model wrapped by a
    parallel plan (pretrain.train.parallel)."""

    def __init__(self, *, model, wrapped, forward, parallel, optimizer, scaler, precision: str, device: torch.device,
                 dist, grad_clip: float, lr: float, control, fire: Fire, compile_clip: bool = False):
        self.model, self.wrapped, self.forward, self.parallel = model, wrapped, forward, parallel
        self.optimizer, self.scaler, self.precision, self.device = optimizer, scaler, precision, device
        self.dist, self.grad_clip, self.lr, self.control, self.fire = dist, grad_clip, lr, control, fire
        self.params = [p for g in optimizer.param_groups for p in g["params"]]
        # Compiled with the model (eager where the plan's gradients are sharded): see pretrain.train.clipping.
        self.clipper = GradClipper(parallel.clip_grad_norm, compiled=compile_clip)
        self.batches: list = []
        """This step's micro-batches: this rank's under per-rank data, else every rank's (for lineage)."""

    def run(self, inp: StepInputs) -> StepResult:
        metrics: dict[str, Any] = {"batch": inp.batch}
        beat("data", inp.step)
        self.fire("on_step_start", inp.step, metrics)
        mine, total_targets = self._draw(inp)
        self.optimizer.set_lr_factor(inp.lr_factor)
        world = self.dist.world
        tokens = int(sum(b.input_ids.numel() for b in self.batches)) * (world if inp.per_rank_data else 1)
        metrics.update(lr=inp.lr_factor * self.lr, tokens_in_step=tokens, targets_in_step=total_targets,
                       micro_steps=len(mine))
        result = StepResult(inp.step, tokens, total_targets, float("nan"), float("nan"), True, metrics)
        if self.control.skip_batches:
            metrics.update(skipped=True, loss=result.loss, grad_norm=result.grad_norm)
            return result
        mcfg = getattr(self.model, "cfg", None)
        if mcfg is not None and getattr(getattr(mcfg, "mtp", None), "depth", 0) and hasattr(self.model, "set_mtp_weight"):
            self.model.set_mtp_weight(mcfg.mtp.weight_at(inp.progress))
        beat("forward/backward")
        self._accumulate(inp, mine, total_targets, metrics)
        result.loss = metrics["loss"]
        result.grad_norm = metrics["grad_norm"] = self._clip()
        self.fire("on_before_update", inp.step, metrics)
        if self.control.skip_update:
            self.optimizer.zero_grad()
            metrics["skipped"] = True
            return result
        beat("optimizer")
        self._apply()
        result.skipped = False
        return result

    def _draw(self, inp: StepInputs) -> tuple[list, int]:
        """This rank's micro-batches and the step's target count (every rank's)."""
        world, rank = self.dist.world, self.dist.rank
        if inp.per_rank_data:  # this rank's micro-batches only; the loader knows the others' target counts
            self.batches, total_targets = [], 0
            for _ in range(inp.micro_batches // world):
                self.batches.append(inp.loader.next_batch())
                total_targets += inp.loader.round_targets
            return self.batches, total_targets
        self.batches = [inp.loader.next_batch() for _ in range(inp.micro_batches)]
        total_targets = int(sum(int((b.targets != -100).sum()) for b in self.batches))  # host tensors: no sync
        return self.batches[rank::world], total_targets

    def _accumulate(self, inp: StepInputs, mine: list, total_targets: int, metrics: dict) -> None:
        """Forward and backward over this rank's micro-batches; the step's losses go into ``metrics``."""
        world, device = self.dist.world, self.device
        sums = torch.zeros(4, dtype=torch.float64, device=device)  # ce_sum, n_tokens, aux * n, mtp * n
        zero = torch.zeros((), device=device)
        domain_sums: dict[str, list[float]] = {}
        model_metrics: dict[str, Any] = {}
        has_aux = has_mtp = False
        for i, b in enumerate(mine):
            input_ids = b.input_ids.to(device, non_blocking=True)
            targets = b.targets.to(device, non_blocking=True)
            # Rows that are each one document need no document mask: the causal kernel gives the same result.
            masked = inp.stage.cfg.doc_mask and b.doc_ids is not None and b.crosses_documents()
            doc_ids = b.doc_ids.to(device, non_blocking=True) if masked else None
            with self.parallel.no_sync(self.wrapped, sync=i == len(mine) - 1):
                with autocast(self.precision, device):
                    out = self.forward(input_ids, targets, doc_ids)
                n = out.n_tokens
                has_aux, has_mtp = has_aux or out.aux_loss is not None, has_mtp or out.mtp_loss is not None
                aux = out.aux_loss if out.aux_loss is not None else zero
                mtp = out.mtp_loss if out.mtp_loss is not None else zero
                # Normalise by the step's target tokens (all micro-batches, all ranks); x world because
                # DDP/FSDP average gradients over ranks where we want their sum.
                objective = (out.ce_sum + (aux + mtp) * n) / max(1, total_targets) * world
                (self.scaler.scale(objective) if self.scaler is not None else objective).backward()
            sums += torch.stack([out.ce_sum.detach().double(), torch.as_tensor(n, device=device).double(),
                                 (aux.detach() * n).double(), (mtp.detach() * n).double()])
            for k, v in (out.metrics or {}).items():
                model_metrics[k] = model_metrics.get(k, 0.0) + (v.detach() if torch.is_tensor(v) else v) / len(mine)
            if inp.log_step and out.logits is not None and getattr(b, "domains", None):
                _domain_losses(out.logits, targets, b.domains, domain_sums)
            self.fire("on_micro_batch_end", inp.step, i, len(mine), n, total_targets)
            del out
        beat("collective")
        sums = self.parallel.all_reduce_sum(sums)
        if inp.log_step and self.dist.enabled:
            domain_sums = _gather_domains(domain_sums, world)
        n_tok = sums[1].clamp(min=1.0)
        metrics.update(model_metrics)
        metrics["loss"] = sums[0] / n_tok
        if has_aux:
            metrics["aux_loss"] = sums[2] / n_tok
        if has_mtp:
            metrics["mtp_loss"] = sums[3] / n_tok
        for d, (c, k) in sorted(domain_sums.items()):
            if k:
                metrics[f"loss/{d}"] = c / k

    def _clip(self):
        if self.scaler is not None:
            for o in self.optimizer.optimizers:
                self.scaler.unscale_(o)
        return self.clipper(self.params, self.grad_clip if self.grad_clip > 0 else float("inf"))

    def _apply(self) -> None:
        if self.scaler is not None:
            for o in self.optimizer.optimizers:
                self.scaler.step(o)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad()
        if hasattr(self.model, "update_router_biases"):
            self.model.update_router_biases()
def _domain_losses(logits, targets, domains, acc: dict[str, list[float]]) -> None:
    with torch.no_grad():
        ce = F.cross_entropy(logits.float().transpose(1, 2), targets, ignore_index=-100, reduction="none")
        row_ce = ce.sum(1).double().cpu().tolist()
        row_n = (targets != -100).sum(1).cpu().tolist()
    for d, c, k in zip(domains, row_ce, row_n, strict=True):
        a = acc.setdefault(d, [0.0, 0.0])
        a[0] += c
        a[1] += k


def _gather_domains(domain_sums: dict, world: int) -> dict:
    import torch.distributed as dist

    gathered: list = [None] * world
    dist.all_gather_object(gathered, domain_sums)
    out: dict[str, list[float]] = {}
    for part in gathered:
        for d, (c, k) in part.items():
            a = out.setdefault(d, [0.0, 0.0])
            a[0] += c
            a[1] += k
    return out
