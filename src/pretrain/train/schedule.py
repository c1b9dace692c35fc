"""Learning-rate and batch-size schedules as pure functions of the step (so resume needs no state).

Step indices are 0-based: ``lr_factor(i)`` is the multiplier of the peak LR used by the update that
takes the run from ``i`` to ``i + 1`` completed steps.

Shapes (after ``warmup`` linear steps):
- ``cosine``: half cosine from the peak to ``min_ratio`` x peak (Loshchilov & Hutter 2017; Llama 3 uses
  a floor of 10%).
- ``linear``: straight line to zero (Bergsma et al. 2025, "Straight to Zero").
- ``wsd``: warmup-stable-decay (Hu et al. 2024, MiniCPM; Hägele et al. 2024): constant, then a linear
  decay to ``min_ratio`` over the last ``decay_fraction`` of the run. The LR of a stable-phase step does
  not depend on the run length, so a WSD run can be extended (raise max_steps and resume from a
  stable-phase checkpoint) without changing any step already taken.
- ``constant``.

When the run ends with an anneal stage, the main shape spans the steps before it and the anneal decays
linearly from wherever the main shape ended to zero (Llama 3: "we linearly annealed the learning rate
to 0"). With ``wsd`` the anneal *is* the decay: the main part stays at the peak.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class LRSchedule:
    total: int
    """Schedule steps of the whole run."""
    warmup: int
    shape: str = "cosine"
    min_ratio: float = 0.1
    decay_fraction: float = 0.2
    anneal_start: int | None = None
    """Schedule step where the final linear-to-zero anneal begins (None = no anneal)."""

    def __post_init__(self) -> None:
        if self.total <= 0:
            raise ValueError(f"schedule total steps must be > 0 (got {self.total})")
        if self.shape not in ("cosine", "wsd", "linear", "constant"):
            raise ValueError(f"unknown schedule shape {self.shape!r}")

    @property
    def main_end(self) -> int:
        return self.total if self.anneal_start is None else max(1, min(self.anneal_start, self.total))

    def _main(self, i: int) -> float:
        """Multiplier of the main shape at step i (before any anneal)."""
        if i < self.warmup:
            return (i + 1) / self.warmup
        end = self.main_end
        span = max(1, end - self.warmup)
        p = min(1.0, max(0.0, (i - self.warmup) / span))
        if self.shape == "cosine":
            return self.min_ratio + (1.0 - self.min_ratio) * 0.5 * (1.0 + math.cos(math.pi * p))
        if self.shape == "linear":
            # Step i uses (end - i) / span so the update after the last one would use exactly 0.
            return max(0.0, (end - i) / span)
        if self.shape == "wsd":
            if self.anneal_start is not None:
                return 1.0  # the anneal stage is the decay
            n_decay = max(1, round(self.decay_fraction * span))
            start = end - n_decay
            if i < start:
                return 1.0
            q = (i - start + 1) / n_decay
            return 1.0 - (1.0 - self.min_ratio) * q
        return 1.0

    def __call__(self, i: int) -> float:
        if self.anneal_start is None or i < self.main_end:
            return self._main(i)
        # Linear anneal to zero from the last main value.
        start_value = self._main(self.main_end - 1) if self.main_end > 0 else 1.0
        n = max(1, self.total - self.main_end)
        j = i - self.main_end
        return max(0.0, start_value * (n - j) / (n + 1)) if j < n else 0.0


def base_global_batch(tcfg, world: int = 1) -> int:
    """Sequences (at train.seq_len) per optimizer step before any batch ramp: train.global_batch, else
    micro_batch x grad_accum x processes. The one definition: the trainer trains it, scaling budgets by it."""
    return tcfg.global_batch or tcfg.micro_batch * tcfg.grad_accum * world


def tokens_per_step(tcfg, world: int = 1) -> int:
    """Input tokens per optimizer step before any batch ramp (``base_global_batch`` x train.seq_len)."""
    return base_global_batch(tcfg, world) * tcfg.seq_len


def batch_at(tokens_seen: int, base_batch: int, ramp: list[tuple[int, int]]) -> int:
    """Global batch (sequences) after ``tokens_seen`` tokens: the last ramp point reached, else the base."""
    batch = base_batch
    for at_tokens, b in ramp:
        if tokens_seen >= at_tokens:
            batch = b
    return batch


def lr_batch_scale(batch: int, base_batch: int, rule: str) -> float:
    """LR multiplier for a batch of ``batch`` sequences relative to the base batch the LR was tuned at.

    ``sqrt`` is the Adam rule (Malladi et al. 2022, "On the SDEs and Scaling Rules for Adaptive Gradient
    Algorithms"); ``linear`` is the SGD rule (Goyal et al. 2017).
    """
    if rule == "none" or batch == base_batch:
        return 1.0
    ratio = batch / base_batch
    return math.sqrt(ratio) if rule == "sqrt" else ratio


def check_batch_split(tcfg, world: int) -> None:
    """Refuse (naming the field) a global batch or ramp point that micro-batches x processes do not divide."""
    from pretrain.configlib import ConfigError

    per_step = tcfg.micro_batch * world
    if tcfg.global_batch and tcfg.global_batch % per_step:
        raise ConfigError("train.global_batch", f"{tcfg.global_batch} sequences do not split into "
                          f"micro_batch={tcfg.micro_batch} x {world} processes")
    for i, p in enumerate(tcfg.batch_ramp):
        if p.batch % per_step:
            raise ConfigError(f"train.batch_ramp[{i}].batch", f"{p.batch} sequences do not split "
                              f"into micro_batch={tcfg.micro_batch} x {world} processes")


def resume_global_batch(tcfg, saved: dict, world: int) -> str:
    """Keep the global batch of the checkpoint a run resumes from (its meta.json: ``global_batch``, else
    computed from ``world_size``) when ``train.global_batch`` is unset; returns the text of the
    ``world_size_changed`` event ("" when the checkpoint was written by as many processes as run now).

    Unset, the global batch is micro_batch x grad_accum x processes, so a resume on fewer processes
    (``torchrun --nnodes MIN:MAX`` after a node was lost) would train smaller steps over another data
    order than the run's first steps. Kept (``tcfg.global_batch`` is set to it), each rank accumulates
    more micro-batches of the same global stream, and steps, tokens and the LR schedule go on as before.
    A set ``train.global_batch`` is the user's and stays; a batch this world cannot split is refused in
    one line naming the field."""
    from pretrain.configlib import ConfigError

    old_world = int(saved.get("world_size") or world)
    batch = int(saved.get("global_batch") or base_global_batch(tcfg, old_world))
    if not tcfg.global_batch and batch != base_global_batch(tcfg, world):
        if batch % (tcfg.micro_batch * world):
            raise ConfigError("train.global_batch", f"the checkpoint's global batch of {batch} sequences "
                              f"({old_world} processes) does not split into micro_batch={tcfg.micro_batch} x "
                              f"{world} processes; set train.micro_batch to one that does")
        tcfg.global_batch = batch
    if old_world == world:
        return ""
    now = base_global_batch(tcfg, world)
    how = f"kept at {now} sequences" if now == batch else \
        f"{now} sequences (train.global_batch; the checkpoint's was {batch})"
    return (f"world size {old_world} -> {world}: global batch {how} ({max(1, batch // (tcfg.micro_batch * old_world))}"
            f" -> {max(1, now // (tcfg.micro_batch * world))} micro-batches per rank a step)")
