"""Batched, no-grad scoring of token sequences: the one primitive every evaluation is built on.

A scoring request is a token sequence plus the index of its first scored token; the result is the
log-probability of every scored token given all tokens before it, and whether it was the argmax
(greedy) choice. Held-out loss, needle retrieval, lm-eval log-likelihoods and the memorization audit
all reduce to this, so they share one tested code path.

Any module obeying the model contract works: ``model(input_ids)`` returning an object with
``.logits`` ``[B, T, V]`` (or the logits tensor itself).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass
class Scored:
    """Per-token results of one request, for tokens[score_from:]."""

    logprobs: np.ndarray
    """float64 log p(token | all earlier tokens), one per scored token."""
    greedy: np.ndarray
    """bool: the token was the model's argmax prediction."""


def logits_of(model: torch.nn.Module, input_ids: torch.Tensor) -> torch.Tensor:
    """Run the model and return its logits, whatever output type it uses."""
    out = model(input_ids)
    logits = getattr(out, "logits", out)
    if not isinstance(logits, torch.Tensor) or logits.dim() != 3:
        raise ValueError("model output has no [B, T, V] logits (expected model(input_ids).logits)")
    return logits


def model_device(model: torch.nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def autocast_for(device: torch.device):
    """bf16 autocast on CUDA (fp32 accumulation of the scores happens afterwards), nothing on CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
def score_sequences(
    model: torch.nn.Module,
    sequences: Sequence[Sequence[int]],
    score_from: Sequence[int],
    batch_size: int = 8,
    device: str | torch.device | None = None,
) -> list[Scored]:
    """Score ``sequences[i][score_from[i]:]`` given their prefixes, in batches, without gradients.

    Each row is fed as ``tokens[:-1]`` and predicts ``tokens[1:]``; rows are right-padded, which a
    causal model cannot see, and sorted by length so batches waste little padding. The caller keeps
    every sequence within the model's context. ``score_from[i]`` must be >= 1 (the first token has
    nothing to be predicted from).
    """
    if len(sequences) != len(score_from):
        raise ValueError(f"{len(sequences)} sequences but {len(score_from)} score_from values")
    if batch_size <= 0:
        raise ValueError(f"batch_size must be > 0 (got {batch_size})")
    dev = torch.device(device) if device is not None else model_device(model)
    was_training = model.training
    model.eval()
    results: list[Scored | None] = [None] * len(sequences)
    # Longest first: the first batch shows any out-of-memory problem at once; stable for determinism.
    order = sorted(range(len(sequences)), key=lambda i: -len(sequences[i]))
    try:
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            width = max(len(sequences[i]) for i in idx) - 1
            if width < 1:
                raise ValueError("every scored sequence needs at least 2 tokens")
            inputs = torch.zeros(len(idx), width, dtype=torch.long)
            targets = torch.full((len(idx), width), -100, dtype=torch.long)
            for r, i in enumerate(idx):
                seq = torch.as_tensor(list(sequences[i]), dtype=torch.long)
                s = score_from[i]
                if not 1 <= s <= len(seq):
                    raise ValueError(f"score_from={s} outside 1..{len(seq)} for a sequence of {len(seq)} tokens")
                n = len(seq) - 1
                inputs[r, :n] = seq[:-1]
                targets[r, s - 1:n] = seq[s:]
            with autocast_for(dev):
                logits = logits_of(model, inputs.to(dev))
            logp = F.log_softmax(logits.float(), dim=-1)
            safe = targets.clamp_min(0).to(dev)
            tok_lp = logp.gather(-1, safe.unsqueeze(-1)).squeeze(-1).double().cpu()
            greedy = (logp.argmax(-1) == safe).cpu()
            for r, i in enumerate(idx):
                s, n = score_from[i], len(sequences[i]) - 1
                results[i] = Scored(tok_lp[r, s - 1:n].numpy().copy(), greedy[r, s - 1:n].numpy().copy())
    finally:
        model.train(was_training)
    return results  # type: ignore[return-value]
