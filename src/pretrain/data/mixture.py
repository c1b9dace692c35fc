"""Domain mixture: static weights or a schedule over training progress, plus an epoch report.

Weights are per domain and normalised to sum to one. A schedule is piecewise linear in training
progress (a curriculum, as in Llama 3's changing mix or MiniCPM's two-stage data); an optional
annealing mix takes over for the final phase (Llama 3 upsamples high-quality sources while the learning
rate anneals to zero). The report answers "how many tokens, and how many epochs, will each domain
contribute to a run of N tokens?" and warns when a domain would repeat too often (Muennighoff et al.
2023: up to ~4 epochs of repetition is almost as good as fresh data; beyond that returns fall fast).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from pretrain.configlib import ConfigError
from pretrain.data.loader_config import MixtureConfig


@dataclass
class DomainPlan:
    domain: str
    available_tokens: int
    mean_weight: float
    effective_tokens: float
    epochs: float


class Mixture:
    """The mixture of a run: ``weights_at(progress)`` and a per-domain plan for a token budget."""

    def __init__(self, cfg: MixtureConfig, domain_tokens: dict[str, int]):
        if not domain_tokens:
            raise ValueError("mixture: no domains (are the token shards empty?)")
        self.cfg = cfg
        self.domains = sorted(domain_tokens)
        self.domain_tokens = {d: int(domain_tokens[d]) for d in self.domains}
        if cfg.schedule:
            self._points = [(p.at, self._vector(p.weights, f"data.mixture.schedule[{i}].weights"))
                            for i, p in enumerate(cfg.schedule)]
        elif cfg.weights:
            self._points = [(0.0, self._vector(cfg.weights, "data.mixture.weights"))]
        else:  # natural distribution: proportional to tokens
            tokens = np.array([self.domain_tokens[d] for d in self.domains], dtype=np.float64)
            if tokens.sum() <= 0:
                raise ValueError("mixture: every domain has zero tokens")
            self._points = [(0.0, tokens / tokens.sum())]
        self._anneal = (self._vector(cfg.anneal_weights, "data.mixture.anneal_weights")
                        if cfg.anneal_weights else None)

    def _vector(self, weights: dict[str, float], field: str) -> np.ndarray:
        unknown = sorted(set(weights) - set(self.domains))
        if unknown:
            raise ConfigError(f"{field}.{unknown[0]}", f"no such domain in the token shards (have: {', '.join(self.domains)})")
        v = np.array([float(weights.get(d, 0.0)) for d in self.domains])
        if v.sum() <= 0:
            raise ConfigError(field, "weights must not all be zero")
        empty = [d for d, w in zip(self.domains, v, strict=True) if w > 0 and self.domain_tokens[d] == 0]
        if empty:
            raise ConfigError(f"{field}.{empty[0]}", "domain has weight but no tokens")
        return v / v.sum()

    def weight_vector(self, progress: float) -> np.ndarray:
        """Normalised weights at ``progress`` in [0, 1], aligned with ``self.domains``."""
        p = min(max(float(progress), 0.0), 1.0)
        if self._anneal is not None and p >= self.cfg.anneal_start:
            return self._anneal.copy()
        pts = self._points
        if p <= pts[0][0]:
            return pts[0][1].copy()
        for (a0, w0), (a1, w1) in zip(pts, pts[1:], strict=False):
            if p <= a1:
                t = 0.0 if a1 == a0 else (p - a0) / (a1 - a0)
                return (1 - t) * w0 + t * w1
        return pts[-1][1].copy()

    def weights_at(self, progress: float) -> dict[str, float]:
        return dict(zip(self.domains, map(float, self.weight_vector(progress)), strict=True))

    def mean_weights(self, n: int = 2001) -> np.ndarray:
        """Weights averaged over training progress (what each domain gets of the whole token budget)."""
        grid = np.linspace(0.0, 1.0, n)
        w = np.stack([self.weight_vector(p) for p in grid])
        return w.mean(axis=0)

    def plan(self, total_tokens: int, warn: bool = True) -> list[DomainPlan]:
        """Effective tokens and epochs per domain for a run of ``total_tokens``; warns above the limit."""
        mean = self.mean_weights()
        rows = []
        for d, w in zip(self.domains, mean, strict=True):
            eff = float(w) * total_tokens
            avail = self.domain_tokens[d]
            rows.append(DomainPlan(d, avail, float(w), eff, eff / avail if avail else 0.0))
        if warn:
            for r in rows:
                if r.epochs > self.cfg.max_epochs_warning:
                    warnings.warn(f"mixture: domain '{r.domain}' would be repeated {r.epochs:.1f} epochs "
                                  f"(> max_epochs_warning={self.cfg.max_epochs_warning:g})", stacklevel=2)
        return rows

    def report(self, total_tokens: int) -> dict:
        rows = self.plan(total_tokens, warn=False)
        return {"total_tokens": int(total_tokens), "max_epochs_warning": self.cfg.max_epochs_warning,
                "domains": {r.domain: {"available_tokens": r.available_tokens, "mean_weight": r.mean_weight,
                                       "effective_tokens": r.effective_tokens, "epochs": r.epochs,
                                       "over_limit": r.epochs > self.cfg.max_epochs_warning} for r in rows}}
