"""Semantic dedup (Abbas et al. 2023, "SemDeDup"): documents whose MiniLM embeddings have cosine
similarity above a threshold are duplicates; the first in input order is kept.

For corpora small enough to embed (MiniLM runs at some tens of documents per second per CPU core);
``max_documents`` guards against starting an all-pairs comparison that would never finish."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pretrain.configlib import check
from pretrain.data.curate.dedup.collected import CollectedStep, components
from pretrain.data.curate.dedup.store import doc_keys, save, write_removals
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
        from pretrain.data.curate.rules.embed import embed

        self._save_ids()
        save(self.work / f"emb-s{self.shard:05d}.npy", embed(self.texts, self.o.max_chars))

    def resolve(self, n_shards: int) -> dict[str, Any]:
        embs = [np.load(self.work / f"emb-s{s:05d}.npy") for s in range(n_shards)]
        keys = np.concatenate([doc_keys(s, len(e)) for s, e in enumerate(embs)]) if embs else np.zeros(0, np.uint64)
        n = len(keys)
        if n > self.o.max_documents:
            raise ValueError(f"semantic_dedup: {n} documents > max_documents={self.o.max_documents}")
        x = np.concatenate(embs) if n else np.zeros((0, 384), dtype=np.float32)
        edges = []
        for start in range(0, n, self.o.block):
            sims = x[start: start + self.o.block] @ x.T
            rows, cols = np.nonzero(sims >= self.o.threshold)
            up = cols > rows + start
            edges.append(np.stack([keys[rows[up] + start], keys[cols[up]]], axis=1))
        e = np.concatenate(edges) if edges else np.zeros((0, 2), dtype=np.uint64)
        write_removals(self.work, "rm", components(e), n_shards)
        return {"documents": n, "similar_pairs": len(e)}
