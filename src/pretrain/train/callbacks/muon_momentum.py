"""Muon's momentum schedule (nanochat's): a linear rise over the first steps, then, while the learning
rate decays, a linear fall with it.

Low momentum early lets the first, large and fast-changing gradients through without a long memory; a
lower momentum in the warm-down averages over fewer, smaller steps so the weights settle where the
decayed LR takes them. The momentum is a pure function of the step and the LR plan, so the callback
keeps no state: a resumed run computes the same values.
"""

from __future__ import annotations

from pretrain.train.callbacks.base import Callback


def muon_momentum_at(step0: int, lr_factor: float, *, peak: float, start: float, warmup: int, final: float,
                     lr_warmup: int, min_lr_ratio: float) -> float:
    """Momentum for the update at 0-based step ``step0`` whose LR multiplier is ``lr_factor``."""
    m = peak
    if warmup > 0 and step0 < warmup:
        m = start + (peak - start) * step0 / warmup
    if final > 0 and step0 >= lr_warmup and lr_factor < 1.0 and min_lr_ratio < 1.0:
        decayed = min(1.0, max(0.0, (1.0 - lr_factor) / (1.0 - min_lr_ratio)))  # 0 at the peak, 1 at the floor
        m = min(m, peak + (final - peak) * decayed)
    return m


class MuonMomentum(Callback):
    order = 5  # before anything reads the optimizer on this step

    def __init__(self, peak: float, start: float, warmup: int, final: float, group: str = "muon"):
        self.peak, self.start, self.warmup, self.final = peak, start, warmup, final
        self.group = group  # the param groups Muon updates (named by MuonConfig)

    def on_step_start(self, ctx, step: int, metrics: dict) -> None:
        m = muon_momentum_at(step - 1, ctx.stage_plan.lr_factor(step - 1), peak=self.peak, start=self.start,
                             warmup=self.warmup, final=self.final, lr_warmup=ctx.config.warmup_steps,
                             min_lr_ratio=ctx.config.min_lr_ratio)
        for g in ctx.optimizer.param_groups:
            if g.get("name") == self.group:
                g["momentum"] = m
        if ctx.is_log_step(step):
            metrics["muon_momentum"] = m
