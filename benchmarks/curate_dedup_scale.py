"""MinHash dedup at scale: wall time, peak memory of the largest task, bytes per document on disk.

Generates N synthetic documents (100 words from a 20,000-word vocabulary; 30% are near duplicates of
an earlier document with one word substituted, Jaccard of the 5-gram shingle sets about 0.9) as plain
JSONL, then runs ``pretrain curate`` with the single step ``minhash_dedup`` in a fresh process per
measurement and reports:

- wall seconds of the curate call, and its CPU seconds (driver and worker processes, user + system;
  the figure to compare on a loaded machine) per document;
- peak RSS of the largest task: the maximum resident set of any worker process (``RUSAGE_CHILDREN``
  after the pool has exited; with ``--workers 1`` the tasks run in the driver and its own peak is used);
- the driver's own peak RSS;
- bytes per document of the step's on-disk index (``work/g-minhash_dedup``, kept for the measurement);
- documents removed (should be about 30% of N).

``--compare-executors N`` also runs, on N other documents: local with 1 worker; ``--pairs`` alternating
pairs of local and Ray at ``--workers``, Ray being a one-node cluster started once with `ray start` (as
on a cluster, where Ray is up before the job: the overhead of running the tasks on Ray); and one run
in which curate starts a local Ray instance itself (the laptop case, start-up included). It prints each
pair's Ray / local ratio, their median, and the scaling from 1 worker. Usage::

    python benchmarks/curate_dedup_scale.py --docs 1000000 4000000 [--workers 2] [--compare-executors 200000]
    python benchmarks/curate_dedup_scale.py --phases 50000   # CPU per document of each phase, 1 process
    python benchmarks/curate_dedup_scale.py --docs 4000000 --ab OLD/src NEW/src   # two checkouts, alternating
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def generate(path: Path, n: int, seed: int = 0, words: int = 100, vocab: int = 20_000, dup: float = 0.3) -> None:
    rng = np.random.default_rng(seed)
    names = np.array([f"w{i}" for i in range(vocab)])
    block = 50_000
    base: list[np.ndarray] = []  # a bounded pool of earlier originals to copy near duplicates from
    with open(path, "w", encoding="utf-8") as f:
        for start in range(0, n, block):
            m = min(block, n - start)
            docs = rng.integers(0, vocab, size=(m, words))
            is_dup = rng.random(m) < dup
            for i in np.flatnonzero(is_dup):
                if base and rng.random() < 0.5:  # a copy of an original from an earlier block
                    src = base[int(rng.integers(len(base)))]
                    docs[i] = src[int(rng.integers(len(src)))]
                elif i:  # or of an earlier document of this block
                    docs[i] = docs[int(rng.integers(i))]
                docs[i, int(rng.integers(words))] = int(rng.integers(vocab))
            base = (base + [docs[~is_dup][:2000]])[-8:]
            lines = [json.dumps({"id": f"d{start + i}", "text": " ".join(names[row])}) for i, row in enumerate(docs)]
            f.write("\n".join(lines) + "\n")


def _sampler(driver: int, phase_file: str, result_file: str, stop) -> None:
    """A separate process (a thread would stop the pool from forking): every 0.1 s, the resident set of
    each child of the driver, keeping the largest seen per phase of the run."""
    peaks: dict[str, float] = {}
    while not stop.is_set():
        try:
            phase = Path(phase_file).read_text() or "start"
        except OSError:
            phase = "start"
        for d in Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            try:
                status = (d / "status").read_text()
            except OSError:
                continue
            fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
            if int(fields.get("PPid", "0").strip() or 0) == driver and "VmRSS" in fields:
                mb = int(fields["VmRSS"].split()[0]) / 1024
                peaks[phase] = max(peaks.get(phase, 0.0), mb)
        stop.wait(0.1)
    ru = resource.getrusage(resource.RUSAGE_SELF)
    peaks["sampler_cpu_s"] = ru.ru_utime + ru.ru_stime  # subtracted from the run's CPU time
    Path(result_file).write_text(json.dumps(peaks))


def measure(src: Path, out: Path, workers: int, executor: str, partitions: int, ray_address: str = "") -> dict:
    """One curate run in this (fresh) process; prints a JSON line."""
    import multiprocessing as mp

    from pretrain.data.curate import CurateConfig, curate
    from pretrain.data.curate.execution import runner

    phase_file, result_file = str(out) + ".phase", str(out) + ".peaks"
    orig = runner._Progress.run

    phase_wall: dict[str, float] = {}

    def labelled(self, ex, fn, calls, label):  # tell the sampler which phase is running; time it
        Path(phase_file).write_text(label)
        t = time.perf_counter()
        try:
            return orig(self, ex, fn, calls, label)
        finally:
            phase_wall[label] = round(phase_wall.get(label, 0.0) + time.perf_counter() - t, 2)

    runner._Progress.run = labelled
    stop = mp.get_context("fork").Event()
    sampler = mp.get_context("fork").Process(target=_sampler, args=(os.getpid(), phase_file, result_file, stop))
    sampler.start()

    cfg = CurateConfig(steps=[{"type": "minhash_dedup", "partitions": partitions}], keep_removed=False, keep_work=True)
    # "ray" joins the cluster at ``ray_address`` (started once with `ray start`, as on a cluster: the
    # wall time is the tasks' cost on a running Ray); "ray-start" lets curate start a local Ray instance
    # itself, as `pretrain curate --executor ray` on a laptop does, so its start-up is in the wall time.
    t0, cpu0 = time.perf_counter(), _cpu_s()
    stats = curate([src], out, cfg, workers=workers, progress=False, executor="ray" if executor.startswith("ray") else executor,
                   ray_address=ray_address if executor == "ray" else None)
    wall = time.perf_counter() - t0
    stop.set()
    sampler.join()
    phases = json.loads(Path(result_file).read_text())
    phases.pop("sampler", None)
    # CPU seconds of the driver and its finished workers (not Ray's own processes), less the sampler's:
    # the fair figure on a shared machine, where wall time depends on the load.
    cpu = _cpu_s() - cpu0 - phases.pop("sampler_cpu_s", 0.0)
    work = out / "work" / "g-minhash_dedup"
    index_bytes = sum(f.stat().st_size for f in work.rglob("*") if f.is_file())
    # VmHWM, not ru_maxrss: after fork + exec, ru_maxrss still reports the parent's peak
    self_mb = _vm_hwm_mb()
    child_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    row = {"docs": stats["documents_in"], "removed": stats["removed"], "workers": workers, "executor": executor,
           "wall_s": round(wall, 1), "cpu_s": round(cpu, 1) if executor == "local" else None,
           "cpu_us_per_doc": round(cpu / max(1, stats["documents_in"]) * 1e6, 1) if executor == "local" else None,
           "shards": stats["shards"], "partitions": stats["steps"][0]["index"]["partitions"],
           "task_peak_mb": round(child_mb if workers > 1 and executor == "local" else self_mb, 1)
           if executor == "local" else None,
           "driver_peak_mb": round(self_mb, 1), "index_bytes_per_doc": round(index_bytes / max(1, stats["documents_in"]), 1),
           "load_avg": [round(x, 2) for x in os.getloadavg()],
           "sampled_peak_mb_by_phase": {k: round(v, 1) for k, v in phases.items()}, "phase_wall_s": phase_wall}
    print(json.dumps(row), flush=True)
    return row


def _cpu_s() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _vm_hwm_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(src: Path, out: Path, workers: int, executor: str, partitions: int = 0, ray_address: str = "") -> dict:
    shutil.rmtree(out, ignore_errors=True)
    res = subprocess.run([sys.executable, __file__, "--measure", str(src), str(out), str(workers), executor,
                          str(partitions), ray_address], capture_output=True, text=True, check=False)
    if res.returncode:
        raise SystemExit(f"measurement failed:\n{res.stderr[-3000:]}")
    row = json.loads(res.stdout.strip().splitlines()[-1])
    shutil.rmtree(out, ignore_errors=True)
    return row


def phases(src: Path, out: Path) -> dict:
    """CPU seconds per phase of one curate run in this process (1 worker): each phase's functions are
    wrapped with ``time.process_time``; what no wrapper covers is the per-document bookkeeping of the
    shard loop (counting, stats) and the merge of the stats."""
    from pretrain.data.curate import CurateConfig, curate
    from pretrain.data.curate.execution import runner, shardrun
    from pretrain.data.curate.io import writers
    from pretrain.data.curate.steps import minhash_dedup as md

    acc: dict[str, float] = {}
    clock = time.process_time

    def wrap(obj, name, key, gen=False):
        f = getattr(obj, name)

        def call(*a, **k):
            t = clock()
            try:
                return f(*a, **k)
            finally:
                k_ = key(a) if callable(key) else key
                acc[k_] = acc.get(k_, 0.0) + clock() - t

        def iterate(*a, **k):
            it = iter(f(*a, **k))
            while True:
                t = clock()
                try:
                    x = next(it)
                except StopIteration:
                    return
                finally:
                    acc[key] = acc.get(key, 0.0) + clock() - t
                yield x

        setattr(obj, name, iterate if gen else call)

    wrap(runner, "cuts_task", "plan: cut the input into shards")
    wrap(shardrun, "read_shard", "read input: lines, JSON, records", gen=True)
    wrap(shardrun, "read_records", "read intermediate", gen=True)
    wrap(md.MinHashDedup, "collect", "minhash: shingle + sign + band keys")
    wrap(md.MinHashDedup, "end_collect", "minhash: shingle + sign + band keys")
    wrap(runner, "stage_task", "stages: pairs, verify, components")
    wrap(md.MinHashDedup, "begin_apply", "apply removals")
    wrap(md.MinHashDedup, "apply", "apply removals")
    for name in ("write", "close"):
        wrap(writers.JsonlWriter, name, lambda a: "write kept: final .jsonl.zst" if a[0].path.suffix == ".zst"
             else "write kept: intermediate .jsonl")
    shutil.rmtree(out, ignore_errors=True)
    t0 = clock()
    stats = curate([src], out, CurateConfig(steps=[{"type": "minhash_dedup"}], keep_removed=False), workers=1,
                   progress=False)
    total = clock() - t0
    shutil.rmtree(out, ignore_errors=True)
    n = stats["documents_in"]
    acc["rest: shard loop bookkeeping, stats merge"] = total - sum(acc.values())
    return {"docs": n, "cpu_us_per_doc": round(total / n * 1e6, 1), "load_avg": [round(x, 2) for x in os.getloadavg()],
            "phases_us_per_doc": {k: round(v / n * 1e6, 1) for k, v in acc.items()}}


def start_ray_cluster(workers: int) -> tuple[str, Path]:
    """A one-node Ray cluster started with `ray start`, the way a cluster runs (see docs/curation.md),
    on a free port; waits until its start-up agents have gone quiet. Returns its address."""
    import re
    import socket

    with socket.socket() as sock:
        sock.bind(("", 0))
        port = sock.getsockname()[1]
    ray_bin = Path(sys.executable).with_name("ray")
    res = subprocess.run([str(ray_bin), "start", "--head", f"--port={port}", f"--num-cpus={workers}",
                          "--include-dashboard=false", "--disable-usage-stats"], check=True, capture_output=True, text=True)
    found = re.search(r"--address='([^']+)'", res.stdout + res.stderr)
    if not found:
        raise SystemExit(f"ray start printed no address:\n{res.stdout[-2000:]}{res.stderr[-2000:]}")
    time.sleep(15)  # the head's agents keep starting for seconds after `ray start` returns
    return found.group(1), ray_bin


def compare_executors(src: Path, out: Path, workers: int, pairs: int) -> list[dict]:
    """Local 1 worker; ``pairs`` alternating (local, Ray cluster) pairs at ``workers``; one run where
    curate starts Ray itself. Prints each pair's ratio and their median."""
    rows = [run_child(src, out, 1, "local")]
    print(json.dumps(rows[-1]), flush=True)
    # token authentication on, as Ray's docs advise for a cluster: the drivers (the measured runs)
    # then join by address with the token `ray start` keeps in ~/.ray/auth_token
    os.environ["RAY_AUTH_MODE"] = "token"
    address, ray_bin = start_ray_cluster(workers)
    ratios = []
    try:
        for i in range(pairs):
            order = (("local", ""), ("ray", address)) if i % 2 == 0 else (("ray", address), ("local", ""))
            pair = {}
            for executor, addr in order:
                rows.append(run_child(src, out, workers, executor, ray_address=addr))
                pair[executor] = rows[-1]["wall_s"]
                print(json.dumps(rows[-1]), flush=True)
            ratios.append(pair["ray"] / pair["local"])
            print(f"pair {i + 1}: local {pair['local']} s, ray {pair['ray']} s, ray / local {ratios[-1]:.3f}", flush=True)
    finally:
        subprocess.run([str(ray_bin), "stop", "--force"], check=False, capture_output=True)
        os.environ.pop("RAY_AUTH_MODE")
    rows.append(run_child(src, out, workers, "ray-start"))
    print(json.dumps(rows[-1]), flush=True)
    local2 = [r["wall_s"] for r in rows if r["executor"] == "local" and r["workers"] == workers]
    print(f"ray / local at {workers} workers, running cluster: {', '.join(f'{r:.3f}' for r in ratios)} "
          f"(median {float(np.median(ratios)):.3f}); local 1 -> {workers} workers: "
          f"{rows[0]['wall_s'] / float(np.median(local2)):.2f}x; curate starting Ray itself: {rows[-1]['wall_s']} s", flush=True)
    return rows


def compare_versions(src: Path, out: Path, workers: int, versions: list[str], rounds: int) -> list[dict]:
    """The same measurement with two code versions (each a checkout's src/ on PYTHONPATH), alternating
    which runs first; prints the phases that differ between them."""
    rows = []
    saved = os.environ.get("PYTHONPATH")
    try:
        for r in range(rounds):
            for v in versions if r % 2 == 0 else versions[::-1]:
                os.environ["PYTHONPATH"] = v
                row = run_child(src, out, workers, "local")
                row["version"] = v
                rows.append(row)
                ph = {k.replace("minhash_dedup ", ""): t for k, t in row["phase_wall_s"].items()}
                print(json.dumps({"version": v, "docs": row["docs"], "wall_s": row["wall_s"], "removed": row["removed"],
                                  "task_peak_mb": row["task_peak_mb"], "stage 1": ph.get("stage 1"),
                                  "stage 2": ph.get("stage 2"), "segment 1": ph.get("segment 1/2"),
                                  "segment 2": ph.get("segment 2/2")}), flush=True)
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved
    return rows


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--measure":
        src, out, workers, executor, parts, address = sys.argv[2:8]
        measure(Path(src), Path(out), int(workers), executor, int(parts), address)
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, nargs="*", default=[1_000_000])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--compare-executors", type=int, default=0, metavar="N",
                    help="also compare local 1 / local 2 / ray 2 workers on N documents")
    ap.add_argument("--pairs", type=int, default=3, help="alternating local / Ray pairs of --compare-executors")
    ap.add_argument("--phases", type=int, default=0, metavar="N",
                    help="only print the CPU microseconds per document of each phase, on N documents, 1 worker")
    ap.add_argument("--ab", nargs=2, metavar="SRC", default=None,
                    help="compare two checkouts' src/ directories (PYTHONPATH) on the same --docs inputs, alternating")
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds of --ab")
    ap.add_argument("--tmp", default=tempfile.gettempdir())
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="dedup-scale-", dir=args.tmp))
    rows = []
    try:
        print(f"load average at start: {os.getloadavg()}", flush=True)
        if args.phases:
            generate(root / "docs.jsonl", args.phases)
            print(json.dumps(phases(root / "docs.jsonl", root / "out"), indent=1))
            return
        if args.ab:
            for n in args.docs:
                src = root / f"docs-{n}.jsonl"
                generate(src, n)
                rows += compare_versions(src, root / "out", args.workers, args.ab, args.rounds)
                src.unlink()
            return
        for n in args.docs:
            src = root / f"docs-{n}.jsonl"
            t0 = time.perf_counter()
            generate(src, n)
            print(f"generated {n} documents ({src.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t0:.0f}s",
                  flush=True)
            rows.append(run_child(src, root / "out", args.workers, "local"))
            print(json.dumps(rows[-1]), flush=True)
            src.unlink()
        if args.compare_executors:
            n = args.compare_executors
            src = root / f"docs-{n}.jsonl"
            generate(src, n, seed=1)
            rows += compare_executors(src, root / "out", args.workers, args.pairs)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
