"""Exact dedup: documents whose normalized text (lower case, punctuation and spacing collapsed) repeats.

Collect: a 64-bit hash of each document's normalized text into P hash partitions. Stage 0 (P parallel
tasks): sort one partition by (hash, document key); every row after the first of its hash is removed
in favour of that first one (the earliest in input order). The removal rows go out grouped by the
removed document's shard group, and stage 1 (G tasks, G = P / 8 rounded up) writes one removal table per
group, so the apply pass of a shard opens one table, not all P (P x shards opens in all).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pretrain.data.curate.dedup.collected import CollectedStep
from pretrain.data.curate.dedup.store import (
    doc_keys,
    first_of_groups,
    partition_of,
    read_partition,
    write_partitioned,
)
from pretrain.data.curate.registry import register
from pretrain.data.curate.rules.text import dedup_key, hash64
from pretrain.data.record import Document

KEY_DTYPE = np.dtype([("key", "<u8"), ("doc", "<u8")])


@dataclass
class ExactDedupOptions:
    partitions: int = 0
    """Hash partitions of the on-disk index, one parallel task each (0 = one per 4 input shards)."""


@register("exact_dedup")
class ExactDedup(CollectedStep):
    Options = ExactDedupOptions

    def begin_collect(self, shard: int) -> None:
        super().begin_collect(shard)
        self.keys: list[int] = []

    def collect(self, doc: Document, idx: int) -> None:
        self._remember(doc, idx)
        self.keys.append(hash64(dedup_key(doc.text)))

    def end_collect(self) -> None:
        self._save_ids()
        rows = np.zeros(len(self.keys), dtype=KEY_DTYPE)
        rows["key"] = np.asarray(self.keys, dtype=np.uint64)
        rows["doc"] = doc_keys(self.shard, len(rows))
        write_partitioned(self.work, "keys", self.shard, rows, partition_of(rows["key"], self.parts()), self.parts())

    grouped_removals = True

    def stages(self) -> list[int]:
        return [self.parts(), self.removal_groups()]

    def run_stage(self, stage: int, part: int) -> dict[str, Any]:
        if stage == 1:
            return self.gather_removals(part)
        rows = read_partition(self.work, "keys", part, self.n_shards)
        rows = rows[np.lexsort((rows["doc"], rows["key"]))]
        removals = first_of_groups(rows["key"], rows["doc"])  # (an empty partition gives no removals)
        self.emit_removals(part, removals)
        return {"documents": len(rows), "distinct_texts": len(rows) - len(removals), "duplicates": len(removals),
                "partitions": 1}
