"""datatrove's pipelines nearest to ours, run in a separate interpreter (a venv with
``datatrove[processing]``; never a dependency of this project): the five-step chain and the full
default chain, each followed by datatrove's four MinHash stages.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

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
