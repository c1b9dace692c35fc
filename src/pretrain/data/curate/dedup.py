"""Deduplication steps: exact (normalized text hash), near-duplicate MinHash-LSH and ccNet-style lines.

All three are global steps that keep their index on disk: workers write per-shard arrays (hashes,
signatures, band keys) into the step's scratch directory; ``resolve`` reads them back one hash bucket
or one LSH band at a time, so its memory is a few arrays of n 8-byte values, never the texts. Clusters
are resolved deterministically: **the document that comes first in input order is kept** (sorted input
files, then position in file), and every other member is removed with ``meta.duplicate_of`` naming it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pretrain.configlib import check
from pretrain.data.curate.minhash import MinHasher, band_hashes
from pretrain.data.curate.steps import GlobalStep, Verdict
from pretrain.data.curate.text import dedup_key, hash64
from pretrain.data.record import Document

_KEY_DTYPE = np.dtype([("key", "<u8"), ("shard", "<i4"), ("idx", "<i8")])


def _save(path, arr) -> None:
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


class _Collected(GlobalStep):
    """Shared plumbing: per-shard lists of (position, doc id) of the collected documents."""

    def begin_collect(self, shard: int) -> None:
        self.shard = shard
        self.positions: list[int] = []
        self.ids: list[str] = []

    def _remember(self, doc: Document, idx: int) -> None:
        self.positions.append(idx)
        self.ids.append(doc.id)

    def _save_ids(self) -> None:
        _save(self.work / f"pos-s{self.shard:05d}.npy", np.asarray(self.positions, dtype=np.int64))
        _save(self.work / f"ids-s{self.shard:05d}.npy", np.asarray(self.ids, dtype="S16"))

    def _load_ids(self, shard: int) -> tuple[np.ndarray, np.ndarray]:
        return (np.load(self.work / f"pos-s{shard:05d}.npy"), np.load(self.work / f"ids-s{shard:05d}.npy"))

    def _write_decisions(self, removals: dict[int, list[tuple[int, bytes]]], n_shards: int) -> None:
        for s in range(n_shards):
            rows = sorted(removals.get(s, []))
            arr = np.array(rows, dtype=[("idx", "<i8"), ("keep", "S16")]) if rows else np.zeros(
                0, dtype=[("idx", "<i8"), ("keep", "S16")])
            _save(self.work / f"remove-s{s:05d}.npy", arr)

    def begin_apply(self, shard: int) -> None:
        arr = np.load(self.work / f"remove-s{shard:05d}.npy")
        self.remove = {int(i): k.decode() for i, k in zip(arr["idx"], arr["keep"], strict=True)}

    def apply(self, doc: Document, idx: int) -> Verdict | None:
        keep = self.remove.get(idx)
        if keep is None:
            return None
        doc.meta["duplicate_of"] = keep
        return "duplicate", f"duplicate of {keep} (the first of its cluster in input order is kept)"


@dataclass
class ExactDedupOptions:
    buckets: int = 16
    """Hash buckets the on-disk index is split into (resolve holds one bucket at a time)."""


class ExactDedup(_Collected):
    """Remove documents whose normalized text (lower case, punctuation and spacing collapsed) repeats."""

    type = "exact_dedup"
    Options = ExactDedupOptions

    def begin_collect(self, shard: int) -> None:
        super().begin_collect(shard)
        self.keys: list[int] = []

    def collect(self, doc: Document, idx: int) -> None:
        self._remember(doc, idx)
        self.keys.append(hash64(dedup_key(doc.text)))

    def end_collect(self) -> None:
        self._save_ids()
        keys = np.asarray(self.keys, dtype=np.uint64)
        local = np.arange(len(keys), dtype=np.int64)
        for b in range(self.o.buckets):
            sel = keys % np.uint64(self.o.buckets) == b
            arr = np.zeros(int(sel.sum()), dtype=_KEY_DTYPE)
            arr["key"], arr["shard"], arr["idx"] = keys[sel], self.shard, local[sel]
            _save(self.work / f"b{b:03d}-s{self.shard:05d}.npy", arr)

    def resolve(self, n_shards: int) -> dict[str, Any]:
        ids = {s: self._load_ids(s) for s in range(n_shards)}
        removals: dict[int, list[tuple[int, bytes]]] = {}
        clusters = 0
        for b in range(self.o.buckets):
            parts = [np.load(self.work / f"b{b:03d}-s{s:05d}.npy") for s in range(n_shards)]
            arr = np.concatenate(parts) if parts else np.zeros(0, dtype=_KEY_DTYPE)
            arr = arr[np.lexsort((arr["idx"], arr["shard"], arr["key"]))]
            key = arr["key"]
            new = np.concatenate([[True], key[1:] != key[:-1]]) if len(arr) else np.zeros(0, dtype=bool)
            head = np.maximum.accumulate(np.where(new, np.arange(len(arr)), 0)) if len(arr) else new
            for i in np.flatnonzero(~new):
                row, first = arr[i], arr[head[i]]
                keep_id = ids[int(first["shard"])][1][first["idx"]]
                pos = int(ids[int(row["shard"])][0][row["idx"]])
                removals.setdefault(int(row["shard"]), []).append((pos, keep_id))
            clusters += int(new.sum())
        self._write_decisions(removals, n_shards)
        return {"distinct_texts": clusters, "duplicates": sum(len(v) for v in removals.values())}


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


class MinHashDedup(_Collected):
    """Near-duplicate removal: MinHash signatures, LSH banding, candidate verification, union-find."""

    type = "minhash_dedup"
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
        _save(self.work / f"sig-s{self.shard:05d}.npy", sigs)
        _save(self.work / f"band-s{self.shard:05d}.npy", band_hashes(sigs, self.o.bands, self.o.rows))

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


@dataclass
class LineDedupOptions:
    max_repeats: int = 6
    """A line found in more than this many documents is removed everywhere (Llama 3 used 6 per 30M docs)."""
    min_line_chars: int = 1
    """Lines shorter than this (after stripping) are never counted or removed."""
    buckets: int = 16
    """Hash buckets of the on-disk line index."""


class LineDedup(GlobalStep):
    """ccNet-style line dedup: lines repeated across many documents (cookie banners, menus) are cut."""

    type = "line_dedup"
    Options = LineDedupOptions

    def _lines(self, text: str) -> set[int]:
        return {hash64(s) for ln in text.split("\n") if len(s := ln.strip()) >= self.o.min_line_chars}

    def begin_collect(self, shard: int) -> None:
        self.shard = shard
        self.hashes: list[int] = []

    def collect(self, doc: Document, idx: int) -> None:
        self.hashes.extend(self._lines(doc.text))  # a line counts once per document

    def end_collect(self) -> None:
        h = np.asarray(self.hashes, dtype=np.uint64)
        for b in range(self.o.buckets):
            _save(self.work / f"b{b:03d}-s{self.shard:05d}.npy", h[h % np.uint64(self.o.buckets) == b])

    def resolve(self, n_shards: int) -> dict[str, Any]:
        frequent = []
        distinct = 0
        for b in range(self.o.buckets):
            parts = [np.load(self.work / f"b{b:03d}-s{s:05d}.npy") for s in range(n_shards)]
            if not parts:
                continue
            keys, counts = np.unique(np.concatenate(parts), return_counts=True)
            distinct += len(keys)
            frequent.append(keys[counts > self.o.max_repeats])
        freq = np.sort(np.concatenate(frequent)) if frequent else np.zeros(0, dtype=np.uint64)
        _save(self.work / "frequent.npy", freq)
        return {"distinct_lines": distinct, "frequent_lines": len(freq)}

    def begin_apply(self, shard: int) -> None:
        self.frequent = {int(x) for x in np.load(self.work / "frequent.npy")}

    def apply(self, doc: Document, idx: int) -> Verdict | None:
        if not self.frequent:
            return None
        kept, dropped = [], 0
        for ln in doc.text.split("\n"):
            s = ln.strip()
            if len(s) >= self.o.min_line_chars and hash64(s) in self.frequent:
                dropped += 1
            else:
                kept.append(ln)
        if not dropped:
            return None
        self.count("lines_removed", dropped)
        text = "\n".join(kept).strip()
        if not text:
            return "all_lines_repeated", f"all {dropped} lines occur in more than {self.o.max_repeats} documents"
        doc.text = text
        doc.meta["repeated_lines_removed"] = dropped
        return None
