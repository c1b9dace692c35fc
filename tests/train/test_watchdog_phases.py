"""The phase-aware watchdog: ordinary steps are timed by train.watchdog_timeout, the legitimately long
phases (a checkpoint, an evaluation, a launch's or stage's first step) by train.watchdog_slow_timeout;
and Young's checkpoint interval (pretrain.train.cadence)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pretrain.train import cadence
from pretrain.train import watchdog as wd

FAULT = "pretrain.train.callbacks.faults:InjectFault"


@pytest.fixture
def heart():
    yield
    wd.beat("startup", 0)  # the module's state outlives a test: leave it as a fresh process has it
    wd.slow_step(0)


def test_slow_timeout_resolves_against_the_step_timeout():
    assert wd.resolve_slow_timeout(-1, 2.0, "cpu") == wd.DEFAULT_TIMEOUT_S["cpu"]
    assert wd.resolve_slow_timeout(-1, 2.0, "cuda") == wd.DEFAULT_TIMEOUT_S["cuda"]
    assert wd.resolve_slow_timeout(-1, 4000.0, "cpu") == 4000.0  # never below the step timeout
    assert wd.resolve_slow_timeout(0, 2.0, "cpu") == 2.0 and wd.resolve_slow_timeout(1, 2.0, "cpu") == 2.0
    assert wd.resolve_slow_timeout(30, 2.0, "cpu") == 30.0
    assert wd.resolve_slow_timeout(30, 0.0, "cpu") == 0.0  # no watchdog
    assert wd.process_group_timeout(30.0) == 90.0


def test_each_phase_gets_its_timeout(tmp_path, heart):
    dog = wd.Watchdog(1.0, tmp_path, slow_timeout_s=50.0)
    wd.slow_step(11)  # a launch that resumed at step 10
    for phase in ("data", "forward/backward", "collective", "optimizer", "callbacks"):
        wd.beat(phase, 11)
        assert dog.limit() == 50.0, phase  # the launch's first step
    for phase in ("data", "forward/backward", "collective", "optimizer", "callbacks"):
        wd.beat(phase, 12)
        assert dog.limit() == 1.0, phase
    for phase in ("checkpoint", "evaluation", "startup"):
        wd.beat(phase, 12)
        assert dog.limit() == 50.0, phase
    assert wd.Watchdog(3.0, tmp_path).limit() == 3.0  # no slow timeout given: one timeout for every phase


def _train(data, run: Path, *overrides: str) -> subprocess.CompletedProcess:
    over = [f'data.tokens="{data.tokens}"', f'tokenizer.path="{data.tokenizer}"', "model.dim=32", "model.n_layers=2",
            "model.n_heads=2", "model.n_kv_heads=1", "model.max_seq_len=32", "train.seq_len=32", "train.micro_batch=4",
            "train.max_steps=4", "train.log_interval=1", "train.peak_flops=1e11", "eval.interval=0",
            "train.watchdog_timeout=1", *overrides]
    return subprocess.run([sys.executable, "-m", "pretrain.train", "tiny", *over, "--run-dir", str(run), "--no-progress"],
                          env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True, timeout=120)


def _stall(step: int, seconds: float) -> list[str]:
    return [f'train.callbacks=["{FAULT}"]',
            f'train.callback_args={{"{FAULT}" = {{kind = "hang", step = {step}, seconds = {seconds}}}}}']


def test_a_slow_first_step_is_not_a_hang_but_a_slow_later_step_is(tiny_data, tmp_path):
    """Both stall in phase "data" under a 1 s step timeout: the first step of the launch is timed by
    the slow timeout and the run finishes; step 3 is ended by the watchdog (status 76) after about 1 s."""
    slow_first = _train(tiny_data, tmp_path / "first", *_stall(1, 2.5), "train.watchdog_slow_timeout=10")
    assert slow_first.returncode == 0, slow_first.stderr[-2000:]
    assert not (tmp_path / "first" / "watchdog").exists()

    t0 = time.time()
    hung = _train(tiny_data, tmp_path / "later", *_stall(3, 60.0), "train.watchdog_slow_timeout=10")
    assert hung.returncode == wd.HANG_EXIT, hung.stderr[-2000:]
    assert time.time() - t0 < 30  # the step timeout, not the stall's 60 s or the slow timeout's 10 s
    rows = [json.loads(x) for x in (tmp_path / "later" / "metrics.jsonl").read_text().splitlines()]
    (hang,) = [r for r in rows if r.get("event") == "hang"]
    assert hang["phase"] == "data" and hang["step"] == 3 and hang["idle_s"] < 2.5
    dump = (tmp_path / "later" / "watchdog" / "rank0-attempt0.txt").read_text()
    assert "timeout 1s: train.watchdog_timeout=1, slow phases 10" in dump


def test_young_interval_minimises_the_expected_loss():
    save, mtbf = 0.046, 60.0
    tau = cadence.young_interval_s(save, mtbf)
    assert tau == pytest.approx(2.349, abs=1e-3)
    loss = [cadence.expected_loss_s(t, save, mtbf, 180.0) for t in (tau / 2, tau * 0.9, tau, tau * 1.1, tau * 2)]
    assert min(loss) == loss[2] and loss[0] == pytest.approx(1.25 * loss[2]) == loss[4]
    assert cadence.checkpoint_interval_steps(save, mtbf, 0.0168) == 140
    assert cadence.checkpoint_interval_steps(0.001, 1.0, 10.0) == 1  # never below one step
    with pytest.raises(ValueError, match="mtbf_s=0"):
        cadence.young_interval_s(save, 0.0)
    with pytest.raises(ValueError, match="step's seconds"):
        cadence.checkpoint_interval_steps(save, mtbf, 0.0)


def test_the_goodput_ledger_suggests_youngs_interval_from_its_own_measurements():
    from pretrain.train.goodput import Ledger

    ledger = Ledger(launches=3, saves=100, max_step=10_000)
    ledger.parts.update(productive=168.0, checkpoint_save=4.6, startup=7.4)  # 180 s over 2 failures: M = 90 s
    step_s, save_s = 168.0 / 10_000, 4.6 / 100
    assert ledger.young_interval_steps() == round((2 * save_s * 90.0) ** 0.5 / step_s) == 171
    assert ledger.summary()["young_interval_steps"] == 171
    assert Ledger(launches=1, saves=100, max_step=10_000).young_interval_steps() == 0  # never interrupted
