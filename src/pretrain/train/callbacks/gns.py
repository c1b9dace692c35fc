"""Gradient noise scale (pretrain.train.gns) measured on logged steps that accumulate micro-batches:
|G_small|^2 from this rank's first micro-batch, |G_big|^2 from the step's gradient before clipping."""

from __future__ import annotations

import math

import torch

from pretrain.train.callbacks.base import Callback
from pretrain.train.gns import GradientNoiseScale


class NoiseScale(Callback):
    order = 15  # before the spike guard, which may skip the update (the gradients were measured anyway)

    def __init__(self, ema: float = 0.95):
        self.gns = GradientNoiseScale(ema)
        self._small: tuple[float, int] | None = None

    def on_micro_batch_end(self, ctx, step, index, count, n_tokens, total_targets) -> None:
        if index == 0:
            self._small = None
        if not (index == 0 and count > 1 and ctx.is_log_step(step) and ctx.parallel.local_grads
                and ctx.scaler is None):
            return
        # Accumulated gradient so far, rescaled from "summed over the step's targets" to a per-token
        # mean over this micro-batch's own targets (the only host syncs: once per logged step).
        sq = [p.grad.detach().float().pow(2).sum() for p in ctx.params if p.grad is not None]
        g = float(torch.stack(sq).sum()) if sq else 0.0
        n = max(1, int(n_tokens))
        self._small = (g * (total_targets / (ctx.dist.world * n)) ** 2, n)

    def on_before_update(self, ctx, step: int, metrics: dict) -> None:
        if self._small is None:
            return
        small, self._small = self._small, None
        grad_norm = float(metrics["grad_norm"])
        if math.isfinite(grad_norm):
            est = self.gns.update(small[0], small[1], grad_norm**2, int(metrics["targets_in_step"]))
            if est is not None:
                metrics["gns_tokens"] = est

    def state_dict(self) -> dict:
        return self.gns.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.gns.load_state_dict(state)
