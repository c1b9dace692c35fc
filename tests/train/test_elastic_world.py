"""An elastic job (``torchrun --nnodes 1:2``, c10d rendezvous on loopback, one process per "node") that
loses a node for good: the other node's agent restarts its rank, meets alone in the next rendezvous
round, and the run resumes on world size 1 from the newest checkpoint, with the run's global batch (each
step accumulates both micro-batches the two ranks trained), logs the change, and finishes on the
weights a one-process run of the same global batch reaches, bit for bit."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import torch

from conftest import tiny_cfg, torchrun_cmd

SLOW = ['train.callbacks=["cbkit:SlowStart"]', 'train.callback_args={"cbkit:SlowStart" = {until = 1000, delay_s = 0.25}}']
# train.global_batch is left unset: 2 ranks x micro_batch 2 = 4 sequences, which the resume on 1 process keeps.
SHAPE = ["train.micro_batch=2", "train.checkpoint_interval=2", "train.max_steps=10"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node_cmd(data, run: Path, port: int, host: bool) -> list[str]:
    """One node's torchrun: 1 to 2 nodes, one restart; dead nodes are noticed after 2 s and a round
    with fewer than 2 nodes closes 5 s after the first one joined (both nodes start together)."""
    cmd = torchrun_cmd(data, run, *SHAPE, *SLOW)
    at = cmd.index("--standalone")
    cmd[at:at + 3] = ["--nnodes", "1:2", "--nproc_per_node", "1", "--max-restarts", "1", "--rdzv-backend", "c10d",
                      "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "shrink", "--rdzv-conf",
                      f"is_host={int(host)},last_call_timeout=5,keep_alive_interval=1,keep_alive_max_attempt=2"]
    return cmd


def env() -> dict:
    helpers = str(Path(__file__).parents[1] / "helpers")
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([helpers, os.environ.get("PYTHONPATH", "")]))


def rows(run: Path) -> list[dict]:
    """metrics.jsonl's complete rows (rank 0 may be writing the last one)."""
    path = run / "metrics.jsonl"
    out = []
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return out


def children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return out


def kill_node(job: subprocess.Popen) -> None:
    """SIGKILL to a node's torchrun agent and its ranks (each rank runs in a session of its own)."""
    for pid in [job.pid, *children(job.pid)]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.mark.slow
def test_a_node_lost_for_good_shrinks_the_job_which_keeps_its_global_batch(tiny_data, tmp_path):
    from pretrain.model.io import read_weights
    from pretrain.train import train

    run, port = tmp_path / "run", free_port()
    logs = [(tmp_path / f"node-{n}.log").open("w") for n in "ab"]
    a, b = (subprocess.Popen(node_cmd(tiny_data, run, port, host), env=env(), stdout=subprocess.DEVNULL,
                             stderr=log, start_new_session=True) for host, log in zip((True, False), logs, strict=True))
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not any(r.get("type") == "train" and r["step"] >= 4 for r in rows(run)):
            assert a.poll() is None and b.poll() is None, "a node ended before the fault"
            time.sleep(0.05)
        kill_node(b)  # node B is gone for good
        a.wait(timeout=180)
    finally:
        for job in (a, b):
            if job.poll() is None:
                kill_node(job)
        for log in logs:
            log.close()
    assert a.returncode == 0, (tmp_path / "node-a.log").read_text()[-3000:]
    log = rows(run)
    starts = [r["detail"] for r in log if r.get("event") == "start"]
    assert "world=2" in starts[0] and "world=1" in starts[-1]
    (change,) = [r for r in log if r.get("event") == "world_size_changed"]
    assert change["detail"].startswith("world size 2 -> 1: global batch kept at 4 sequences (1 -> 2 micro-batches")
    (restart,) = [r for r in log if r.get("event") == "restart"]
    assert restart["attempt"] == 1 and restart["resumed_step"] in (2, 4)
    trained = [r for r in log if r.get("type") == "train"]
    assert [r["step"] for r in trained] == list(range(1, 11)) and {r["batch"] for r in trained} == {4}

    # The same global batch in one process from the start: the same data and, here, the same weights
    # (DDP's average of two ranks' gradients and one process's sum of two micro-batches' agree bit for bit).
    ref = train(tiny_cfg(tiny_data, *SHAPE, "train.global_batch=4"), tmp_path / "ref", progress=False)
    ref_losses = [r["loss"] for r in rows(tmp_path / "ref") if r.get("type") == "train"]
    assert ref.step == 10 and [r["loss"] for r in trained] == ref_losses
    x = read_weights(tmp_path / "ref" / "checkpoints" / "final" / "model.safetensors")
    y = read_weights(run / "checkpoints" / "final" / "model.safetensors")
    assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)
