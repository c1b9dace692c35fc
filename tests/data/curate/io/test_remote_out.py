"""Output to an s3:// URL written by the tasks themselves (no shared local directory between the driver
and the workers), against moto's S3 server on loopback: byte-identical to a local run under both
executors, and a Ray run whose driver is killed with SIGKILL resumes from what the bucket holds, on a
machine with none of the first run's local files."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import zstandard

from pretrain import configlib
from pretrain.data.curate import CurateConfig, curate
from pretrain.data.record import open_text

URL = "s3://out-bucket/run"


def corpus(path: Path, prose, n: int = 60) -> Path:
    """n records; records 30.. repeat 0.. (exact duplicates), so the dedup steps remove some. A
    ``.gz`` path is one gzip member, so the planner re-chunks it into a copy at the output (rechunk.py)."""
    recs = [{"id": f"doc-{i}", "text": prose(i % 30)} for i in range(n)]
    data = ("".join(json.dumps(r) + "\n" for r in recs) + "{broken\n").encode()
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


def config(plugin: str, sleep: float = 0.0, **kw) -> CurateConfig:
    """Shards of 10 records through two global steps (three segments, staged tasks)."""
    return CurateConfig(shard_docs=10, step_modules=[plugin], steps=[
        {"type": "normalize"}, {"type": "test_kill_once", "sleep": sleep},
        {"type": "exact_dedup", "partitions": 2}, {"type": "minhash_dedup", "partitions": 3},
        {"type": "length", "min_chars": 30}], **kw)


def local_snapshot(out: Path) -> dict[str, bytes]:
    snap = {}
    for sub in ("data", "removed", "quarantine"):
        for f in sorted((out / sub).glob("*.zst")):
            with open_text(f) as fh:
                snap[f"{sub}/{f.name}"] = fh.read().encode()
    return snap


def s3_snapshot(s3, url: str = URL) -> dict[str, bytes]:
    root = url.removeprefix("s3://")
    s3.invalidate_cache()
    snap = {}
    for f in sorted(s3.find(root)):
        rel = f[len(root) + 1:]
        if rel.split("/", 1)[0] in ("data", "removed", "quarantine"):
            snap[rel] = zstandard.ZstdDecompressor().decompressobj().decompress(s3.cat_file(f))
    return snap


def conserved(stats: dict) -> tuple:
    assert stats["documents_in"] == stats["kept"] + stats["removed"] + stats["quarantined"]
    return tuple(stats[k] for k in ("documents_in", "kept", "removed", "quarantined"))


@pytest.fixture
def nodes(tmp_path, worker_staging, monkeypatch):
    """Separate scratch roots for the driver and the Ray workers, as on two machines: the driver could
    not read a file a worker left in its own scratch directory."""
    driver = tmp_path / "driver-node"
    monkeypatch.setenv("PRETRAIN_STAGING", str(driver))
    return driver, worker_staging


def test_local_pool_writes_url_output_from_its_workers(s3, nodes, tmp_path, prose, plugin_steps):
    src = corpus(tmp_path / "in.jsonl", prose)
    ref = curate([src], tmp_path / "ref", config(plugin_steps), workers=1, progress=False)
    got = curate([src], URL, config(plugin_steps), workers=2, progress=False)
    assert conserved(got) == conserved(ref) and got["removed"] >= 30 and got["quarantined"] == 1
    assert s3_snapshot(s3) == local_snapshot(tmp_path / "ref") and s3_snapshot(s3)
    assert json.loads(s3.cat_file("out-bucket/run/stats.json"))["fingerprint"] == got["fingerprint"]
    assert not s3.exists("out-bucket/run/work")  # removed at the end, as locally
    assert not nodes[0].exists() or not any(nodes[0].rglob("*"))  # no scratch file is left behind


_DRIVER = """
import json, sys
from pretrain.data.curate import CurateConfig, curate
from pretrain import configlib
cfg = configlib.from_dict(CurateConfig, json.loads(sys.argv[3]))
curate([sys.argv[1]], sys.argv[2], cfg, workers=2, progress=False, executor="ray", ray_address=sys.argv[4])
"""


@pytest.mark.slow
def test_ray_writes_s3_from_its_tasks_and_resumes_after_kill_9(s3, nodes, ray_local, tmp_path, prose, plugin_steps):
    src = corpus(tmp_path / "in.jsonl.gz", prose)  # its shards read a re-chunked copy in the bucket
    cfg = config(plugin_steps, sleep=0.05, keep_work=True)
    ref = curate([src], tmp_path / "ref", config(plugin_steps), workers=1, progress=False)
    address = ray_local.get_runtime_context().gcs_address
    proc = subprocess.Popen([sys.executable, "-c", _DRIVER, str(src), URL, json.dumps(configlib.to_dict(cfg)),
                             address])
    markers = "out-bucket/run/work/seg0"

    def finished() -> dict[str, str]:
        s3.invalidate_cache()
        return {f: s3.info(f)["ETag"] for f in (s3.ls(markers) if s3.exists(markers) else [])
                if f.endswith(".stats.json")}

    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and len(finished()) < 2:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(1.0)  # Ray ends the dead driver's tasks
    done = finished()
    assert 2 <= len(done) < 7 and not s3.exists("out-bucket/run/stats.json")
    assert s3.find("out-bucket/run/work/inputs")  # the copy the shards read (deleted after segment 0)
    # the tasks worked in the workers' scratch root (its cache is still there: the run was killed), the
    # driver in none
    assert any(f.is_file() for f in nodes[1].rglob("*")) and not nodes[0].exists()
    for d in nodes:  # a fresh machine: nothing of the first run is left on local disk
        shutil.rmtree(d, ignore_errors=True)

    stats = curate([src], URL, cfg, workers=2, progress=False, executor="ray")
    assert conserved(stats) == conserved(ref) and stats["executor"] == "ray"
    s3.invalidate_cache()
    for f, etag in done.items():  # the shards finished before the kill were not redone
        assert s3.info(f)["ETag"] == etag
    assert s3_snapshot(s3) == local_snapshot(tmp_path / "ref") and s3_snapshot(s3)
    assert json.loads(s3.cat_file("out-bucket/run/stats.json"))["kept"] == ref["kept"]
    assert s3.exists("out-bucket/run/work/seg0") and not s3.exists("out-bucket/run/work/inputs")
    # the driver never needed a scratch directory, and every node's cache was removed at the end
    assert not nodes[0].exists() and (not nodes[1].exists() or not any(nodes[1].rglob("*")))
    # a rerun is answered from the bucket's stats.json
    again = curate([src], URL, cfg, workers=2, progress=False, executor="ray")
    assert again["fingerprint"] == stats["fingerprint"]
