"""Trainer configuration: optimisation, schedule, batch, precision, stages, stability and checkpoints."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pretrain.configlib import check


@dataclass
class TrainConfig:
    seq_len: int = 256
    """Tokens per training sequence."""
    micro_batch: int = 8
    """Sequences per forward/backward pass on one process."""
    grad_accum: int = 1
    """Micro-batches accumulated per optimizer step."""
    max_steps: int = 1000
    """Optimizer steps of the whole run (all stages together unless stages set their own)."""
    time_limit_s: float = 0.0
    """Stop after this many seconds of training wall time (0 = no limit); the schedule is sized to it."""
    lr: float = 1e-3
    """Peak learning rate."""
    min_lr_ratio: float = 0.1
    """Final learning rate as a fraction of the peak (cosine floor)."""
    warmup_steps: int = 100
    """Linear warmup steps."""
    schedule: Literal["cosine", "wsd", "linear", "constant"] = "cosine"
    """Learning-rate shape after warmup."""
    decay_fraction: float = 0.2
    """WSD: fraction of the run spent in the final decay."""
    weight_decay: float = 0.1
    """AdamW decoupled weight decay (not applied to norms, biases, embeddings)."""
    beta1: float = 0.9
    """AdamW beta1."""
    beta2: float = 0.95
    """AdamW beta2."""
    eps: float = 1e-8
    """AdamW epsilon."""
    grad_clip: float = 1.0
    """Clip the global gradient norm to this (0 = off)."""
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    """auto = fp32 on CPU, bf16 autocast with fp32 master weights on GPU."""
    device: str = "auto"
    """auto, cpu, cuda, cuda:N."""
    compile: bool = False
    """Wrap the model in torch.compile."""
    log_interval: int = 10
    """Log a metrics row every this many steps."""
    checkpoint_interval: int = 0
    """Save a checkpoint every this many steps (0 = only at the end)."""
    keep_last: int = 2
    """Checkpoints to keep besides milestones."""
    seed: int = 0
    """Seed for initialisation and data order."""

    @property
    def tokens_per_step(self) -> int:
        return self.seq_len * self.micro_batch * self.grad_accum

    def validate(self) -> None:
        check(self.seq_len > 0, "seq_len", "must be > 0")
        check(self.micro_batch > 0, "micro_batch", "must be > 0")
        check(self.grad_accum > 0, "grad_accum", "must be > 0")
        check(self.lr > 0, "lr", f"must be > 0 (got {self.lr})")
        check(0.0 <= self.min_lr_ratio <= 1.0, "min_lr_ratio", f"must be in [0, 1] (got {self.min_lr_ratio})")
        check(self.warmup_steps >= 0, "warmup_steps", "must be >= 0")
        check(self.max_steps > 0, "max_steps", "must be > 0")
        check(0.0 <= self.beta1 < 1.0, "beta1", "must be in [0, 1)")
        check(0.0 <= self.beta2 < 1.0, "beta2", "must be in [0, 1)")
        check(self.grad_clip >= 0, "grad_clip", "must be >= 0")
