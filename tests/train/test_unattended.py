"""Runs that finish without a human, in one process: preemption by signal (a checkpoint of the step in
flight, the event, the exit status, a second signal ignored, the rerun bit-exact), goodput parts that
add up to the wall time, failed saves (a file-size limit) and restarts without a valid checkpoint."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from trainkit import make_trainer, toy_cfg

from conftest import tiny_cfg

FAULT = "pretrain.train.callbacks.faults:InjectFault"


def _rows(run: Path, kind: str | None = None) -> list[dict]:
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if kind is None or r.get("event") == kind or r.get("type") == kind]


def _weights(path: Path) -> dict[str, torch.Tensor]:
    from pretrain.model.io import read_weights

    return read_weights(path / "model.safetensors")


def _cli(data, run: Path, *overrides: str, preexec=None) -> subprocess.CompletedProcess:
    base = [f'data.tokens="{data.tokens}"', f'tokenizer.path="{data.tokenizer}"', "model.dim=32", "model.n_layers=2",
            "model.n_heads=2", "model.n_kv_heads=1", "model.max_seq_len=32", "train.seq_len=32",
            "train.micro_batch=4", "train.warmup_steps=2", "train.log_interval=1", "train.peak_flops=1e11",
            "eval.batch_size=8", "eval.max_docs_per_domain=4", "eval.max_tokens_per_domain=512"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "pretrain.train", "tiny", *base, *overrides, "--run-dir", str(run),
                           "--no-progress"], env=env, capture_output=True, text=True, timeout=120, preexec_fn=preexec)


def _fault(kind: str, step: int) -> list[str]:
    return [f'train.callbacks=["{FAULT}"]', f'train.callback_args={{"{FAULT}" = {{kind = "{kind}", step = {step}}}}}']


def test_sigterm_saves_the_step_in_flight_and_exits_75(tiny_data, tmp_path):
    """The CLI, signalled during step 3: a checkpoint of step 3, a preempted event, status 75, one line."""
    from pretrain.train import checkpoint as ckpt

    run = tmp_path / "run"
    proc = _cli(tiny_data, run, "train.max_steps=8", "train.checkpoint_interval=5", *_fault("term", 3))
    assert proc.returncode == 75, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "preempted: checkpoint of step 3" in proc.stderr
    step3 = run / "checkpoints" / "step_00000003"
    ckpt.verify(step3)
    assert not (run / "checkpoints" / "final").exists()  # the run is not over
    (event,) = _rows(run, "preempted")
    assert event["signal"] == "SIGTERM" and event["step"] == 3 and event["stop_step"] == 3


def test_second_signal_during_the_save_and_the_rerun_is_bit_exact(tmp_path):
    """SIGTERM at step 3 and again inside the save: one valid checkpoint of step 3; resuming from it
    gives the final weights of a run that was never stopped."""
    from pretrain.train import checkpoint as ckpt

    cfg = toy_cfg("train.max_steps=6", 'train.callbacks=["cbkit:SignalTwice"]')
    plain = toy_cfg("train.max_steps=6")
    make_trainer(plain, tmp_path / "ref").fit()
    before = signal.getsignal(signal.SIGTERM)  # not always SIG_DFL: ray.init (earlier tests) installs its own
    stopped = make_trainer(cfg, tmp_path / "run").fit()
    assert stopped.stopped == "preempted" and stopped.step == 3
    assert signal.getsignal(signal.SIGTERM) is before  # the handler in place before the loop is back
    ckpt.verify(tmp_path / "run" / "checkpoints" / "step_00000003")
    (event,) = _rows(tmp_path / "run", "preempted")
    assert event["signals_received"] == 2
    done = make_trainer(cfg, tmp_path / "run").fit()  # SignalTwice fires at step 3 only, which is behind it
    assert done.stopped == "done" and done.step == 6
    ref, got = _weights(tmp_path / "ref" / "checkpoints" / "final"), _weights(tmp_path / "run" / "checkpoints" / "final")
    assert ref.keys() == got.keys() and all(torch.equal(ref[k], got[k]) for k in ref)
    resumed = [r for r in _rows(tmp_path / "run", "resume")]
    assert resumed and "step_00000003" in resumed[-1]["detail"]


def test_goodput_parts_add_up_to_the_wall_time(tiny_data, tmp_path):
    from pretrain.train import train

    cfg = tiny_cfg(tiny_data, "train.checkpoint_interval=4", "eval.interval=6")
    t0 = time.time()
    train(cfg, tmp_path / "run", progress=False, started_at=t0)
    wall = time.time() - t0
    (event,) = _rows(tmp_path / "run", "goodput")
    parts = {k: v for k, v in event.items() if k.endswith("_s") and k != "wall_s"}
    assert sum(parts.values()) == pytest.approx(event["wall_s"], abs=0.01)
    assert event["wall_s"] == pytest.approx(wall, rel=0.02)
    assert parts["productive_s"] > 0 and parts["checkpoint_save_s"] > 0 and parts["evaluation_s"] > 0
    assert parts["recomputed_s"] == 0 and parts["lost_s"] == 0
    # what Young's checkpoint interval needs (pretrain.train.cadence): saves at 4, 8, 12 and final/
    assert event["steps"] == 12 and event["saves"] == 4
    assert event["goodput"] == pytest.approx(parts["productive_s"] / event["wall_s"], abs=0.01)  # parts are rounded
    logged = [r["goodput"] for r in _rows(tmp_path / "run", "train")]
    assert len(logged) == 12 and all(0 < g <= 1 for g in logged)
    from pretrain.report import build_report

    html = build_report(tmp_path / "run").read_text()
    assert "Where the time went" in html and "steps recomputed after a restart" in html


def _file_limit(nbytes: int):
    def apply():  # in the child: writes past the limit fail with EFBIG instead of killing it
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))
    return apply


def test_a_save_that_fails_keeps_the_previous_checkpoint(tiny_data, tmp_path):
    """Steps 1-4 saved; then a 64 KB file-size limit (the disk is full): the save at step 6 fails, stop
    says so in one line and step 4 stays valid; continue trains on to the end."""
    from pretrain.train import checkpoint as ckpt

    run = tmp_path / "run"
    steps = ["train.max_steps=8", "train.checkpoint_interval=2"]
    assert _cli(tiny_data, run, *steps, *_fault("term", 4)).returncode == 75
    proc = _cli(tiny_data, run, *steps, preexec=_file_limit(64 * 1024))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    line = [x for x in proc.stderr.splitlines() if x.startswith("error:")]
    assert len(line) == 1 and "step 6 could not be written" in line[0] and "step_00000004 is still" in line[0]
    assert [p.name for p in ckpt.list_checkpoints(run / "checkpoints")] == ["step_00000002", "step_00000004"]
    ckpt.verify(run / "checkpoints" / "step_00000004")
    assert not list((run / "checkpoints").glob(".tmp-*"))
    proc = _cli(tiny_data, run, *steps, "train.on_save_error=\"continue\"", preexec=_file_limit(64 * 1024))
    assert "Traceback" not in proc.stderr and "training goes on" in proc.stderr, proc.stderr[-3000:]
    assert max(r["step"] for r in _rows(run, "train")) == 8  # trained on past the failed saves
    assert {r["step"] for r in _rows(run, "save_failed")} >= {6, 8}


def test_a_restart_without_a_valid_checkpoint_starts_over_and_says_why(tmp_path, capsys):
    cfg = toy_cfg("train.max_steps=4")
    make_trainer(cfg, tmp_path / "run").fit()
    root = tmp_path / "run" / "checkpoints"
    for p in root.iterdir():  # every checkpoint lost; one save was cut off half-way
        p.rename(root / f".tmp-{p.name}")
    capsys.readouterr()
    result = make_trainer(cfg, tmp_path / "run").fit()
    err = capsys.readouterr().err
    assert result.step == 4 and "no valid checkpoint" in err and "starting from step 0" in err
    (event,) = _rows(tmp_path / "run", "start_over")
    assert "unfinished save" in event["detail"]
    assert [r["step"] for r in _rows(tmp_path / "run", "train")] == [1, 2, 3, 4]


@pytest.mark.parametrize("override, field", [('train.preempt_signals=["SIGKILL"]', "train.preempt_signals"),
                                             ('train.preempt_signals=["SIGNOPE"]', "train.preempt_signals"),
                                             ("train.watchdog_timeout=-5", "train.watchdog_timeout"),
                                             ("train.watchdog_slow_timeout=-2", "train.watchdog_slow_timeout"),
                                             ('train.on_save_error="maybe"', "train.on_save_error")])
def test_bad_unattended_settings_name_their_field(override, field):
    from pretrain.configlib import ConfigError

    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        toy_cfg(override)
