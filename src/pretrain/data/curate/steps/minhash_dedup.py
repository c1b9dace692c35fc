"""Near-duplicate removal with MinHash-LSH, in stages of bounded memory.

1. collect (per shard): MinHash signatures -> ``sig-s<shard>.npy``; each signature's band keys, with the
   document key, into P hash partitions (``bands-s<shard>.part``).
2. stage 0 (P tasks): sort one partition by (band key, document key); inside each bucket every member
   is paired with the bucket's first member and with the member before it (both fixed by the bucket's
   content alone, so the same pairs come out for any P). Pairs go out grouped by the group of 8
   contiguous shards that holds their first document.
3. stage 1 (one task per group of 8 shards): verify the candidate pairs whose first document is in the
   group, shard by shard, by the signature agreement (estimated Jaccard) >= ``threshold``; the other
   shard's signatures are read through a memory map, one shard at a time. Each task reads one slice of
   each of the P candidate files: S/8 x P reads in all (one task per shard, S x P, was most of this
   stage's time at 4M documents).
4. stages 2, 3, ... (P tasks each): connected components over the verified pairs only (documents in
   no pair never appear), in rounds of large-star (tasks by a hash of the node) and small-star (tasks
   by shard group) until a large-star finds every component a star around its smallest document
   (Kiveris et al. 2014; see :mod:`pretrain.data.curate.dedup.components`); the rounds are added one at a
   time by ``more_stages``. Each task holds ~1/P of the edges, never a table of all documents.
5. last stage (P tasks): the stars' (leaf, centre) rows are the removals, i.e. in each component the
   earliest document in input order is kept; one table per shard group, which the apply pass of each
   shard reads alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pretrain.configlib import check
from pretrain.data.curate.dedup import components as cc
from pretrain.data.curate.dedup.collected import CollectedStep
from pretrain.data.curate.dedup.minhash import MinHasher, band_hashes
from pretrain.data.curate.dedup.store import (
    PAIR_DTYPE,
    Removals,
    doc_keys,
    gather_rows,
    partition_of,
    rank_of,
    read_partition,
    save,
    shard_of,
    unique_pairs,
    write_partitioned,
)
from pretrain.data.curate.registry import register
from pretrain.data.record import Document

BAND_DTYPE = np.dtype([("key", "<u8"), ("doc", "<u8")])
_BATCH_CHARS = 1 << 18  # text per shingling batch: its temporary arrays are ~40 bytes per character
_VERIFY_BATCH = 1 << 18  # candidate rows read before they are deduplicated (16 bytes each)


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
    component_partitions: int = 0
    """Partitions of the connected components' edges, one task each per round (0 = one per 8 band-key
    partitions: the verified pairs are ~1/30 of the band keys, and every round reads P x P slices)."""


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
        check(self.o.component_partitions >= 0, "component_partitions", "must be >= 0")

    def cc_parts(self) -> int:
        return int(self.o.component_partitions or -(-self.parts() // 8))

    def verify_parts(self) -> int:
        """Verification tasks, one per group of 8 shards: each reads one slice of each of the P candidate
        files (V x P reads in all) and holds the distinct candidates of its 8 shards."""
        return -(-max(1, self.n_shards) // 8)

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
        return [self.parts(), self.verify_parts()]  # then the rounds of the components, see more_stages

    def more_stages(self, results: list[dict[str, Any]]) -> int:
        k = len(results)
        if k == 2 or (k - 2) % 2 == 1:  # round 0's large-star; after a large-star: small-star or the removals
            return self.cc_parts()
        return 0 if results[k - 2]["unsettled_nodes"] == 0 else self.cc_parts()  # a next round unless done

    def run_stage(self, stage: int, part: int) -> dict[str, Any]:
        if stage < 2:
            return (self._pairs, self._verify)[stage](part)
        rnd, odd = divmod(stage - 2, 2)
        if not odd:
            sources = self.verify_parts() if rnd == 0 else self.cc_parts()  # round 0 reads the verify tasks' edges
            return cc.large_star(self.work, rnd, part, sources, self.cc_parts(), self.n_shards)
        if self.previous["unsettled_nodes"]:
            return cc.small_star(self.work, rnd, part, self.cc_parts())
        return self._removals(rnd, part)

    def _pairs(self, p: int) -> dict[str, Any]:
        rows = read_partition(self.work, "bands", p, self.n_shards, BAND_DTYPE)
        rows = rows[np.lexsort((rows["doc"], rows["key"]))]
        pairs = bucket_pairs(rows["key"], rows["doc"])
        groups = cc.group_of(pairs["a"], self.n_shards, self.verify_parts())
        write_partitioned(self.work, f"cand-p{p:05d}", 0, pairs, groups, self.verify_parts())
        return {"band_entries": len(rows), "candidate_pairs": len(pairs)}

    def _verify(self, g: int) -> dict[str, Any]:
        # A pair is a candidate in each band it shares, so the slices hold it up to `bands` times: they are
        # deduplicated as they come, which bounds the task by the group's distinct pairs plus one batch.
        pairs, batch, held = np.zeros(0, dtype=PAIR_DTYPE), [], 0
        for p in range(self.parts()):
            batch.append(read_partition(self.work, f"cand-p{p:05d}", g, 1, PAIR_DTYPE))
            held += len(batch[-1])
            if held >= _VERIFY_BATCH or p == self.parts() - 1:
                pairs, batch, held = unique_pairs(np.concatenate([pairs, *batch])), [], 0
        keep = np.zeros(len(pairs), dtype=bool)
        own, other = shard_of(pairs["a"]), shard_of(pairs["b"])
        bounds = np.append(np.searchsorted(own, np.unique(own)), len(pairs))  # sorted by a, so by its shard
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):  # one shard's signatures at a time
            mine = np.load(self.work / f"sig-s{int(own[lo]):05d}.npy")
            for t in np.unique(other[lo:hi]):
                sel = lo + np.flatnonzero(other[lo:hi] == t)
                sa = mine[rank_of(pairs["a"][sel])]
                sb = gather_rows(self.work / f"sig-s{int(t):05d}.npy", np.uint32, self.o.num_perm,
                                 rank_of(pairs["b"][sel]))
                keep[sel] = (sa == sb).mean(axis=1) >= self.o.threshold
        cc.write_edges(self.work, g, pairs["a"][keep], pairs["b"][keep], self.cc_parts())
        return {"distinct_candidates": len(pairs), "verified_pairs": int(keep.sum())}

    def _removals(self, rnd: int, g: int) -> dict[str, Any]:
        removed = cc.write_group_removals(self.work, rnd, g, self.cc_parts(), self.n_shards)
        n = sum(np.load(self.work / f"sig-s{s:05d}.npy", mmap_mode="r").shape[0]
                for s in cc.group_shards(g, self.n_shards, self.cc_parts()) if (self.work / f"sig-s{s:05d}.npy").exists())
        out: dict[str, Any] = {"documents": n, "duplicates": removed, "clusters": n - removed}
        if g == 0:  # once, not summed over the tasks
            out.update({"partitions": self.parts(), "component_partitions": self.cc_parts(), "component_rounds": rnd + 1,
                        "index_bytes_per_document": int(self.o.num_perm * 4 + self.o.bands * 16 + 8)})
        return out

    def begin_apply(self, shard: int) -> None:
        # only the table of this shard's group: reading every group's offsets in every shard is quadratic
        self.remove = Removals(self.work, cc.group_removals_file(shard, self.n_shards, self.cc_parts())).for_shard(shard)
