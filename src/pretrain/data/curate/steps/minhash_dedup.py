"""Near-duplicate removal with MinHash-LSH (first in input order kept)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pretrain.configlib import check
from pretrain.data.curate.dedup import CollectedStep, UnionFind, save
from pretrain.data.curate.minhash import MinHasher, band_hashes
from pretrain.data.curate.registry import register
from pretrain.data.record import Document


@dataclass
class MinHashOptions:
    num_perm: int = 112
    """Hash functions per signature (must equal bands x rows)."""
    bands: int = 14
    """LSH bands. 14 bands of 8 rows is FineWeb's setting; 1-(1-s^8)^14 is 0.92 at s=0.75, 0.0024 at s=0.3."""
    rows: int = 8
    """Rows (hash values) per band."""
    shingle: int = 5
    """Word n-gram size of the shingles."""
    threshold: float = 0.8
    """Candidates whose estimated Jaccard similarity (signature agreement) is below this are not merged."""
    seed: int = 1
    """Seed of the hash functions (a fixed seed keeps signatures comparable across runs)."""


@register("minhash_dedup")
class MinHashDedup(CollectedStep):
    """Near-duplicate removal: MinHash signatures, LSH banding, candidate verification, union-find."""

    Options = MinHashOptions

    def validate(self) -> None:
        check(self.o.bands * self.o.rows == self.o.num_perm, "num_perm",
              f"must equal bands x rows = {self.o.bands * self.o.rows} (got {self.o.num_perm})")
        check(0.0 < self.o.threshold <= 1.0, "threshold", f"must be in (0, 1] (got {self.o.threshold})")
        check(self.o.shingle >= 1, "shingle", "must be >= 1")

    def setup(self) -> None:
        self.hasher = MinHasher(self.o.num_perm, self.o.shingle, self.o.seed)

    def begin_collect(self, shard: int) -> None:
        super().begin_collect(shard)
        self.sigs: list[np.ndarray] = []

    def collect(self, doc: Document, idx: int) -> None:
        self._remember(doc, idx)
        self.sigs.append(self.hasher.signature(doc.text))

    def end_collect(self) -> None:
        self._save_ids()
        sigs = np.stack(self.sigs) if self.sigs else np.zeros((0, self.o.num_perm), dtype=np.uint32)
        save(self.work / f"sig-s{self.shard:05d}.npy", sigs)
        save(self.work / f"band-s{self.shard:05d}.npy", band_hashes(sigs, self.o.bands, self.o.rows))

    def resolve(self, n_shards: int) -> dict[str, Any]:
        sigs = [np.load(self.work / f"sig-s{s:05d}.npy", mmap_mode="r") for s in range(n_shards)]
        sizes = np.array([len(x) for x in sigs], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(sizes)])
        n = int(offsets[-1])
        uf = UnionFind(n)

        def sig(g: int) -> np.ndarray:
            s = int(np.searchsorted(offsets, g, side="right") - 1)
            return sigs[s][g - offsets[s]]

        candidates = verified = 0
        for b in range(self.o.bands):
            keys = np.concatenate([np.load(self.work / f"band-s{s:05d}.npy", mmap_mode="r")[:, b]
                                   for s in range(n_shards)]) if n else np.zeros(0, dtype=np.uint64)
            order = np.argsort(keys, kind="stable")  # stable: ties stay in input order
            k = keys[order]
            starts = np.flatnonzero(np.concatenate([[True], k[1:] != k[:-1]])) if n else np.zeros(0, dtype=np.int64)
            ends = np.append(starts[1:], n)
            for i in np.flatnonzero(ends - starts >= 2):  # only buckets with a collision, in key order
                group = order[starts[i]: ends[i]]
                head = int(group[0])
                for j, g in enumerate(group[1:], 1):
                    g = int(g)
                    if uf.find(g) == uf.find(head):
                        continue
                    candidates += 1
                    prev = int(group[j - 1])
                    if (np.mean(sig(g) == sig(head)) >= self.o.threshold
                            or np.mean(sig(g) == sig(prev)) >= self.o.threshold):
                        verified += 1
                        uf.union(g, head if np.mean(sig(g) == sig(head)) >= self.o.threshold else prev)
        removals: dict[int, list[tuple[int, bytes]]] = {}
        ids = {s: self._load_ids(s) for s in range(n_shards)}
        clusters = 0
        for g in range(n):
            root = uf.find(g)
            if root == g:
                clusters += 1
                continue
            s = int(np.searchsorted(offsets, g, side="right") - 1)
            rs = int(np.searchsorted(offsets, root, side="right") - 1)
            pos = int(ids[s][0][g - offsets[s]])
            removals.setdefault(s, []).append((pos, ids[rs][1][root - offsets[rs]]))
        self._write_decisions(removals, n_shards)
        return {"documents": n, "clusters": clusters, "candidate_pairs": candidates, "verified_pairs": verified,
                "index_bytes_per_document": int(self.o.num_perm * 4 + self.o.bands * 8 + 8 + 16 + 8)}

