"""Running a curation pipeline: planning shards, scheduling tasks on an executor, resumption, stats.

The pipeline is cut at its global steps into *segments*. Segment k runs, for every shard as one task:
the decisions of the global step that closed segment k-1 (if any), then its local steps, then the
*collect* half of the global step that closes it, writing the surviving documents to
``work/seg<k>/<shard>.jsonl`` (or to ``data/`` for the last segment). Once every shard of a segment is
done, the global step's *stages* run, each as parallel tasks (one per hash partition, or per shard; see
:class:`pretrain.data.curate.registry.GlobalStep`). Shards are cut from the inputs alone, never from
the worker count, and every decision depends only on the documents and their order, so the outputs are
byte-identical for any number of workers and for the local and the Ray executor.

Every task writes its results to temporary names, then a small completion marker (a shard's stats file,
a stage task's result) last and atomically. A task whose process dies is retried by the executor; a
rerun with the same inputs and config skips every task whose marker exists (resume after ``kill -9``),
and a finished run is not redone. A different config or input set starts over. Output at an fsspec URL
is written by the tasks themselves, each from its own node (see :mod:`pretrain.data.curate.io.outstore`).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from pretrain import configlib
from pretrain.data.curate.config import CurateConfig
from pretrain.data.curate.execution import stats as st
from pretrain.data.curate.execution.executors import make_executor
from pretrain.data.curate.execution.idcheck import cross_shard_repeats
from pretrain.data.curate.execution.pipeline import build_steps, segments
from pretrain.data.curate.execution.shardrun import ShardRun
from pretrain.data.curate.io import storage
from pretrain.data.curate.io.inputs import input_problem
from pretrain.data.curate.io.lines import TruncatedInput, compression
from pretrain.data.curate.io.outstore import (
    LocalOut,
    RemoteOut,
    atomic_json,
    drop_node_cache,
    open_out,
    run_task,
)
from pretrain.data.curate.io.readers import (
    Cuts,
    Shard,
    expand_inputs,
    is_record_file,
    plan_shards,
    record_cuts,
)
from pretrain.data.curate.io.rechunk import INPUTS_DIR, rechunk
from pretrain.data.curate.registry import GlobalStep, Step
from pretrain.lineage.manifest import write_manifest
from pretrain.writable import ensure_writable

_PIPELINES: dict[str, tuple[list[Step], set[str]]] = {}
FINGERPRINT_BYTES = 1 << 16


def _work_rel(step: Step) -> str:
    return f"work/g-{step.label.replace('#', '_')}"


def _pipeline(cfg: CurateConfig, ident: str, key: str, n_shards: int, out: Path | None = None) -> list[Step]:
    """This process's step objects for a run (built and set up once per worker, not per task); ``out``:
    where this task's files go (the global steps' work directories are set under it)."""
    tag = f"{key}:{ident}"
    if tag not in _PIPELINES:
        _PIPELINES.clear()
        _PIPELINES[tag] = (build_steps(cfg), set())
    steps, ready = _PIPELINES[tag]
    for s in steps:
        if isinstance(s, GlobalStep) and out is not None:
            s.work, s.n_shards = out / _work_rel(s), n_shards
            s.work.mkdir(parents=True, exist_ok=True)
        if s.label not in ready:
            s.setup()
            ready.add(s.label)
    return steps


def _ident(out: str) -> str:
    return out.rstrip("/") if storage.is_url(out) else str(Path(out).resolve())


def shard_task(cfg: CurateConfig, out: str, key: str, k: int, shard: Shard, n_shards: int) -> int:
    """Run segment k on one shard and write its stats file (the completion marker)."""
    marker = f"work/seg{k}/{shard.index:05d}.stats.json"

    def run(outp: Path) -> int:
        pre, local, post = segments(_pipeline(cfg, _ident(out), key, n_shards, outp))[k]
        stats = ShardRun(cfg, outp, k, shard).run(pre, local, post)
        atomic_json(outp / marker, stats)
        return shard.index

    if not storage.is_url(out):
        return run(Path(out))
    pre = segments(_pipeline(cfg, _ident(out), key, n_shards))[k][0]
    fetch = [f"work/seg{k - 1}/{shard.index:05d}.jsonl"] if k > 0 else []
    cached = [(_work_rel(pre), pre.apply_files)] if pre is not None else []
    return run_task(out, key, marker, fetch, cached, run)


def stage_task(cfg: CurateConfig, out: str, key: str, label: str, stage: int, part: int, n_shards: int,
               previous: dict[str, Any] | None = None) -> int:
    """Run one task of one stage of a global step and write its result (the completion marker);
    ``previous``: the merged results of the stage before."""

    def run(outp: Path) -> int:
        step = next(s for s in _pipeline(cfg, _ident(out), key, n_shards, outp) if s.label == label)
        assert isinstance(step, GlobalStep)
        step.previous = previous or {}
        atomic_json(step.work / f"stage{stage}-{part:05d}.json", step.run_stage(stage, part))
        return part

    if not storage.is_url(out):
        return run(Path(out))
    rel = _work_rel(next(s for s in _pipeline(cfg, _ident(out), key, n_shards) if s.label == label))
    return run_task(out, key, f"{rel}/stage{stage}-{part:05d}.json", [], [(rel, ("*",))], run)


def warm_task(cfg: CurateConfig, out: str, key: str) -> None:
    """Build and set up this worker's steps before its first real task (see ``RayExecutor.start``)."""
    _pipeline(cfg, _ident(out), key, 0)


def drop_cache_task(url: str) -> None:
    """Remove this node's cache of a finished run's work files (one task on every node)."""
    drop_node_cache(url)


def cuts_task(path: str, max_bytes: int, records: int, nbytes: int, out: str) -> Cuts | None:
    """Where the shards of one record file start (read in parallel, one task per file); a compressed
    file of one long frame is re-chunked into a copy under ``out`` first (see rechunk.py)."""
    src = storage.as_path(path)
    cuts = record_cuts(src, max_bytes, records, nbytes)
    if cuts is not None and cuts.fine:
        try:
            cuts = rechunk(src, cuts, out)
        except (OSError, TruncatedInput):  # changed or unreadable since it was counted: keep the frame cuts
            pass
    return cuts


def _file_fingerprint(f: Path) -> list[Any]:
    """Path, size, mtime and a hash of the first and last 64 KiB: an edited file of the same size is
    seen as changed (its mtime moves; an edit at either end changes the hash even if mtime is reset),
    without reading terabytes of input in full before the run starts. A file that cannot be read (a
    symlink loop, a broken link, a special or unreadable file: quarantined when read) is its name and
    the problem; it is never opened, so a FIFO cannot block here. Local paths and fsspec URLs alike."""
    if problem := input_problem(f):
        return [str(f.absolute()), -1, problem]
    try:
        st_ = f.stat()
        h = hashlib.blake2b(digest_size=16)
        with storage.open_binary(f) as fh:
            h.update(fh.read(FINGERPRINT_BYTES))
            if st_.st_size > FINGERPRINT_BYTES:
                fh.seek(max(FINGERPRINT_BYTES, st_.st_size - FINGERPRINT_BYTES))
                h.update(fh.read(FINGERPRINT_BYTES))
    except OSError as exc:  # gone or locked since it was listed: quarantined when read
        return [str(f.absolute()), -1, f"unreadable: {exc.strerror or exc}"]
    mtime = getattr(st_, "st_mtime_ns", None) or int(float(getattr(st_, "st_mtime", 0) or 0) * 1e9)
    return [str(f.resolve()), st_.st_size, mtime, h.hexdigest()]


def fingerprint(files: list[Path], cfg: CurateConfig, sizes: dict[str, int] | None = None) -> str:
    """The run's identity: config and files; ``sizes`` receives each file's size (-1: unreadable)."""
    desc = {"config": configlib.to_dict(cfg), "files": [_file_fingerprint(f) for f in files], "version": 2}
    if sizes is not None:
        sizes.update((str(f), d[1]) for f, d in zip(files, desc["files"], strict=True))
    desc["config"].pop("workers", None)  # the result does not depend on the worker count
    return hashlib.sha256(json.dumps(desc, sort_keys=True).encode()).hexdigest()[:16]


def _clean(out: LocalOut | RemoteOut) -> None:
    for sub in ("data", "removed", "quarantine", "work", "stats.json"):
        out.remove(sub)


def _merge_results(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Sum the numbers the stage tasks of one step returned; lists are merged, sorted."""
    out: dict[str, Any] = {}
    for r in results:
        for k, v in r.items():
            if isinstance(v, bool) or not isinstance(v, int | float | list):
                out[k] = v
            elif isinstance(v, list):
                out[k] = sorted(set(out.get(k, [])) | set(v))
            else:
                out[k] = out.get(k, 0) + v
    return out


class _Progress:
    def __init__(self, enabled: bool):
        from rich.console import Console
        from rich.progress import Progress

        self.bar = Progress(disable=not (enabled and Console().is_terminal), transient=True)

    def run(self, ex, fn, calls: list[tuple], label: str) -> list[Any]:
        if not calls:
            return []
        with self.bar:
            task = self.bar.add_task(label, total=len(calls))
            return ex.run(fn, calls, lambda: self.bar.advance(task))


def _plan(ex, files: list[Path], cfg: CurateConfig, out: LocalOut | RemoteOut, out_arg: str, key: str,
          bar: _Progress) -> list[Shard]:
    plan = out.read_json("work/plan.json") or {}
    if plan.get("fingerprint") == key:
        return [Shard(**s) for s in plan["shards"]]
    _clean(out)
    record_files = [str(f) for f in files if is_record_file(f)]
    calls = [(f, cfg.max_record_bytes, cfg.shard_docs, cfg.shard_bytes, out_arg) for f in record_files]
    if len(calls) == 1:  # one file: cut it here, while the executor starts its workers (Ray's, lazily)
        found = [cuts_task(*calls[0])]
    else:
        found = bar.run(ex, cuts_task, calls, "planning")
    cuts = dict(zip(record_files, found, strict=True))
    shards = plan_shards(files, cfg.shard_docs, cfg.files_per_shard, cfg.max_record_bytes, cfg.shard_bytes, cuts=cuts)
    out.write_json("work/plan.json", {"fingerprint": key, "shards": [vars(s) for s in shards]})
    return shards


def curate(inputs: list[str | Path], out_dir: str | Path, cfg: CurateConfig | None = None,
           workers: int | None = None, progress: bool = True, executor: str = "local",
           ray_address: str | None = None) -> dict[str, Any]:
    """Curate ``inputs`` (files or directories) into ``out_dir`` (a path or an fsspec URL); returns the
    stats (also in stats.json).

    ``executor``: ``"local"`` (a process pool of ``workers``) or ``"ray"`` (Ray tasks; ``ray_address``
    joins a running cluster, else a local Ray instance with ``workers`` CPUs is started)."""
    t0 = time.perf_counter()
    cfg = cfg or CurateConfig()
    configlib.validate(cfg)
    if workers is not None and workers < 0:
        raise ValueError(f"workers must be >= 0 (got {workers})")
    ensure_writable(out_dir, "output")  # before anything is read: a read-only --out stops here, in one line
    out = open_out(out_dir)
    out_arg = out.ident if out.remote else str(out_dir)  # what tasks get: they open it themselves
    files = expand_inputs(list(inputs))
    if not files:
        raise FileNotFoundError(f"no input files under {', '.join(map(str, inputs))}")
    sizes: dict[str, int] = {}
    key = fingerprint(files, cfg, sizes)
    old = out.read_json("stats.json")
    if isinstance(old, dict) and old.get("fingerprint") == key:
        if progress:
            print(f"{out_dir}: already curated with this config and input (delete it to redo)")
            st.print_funnel(old)
        return old
    n_workers = max(1, workers or cfg.workers or os.cpu_count() or 1)
    steps = build_steps(cfg)
    segs = segments(steps)
    holder: dict[str, int] = {}
    local_out = None if out.remote else Path(out_dir)
    ex = make_executor(executor, n_workers, ray_address,
                       prepare=lambda: _pipeline(cfg, out.ident, key, holder.get("n", 0), local_out),
                       warm=(warm_task, (cfg, out_arg, key)))
    bar = _Progress(progress)
    resolved: dict[str, Any] = {}
    try:
        ex.start()  # fork local workers now, before a progress-bar thread exists
        shards = _plan(ex, files, cfg, out, out_arg, key, bar)
        n = holder["n"] = len(shards)
        for k, (_pre, _local, post) in enumerate(segs):
            done = out.names(f"work/seg{k}")
            todo = [s for s in shards if f"{s.index:05d}.stats.json" not in done]
            bar.run(ex, shard_task, [(cfg, out_arg, key, k, s, n) for s in todo], f"segment {k + 1}/{len(segs)}")
            if post is not None:
                resolved[post.label] = _run_stages(ex, cfg, out, out_arg, key, post, n, bar)
            if k > 0:  # the intermediate documents segment k consumed
                out.remove_files(f"work/seg{k - 1}", ".jsonl")
            else:  # re-chunked copies of compressed inputs
                out.remove(INPUTS_DIR)
        stats = _merged_stats(out, shards, len(segs), steps, cfg, resolved)
        stats["timing"] = {"cpu_seconds_per_step": {k: round(v, 3) for k, v in stats["timing"].items()}}
        stats["warnings"] = _warnings(files, sizes, stats)
        stats.update({"fingerprint": key, "inputs": [str(i) for i in inputs], "files": len(files),
                      "shards": len(shards), "workers": n_workers, "executor": executor,
                      "seconds": round(time.perf_counter() - t0, 2),
                      "steps_config": [dict(x) for x in (cfg.steps or [])] or "default"})
        out.write_json("stats.json", stats)  # last: a reader that sees it sees the whole output
        if local_out is not None:  # the lineage manifest: raw inputs -> curated output (pretrain verify)
            raw = [("raw", Path(f)) for f in files if not storage.is_remote(f)]
            write_manifest(local_out, "curate", inputs=raw, config=configlib.to_dict(cfg),
                           outputs=["data", "removed", "quarantine", "stats.json"])
        if not cfg.keep_work:
            out.remove("work")
        if out.remote:  # every node's cache of the work files
            ex.on_each_node(drop_cache_task, (out.ident,))
    finally:
        ex.close()
    for w in stats["warnings"]:
        print(f"warning: {w}", file=sys.stderr)
    if progress:
        if out.remote:
            print(f"written to {out.ident}")
        st.print_funnel(stats)
    return stats


def _merged_stats(out, shards: list, n_segments: int, steps: list, cfg: CurateConfig,
                  resolved: dict[str, Any]) -> dict[str, Any]:
    """Every shard's stats of every segment merged, checked to lose no document (documents_in = kept +
    removed + quarantined); ``resolved``: what global steps resolved, by step label."""
    parts = out.read_jsons([f"work/seg{k}/{s.index:05d}.stats.json" for s in shards for k in range(n_segments)])
    stats = st.merge(parts, [(s.label, s.type) for s in steps], cfg.samples_per_reason)
    stats["duplicate_ids"] += cross_shard_repeats(out, [s.index for s in shards])
    for row in stats["steps"]:
        if row["name"] in resolved:
            row["index"] = resolved[row["name"]]
    if stats["documents_in"] != stats["kept"] + stats["removed"] + stats["quarantined"]:
        raise RuntimeError(f"curation lost documents: in {stats['documents_in']} != kept {stats['kept']} + "
                           f"removed {stats['removed']} + quarantined {stats['quarantined']}")
    return stats


def _warnings(files: list[Path], sizes: dict[str, int], stats: dict[str, Any]) -> list[str]:
    """What the run accepted but a person should know, one line each: compressed inputs of 0 bytes (read
    as no records, which is also what a file cut off while copying looks like) and records that share
    an id with an earlier record. ``sizes``: as the fingerprint saw them."""
    out = []
    empty = [str(f) for f in files if compression(f) and sizes.get(str(f)) == 0]
    if empty:
        out.append(f"{len(empty)} empty compressed file(s) (0 bytes, read as no records): {', '.join(empty[:3])}"
                   + (" ..." if len(empty) > 3 else ""))
    if n := stats.get("duplicate_ids", 0):
        ex = ", ".join(f"{i} in {src}" for i, src in stats.get("duplicate_id_examples", {}).items())
        out.append(f"{n} input record(s) repeat the id of an earlier record, all kept" + (f" (e.g. {ex})" if ex else ""))
    return out



def _run_stages(ex, cfg: CurateConfig, out: LocalOut | RemoteOut, out_arg: str, key: str, step: GlobalStep,
                n_shards: int, bar: _Progress) -> dict[str, Any]:
    """Every stage of a global step as parallel tasks, skipping tasks finished by an earlier attempt:
    the fixed ``stages()``, then each stage that ``more_stages`` adds (decided from the recorded results
    of the stages before, so a resumed run takes the same path and redoes no finished stage)."""
    rel = _work_rel(step)
    step.n_shards = n_shards
    if not out.remote:
        step.work = Path(out_arg) / rel
        step.work.mkdir(parents=True, exist_ok=True)
    fixed = step.stages()
    merged: list[dict[str, Any]] = []  # per stage
    results = []
    while True:
        stage = len(merged)
        n_tasks = fixed[stage] if stage < len(fixed) else step.more_stages(merged)
        if stage >= len(fixed) and not n_tasks:
            break
        done = out.names(rel)
        todo = [p for p in range(n_tasks) if f"stage{stage}-{p:05d}.json" not in done]
        prev = merged[-1] if merged else {}
        bar.run(ex, stage_task, [(cfg, out_arg, key, step.label, stage, p, n_shards, prev) for p in todo],
                f"{step.label} stage {stage + 1}")
        got = out.read_jsons([f"{rel}/stage{stage}-{p:05d}.json" for p in range(n_tasks)])
        merged.append(_merge_results(got))
        results += got
    return _merge_results(results)
