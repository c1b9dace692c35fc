"""Running a curation pipeline: sharding, the worker pool, global steps, resumption and the final stats.

The pipeline is cut at its global steps into *segments*. Segment k runs, for every shard in parallel:
the decisions of the global step that closed segment k-1 (if any), then its local steps, then the
*collect* half of the global step that closes it, writing the surviving documents to
``work/seg<k>/<shard>.jsonl.zst`` (or to ``data/`` for the last segment). Once every shard of a segment is
done the global step *resolves* once over what all shards collected. Shards are cut from the inputs
alone, never from the worker count, and every decision depends only on the documents and their order,
so the outputs are byte-identical for any number of workers.

Each finished shard task writes its stats file last, atomically; a rerun with the same inputs and config
skips the shards whose stats file exists (resume after interruption), and a finished run is not redone.
A different config or input set starts over.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from pretrain import configlib
from pretrain.data.curate import stats as st
from pretrain.data.curate import storage
from pretrain.data.curate.config import CurateConfig
from pretrain.data.curate.inputs import file_identity
from pretrain.data.curate.pipeline import build_steps, segments
from pretrain.data.curate.readers import Quarantined, Shard, expand_inputs, plan_shards, read_shard
from pretrain.data.curate.registry import GlobalStep, Step
from pretrain.data.curate.text import utf8_len
from pretrain.data.curate.writers import JsonlWriter, open_writer
from pretrain.data.record import Document, read_jsonl

_PIPELINES: dict[str, tuple[list[Step], set[str]]] = {}


def _atomic_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}")
    tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False), encoding="utf-8")
    tmp.replace(path)


def _pipeline(cfg: CurateConfig, out: Path, key: str) -> list[Step]:
    """This process's step objects for a run (built and set up once per worker, not per shard)."""
    if key not in _PIPELINES:
        _PIPELINES.clear()
        _PIPELINES[key] = (build_steps(cfg), set())
    steps = _PIPELINES[key][0]
    for s in steps:
        if isinstance(s, GlobalStep):
            s.work = out / "work" / f"g-{s.label.replace('#', '_')}"
            s.work.mkdir(parents=True, exist_ok=True)
    return steps


def _ready(step: Step, key: str) -> Step:
    done = _PIPELINES[key][1]
    if step.label not in done:
        step.setup()
        done.add(step.label)
    return step


class _ShardRun:
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

    def run_step(self, step: Step, doc: Document, fn) -> bool:
        """Apply one step; True if the document survives. Records everything in the step's stats row."""
        row = st.step_row(self.stats, step.label, step.type)
        nbytes = utf8_len(doc.text)
        row["documents_in"] += 1
        row["bytes_in"] += nbytes
        dom = row["domains"].setdefault(doc.domain, {"in": {"documents": 0, "bytes": 0}})
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
        return read_jsonl(prev) if prev.exists() else iter(())

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
        for w in (kept, self.removed, self.quarantine):
            if w is not None:
                w.close()
        for step in ([pre] if pre else []) + local:
            st.step_row(s, step.label, step.type)["counters"] = dict(step.counters)
            step.counters.clear()
        return s


def _task(cfg: CurateConfig, out: str, key: str, k: int, shard: Shard) -> int:
    """Worker entry point: run segment k on one shard and write its stats file (the completion marker)."""
    outp = Path(out)
    steps = _pipeline(cfg, outp, f"{key}:{outp.resolve()}")
    pre, local, post = segments(steps)[k]
    for step in ([pre] if pre else []) + local + ([post] if post else []):
        _ready(step, f"{key}:{outp.resolve()}")
    stats = _ShardRun(cfg, outp, k, shard).run(pre, local, post)
    _atomic_json(outp / "work" / f"seg{k}" / f"{shard.index:05d}.stats.json", stats)
    return shard.index


def fingerprint(files: list[Path], cfg: CurateConfig) -> str:
    desc = {"config": configlib.to_dict(cfg), "files": [file_identity(f) for f in files],
            "version": 1}
    desc["config"].pop("workers", None)  # the result does not depend on the worker count
    return hashlib.sha256(json.dumps(desc, sort_keys=True).encode()).hexdigest()[:16]


def _clean(out: Path) -> None:
    for sub in ("data", "removed", "quarantine", "work"):
        shutil.rmtree(out / sub, ignore_errors=True)
    (out / "stats.json").unlink(missing_ok=True)


def curate(inputs: list[str | Path], out_dir: str | Path, cfg: CurateConfig | None = None,
           workers: int | None = None, progress: bool = True) -> dict[str, Any]:
    """Curate ``inputs`` (files or directories) into ``out_dir``; returns the stats (also in stats.json)."""
    if storage.is_url(out_dir):  # staged locally, uploaded when done (see storage.py)
        return storage.curate_to_url(curate, str(out_dir), progress, inputs=inputs, cfg=cfg, workers=workers)
    t0 = time.perf_counter()
    cfg = cfg or CurateConfig()
    configlib.validate(cfg)
    out = Path(out_dir)
    files = expand_inputs(list(inputs))
    if not files:
        raise FileNotFoundError(f"no input files under {', '.join(map(str, inputs))}")
    key = fingerprint(files, cfg)
    stats_path = out / "stats.json"
    if stats_path.exists():
        try:
            old = json.loads(stats_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            old = {}
        if old.get("fingerprint") == key:
            if progress:
                print(f"{out}: already curated with this config and input (delete it to redo)")
                st.print_funnel(old)
            return old
    plan_path = out / "work" / "plan.json"
    plan = json.loads(plan_path.read_text(encoding="utf-8")) if plan_path.exists() else {}
    if plan.get("fingerprint") != key:
        _clean(out)
        shards = plan_shards(files, cfg.shard_docs, cfg.files_per_shard, cfg.max_record_bytes, cfg.shard_bytes)
        _atomic_json(plan_path, {"fingerprint": key, "shards": [vars(s) for s in shards]})
    else:
        shards = [Shard(**s) for s in plan["shards"]]
    steps = build_steps(cfg)
    segs = segments(steps)
    n_workers = max(1, workers or cfg.workers or os.cpu_count() or 1)
    resolved: dict[str, Any] = {}
    pool = _make_pool(cfg, out, key, min(n_workers, len(shards))) if n_workers > 1 and len(shards) > 1 else None
    try:
        for k, (_pre, _local, post) in enumerate(segs):
            seg_dir = out / "work" / f"seg{k}"
            todo = [s for s in shards if not (seg_dir / f"{s.index:05d}.stats.json").exists()]
            _run_tasks(cfg, out, key, k, todo, pool, progress, len(segs))
            _resolve(out, k, post, len(shards), resolved)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    parts = [json.loads((out / "work" / f"seg{k}" / f"{s.index:05d}.stats.json").read_text(encoding="utf-8"))
             for s in shards for k in range(len(segs))]
    stats = st.merge(parts, [(s.label, s.type) for s in steps], cfg.samples_per_reason)
    for row in stats["steps"]:
        if row["name"] in resolved:
            row["index"] = resolved[row["name"]]
    if stats["documents_in"] != stats["kept"] + stats["removed"] + stats["quarantined"]:
        raise RuntimeError(f"curation lost documents: in {stats['documents_in']} != kept {stats['kept']} + removed "
                           f"{stats['removed']} + quarantined {stats['quarantined']}")
    stats["timing"] = {"cpu_seconds_per_step": {k: round(v, 3) for k, v in stats["timing"].items()}}
    stats.update({"fingerprint": key, "inputs": [str(i) for i in inputs], "files": len(files), "shards": len(shards),
                  "workers": n_workers, "seconds": round(time.perf_counter() - t0, 2),
                  "steps_config": [dict(x) for x in (cfg.steps or [])] or "default"})
    _atomic_json(stats_path, stats)
    if not cfg.keep_work:
        shutil.rmtree(out / "work", ignore_errors=True)
    if progress:
        st.print_funnel(stats)
    return stats


def _make_pool(cfg: CurateConfig, out: Path, key: str, n: int) -> ProcessPoolExecutor:
    """One pool for the whole run, so a worker sets up its steps once, not once per segment.

    On Linux, when this process runs no other thread, the steps are set up here (imports, language-ID
    model) and the workers are forked with them already loaded, so they start at no cost. Otherwise
    (threads that fork would copy mid-operation, or no fork on the platform) workers are spawned and
    each sets itself up.
    """
    if sys.platform == "linux" and threading.active_count() == 1:
        tag = f"{key}:{out.resolve()}"
        for step in _pipeline(cfg, out, tag):
            _ready(step, tag)
        pool = ProcessPoolExecutor(max_workers=n, mp_context=get_context("fork"))
        pool.submit(int).result()  # fork every worker now, before a progress-bar thread exists
        return pool
    return ProcessPoolExecutor(max_workers=n, mp_context=get_context("spawn"))


def _resolve(out: Path, k: int, post: Step | None, n_shards: int, resolved: dict[str, Any]) -> None:
    """Resolve the global step closing segment k (once: its marker survives a rerun), then drop the
    intermediate documents segment k consumed."""
    if post is not None:
        marker = out / "work" / f"g-{post.label.replace('#', '_')}" / "resolved.json"
        if not marker.exists():
            post.work = marker.parent
            post.work.mkdir(parents=True, exist_ok=True)
            post.setup()
            _atomic_json(marker, post.resolve(n_shards))
        resolved[post.label] = json.loads(marker.read_text(encoding="utf-8"))
    if k > 0:
        for f in (out / "work" / f"seg{k - 1}").glob("*.jsonl"):
            f.unlink()


def _run_tasks(cfg: CurateConfig, out: Path, key: str, k: int, todo: list[Shard], pool: ProcessPoolExecutor | None,
               progress: bool, n_segs: int) -> None:
    if not todo:
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(disable=not (progress and Console().is_terminal), transient=True) as bar:
        task = bar.add_task(f"segment {k + 1}/{n_segs}", total=len(todo))
        if pool is None or len(todo) == 1:
            for shard in todo:
                _task(cfg, str(out), key, k, shard)
                bar.advance(task)
            return
        futures = [pool.submit(_task, cfg, str(out), key, k, shard) for shard in todo]
        for f in as_completed(futures):
            f.result()
            bar.advance(task)
