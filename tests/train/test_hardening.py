"""Regression tests for defects found by trying the trainer as a new user would (issue 15, item 6), and
verified checkpoints: checksums, finite weights, fallback to the previous good checkpoint."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from trainkit import make_trainer, toy_cfg
from typer.testing import CliRunner

from pretrain.configlib import ConfigError
from pretrain.train import checkpoint as ckpt


def _run_cli(*args):
    from pretrain.cli import app

    return CliRunner().invoke(app, list(args))


@pytest.mark.parametrize("override, field", [("train.lr=inf", "train.lr"), ("train.weight_decay=-5", "train.weight_decay"),
                                             ("train.adamw.eps=-1", "train.adamw.eps"), ('train.device="tpu"', "train.device"),
                                             ('train.optimizer="sgdx"', "train.optimizer")])
def test_bad_optimisation_values_are_refused_naming_the_field(override, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")) as exc:
        toy_cfg(override)
    assert "\n" not in str(exc.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without CUDA")
def test_cuda_without_cuda_fails_before_writing_config(tmp_path):
    from pretrain.train import train

    with pytest.raises(ValueError, match="train.device"):
        train(toy_cfg('train.device="cuda"'), tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "config.toml").exists()


def test_load_errors_are_one_line_naming_the_file(tmp_path):
    from safetensors.torch import save_file

    tr = make_trainer(toy_cfg("train.max_steps=2"), tmp_path / "run")
    (tmp_path / "bad.pt").write_bytes(b"not a pickle at all")
    with pytest.raises(ckpt.CheckpointError, match="bad.pt: not a readable trainer state") as exc:
        ckpt.load_trainer_state(tmp_path / "bad.pt")
    assert "\n" not in str(exc.value)
    d = tmp_path / "weights"
    d.mkdir()
    (d / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00garbage!")
    with pytest.raises(ckpt.CheckpointError, match="model.safetensors: not a readable safetensors file"):
        ckpt.load_model_weights(tr.raw, d)
    sd = {k: v.clone() for k, v in tr.raw.state_dict().items() if k != "lm_head.weight"}
    sd["norm.weight"] = torch.ones(7)
    save_file(sd, str(d / "model.safetensors"))
    with pytest.raises(ckpt.CheckpointError, match=r"tensor norm.weight has shape \(7,\), the model expects \(32,\)"):
        ckpt.load_model_weights(tr.raw, d)
    sd["norm.weight"] = torch.ones(32, dtype=torch.int64)
    save_file(sd, str(d / "model.safetensors"))
    with pytest.raises(ckpt.CheckpointError, match="norm.weight is torch.int64, the model expects torch.float32"):
        ckpt.load_model_weights(tr.raw, d)


def _losses(run):
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if r["type"] == "train"}


def test_flipped_byte_and_nan_weights_are_refused_and_resume_falls_back(tmp_path):
    over = ("train.max_steps=6", "train.checkpoint_interval=2", "train.keep_last=3")
    make_trainer(toy_cfg(*over), tmp_path / "ref").fit()
    ref = _losses(tmp_path / "ref")
    run = tmp_path / "run"
    make_trainer(toy_cfg(*over, "train.max_steps=4"), run).fit()  # checkpoints at steps 2 and 4
    cps = run / "checkpoints"
    # Flip one byte of step 4's model+optimizer shard: refused, naming the file.
    shard = next((cps / "step_00000004" / "dcp").glob("*.distcp"))
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0x01
    shard.write_bytes(bytes(data))
    with pytest.raises(ckpt.CheckpointError, match=f"{shard.name}: checksum mismatch"):
        ckpt.verify(cps / "step_00000004")
    tr = make_trainer(toy_cfg(*over), run)
    res = tr.fit()
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    rejected = [r for r in rows if r.get("event") == "checkpoint_rejected"]
    assert len(rejected) == 1 and "checksum mismatch" in rejected[0]["detail"]
    assert any(r.get("event") == "resume" and "step_00000002" in r["detail"] for r in rows)
    assert res.step == 6 and _losses(run) == ref  # fell back to step 2 and retrained steps 3-6 exactly

    # A checkpoint whose weights are NaN (valid checksums) is refused as well.
    nan_run = tmp_path / "nan"
    make_trainer(toy_cfg(*over, "train.max_steps=4"), nan_run).fit()
    tr = make_trainer(toy_cfg(*over), nan_run)
    with torch.no_grad():
        for p in tr.raw.parameters():
            p.fill_(float("nan"))
    tr.save()  # step 0 is fine to write: it is the newest by mtime only, not by step
    target = nan_run / "checkpoints" / "step_00000005"
    (nan_run / "checkpoints" / "step_00000000").rename(target)
    meta = json.loads((target / "meta.json").read_text())
    (target / "meta.json").write_text(json.dumps(dict(meta, step=5)))
    tr2 = make_trainer(toy_cfg(*over), nan_run)
    tr2.begin()
    rows = [json.loads(x) for x in (nan_run / "metrics.jsonl").read_text().splitlines()]
    assert any(r.get("event") == "checkpoint_rejected" and "NaN or Inf" in r["detail"] for r in rows)
    assert tr2.step == 4 and all(torch.isfinite(p).all() for p in tr2.raw.parameters())


def test_a_run_directory_is_locked_by_its_trainer(tmp_path):
    from pretrain.train.lock import RunLock, RunLockedError

    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; sys.path.insert(0, sys.argv[1]); from pretrain.train.lock import RunLock; "
        "RunLock(sys.argv[2]).acquire(); print('held', flush=True); time.sleep(60)"),
        os.path.join(os.getcwd(), "src") if os.path.isdir("src") else "", str(run)],
        stdout=subprocess.PIPE, env=dict(os.environ))
    try:
        assert holder.stdout.readline().strip() == b"held"
        with pytest.raises(RunLockedError) as exc:
            make_trainer(toy_cfg("train.max_steps=2"), run).fit()
        msg = str(exc.value)
        assert str(run) in msg and f"pid {holder.pid}" in msg and "\n" not in msg
        assert not (run / "checkpoints").exists()  # it stopped before touching the run
    finally:
        os.kill(holder.pid, signal.SIGKILL)  # a killed holder: its lock is taken over
        holder.wait(timeout=30)
    time.sleep(0.05)
    res = make_trainer(toy_cfg("train.max_steps=2"), run).fit()
    assert res.step == 2
    with RunLock(run):  # released when the trainer finished
        pass


def test_async_save_writes_the_state_of_its_step_while_training_goes_on(tmp_path):
    """train.async_save: the checkpoint holds the state at its step (copied before training moved on),
    becomes valid once written, and resumes exactly like a synchronous one."""
    import shutil

    over = ("train.max_steps=6", "train.checkpoint_interval=2", "train.keep_last=3")
    make_trainer(toy_cfg(*over), tmp_path / "sync").fit()
    ref = _losses(tmp_path / "sync")
    run = tmp_path / "async"
    tr = make_trainer(toy_cfg(*over, "train.async_save=true"), run)
    tr.fit()
    assert _losses(run) == ref
    cps = run / "checkpoints"
    assert [p.name for p in ckpt.list_checkpoints(cps)] == ["step_00000002", "step_00000004", "step_00000006"]
    for p in ckpt.list_checkpoints(cps):
        ckpt.verify(p)
    assert not list(cps.glob(".tmp-*"))
    shutil.rmtree(cps / "step_00000006")
    shutil.rmtree(cps / "final")
    make_trainer(toy_cfg(*over, "train.async_save=true"), run).fit()
    assert _losses(run) == ref  # steps 5-6 retrained from the background-written step 4


def test_dcp_state_of_another_model_is_one_line_naming_the_directory(tmp_path):
    tr = make_trainer(toy_cfg("train.max_steps=2"), tmp_path / "a")
    tr.fit()
    other = make_trainer(toy_cfg("train.max_steps=2", "model.dim=64"), tmp_path / "b")
    step = ckpt.latest_checkpoint(tmp_path / "a" / "checkpoints")
    with pytest.raises(ValueError, match="dcp: does not fit this model and optimizer") as exc:
        other.parallel.load(other.raw, other.opt.optimizers, step)
    assert "\n" not in str(exc.value) and str(step) in str(exc.value)


def test_a_checkpoint_from_before_dcp_and_callbacks_still_resumes_exactly(tmp_path):
    """The earlier layout: optimizer state in trainer_state.pt, no dcp/, callback fields at the top level."""
    import shutil

    over = ("train.max_steps=6", "train.checkpoint_interval=2", "train.gns=false", 'train.schedule="constant"')
    make_trainer(toy_cfg(*over), tmp_path / "ref").fit()
    run = tmp_path / "old"
    tr = make_trainer(toy_cfg(*over, "train.max_steps=4"), run)
    tr.fit()
    path = run / "checkpoints" / "step_00000004"
    state = ckpt.load_trainer_state(path / "trainer_state.pt")
    spike = state.pop("callbacks")["SpikeGuard"]
    state.update(optimizer=tr.opt.state_dict(), detector=spike["detector"], skip_steps=[], rewinds=0)
    ckpt.save_trainer_state(state, path / "trainer_state.pt")
    shutil.rmtree(path / "dcp")
    meta = json.loads((path / "meta.json").read_text())
    files = {k: v for k, v in meta["files"].items() if not k.startswith("dcp/")}
    files["trainer_state.pt"] = (path / "trainer_state.pt").stat().st_size
    meta = {k: v for k, v in meta.items() if k != "sha256"}  # old manifests had sizes only
    (path / "meta.json").write_text(json.dumps(dict(meta, files=files)))
    shutil.rmtree(run / "checkpoints" / "final")
    make_trainer(toy_cfg(*over), run).fit()
    assert _losses(run) == _losses(tmp_path / "ref")


def test_a_checkpoint_without_dcp_is_refused_in_one_line(tmp_path):
    """The first week's format (weights and optimizer outside dcp/) is no longer read: resuming from it
    is a one-line CheckpointError naming the directory, not a traceback from deep inside DCP."""
    from pretrain.train import snapshot

    cfg = toy_cfg("train.max_steps=2")
    make_trainer(cfg, tmp_path / "run").fit()
    path = ckpt.list_checkpoints(tmp_path / "run" / "checkpoints")[-1]
    shutil.rmtree(path / "dcp")
    meta = json.loads((path / "meta.json").read_text())
    meta["sha256"] = {k: v for k, v in meta["sha256"].items() if not k.startswith("dcp/")}
    (path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ckpt.CheckpointError, match="no dcp/ folder") as exc:
        snapshot.load(make_trainer(cfg, tmp_path / "run").ckpt, path)
    assert str(exc.value).startswith(str(path)) and "\n" not in str(exc.value)
