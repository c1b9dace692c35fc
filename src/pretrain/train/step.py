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

Nothing here reads a value back to the host: losses and norms stay device tensors in the metrics dict
(the trainer reads them back on logged steps). Per-domain losses are computed on logged steps only.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from pretrain.train.precision import autocast
from pretrain.train.schedule import lr_batch_scale


def run_step(tr, stage, step: int) -> dict[str, Any]:
    """Train step number ``step`` (1-based) of ``stage``; returns its metrics dict."""
    n_micro, batch = tr.micro_steps(stage)
    world, rank = tr.dist.world, tr.dist.rank
    if hasattr(tr.loader, "set_progress"):
        tr.loader.set_progress((step - 1) / max(1, tr.plan.total))
    metrics: dict[str, Any] = {"batch": batch}
    tr.callbacks.fire("on_step_start", tr, step, metrics)
    if tr.per_rank_data:  # this rank's micro-batches only; the loader knows the others' target counts
        tr.batches, total_targets = [], 0
        for _ in range(n_micro // world):
            tr.batches.append(tr.loader.next_batch())
            total_targets += tr.loader.round_targets
        mine = tr.batches
    else:
        tr.batches = [tr.loader.next_batch() for _ in range(n_micro)]
        mine = tr.batches[rank::world]
        total_targets = int(sum(int((b.targets != -100).sum()) for b in tr.batches))  # host tensors: no sync
    lr_factor = tr.plan.lr_factor(step - 1) * lr_batch_scale(batch, tr.base_global_batch(), tr.t.lr_batch_scaling)
    tr.opt.set_lr_factor(lr_factor)
    tokens_in_step = int(sum(b.input_ids.numel() for b in tr.batches)) * (world if tr.per_rank_data else 1)
    metrics.update(lr=lr_factor * tr.t.lr, tokens_in_step=tokens_in_step,
                   targets_in_step=total_targets, micro_steps=len(mine))
    if tr.control.skip_batches:
        metrics.update(skipped=True, loss=float("nan"), grad_norm=float("nan"))
        return metrics

    mcfg = getattr(tr.raw, "cfg", None)
    if mcfg is not None and getattr(getattr(mcfg, "mtp", None), "depth", 0) and hasattr(tr.raw, "set_mtp_weight"):
        tr.raw.set_mtp_weight(mcfg.mtp.weight_at((step - 1) / max(1, tr.plan.total)))

    log_step = tr.is_log_step(step)
    sums = torch.zeros(4, dtype=torch.float64, device=tr.device)  # ce_sum, n_tokens, aux * n, mtp * n
    zero = torch.zeros((), device=tr.device)
    domain_sums: dict[str, list[float]] = {}
    model_metrics: dict[str, Any] = {}
    has_aux = has_mtp = False
    for i, b in enumerate(mine):
        input_ids = b.input_ids.to(tr.device, non_blocking=True)
        targets = b.targets.to(tr.device, non_blocking=True)
        # Rows that are each one document need no document mask: the causal kernel gives the same result.
        masked = stage.cfg.doc_mask and b.doc_ids is not None and b.crosses_documents()
        doc_ids = b.doc_ids.to(tr.device, non_blocking=True) if masked else None
        with tr.parallel.no_sync(tr.model, sync=i == len(mine) - 1):
            with autocast(tr.precision, tr.device):
                out = tr.forward_model(input_ids, targets, doc_ids)
            n = out.n_tokens
            has_aux, has_mtp = has_aux or out.aux_loss is not None, has_mtp or out.mtp_loss is not None
            aux = out.aux_loss if out.aux_loss is not None else zero
            mtp = out.mtp_loss if out.mtp_loss is not None else zero
            # Normalise by the step's target tokens (all micro-batches, all ranks); x world because
            # DDP/FSDP average gradients over ranks where we want their sum.
            objective = (out.ce_sum + (aux + mtp) * n) / max(1, total_targets) * world
            (tr.scaler.scale(objective) if tr.scaler is not None else objective).backward()
        sums += torch.stack([out.ce_sum.detach().double(), torch.as_tensor(n, device=tr.device).double(),
                             (aux.detach() * n).double(), (mtp.detach() * n).double()])
        for k, v in (out.metrics or {}).items():
            model_metrics[k] = model_metrics.get(k, 0.0) + (v.detach() if torch.is_tensor(v) else v) / len(mine)
        if log_step and out.logits is not None and getattr(b, "domains", None):
            _domain_losses(out.logits, targets, b.domains, domain_sums)
        tr.callbacks.fire("on_micro_batch_end", tr, step, i, len(mine), n, total_targets)
        del out

    sums = tr.parallel.all_reduce_sum(sums)
    if log_step and tr.dist.enabled:
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

    if tr.scaler is not None:
        for o in tr.opt.optimizers:
            tr.scaler.unscale_(o)
    metrics["grad_norm"] = tr.parallel.clip_grad_norm(tr.params, tr.t.grad_clip if tr.t.grad_clip > 0 else float("inf"))
    tr.callbacks.fire("on_before_update", tr, step, metrics)
    if tr.control.skip_update:
        tr.opt.zero_grad()
        metrics["skipped"] = True
        return metrics
    if tr.scaler is not None:
        for o in tr.opt.optimizers:
            tr.scaler.step(o)
        tr.scaler.update()
    else:
        tr.opt.step()
    tr.opt.zero_grad()
    if hasattr(tr.raw, "update_router_biases"):
        tr.raw.update_router_biases()
    return metrics


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
