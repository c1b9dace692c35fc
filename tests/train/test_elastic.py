"""Runs that recover by themselves under torchrun (2 processes, gloo on loopback): a rank killed with -9
comes back in one restart attempt and ends on the weights of a run that never failed; a hung rank is
ended by the watchdog with a stack dump and the job finishes; SIGTERM to the launcher saves the step
in flight; two torchrun "nodes" meet through c10d rendezvous, train and resume."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import torch

from conftest import tiny_cfg, torchrun_cmd

FAULT = "pretrain.train.callbacks.faults:InjectFault"
OVER = ["train.micro_batch=2", "train.global_batch=4", "train.checkpoint_interval=2"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict:
    helpers = str(Path(__file__).parents[1] / "helpers")  # cbkit's callbacks, named by import path
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([helpers, os.environ.get("PYTHONPATH", "")]))


def _launch(data, run: Path, *overrides: str, launcher: tuple[str, ...] = ()) -> list[str]:
    cmd = torchrun_cmd(data, run, *OVER, *overrides)
    at = cmd.index("torch.distributed.run") + 1
    return cmd[:at] + list(launcher) + cmd[at:]


def _run(cmd: list[str], timeout: int = 180) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=timeout)


def _rows(run: Path, event: str | None = None) -> list[dict]:
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if event is None or r.get("event") == event]


def _same_weights(a: Path, b: Path) -> bool:
    from pretrain.model.io import read_weights

    x, y = read_weights(a / "model.safetensors"), read_weights(b / "model.safetensors")
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def _fault(kind: str, step: int, rank: int = 1) -> list[str]:
    return [f'train.callbacks=["{FAULT}"]',
            f'train.callback_args={{"{FAULT}" = {{kind = "{kind}", step = {step}, rank = {rank}}}}}']


@pytest.mark.slow
def test_kill_9_of_one_rank_restarts_once_to_the_same_weights(tiny_data, tmp_path):
    restarts = ("--max-restarts", "2")
    ref = _run(_launch(tiny_data, tmp_path / "ref", "train.max_steps=8", launcher=restarts))
    assert ref.returncode == 0, ref.stderr[-3000:]
    proc = _run(_launch(tiny_data, tmp_path / "run", "train.max_steps=8", *_fault("kill", 5), launcher=restarts))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.count("failed (exitcode") == 1  # one restart attempt per fault: no rendezvous failure
    assert "Traceback" not in "\n".join(x for x in proc.stderr.splitlines() if x.startswith("[rank"))
    (restart,) = _rows(tmp_path / "run", "restart")
    assert restart["attempt"] == 1 and restart["resumed_step"] == 4 and restart["steps_lost"] == 1
    assert _same_weights(tmp_path / "ref" / "checkpoints" / "final", tmp_path / "run" / "checkpoints" / "final")
    (good,) = _rows(tmp_path / "run", "goodput")
    assert good["launches"] == 2 and good["recomputed_s"] > 0


@pytest.mark.slow
def test_a_hung_rank_is_dumped_and_the_restarted_job_finishes(tiny_data, tmp_path):
    run = tmp_path / "run"
    t0 = time.time()
    proc = _run(_launch(tiny_data, run, "train.max_steps=6", "train.watchdog_timeout=3", *_fault("hang", 3),
                        launcher=("--max-restarts", "1")))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert time.time() - t0 < 120  # not gloo's 30-minute collective timeout
    dump = (run / "watchdog" / "rank1-attempt0.txt").read_text()
    assert dump.startswith("rank 1, attempt 0: no progress") and "phase 'data'" in dump and "faults.py" in dump
    hangs = {r["rank"]: r for r in _rows(run, "hang")}
    assert hangs[1]["phase"] == "data" and hangs[1]["step"] == 3 and hangs[1]["attempt"] == 0
    assert "error: rank 1 made no progress" in proc.stderr and "exitcode: 76" in proc.stderr
    assert (run / "checkpoints" / "final").is_dir() and _rows(run, "restart")[0]["attempt"] == 1


@pytest.mark.slow
def test_sigterm_to_the_launcher_saves_the_step_in_flight(tiny_data, tmp_path):
    """The ranks agree on the step to stop at; the checkpoint of it resumes (here in one process)."""
    from pretrain.train import checkpoint as ckpt
    from pretrain.train import train

    run = tmp_path / "run"
    slow = ['train.callbacks=["cbkit:SlowStart"]', 'train.callback_args={"cbkit:SlowStart" = {until = 1000, delay_s = 0.1}}']
    job = subprocess.Popen(_launch(tiny_data, run, "train.max_steps=40", "train.checkpoint_interval=100", *slow),
                           env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 90
    while time.time() < deadline and '"type": "train"' not in ((run / "metrics.jsonl").read_text()
                                                                if (run / "metrics.jsonl").exists() else ""):
        time.sleep(0.1)
    job.send_signal(signal.SIGTERM)
    _, err = job.communicate(timeout=60)
    (event,) = _rows(run, "preempted")
    step = event["stop_step"]
    assert event["signal"] == "SIGTERM" and 1 <= step < 40, err[-2000:]
    path = run / "checkpoints" / f"step_{step:08d}"
    ckpt.verify(path)
    assert len(list((path / "dcp").glob("*.distcp"))) >= 1 and "preempted: checkpoint of step" in err
    assert "Traceback" not in "\n".join(x for x in err.splitlines() if x.startswith("[rank"))
    cfg = tiny_cfg(tiny_data, *OVER, "train.max_steps=40", "train.checkpoint_interval=100")
    result = train(cfg, run, progress=False)
    assert result.step == 40 and f"from step_{step:08d}" in _rows(run, "resume")[-1]["detail"]


@pytest.mark.slow
def test_two_nodes_meet_through_c10d_train_and_resume(tiny_data, tmp_path):
    run = tmp_path / "run"

    def both_nodes() -> None:
        port = _free_port()
        launcher = ("--nnodes", "2", "--nproc_per_node", "1", "--rdzv-backend", "c10d",
                    "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "two-nodes")
        cmd = _launch(tiny_data, run, "train.max_steps=6")
        at = cmd.index("--standalone")
        cmd[at:at + 3] = launcher  # in place of "--standalone --nproc_per_node 2"
        jobs = [subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                for _ in range(2)]
        for job in jobs:
            _, err = job.communicate(timeout=180)
            assert job.returncode == 0, err[-3000:]

    both_nodes()
    first = {r["step"]: r["loss"] for r in _rows(run) if r.get("type") == "train"}
    assert sorted(first) == [1, 2, 3, 4, 5, 6] and "world=2" in _rows(run, "start")[0]["detail"]
    shutil.rmtree(run / "checkpoints" / "step_00000006")
    shutil.rmtree(run / "checkpoints" / "final")
    both_nodes()
    assert "from step_00000004" in _rows(run, "resume")[-1]["detail"]
    again = {r["step"]: r["loss"] for r in _rows(run) if r.get("type") == "train"}
    assert again == pytest.approx(first, rel=1e-6)


@pytest.mark.slow
def test_a_save_that_fails_on_rank_0_only_is_met_by_every_rank_at_once(tiny_data, tmp_path):
    """Rank 0 alone cannot write its part of step 4's checkpoint (a full disk: a file-size limit on its
    process). Every rank learns it in the same collective: with "stop" both ranks stop at once with the
    one line (no rank left waiting for the watchdog); with "continue" both train on to the end."""
    from pretrain.train import checkpoint as ckpt

    run = tmp_path / "run"
    disk = ['train.callbacks=["cbkit:FullDiskOnRank0"]', 'train.callback_args={"cbkit:FullDiskOnRank0" = {step = 4}}',
            "train.max_steps=6", "train.watchdog_timeout=30"]
    t0 = time.time()
    proc = _run(_launch(tiny_data, run, *disk))
    assert proc.returncode != 0 and time.time() - t0 < 30, proc.stderr[-3000:]  # not the watchdog's 30 s
    # One message from each rank. Counted in the text, not by line: both ranks write stderr at the same
    # moment, and their two lines can arrive joined into one (seen in a CI run).
    said = proc.stderr.split("error: training stopped")[1:]
    assert len(said) == 2, proc.stderr[-3000:]
    assert all("step 4 could not be written" in x and "step_00000002 is still" in x for x in said)
    assert not _rows(run, "hang") and not (run / "watchdog").exists()
    assert [p.name for p in ckpt.list_checkpoints(run / "checkpoints")] == ["step_00000002"]

    proc = _run(_launch(tiny_data, run, *disk, 'train.on_save_error="continue"'))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [r["step"] for r in _rows(run, "save_failed")] == [4, 4]  # once per launch, logged by rank 0
    assert max(r["step"] for r in _rows(run) if r["type"] == "train") == 6 and (run / "checkpoints" / "final").is_dir()
    ckpt.verify(run / "checkpoints" / "step_00000006")
