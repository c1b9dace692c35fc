"""Near-duplicate removal with MinHash-LSH, in stages of bounded memory.

1. collect (per shard): MinHash signatures -> ``sig-s<shard>.npy``; each signature's band keys, with the
   document key, into P hash partitions (``bands-s<shard>.npy``).
2. stage 0 (P tasks): sort one partition by (band key, document key); inside each bucket every member
   is paired with the bucket's first member and with the member before it (both fixed by the bucket's
   content alone, so the same pairs come out for any P). Pairs go out grouped by the shard of their
   first document.
3. stage 1 (one task per shard): verify the candidate pairs whose first document is in this shard by
   the signature agreement (estimated Jaccard) >= ``threshold``; the other shard's signatures are read
   through a memory map, one shard at a time.
4. stage 2 (one task): connected components by a vectorized union-find over the verified pairs, streamed
   one shard's pairs at a time (4 bytes per document in memory); in each component the earliest document
   in input order is kept. The removal table is written and read per shard.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pretrain.configlib import check
from pretrain.data.curate.dedup import CollectedStep, union_find_roots
from pretrain.data.curate.dedup_store import (
    REMOVAL_DTYPE,
    RemovalWriter,
    doc_keys,
    gather_rows,
    partition_of,
    rank_of,
    read_partition,
    save,
    shard_of,
    write_partitioned,
)
from pretrain.data.curate.minhash import MinHasher, band_hashes
from pretrain.data.curate.registry import register
from pretrain.data.record import Document

BAND_DTYPE = np.dtype([("key", "<u8"), ("doc", "<u8")])
PAIR_DTYPE = np.dtype([("a", "<u8"), ("b", "<u8")])
_BATCH_CHARS = 1 << 18  # text per shingling batch: its temporary arrays are ~40 bytes per character


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
    partitions: int = 0
    """Hash partitions of the band keys, one parallel task each (0 = one per 4 input shards)."""


def unique_pairs(pairs: np.ndarray) -> np.ndarray:
    """``np.unique(pairs)`` (sorted by a, then b), by lexsort on the two uint64 fields: NumPy sorts a
    structured array with a generic comparison, ~10x slower."""
    if len(pairs) < 2:
        return pairs.copy()
    p = pairs[np.lexsort((pairs["b"], pairs["a"]))]
    new = np.ones(len(p), dtype=bool)
    new[1:] = (p["a"][1:] != p["a"][:-1]) | (p["b"][1:] != p["b"][:-1])
    return p[new]


def bucket_pairs(keys: np.ndarray, docs: np.ndarray) -> np.ndarray:
    """Rows sorted by (key, doc) -> pairs (first of bucket, member) and (previous member, member)."""
    if len(keys) < 2:
        return np.zeros(0, dtype=PAIR_DTYPE)
    new = np.concatenate([[True], keys[1:] != keys[:-1]])
    head = np.maximum.accumulate(np.where(new, np.arange(len(keys)), 0))
    member = np.flatnonzero(~new)
    prev = member - 1
    a = np.concatenate([docs[head[member]], docs[prev[head[prev] != prev]]])
    b = np.concatenate([docs[member], docs[member[head[prev] != prev]]])
    pairs = np.zeros(len(a), dtype=PAIR_DTYPE)
    pairs["a"], pairs["b"] = a, b
    return unique_pairs(pairs)


@register("minhash_dedup")
class MinHashDedup(CollectedStep):
    Options = MinHashOptions

    def validate(self) -> None:
        check(self.o.bands * self.o.rows == self.o.num_perm, "num_perm",
              f"must equal bands x rows = {self.o.bands * self.o.rows} (got {self.o.num_perm})")
        check(0.0 < self.o.threshold <= 1.0, "threshold", f"must be in (0, 1] (got {self.o.threshold})")
        check(self.o.shingle >= 1, "shingle", "must be >= 1")
        check(self.o.partitions >= 0, "partitions", "must be >= 0")

    def setup(self) -> None:
        self.hasher = MinHasher(self.o.num_perm, self.o.shingle, self.o.seed)

    def begin_collect(self, shard: int) -> None:
        super().begin_collect(shard)
        self.texts: list[str] = []
        self.text_chars = 0
        self.sigs: list[np.ndarray] = []

    def collect(self, doc: Document, idx: int) -> None:
        self._remember(doc, idx)
        # Shingled and signed in batches of ~_BATCH_CHARS: a few NumPy passes per batch, not per document
        self.texts.append(doc.text)
        self.text_chars += len(doc.text)
        if self.text_chars >= _BATCH_CHARS:
            self._sign_batch()

    def _sign_batch(self) -> None:
        if self.texts:
            self.sigs.append(self.hasher.signatures(self.texts))
        self.texts, self.text_chars = [], 0

    def end_collect(self) -> None:
        self._save_ids()
        self._sign_batch()
        sigs = (np.concatenate(self.sigs) if self.sigs else np.zeros((0, self.o.num_perm), dtype=np.uint32))
        self.sigs = []
        save(self.work / f"sig-s{self.shard:05d}.npy", sigs)
        bands = band_hashes(sigs, self.o.bands, self.o.rows)
        rows = np.zeros(bands.size, dtype=BAND_DTYPE)
        rows["key"] = bands.reshape(-1)
        rows["doc"] = np.repeat(doc_keys(self.shard, len(sigs)), self.o.bands)
        write_partitioned(self.work, "bands", self.shard, rows, partition_of(rows["key"], self.parts()), self.parts())

    def stages(self) -> list[int]:
        return [self.parts(), self.n_shards, 1]

    def run_stage(self, stage: int, part: int) -> dict[str, Any]:
        return (self._pairs, self._verify, self._components)[stage](part)

    def _pairs(self, p: int) -> dict[str, Any]:
        rows = read_partition(self.work, "bands", p, self.n_shards, BAND_DTYPE)
        rows = rows[np.lexsort((rows["doc"], rows["key"]))]
        pairs = bucket_pairs(rows["key"], rows["doc"])
        write_partitioned(self.work, f"cand-p{p:05d}", 0, pairs, shard_of(pairs["a"]), self.n_shards)
        return {"band_entries": len(rows), "candidate_pairs": len(pairs)}

    def _verify(self, s: int) -> dict[str, Any]:
        parts = [read_partition(self.work, f"cand-p{p:05d}", s, 1, PAIR_DTYPE) for p in range(self.parts())]
        pairs = unique_pairs(np.concatenate(parts)) if parts else np.zeros(0, dtype=PAIR_DTYPE)
        mine = np.load(self.work / f"sig-s{s:05d}.npy")
        keep = np.zeros(len(pairs), dtype=bool)
        other = shard_of(pairs["b"])
        for t in np.unique(other):
            sel = np.flatnonzero(other == t)
            sa = mine[rank_of(pairs["a"][sel])]
            sb = gather_rows(self.work / f"sig-s{int(t):05d}.npy", np.uint32, self.o.num_perm, rank_of(pairs["b"][sel]))
            keep[sel] = (sa == sb).mean(axis=1) >= self.o.threshold
        save(self.work / f"edges-s{s:05d}.npy", pairs[keep])
        return {"distinct_candidates": len(pairs), "verified_pairs": int(keep.sum())}

    def _components(self, _part: int) -> dict[str, Any]:
        sizes = np.array([np.load(self.work / f"sig-s{s:05d}.npy", mmap_mode="r").shape[0]
                          if (self.work / f"sig-s{s:05d}.npy").exists() else 0 for s in range(self.n_shards)])
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        n = int(offsets[-1])

        def chunks():  # one shard's verified pairs at a time, as global document indices
            for s in range(self.n_shards):
                e = np.load(self.work / f"edges-s{s:05d}.npy")
                yield (offsets[shard_of(e["a"])] + rank_of(e["a"]), offsets[shard_of(e["b"])] + rank_of(e["b"]))

        root = union_find_roots(chunks(), n)
        removed = 0
        with RemovalWriter(self.work, "rm", self.n_shards) as out:
            for s in range(self.n_shards):  # written shard by shard: never a table of all removals in memory
                g = np.arange(offsets[s], offsets[s + 1])
                dup = root[g] != g
                r = root[g[dup]].astype(np.int64)
                rs = np.searchsorted(offsets, r, side="right") - 1
                rows = np.zeros(int(dup.sum()), dtype=REMOVAL_DTYPE)
                rows["doc"] = doc_keys(s, len(g))[dup]
                rows["keep"] = (rs.astype(np.uint64) << np.uint64(32)) | (r - offsets[rs]).astype(np.uint64)
                out.write(s, rows)
                removed += len(rows)
        return {"documents": n, "duplicates": removed, "clusters": n - removed, "partitions": self.parts(),
                "index_bytes_per_document": int(self.o.num_perm * 4 + self.o.bands * 16 + 8)}
