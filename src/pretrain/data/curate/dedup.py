"""Deduplication steps: exact (normalized text hash), near-duplicate MinHash-LSH and ccNet-style lines.

All three are global steps that keep their index on disk: workers write per-shard arrays (hashes,
signatures, band keys) into the step's scratch directory; ``resolve`` reads them back one hash bucket
or one LSH band at a time, so its memory is a few arrays of n 8-byte values, never the texts. Clusters
are resolved deterministically: **the document that comes first in input order is kept** (sorted input
files, then position in file), and every other member is removed with ``meta.duplicate_of`` naming it.
"""

from __future__ import annotations

import numpy as np

from pretrain.data.curate.registry import GlobalStep, Verdict
from pretrain.data.record import Document

KEY_DTYPE = np.dtype([("key", "<u8"), ("shard", "<i4"), ("idx", "<i8")])


def save(path, arr) -> None:
    """np.save atomically (a killed worker never leaves a half-written array that looks complete)."""
    tmp = path.with_name(f".tmp-{path.name}")
    with open(tmp, "wb") as f:
        np.save(f, arr)
    tmp.replace(path)


class UnionFind:
    """Union-find whose root is always the smallest index: the earliest document of a cluster."""

    def __init__(self, n: int):
        self.parent = np.arange(n, dtype=np.int64)

    def find(self, x: int) -> int:
        p = self.parent
        root = x
        while p[root] != root:
            root = p[root]
        while p[x] != root:  # path compression
            p[x], x = root, p[x]
        return int(root)

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            lo, hi = (ra, rb) if ra < rb else (rb, ra)
            self.parent[hi] = lo


class CollectedStep(GlobalStep):
    """Shared plumbing: per-shard lists of (position, doc id) of the collected documents."""

    def begin_collect(self, shard: int) -> None:
        self.shard = shard
        self.positions: list[int] = []
        self.ids: list[str] = []

    def _remember(self, doc: Document, idx: int) -> None:
        self.positions.append(idx)
        self.ids.append(doc.id)

    def _save_ids(self) -> None:
        save(self.work / f"pos-s{self.shard:05d}.npy", np.asarray(self.positions, dtype=np.int64))
        save(self.work / f"ids-s{self.shard:05d}.npy", np.asarray(self.ids, dtype="S16"))

    def _load_ids(self, shard: int) -> tuple[np.ndarray, np.ndarray]:
        return (np.load(self.work / f"pos-s{shard:05d}.npy"), np.load(self.work / f"ids-s{shard:05d}.npy"))

    def _write_decisions(self, removals: dict[int, list[tuple[int, bytes]]], n_shards: int) -> None:
        for s in range(n_shards):
            rows = sorted(removals.get(s, []))
            arr = np.array(rows, dtype=[("idx", "<i8"), ("keep", "S16")]) if rows else np.zeros(
                0, dtype=[("idx", "<i8"), ("keep", "S16")])
            save(self.work / f"remove-s{s:05d}.npy", arr)

    def begin_apply(self, shard: int) -> None:
        arr = np.load(self.work / f"remove-s{shard:05d}.npy")
        self.remove = {int(i): k.decode() for i, k in zip(arr["idx"], arr["keep"], strict=True)}

    def apply(self, doc: Document, idx: int) -> Verdict | None:
        keep = self.remove.get(idx)
        if keep is None:
            return None
        doc.meta["duplicate_of"] = keep
        return "duplicate", f"duplicate of {keep} (the first of its cluster in input order is kept)"


