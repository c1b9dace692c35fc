"""ccNet-style line dedup (Wenzek et al. 2020; Llama 3): lines found in more than ``max_repeats``
documents (cookie banners, menus) are cut everywhere.

Collect: the 64-bit hashes of each document's distinct lines, into P hash partitions per shard. Stage 0
(P parallel tasks): count one partition's hashes over all shards and keep those above the limit. Apply:
the frequent hashes of all partitions as one sorted array (loaded once per process), looked up with a
binary search per line; no per-worker Python set of every line.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from pretrain.configlib import check
from pretrain.data.curate.dedup.collected import CollectedStep
from pretrain.data.curate.dedup.store import partition_of, read_partition, save, write_partitioned
from pretrain.data.curate.registry import Verdict, register
from pretrain.data.curate.rules.langid import relabel
from pretrain.data.curate.rules.text import hash64
from pretrain.data.record import Document

_FREQUENT: dict[str, np.ndarray] = {}


@dataclass
class LineDedupOptions:
    max_repeats: int = 6
    """A line found in more than this many documents is removed everywhere (Llama 3 used 6 per 30M docs)."""
    min_line_chars: int = 1
    """Lines shorter than this (after stripping) are never counted or removed."""
    partitions: int = 0
    """Hash partitions of the line index, one parallel task each (0 = one per 4 input shards)."""


@register("line_dedup")
class LineDedup(CollectedStep):
    apply_files = ("frequent-p*",)
    Options = LineDedupOptions

    def validate(self) -> None:
        check(self.o.max_repeats >= 1, "max_repeats", "must be >= 1")

    def _lines(self, text: str) -> set[int]:
        return {hash64(s) for ln in text.split("\n") if len(s := ln.strip()) >= self.o.min_line_chars}

    def begin_collect(self, shard: int) -> None:
        self.shard = shard
        self.hashes: list[int] = []

    def collect(self, doc: Document, idx: int) -> None:
        self.hashes.extend(self._lines(doc.text))  # a line counts once per document

    def end_collect(self) -> None:
        h = np.asarray(self.hashes, dtype=np.uint64)
        write_partitioned(self.work, "lines", self.shard, h, partition_of(h, self.parts()), self.parts())

    def stages(self) -> list[int]:
        return [self.parts()]

    def run_stage(self, stage: int, part: int) -> dict[str, Any]:
        keys, counts = np.unique(read_partition(self.work, "lines", part, self.n_shards), return_counts=True)
        frequent = keys[counts > self.o.max_repeats]
        save(self.work / f"frequent-p{part:05d}.npy", frequent)
        return {"distinct_lines": len(keys), "frequent_lines": len(frequent)}

    def begin_apply(self, shard: int) -> None:
        files = sorted(glob.glob(str(self.work / "frequent-p*.npy")))
        key = ";".join(f"{f}@{os.stat(f).st_mtime_ns}" for f in files)  # a new run's files are a new key
        if key not in _FREQUENT:
            _FREQUENT.clear()
            parts = [np.load(f) for f in files]
            _FREQUENT[key] = np.sort(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.uint64)
        self.frequent = _FREQUENT[key]

    def apply(self, doc: Document, idx: int) -> Verdict | None:
        if not len(self.frequent):
            return None
        lines = doc.text.split("\n")
        stripped = [ln.strip() for ln in lines]
        h = np.fromiter((hash64(s) for s in stripped), dtype=np.uint64, count=len(lines))
        at = np.minimum(np.searchsorted(self.frequent, h), len(self.frequent) - 1)
        hit = (self.frequent[at] == h) & np.fromiter((len(s) >= self.o.min_line_chars for s in stripped), bool,
                                                      count=len(lines))
        dropped = int(hit.sum())
        if not dropped:
            return None
        self.count("lines_removed", dropped)
        text = "\n".join(ln for ln, drop in zip(lines, hit, strict=True) if not drop).strip()
        if not text:
            return "all_lines_repeated", f"all {dropped} lines occur in more than {self.o.max_repeats} documents"
        doc.text = text
        doc.meta["repeated_lines_removed"] = dropped
        if relabel(doc):  # what is left may be in another language than the page was labelled
            self.count("relabelled")
        return None
