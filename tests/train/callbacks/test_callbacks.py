"""The loop's extension point: user callbacks by import path, metrics without a whitelist, bad specs."""

from __future__ import annotations

import json

import pytest
from trainkit import make_trainer, toy_cfg

from pretrain.configlib import ConfigError


def _rows(run):
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def test_user_callback_from_config_reaches_metrics_jsonl(tmp_path):
    cfg = toy_cfg("train.max_steps=6", "train.log_interval=2", 'train.callbacks=["cbkit:LossTally"]',
                  'train.callback_args={"cbkit:LossTally" = {prefix = "mine", scale = 2.0}}')
    tr = make_trainer(cfg, tmp_path)
    tr.fit()
    train = [r for r in _rows(tmp_path) if r["type"] == "train"]
    assert [r["step"] for r in train] == [2, 4, 6]
    assert [r["mine/steps"] for r in train] == [2, 4, 6]  # the key the callback added is in each logged row
    assert train[-1]["mine/loss_sum"] == pytest.approx(2.0 * sum(r["loss"] for r in train))
    # The callback's state went into the checkpoint.
    from pretrain.train import checkpoint as ckpt

    state = ckpt.load_trainer_state(tmp_path / "checkpoints" / "final" / "trainer_state.pt")
    assert state["callbacks"]["LossTally"]["steps"] == 6  # keyed by class name: survives a move


def test_callback_object_metrics_reach_tensorboard_scalars_too(tmp_path):
    from pretrain.train import Callback

    class Probe(Callback):
        def on_step_end(self, trainer, step, metrics):
            metrics["probe/custom"] = step * 10.0

    tr = make_trainer(toy_cfg("train.max_steps=3"), tmp_path, callbacks=[Probe()])
    tr.fit()
    train = [r for r in _rows(tmp_path) if r["type"] == "train"]
    assert [r["probe/custom"] for r in train] == [10.0, 20.0, 30.0]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tmp_path / "tensorboard"))
    acc.Reload()
    assert [e.value for e in acc.Scalars("train/probe/custom")] == [10.0, 20.0, 30.0]


@pytest.mark.parametrize("spec, field", [("nomodule_xyz:Cls", "train.callbacks"), ("cbkit", "train.callbacks"),
                                         ("cbkit:Missing", "train.callbacks")])
def test_bad_callback_specs_name_the_field(tmp_path, spec, field):
    with pytest.raises(ConfigError, match=field):
        make_trainer(toy_cfg(f'train.callbacks=["{spec}"]'), tmp_path)


def test_bad_callback_kwargs_name_the_callback(tmp_path):
    cfg = toy_cfg('train.callbacks=["cbkit:LossTally"]', 'train.callback_args={"cbkit:LossTally" = {nope = 1}}')
    with pytest.raises(ConfigError, match="callback_args.cbkit:LossTally"):
        make_trainer(cfg, tmp_path)


def test_model_metrics_stay_on_the_device_until_a_logged_step_reads_them(tmp_path):
    """MoE balance and MTP losses are device scalars in the step's metrics (reading them per micro-batch
    would be a host sync each); the logged rows hold them as numbers."""
    from pretrain.train import Callback

    seen = {}

    class Peek(Callback):
        def on_step_end(self, trainer, step, metrics):
            seen[step] = {k: type(metrics[k]).__name__ for k in ("moe/max_violation", "mtp/loss_1")}

    cfg = toy_cfg("train.max_steps=4", "train.log_interval=2", "model.moe.n_experts=4", "model.moe.top_k=2",
                  "model.mtp.depth=1")
    make_trainer(cfg, tmp_path, callbacks=[Peek()]).fit()
    assert seen[1] == {"moe/max_violation": "Tensor", "mtp/loss_1": "Tensor"}  # not read back: no sync
    assert seen[2] == {"moe/max_violation": "float", "mtp/loss_1": "float"}  # read on the logged step
    train = [r for r in _rows(tmp_path) if r["type"] == "train"]
    assert [r["step"] for r in train] == [2, 4]
    for r in train:
        assert r["moe/max_violation"] >= 0 and r["moe/max_violation_worst"] >= r["moe/max_violation"]
        assert 0 < r["mtp/loss_1"] < 10 and r["aux_loss"] >= 0
