"""URL-level dedup: of several captures of one page (same normalised ``meta.url``), the most recent
(``meta.date``, ISO 8601) is kept; ties and undated captures go to the earliest in input order.

Only documents with ``meta.url`` take part (others pass untouched), which is how it sits in the
default pipeline. Collect: (hash of the normalised URL, capture time, document key) into P hash
partitions. Stage 0 (P parallel tasks): sort one partition by (URL, newest first, input order); every
capture after the first of its URL is removed with ``meta.duplicate_of`` = the kept capture's id. Stage
1 gathers the removals by shard group (``CollectedStep.gather_removals``).
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
from pretrain.data.curate.dedup.urls import UNDATED, capture_time, normalize_url
from pretrain.data.curate.registry import Verdict, register
from pretrain.data.curate.rules.text import hash64
from pretrain.data.record import Document

URL_DTYPE = np.dtype([("key", "<u8"), ("time", "<i8"), ("doc", "<u8")])


@dataclass
class URLDedupOptions:
    partitions: int = 0
    """Hash partitions of the URL index, one parallel task each (0 = one per 4 input shards)."""


@register("url_dedup")
class URLDedup(CollectedStep):
    Options = URLDedupOptions

    def wants(self, doc: Document) -> bool:
        return super().wants(doc) and isinstance(doc.meta.get("url"), str) and bool(doc.meta["url"])

    def begin_collect(self, shard: int) -> None:
        super().begin_collect(shard)
        self.keys: list[int] = []
        self.times: list[int] = []

    def collect(self, doc: Document, idx: int) -> None:
        self._remember(doc, idx)
        url = doc.meta["url"]
        try:
            norm = normalize_url(url)
        except ValueError:
            norm = f"unparsed:{url}"  # still deduplicated, by its exact text
            self.count("unparsed_urls")
        self.keys.append(hash64(norm))
        t = capture_time(doc.meta.get("date"))
        if t == UNDATED:
            self.count("undated")
        self.times.append(t)

    def end_collect(self) -> None:
        self._save_ids()
        rows = np.zeros(len(self.keys), dtype=URL_DTYPE)
        rows["key"], rows["time"] = np.asarray(self.keys, dtype=np.uint64), np.asarray(self.times, dtype=np.int64)
        rows["doc"] = doc_keys(self.shard, len(rows))
        write_partitioned(self.work, "urls", self.shard, rows, partition_of(rows["key"], self.parts()), self.parts())

    grouped_removals = True

    def stages(self) -> list[int]:
        return [self.parts(), self.removal_groups()]

    def run_stage(self, stage: int, part: int) -> dict[str, Any]:
        if stage == 1:  # one table per shard group, so a shard's filter pass opens one
            return self.gather_removals(part)
        rows = read_partition(self.work, "urls", part, self.n_shards)
        rows = rows[np.lexsort((rows["doc"], -rows["time"], rows["key"]))]  # newest first, then input order
        removals = first_of_groups(rows["key"], rows["doc"])  # (an empty partition gives no removals)
        self.emit_removals(part, removals)
        return {"documents": len(rows), "distinct_urls": len(rows) - len(removals), "duplicates": len(removals)}

    def apply(self, doc: Document, idx: int) -> Verdict | None:
        keep = self.remove.get(idx)
        if keep is None:
            return None
        doc.meta["duplicate_of"] = keep
        return "duplicate_url", f"an older capture of the URL of {keep} (the most recent capture is kept)"
