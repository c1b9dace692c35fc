"""Executors: Ray and the local pool give byte-identical outputs; a task killed mid-shard is retried;
a run killed with SIGKILL resumes without redoing finished shards; conservation holds in every run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pretrain.data.curate import CurateConfig, curate
from pretrain.data.record import open_text


def snapshot(out: Path) -> dict[str, bytes]:
    """Every output file's decompressed bytes, by name (data, removed, quarantine)."""
    snap = {}
    for sub in ("data", "removed", "quarantine"):
        for f in sorted((out / sub).glob("*.zst")):
            with open_text(f) as fh:
                snap[f"{sub}/{f.name}"] = fh.read().encode()
    return snap


def conserved(stats: dict) -> tuple:
    for k in ("documents_in", "kept", "removed", "quarantined"):
        assert isinstance(stats[k], int)
    assert stats["documents_in"] == stats["kept"] + stats["removed"] + stats["quarantined"]
    return tuple(stats[k] for k in ("documents_in", "kept", "removed", "quarantined"))


def corpus(path: Path, prose, n: int = 40, kill_at: int = 15) -> Path:
    """n records in shards of 10: records 30.. repeat 0.. (exact duplicates); one says KILLME."""
    recs = [{"id": f"doc-{i}", "text": prose(i % 30) + (" KILLME" if i == kill_at else "")} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")
    return path


def config(plugin: str, marker: Path, sleep: float = 0.0, **kw) -> CurateConfig:
    return CurateConfig(shard_docs=10, step_modules=[plugin], steps=[
        {"type": "normalize"},
        {"type": "test_kill_once", "marker": str(marker), "spare_pid": os.getpid(), "sleep": sleep},
        {"type": "exact_dedup"}, {"type": "minhash_dedup", "partitions": 3}, {"type": "length", "min_chars": 30}],
        **kw)


@pytest.mark.slow
def test_ray_and_local_give_identical_outputs(mixed_dir: Path, tmp_path: Path, ray_local):
    cfg = CurateConfig(max_record_bytes=16384, shard_docs=5, files_per_shard=4)  # the default pipeline
    local = curate([mixed_dir], tmp_path / "local", cfg, workers=2, progress=False)
    ray = curate([mixed_dir], tmp_path / "ray", cfg, workers=2, progress=False, executor="ray")
    assert conserved(local) == conserved(ray) and ray["executor"] == "ray"
    assert snapshot(tmp_path / "local") == snapshot(tmp_path / "ray") and snapshot(tmp_path / "ray")
    assert [s["index"] for s in local["steps"] if "index" in s] == [s["index"] for s in ray["steps"] if "index" in s]


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["local", "ray"])
def test_task_killed_mid_shard_is_retried(executor: str, tmp_path: Path, prose, plugin_steps, request):
    if executor == "ray":
        request.getfixturevalue("ray_local")
    src = corpus(tmp_path / "in.jsonl", prose)
    done = tmp_path / "no-kill"
    done.write_text("")  # the reference run: the marker exists, so nothing is killed
    ref = curate([src], tmp_path / "ref", config(plugin_steps, done), workers=1, progress=False)
    marker = tmp_path / "killed"
    got = curate([src], tmp_path / "got", config(plugin_steps, marker), workers=2, progress=False, executor=executor)
    assert marker.exists() and int(marker.read_text()) != os.getpid()  # a worker really died mid-shard
    assert conserved(got) == conserved(ref) and got["removed"] >= 10
    assert snapshot(tmp_path / "got") == snapshot(tmp_path / "ref")


_DRIVER = """
import json, sys
from pretrain.data.curate import CurateConfig, curate
from pretrain import configlib
cfg = configlib.from_dict(CurateConfig, json.loads(sys.argv[3]))
curate([sys.argv[1]], sys.argv[2], cfg, workers=2, progress=False, executor=sys.argv[4],
       ray_address=sys.argv[5] or None)
"""


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["local", "ray"])
def test_resume_after_kill_9(executor: str, tmp_path: Path, prose, plugin_steps, request):
    from pretrain import configlib

    address = ""
    if executor == "ray":
        address = request.getfixturevalue("ray_local").get_runtime_context().gcs_address
    src = corpus(tmp_path / "in.jsonl", prose, n=60)
    done = tmp_path / "no-kill"
    done.write_text("")
    cfg = config(plugin_steps, done, sleep=0.03, keep_work=True)
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-c", _DRIVER, str(src), str(out),
                             json.dumps(configlib.to_dict(cfg)), executor, address])
    seg0 = out / "work" / "seg0"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and len(list(seg0.glob("*.stats.json"))) < 2:
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = {f.name: f.stat().st_mtime_ns for f in seg0.glob("*.stats.json")}
    assert 2 <= len(finished) < 6 and not (out / "stats.json").exists()
    time.sleep(0.5)  # let the killed run's orphaned local workers finish or die before the rerun reads
    stats = curate([src], out, cfg, workers=2, progress=False, executor=executor)
    for name, mtime in finished.items():  # finished shards were not redone
        assert (seg0 / name).stat().st_mtime_ns == mtime
    fresh = curate([src], tmp_path / "fresh", config(plugin_steps, done), workers=1, progress=False)
    assert conserved(stats) == conserved(fresh)
    assert snapshot(out) == snapshot(tmp_path / "fresh")


def test_unknown_executor_and_address_without_ray(tmp_path: Path):
    src = tmp_path / "a.jsonl"
    src.write_text('{"text": "some text that is long enough"}\n')
    with pytest.raises(ValueError, match="unknown executor 'spark'"):
        curate([src], tmp_path / "o", CurateConfig(), progress=False, executor="spark")
    with pytest.raises(ValueError, match="--ray-address needs --executor ray"):
        curate([src], tmp_path / "o", CurateConfig(), progress=False, ray_address="auto")


@pytest.mark.slow
def test_a_cluster_that_refuses_the_driver_is_one_line(tmp_path: Path, ray_local):
    """A driver joining by address with a token the cluster does not accept (Ray >= 2.59 checks one)
    gets one line that names the address and the fix, not Ray's traceback, and writes no output."""
    address = ray_local.get_runtime_context().gcs_address
    src = tmp_path / "a.jsonl"
    src.write_text('{"text": "some text that is long enough"}\n')
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "0" * 64,
           "RAY_gcs_server_port_wait_time_s": "1"}  # one connection attempt, not Ray's 20
    res = subprocess.run([str(Path(sys.executable).with_name("pretrain")), "curate", str(src), "--out",
                          str(tmp_path / "o"), "--executor", "ray", "--ray-address", address],
                         env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: --ray-address {address}: the Ray cluster refused") and "RAY_AUTH_MODE=token" in last
    assert not (tmp_path / "o" / "stats.json").exists()


@pytest.mark.slow
def test_tokenize_with_ray_writes_the_same_shards(tmp_path: Path, prose, ray_local):
    from pretrain.data.record import Document, write_jsonl
    from pretrain.data.tokenize import tokenize_corpus
    from pretrain.tokenizer import TokenizerConfig, train_tokenizer

    docs = [Document(text=prose(i), domain="prose" if i % 3 else "docs", source=f"s{i}") for i in range(60)]
    tok = train_tokenizer(docs, TokenizerConfig(vocab_size=400, min_frequency=2, n_reserved=4), tmp_path / "tok",
                          val_fraction=0.1)
    write_jsonl(tmp_path / "in.jsonl", docs)
    a = tokenize_corpus([tmp_path / "in.jsonl"], tok.path, tmp_path / "local", val_fraction=0.2, workers=1,
                        batch_docs=8)
    b = tokenize_corpus([tmp_path / "in.jsonl"], tok.path, tmp_path / "ray", val_fraction=0.2, workers=2,
                        batch_docs=8, executor="ray")
    assert a["tokens"] == b["tokens"] > 0 and b["executor"] == "ray" and a["documents"] == b["documents"] == 60
    files = sorted(p.relative_to(tmp_path / "local") for p in (tmp_path / "local").rglob("*") if p.is_file())
    assert files and files == sorted(p.relative_to(tmp_path / "ray") for p in (tmp_path / "ray").rglob("*")
                                     if p.is_file())
    for f in files:  # stats.json holds timings, and manifest.json its hash
        if f.name not in ("stats.json", "manifest.json"):
            assert (tmp_path / "local" / f).read_bytes() == (tmp_path / "ray" / f).read_bytes(), f
