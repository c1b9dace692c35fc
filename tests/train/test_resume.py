"""Exact resume: an interrupted and resumed run logs the same losses, bit for bit, as an uninterrupted one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import tiny_cfg
from pretrain.train import train


def _losses(run: Path) -> dict[int, float]:
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    out: dict[int, float] = {}
    for r in rows:
        if r["type"] == "train":
            assert r["step"] not in out, "a step was logged twice"
            out[r["step"]] = r["loss"]
    return out


def test_crash_then_resume_is_bit_exact(tiny_data, tmp_path, monkeypatch):
    from pretrain.data import loader as loader_mod

    over = ["train.max_steps=9", "train.checkpoint_interval=3"]
    cfg = tiny_cfg(tiny_data, *over)
    train(cfg, tmp_path / "ref", progress=False)
    ref = _losses(tmp_path / "ref")

    calls = {"n": 0}
    real = loader_mod.PackedLoader.next_batch

    def flaky(self):
        calls["n"] += 1
        if calls["n"] == 8:  # during step 8: the last checkpoint is step 6
            raise RuntimeError("simulated crash")
        return real(self)

    monkeypatch.setattr(loader_mod.PackedLoader, "next_batch", flaky)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(cfg, tmp_path / "run", progress=False)
    monkeypatch.setattr(loader_mod.PackedLoader, "next_batch", real)
    assert len(_losses(tmp_path / "run")) == 7
    res = train(cfg, tmp_path / "run", progress=False)
    assert res.step == 9
    assert _losses(tmp_path / "run") == ref  # exact equality, not approx
    events = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert any(e.get("event") == "resume" and "step_00000006" in e["detail"] for e in events)


def _callback_states(run: Path) -> dict:
    from pretrain.train import checkpoint as ckpt

    return ckpt.load_trainer_state(run / "checkpoints" / "final" / "trainer_state.pt")["callbacks"]


def _same(a, b) -> bool:
    import torch

    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if torch.is_tensor(a):
        return torch.equal(a, b)
    return a == b


@pytest.mark.slow
def test_kill_9_during_training_then_resume_is_bit_exact(tiny_data, tmp_path):
    """Losses and every callback's state (built-ins and a user callback from train.callbacks) come out of
    a run killed with SIGKILL and resumed exactly as from an uninterrupted run."""
    over = ["train.max_steps=40", "train.checkpoint_interval=4", 'train.callbacks=["cbkit:LossTally"]',
            "train.micro_batch=2", "train.global_batch=4"]  # accumulation: the GNS callback has state too
    cfg = tiny_cfg(tiny_data, *over)
    train(cfg, tmp_path / "ref", progress=False)
    ref = _losses(tmp_path / "ref")

    run = tmp_path / "run"
    args = [sys.executable, "-m", "pretrain.train", "tiny", *_cli_overrides(tiny_data, over), "--run-dir", str(run),
            "--no-progress"]
    here = str(Path(__file__).parents[1] / "helpers")  # cbkit.py, the user callback module
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([here, os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    metrics = run / "metrics.jsonl"
    deadline = time.time() + 120
    killed_at = None
    while time.time() < deadline and proc.poll() is None:
        if metrics.is_file():
            steps = [json.loads(x)["step"] for x in metrics.read_text().splitlines()
                     if x.endswith("}") and '"train"' in x]
            if steps and max(steps) >= 10:
                os.kill(proc.pid, signal.SIGKILL)
                killed_at = max(steps)
                break
        time.sleep(0.01)
    proc.wait(timeout=60)
    assert killed_at is not None and proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    assert not (run / "checkpoints" / "final").exists()
    subprocess.run(args, env=env, check=True, stdout=subprocess.DEVNULL, timeout=300)
    assert _losses(run) == ref
    ref_states, states = _callback_states(tmp_path / "ref"), _callback_states(run)
    assert "LossTally" in states and states["LossTally"]["steps"] == 40
    gns = states["NoiseScale"]
    assert gns["g2"] is not None and len(states["SpikeGuard"]["detector"]["loss"]) > 0
    for key in ref_states:
        assert _same(ref_states[key], states[key]), key


def _cli_overrides(data, over):
    cfg_args = [
        f'data.tokens="{data.tokens}"', f'tokenizer.path="{data.tokenizer}"',
        "model.dim=32", "model.n_layers=2", "model.n_heads=2", "model.n_kv_heads=1", "model.max_seq_len=32",
        "train.seq_len=32", "train.micro_batch=4", "train.warmup_steps=2", "train.log_interval=1",
        "train.peak_flops=1e11", "train.lr=3e-3", "eval.batch_size=8", "eval.max_docs_per_domain=4",
        "eval.max_tokens_per_domain=512",
    ]
    return cfg_args + list(over)
