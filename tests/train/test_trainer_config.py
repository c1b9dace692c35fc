"""The Trainer takes its own config (the TrainConfig) plus what the composition root hands it explicitly
(pretrain.train.api.build_trainer: the evaluation cadence and a RunRecord); checkpoints still record the
run config byte for byte as pretrain.config.save writes it, and the mixture in meta.json."""

from __future__ import annotations

import json

import pytest
from trainkit import make_trainer, toy_cfg

from pretrain import configlib
from pretrain.config import save
from pretrain.train import checkpoint as ckpt
from pretrain.train.callbacks import Callback


def test_checkpoints_record_the_run_config_the_trainer_never_sees(tmp_path):
    cfg = toy_cfg("train.max_steps=2", "train.checkpoint_interval=1", "data.mixture.weights={even=2.0, odd=1.0}")
    seen: dict = {}

    class Peek(Callback):
        def on_train_start(self, ctx) -> None:
            seen.update(config=ctx.run_config, tokens=ctx.tokens_dir)

    tr = make_trainer(cfg, tmp_path / "run", callbacks=[Peek()])
    assert tr.t is cfg.train and not hasattr(tr, "cfg")
    tr.fit()
    save(cfg, tmp_path / "expected.toml")
    expected = (tmp_path / "expected.toml").read_bytes()
    root = tmp_path / "run" / "checkpoints"
    written = ckpt.list_checkpoints(root) + [root / "final"]
    assert len(written) == 3
    for path in written:
        assert (path / "config.toml").read_bytes() == expected
        meta = json.loads((path / "meta.json").read_text())
        assert meta["mixture"] == configlib.to_dict(cfg.data.mixture)
        assert meta["mixture"]["weights"] == {"even": 2.0, "odd": 1.0}
    assert seen == {"config": configlib.to_dict(cfg), "tokens": None}


def test_a_trainer_handed_the_run_config_says_what_to_call_instead(tmp_path):
    from pretrain.model import Transformer
    from pretrain.train.trainer import Trainer

    cfg = toy_cfg()
    with pytest.raises(TypeError, match=r"takes the train config .*build_trainer") as exc:
        Trainer(cfg, tmp_path / "run", Transformer(cfg.model), lambda stage: None)
    assert "\n" not in str(exc.value) and "RunConfig" in str(exc.value)
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_a_callback_reading_trainer_cfg_is_told_the_new_name(tmp_path):
    class Old(Callback):
        def on_train_start(self, ctx) -> None:
            ctx.cfg  # noqa: B018 - the attribute read is the test

    with pytest.raises(AttributeError, match="'cfg': use run_config"):
        make_trainer(toy_cfg("train.max_steps=1"), tmp_path / "run", callbacks=[Old()]).fit()


def test_a_callback_reading_run_config_by_attribute_still_works_and_is_told_once(tmp_path):
    from pretrain.train.context import ConfigDict

    ConfigDict.told = False  # once per process: start this test from "not yet told"
    dims = []

    class Old(Callback):
        def on_step_end(self, ctx, step, metrics) -> None:
            dims.append(ctx.run_config.model.dim)  # the RunConfig way

    with pytest.warns(FutureWarning, match=r"use run_config\['model'\]") as caught:
        make_trainer(toy_cfg("train.max_steps=2"), tmp_path / "run", callbacks=[Old()]).fit()
    assert dims == [32, 32]
    assert sum("run_config" in str(w.message) for w in caught) == 1
