"""Semantic dedup (Abbas et al. 2023, "SemDeDup"): documents whose MiniLM embeddings have cosine
similarity above a threshold are duplicates; the first in input order is kept.

For corpora small enough to embed (MiniLM runs at some tens of documents per second per CPU core);
``max_documents`` guards against starting an all-pairs comparison that would never finish."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pretrain.configlib import check
from pretrain.data.curate.dedup import CollectedStep, UnionFind, save
from pretrain.data.curate.registry import register
from pretrain.data.record import Document


@dataclass
class SemanticOptions:
    threshold: float = 0.95
    """Cosine similarity at or above which two documents are duplicates."""
    max_chars: int = 2000
    """Characters of each document that are embedded."""
    max_documents: int = 200_000
    """Refuse corpora with more documents (all-pairs similarity is quadratic)."""
    block: int = 2048
    """Rows per block of the similarity matrix (bounds memory)."""


@register("semantic_dedup")
class SemanticDedup(CollectedStep):
    Options = SemanticOptions

    def validate(self) -> None:
        check(0.0 < self.o.threshold <= 1.0, "threshold", f"must be in (0, 1] (got {self.o.threshold})")

    def begin_collect(self, shard: int) -> None:
        super().begin_collect(shard)
        self.texts: list[str] = []

    def collect(self, doc: Document, idx: int) -> None:
        self._remember(doc, idx)
        self.texts.append(doc.text)

    def end_collect(self) -> None:
        from pretrain.data.curate.embed import embed

        self._save_ids()
        save(self.work / f"emb-s{self.shard:05d}.npy", embed(self.texts, self.o.max_chars))

    def resolve(self, n_shards: int) -> dict[str, Any]:
        embs = [np.load(self.work / f"emb-s{s:05d}.npy") for s in range(n_shards)]
        offsets = np.concatenate([[0], np.cumsum([len(e) for e in embs])]).astype(np.int64)
        n = int(offsets[-1])
        if n > self.o.max_documents:
            raise ValueError(f"semantic_dedup: {n} documents > max_documents={self.o.max_documents}")
        x = np.concatenate(embs) if n else np.zeros((0, 384), dtype=np.float32)
        uf = UnionFind(n)
        pairs = 0
        for start in range(0, n, self.o.block):
            sims = x[start: start + self.o.block] @ x.T
            rows, cols = np.nonzero(sims >= self.o.threshold)
            for r, c in zip(rows + start, cols, strict=True):
                if c > r:
                    pairs += 1
                    uf.union(int(r), int(c))
        ids = {s: self._load_ids(s) for s in range(n_shards)}
        removals: dict[int, list[tuple[int, bytes]]] = {}
        for g in range(n):
            root = uf.find(g)
            if root != g:
                s = int(np.searchsorted(offsets, g, side="right") - 1)
                rs = int(np.searchsorted(offsets, root, side="right") - 1)
                removals.setdefault(s, []).append((int(ids[s][0][g - offsets[s]]), ids[rs][1][root - offsets[rs]]))
        self._write_decisions(removals, n_shards)
        return {"documents": n, "similar_pairs": pairs}

