"""One shard through one segment of the pipeline, with the bookkeeping that makes every document
accountable: each document read is counted in, then ends kept (written to the segment's output),
removed (with its step and reason, under removed/) or quarantined (with the reason, under quarantine/).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pretrain.data.curate.config import CurateConfig
from pretrain.data.curate.execution import stats as st
from pretrain.data.curate.execution.idcheck import save_shard_ids
from pretrain.data.curate.io.readers import Quarantined, Shard, read_shard
from pretrain.data.curate.io.writers import JsonlWriter, open_writer
from pretrain.data.curate.registry import GlobalStep, Step
from pretrain.data.curate.rules.text import utf8_len
from pretrain.data.record import Document, read_records


class ShardRun:
    """One shard through one segment, with the bookkeeping that makes every document accountable."""

    def __init__(self, cfg: CurateConfig, out: Path, k: int, shard: Shard):
        self.cfg, self.out, self.k, self.shard = cfg, out, k, shard
        self.stats = st.new_shard_stats()
        name = f"{shard.index:05d}"
        self.removed = JsonlWriter(out / "removed" / f"{name}-{k}.jsonl.zst") if cfg.keep_removed else None
        self.quarantine = JsonlWriter(out / "quarantine" / f"{name}-{k}.jsonl.zst")

    def quarantine_doc(self, doc: Document, reason: str) -> None:
        s = self.stats
        s["quarantined"] += 1
        nbytes = utf8_len(doc.text)
        st._add(s["quarantine_reasons"], st.reason_key(reason), 1, nbytes)
        st._add(s["domains_quarantined"], doc.domain, 1, nbytes)
        doc.meta["reason"] = reason
        self.quarantine.write(doc)

    def note_id(self, doc: Document, seen: set[str]) -> None:
        """Count a record whose id an earlier record of this shard already had (kept all the same: which
        one is right is the producer's call; the count and a few examples go to stats.json; repeats
        across shards are counted at the end of the run, see idcheck.py)."""
        if doc.id not in seen:
            seen.add(doc.id)
            return
        self.stats["duplicate_ids"] += 1
        examples = self.stats["duplicate_id_examples"]
        if len(examples) < 3 and doc.id not in examples:
            examples[doc.id] = doc.meta["input"]

    def run_step(self, step: Step, doc: Document, fn) -> bool:
        """Apply one step; True if the document survives. Records everything in the step's stats row."""
        row = st.step_row(self.stats, step.label, step.type)
        nbytes = utf8_len(doc.text)
        row["documents_in"] += 1
        row["bytes_in"] += nbytes
        dom = row["domains"].get(doc.domain)
        if dom is None:
            dom = row["domains"][doc.domain] = {"in": {"documents": 0, "bytes": 0}}
        dom["in"]["documents"] += 1
        dom["in"]["bytes"] += nbytes
        if not step.wants(doc):
            row["skipped"] += 1
            row["bytes_out"] += nbytes
            return True
        before = doc.text
        t0 = time.perf_counter()
        verdict = fn(doc)
        self.stats["timing"][step.label] = self.stats["timing"].get(step.label, 0.0) + time.perf_counter() - t0
        if verdict is None:
            if doc.text is not before and doc.text != before:
                row["modified"] += 1
                nbytes = utf8_len(doc.text)
            row["bytes_out"] += nbytes
            return True
        reason, detail = verdict
        row["removed"] += 1
        row["bytes_removed"] += nbytes
        st._add(row["reasons"], reason, 1, nbytes)
        st._add(dom, "removed", 1, nbytes)
        st.add_sample(self.stats, f"{step.label}:{reason}", doc, detail, self.cfg.samples_per_reason,
                      self.cfg.sample_chars)
        if self.removed is not None:
            doc.meta.update({"removed_by": step.label, "reason": reason, "reason_detail": detail})
            self.removed.write(doc)
        return False

    def source(self):
        if self.k == 0:
            return read_shard(self.shard, self.cfg.text_field, self.cfg.domain_globs, self.cfg.max_record_bytes,
                              self.cfg.default_domain)
        # Intermediate shards are plain JSONL: they are read once by the next segment, then deleted.
        prev = self.out / "work" / f"seg{self.k - 1}" / f"{self.shard.index:05d}.jsonl"
        return read_records(prev) if prev.exists() else iter(())

    def run(self, pre: GlobalStep | None, local: list[Step], post: GlobalStep | None) -> dict[str, Any]:
        s = self.stats
        name = f"{self.shard.index:05d}"
        last = post is None
        kept = (open_writer(self.out / "data" / name, self.cfg.output_format) if last
                else JsonlWriter(self.out / "work" / f"seg{self.k}" / f"{name}.jsonl"))
        if pre is not None:
            pre.begin_apply(self.shard.index)
        if post is not None:
            post.begin_collect(self.shard.index)
        out_pos = 0
        ids: set[str] = set()
        for idx, item in enumerate(self.source()):
            if self.k == 0:
                doc = item.to_document() if isinstance(item, Quarantined) else item
                nbytes = utf8_len(doc.text)
                s["documents_in"] += 1
                s["bytes_in"] += nbytes
                st._add(s["domains_in"], doc.domain, 1, nbytes)
                if isinstance(item, Quarantined):
                    self.quarantine_doc(doc, item.reason)
                    continue
                if "input" in doc.meta:  # a JSONL or Parquet record: its id should name it alone
                    self.note_id(doc, ids)
            else:
                doc = item
            try:
                alive = pre is None or self.run_step(pre, doc, lambda d: pre.apply(d, idx))  # noqa: B023
                for step in local:
                    if not alive:
                        break
                    alive = self.run_step(step, doc, step)
            except Exception as exc:  # noqa: BLE001 - one bad document must not stop the corpus
                self.quarantine_doc(doc, f"step failed: {type(exc).__name__}: {str(exc)[:200]}")
                continue
            if not alive:
                continue
            if post is not None and post.wants(doc):
                t0 = time.perf_counter()
                post.collect(doc, out_pos)
                s["timing"][post.label] = s["timing"].get(post.label, 0.0) + time.perf_counter() - t0
            kept.write(doc)
            out_pos += 1
            if last:
                nbytes = utf8_len(doc.text)
                s["kept"] += 1
                s["bytes_kept"] += nbytes
                st._add(s["domains_kept"], doc.domain, 1, nbytes)
        if post is not None:
            post.end_collect()
        if ids:  # for the count of ids repeated across shards, at the end of the run
            save_shard_ids(self.out, self.shard.index, ids)
        for w in (kept, self.removed, self.quarantine):
            if w is not None:
                w.close()
        for step in ([pre] if pre else []) + local:
            st.step_row(s, step.label, step.type)["counters"] = dict(step.counters)
            step.counters.clear()
        return s
