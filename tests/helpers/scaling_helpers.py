"""Shared helpers of the scaling tests (synthetic runs from a known law, fixture paths)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pretrain.scaling.laws import ScalingLaw
from pretrain.scaling.points import from_arrays

FIXTURES = Path(__file__).parents[1] / "scaling" / "fixtures"
CHINCHILLA_CSV = FIXTURES / "chinchilla_points.csv"

# A law with Chinchilla-like exponents but different constants, to generate synthetic runs.
TRUE_LAW = ScalingLaw(E=1.9, A=600.0, B=1500.0, alpha=0.33, beta=0.38, name="true")


def synthetic_points(law: ScalingLaw = TRUE_LAW, noise: float = 0.0, seed: int = 0):
    """An IsoFLOP design: 5 budgets x 9 sizes spread around each budget's optimum, multiplicative noise."""
    rng = np.random.default_rng(seed)
    ns, ds, cs = [], [], []
    for c in np.logspace(18, 22, 5):
        n_opt, _ = law.optimal(c)
        for f in np.logspace(-1, 1, 9):
            n = n_opt * f
            ns.append(n)
            ds.append(c / (6 * n))
            cs.append(c)
    ns, ds = np.array(ns), np.array(ds)
    loss = law.loss(ns, ds) * np.exp(noise * rng.standard_normal(len(ns)))
    return from_arrays(ns, ds, loss, compute=np.array(cs), source="synthetic")


def tiny_overrides(root) -> list[str]:
    """Overrides that point the tiny preset at the session's data and shrink it further."""
    return [
        f"data.tokens={str(root / 'tokens')!r}".replace("'", '"'),
        f"tokenizer.path={str(root / 'tokenizer' / 'tokenizer.json')!r}".replace("'", '"'),
        "model.max_seq_len=32", "train.seq_len=32", "train.micro_batch=4", "train.log_interval=5",
        "train.peak_flops=1e11", "train.gns=false", "eval.batch_size=8", "eval.max_docs_per_domain=4",
        "eval.max_tokens_per_domain=256",
    ]
