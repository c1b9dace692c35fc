"""Running `pretrain curate` for the throughput benchmark: one timed run, the peak RSS of a fresh
process, the default chain with a chosen extractor, the load average.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

STEPS = [{"type": "extract"}, {"type": "langid"}, {"type": "gopher_quality"}, {"type": "gopher_repetition"},
         {"type": "minhash_dedup"}]


def run_once(inp: Path, out: Path, workers: int, n: int, steps=STEPS, keep_removed: bool = False) -> tuple[float, dict]:
    from pretrain.data.curate import CurateConfig, curate

    cfg = CurateConfig(steps=steps, shard_docs=(n + 3) // 4, keep_removed=keep_removed)
    t0 = time.perf_counter()
    stats = curate([inp], out, cfg, workers=workers, progress=False)
    return time.perf_counter() - t0, stats


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


def default_chain(extractor: str) -> list[dict]:
    from pretrain.data.curate.execution.pipeline import DEFAULT_STEPS

    return [dict(s, extractor=extractor) if s["type"] == "extract" else dict(s) for s in DEFAULT_STEPS]


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())
