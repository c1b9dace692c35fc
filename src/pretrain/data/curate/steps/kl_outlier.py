"""Token-distribution outlier filter (KL divergence from the domain's unigram distribution; see pretrain.data.curate.rules.kl)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pretrain.configlib import check
from pretrain.data.curate.registry import GlobalStep, Verdict, register
from pretrain.data.curate.rules.kl import kl_divergence, word_bins
from pretrain.data.record import Document


@dataclass
class KLOptions:
    max_kl: float = 5.0
    """Documents whose KL divergence (nats) from their domain's distribution exceeds this are removed."""
    min_words: int = 50
    """Shorter documents are not judged (their distribution is too noisy)."""
    bins: int = 65536
    """Hash buckets of the unigram distribution."""


@register("kl_outlier")
class KLOutlier(GlobalStep):
    apply_files = ("q.npz",)
    Options = KLOptions

    def validate(self) -> None:
        check(self.o.max_kl > 0, "max_kl", f"must be > 0 (got {self.o.max_kl})")
        check(self.o.bins >= 16, "bins", "must be >= 16")

    def begin_collect(self, shard: int) -> None:
        self.shard = shard
        self.counts: dict[str, np.ndarray] = {}

    def collect(self, doc: Document, idx: int) -> None:
        c = self.counts.setdefault(doc.domain, np.zeros(self.o.bins, dtype=np.float64))
        np.add.at(c, word_bins(doc.text, self.o.bins), 1.0)

    def end_collect(self) -> None:
        self._savez(f"counts-s{self.shard:05d}.npz", self.counts)

    _GROUP = 8  # shards summed per stage-0 task

    def stages(self) -> list[int]:
        return [max(1, -(-self.n_shards // self._GROUP)), 1]

    def _sum(self, paths) -> dict[str, np.ndarray]:
        total: dict[str, np.ndarray] = {}
        for path in paths:  # a fixed order: the float sums are the same on every run
            with np.load(path) as z:
                for d in z.files:
                    total[d] = total.get(d, 0) + z[d]
        return total

    def _savez(self, name: str, arrays: dict[str, np.ndarray]) -> None:
        tmp = self.work / f".tmp-{name}"
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        tmp.replace(self.work / name)

    def run_stage(self, stage: int, part: int) -> dict[str, Any]:
        if stage == 0:  # partial sums over a group of shards, in parallel
            shards = range(part * self._GROUP, min(self.n_shards, (part + 1) * self._GROUP))
            self._savez(f"partial-{part:05d}.npz", self._sum(self.work / f"counts-s{s:05d}.npz" for s in shards))
            return {}
        total = self._sum(self.work / f"partial-{g:05d}.npz" for g in range(self.stages()[0]))
        # Additive smoothing that gives unseen buckets 1% of the mass in all (add-one over 65536 buckets
        # would swamp a small corpus and make every document look like an outlier).
        q = {}
        for d, c in total.items():
            alpha = 0.01 * max(c.sum(), 1.0) / len(c)
            q[d] = (c + alpha) / (c.sum() + alpha * len(c))
        self._savez("q.npz", q)
        return {"domains": sorted(q)}

    def begin_apply(self, shard: int) -> None:
        with np.load(self.work / "q.npz") as z:
            self.q = {d: z[d] for d in z.files}

    def apply(self, doc: Document, idx: int) -> Verdict | None:
        b = word_bins(doc.text, self.o.bins)
        if len(b) < self.o.min_words or doc.domain not in self.q:
            return None
        kl = kl_divergence(np.bincount(b, minlength=self.o.bins).astype(np.float64), self.q[doc.domain])
        doc.meta["kl_divergence"] = round(kl, 4)
        if kl > self.o.max_kl:
            return "outlier_tokens", f"KL divergence {kl:.2f} nats > {self.o.max_kl}"
        return None

