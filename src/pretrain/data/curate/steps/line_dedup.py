"""ccNet-style line dedup: lines repeated across many documents are cut."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pretrain.data.curate.dedup import save
from pretrain.data.curate.registry import GlobalStep, Verdict, register
from pretrain.data.curate.text import hash64
from pretrain.data.record import Document


@dataclass
class LineDedupOptions:
    max_repeats: int = 6
    """A line found in more than this many documents is removed everywhere (Llama 3 used 6 per 30M docs)."""
    min_line_chars: int = 1
    """Lines shorter than this (after stripping) are never counted or removed."""
    buckets: int = 16
    """Hash buckets of the on-disk line index."""


@register("line_dedup")
class LineDedup(GlobalStep):
    """ccNet-style line dedup: lines repeated across many documents (cookie banners, menus) are cut."""

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
            save(self.work / f"b{b:03d}-s{self.shard:05d}.npy", h[h % np.uint64(self.o.buckets) == b])

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
        save(self.work / "frequent.npy", freq)
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

