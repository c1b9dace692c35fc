"""The evaluation stage: held-out loss and bits per byte per domain, unigram baseline, samples,
needle-in-a-haystack, lm-evaluation-harness adapter, contamination and memorization audits.
See docs/evaluation.md.

Submodules are imported lazily so that loading a config (which imports ``pretrain.eval.config``)
does not pull in torch.
"""

from __future__ import annotations

from typing import Any

__all__ = ["evaluate_heldout", "run_eval", "run_needle", "unigram_bits_per_byte"]


def __getattr__(name: str) -> Any:
    if name == "run_eval":
        from pretrain.eval.run import run_eval

        return run_eval
    if name in ("evaluate_heldout", "unigram_bits_per_byte"):
        from pretrain.eval import heldout

        return getattr(heldout, name)
    if name == "run_needle":
        from pretrain.eval.needle import run_needle

        return run_needle
    raise AttributeError(f"module 'pretrain.eval' has no attribute {name!r}")
