"""Exact dedup: documents whose normalized text repeats (first in input order kept)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pretrain.data.curate.dedup import KEY_DTYPE, CollectedStep, save
from pretrain.data.curate.registry import register
from pretrain.data.curate.text import dedup_key, hash64
from pretrain.data.record import Document


@dataclass
class ExactDedupOptions:
    buckets: int = 16
    """Hash buckets the on-disk index is split into (resolve holds one bucket at a time)."""


@register("exact_dedup")
class ExactDedup(CollectedStep):
    """Remove documents whose normalized text (lower case, punctuation and spacing collapsed) repeats."""

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
            arr = np.zeros(int(sel.sum()), dtype=KEY_DTYPE)
            arr["key"], arr["shard"], arr["idx"] = keys[sel], self.shard, local[sel]
            save(self.work / f"b{b:03d}-s{self.shard:05d}.npy", arr)

    def resolve(self, n_shards: int) -> dict[str, Any]:
        ids = {s: self._load_ids(s) for s in range(n_shards)}
        removals: dict[int, list[tuple[int, bytes]]] = {}
        clusters = 0
        for b in range(self.o.buckets):
            parts = [np.load(self.work / f"b{b:03d}-s{s:05d}.npy") for s in range(n_shards)]
            arr = np.concatenate(parts) if parts else np.zeros(0, dtype=KEY_DTYPE)
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

