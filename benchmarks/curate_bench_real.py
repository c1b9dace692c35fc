"""The full default chain on real HTML pages beside datatrove's nearest chain (``--html-dir``): timings
at 1 and 2 workers in alternating order, and how far the two kept sets agree and why they differ.
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from pathlib import Path

from curate_bench_datatrove import DATATROVE_FULL, run_datatrove
from curate_bench_extractors import bench_extractors
from curate_bench_inputs import real_pages
from curate_bench_run import default_chain, load_average, run_once


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
        print(f"input: {n} real HTML pages from {args.html_dir}, {nbytes / 1e6:.2f} MB; load average {load_average()}")
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
                    load = load_average()
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
