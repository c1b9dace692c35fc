"""Evaluation configuration: held-out loss and bits per byte, samples, needle-in-a-haystack."""

from __future__ import annotations

from dataclasses import dataclass, field

from pretrain.configlib import check


@dataclass
class EvalConfig:
    batch_size: int = 8
    """Sequences per forward pass during evaluation."""
    seq_len: int = 0
    """Evaluation window length (0 = the training sequence length)."""
    max_docs_per_domain: int = 200
    """Cap on held-out documents per domain (0 = all)."""
    max_tokens_per_domain: int = 100_000
    """Cap on held-out tokens per domain (0 = no cap), to keep in-loop evaluation fast."""
    interval: int = 0
    """Evaluate every this many training steps (0 = only at the end of each stage)."""
    sample_prompts: list[str] = field(default_factory=list)
    """Prompts for generated samples ('' list = a fixed prompt per domain)."""
    sample_tokens: int = 64
    """New tokens per generated sample."""

    def validate(self) -> None:
        check(self.batch_size > 0, "batch_size", "must be > 0")
        check(self.seq_len >= 0, "seq_len", "must be >= 0")
