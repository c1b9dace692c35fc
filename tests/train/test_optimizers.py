"""Optimizers as registered configs: [train.adamw] / [train.muon] sections (the old flat keys still read),
parameter groups from the optimizer's config, and optimizers defined outside the package."""

from __future__ import annotations

import json

import pytest
import torch
from optkit import SignMomentum
from trainkit import make_trainer, toy_cfg

from pretrain.configlib import ConfigError
from pretrain.train.optim import AdamWConfig, MuonConfig, OptimizerConfig, param_groups


def _losses(run):
    return [json.loads(x)["loss"] for x in (run / "metrics.jsonl").read_text().splitlines() if '"train"' in x]


def test_an_optimizer_class_from_outside_the_package_trains_by_import_path(tmp_path):
    cfg = toy_cfg('train.optimizer="optkit:SignMomentum"', 'train.optimizer_args={lr = 0.003, momentum = 0.8}',
                  "train.max_steps=12", "train.embed_lr=0.01")
    tr = make_trainer(cfg, tmp_path)
    res = tr.fit()
    (opt,) = tr.opt.optimizers
    assert isinstance(opt, SignMomentum) and opt.defaults["momentum"] == 0.8
    peaks = {g["name"]: g["peak_lr"] for g in opt.param_groups}
    assert peaks == {"decay": 0.003, "no_decay": 0.003, "embed": 0.01}  # the AdamW groups, LR from its args
    assert {g["name"]: g["weight_decay"] for g in opt.param_groups}["decay"] == cfg.train.weight_decay
    losses = _losses(tmp_path)
    assert len(losses) == 12 and losses[-1] < losses[0] - 0.3 and res.step == 12


def test_a_config_registered_outside_the_package_takes_its_fields_from_optimizer_args(tmp_path):
    cfg = toy_cfg('train.optimizer="sign_momentum"', "train.optimizer_args={momentum = 0.5}", "train.max_steps=3",
                  "train.lr=0.003")
    assert type(cfg.train.optimizer_config()).__name__ == "SignMomentumConfig"
    tr = make_trainer(cfg, tmp_path)
    tr.fit()
    assert tr.opt.optimizers[0].defaults["momentum"] == 0.5
    with pytest.raises(ConfigError, match=r"train\.optimizer_args\.nope"):
        make_trainer(toy_cfg('train.optimizer="sign_momentum"', "train.optimizer_args={nope = 1}"), tmp_path / "x")


@pytest.mark.parametrize("override, field", [
    ('train.optimizer="nomodule_xyz:Opt"', "train.optimizer"), ('train.optimizer="optkit:Missing"', "train.optimizer"),
    ('train.optimizer="optkit:SignMomentumConfig"', "train.optimizer"),
    ("train.optimizer_args={nope = 1}", "train.optimizer_args")])
def test_bad_optimizer_specs_are_one_line_naming_the_field(tmp_path, override, field):
    cfg_over = [override] if "optimizer=" in override else ['train.optimizer="optkit:SignMomentum"', override]
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")) as exc:
        make_trainer(toy_cfg(*cfg_over), tmp_path)
    assert "\n" not in str(exc.value)


def test_sections_hold_each_optimizers_fields_and_old_flat_keys_still_read(capsys):
    cfg = toy_cfg('train.optimizer="muon"', "train.muon_lr=0.03", "train.beta2=0.9", "train.muon.ns_steps=4")
    assert cfg.train.muon == MuonConfig(lr=0.03, ns_steps=4) and cfg.train.adamw == AdamWConfig(beta2=0.9)
    assert "'train.muon_lr' is now 'train.muon.lr'" in capsys.readouterr().err
    with pytest.raises(ConfigError, match=r"train\.optimizer_args"):
        toy_cfg('train.optimizer="muon"', "train.optimizer_args={lr = 0.1}")  # muon's fields live in [train.muon]
    assert set(OptimizerConfig.registry) >= {"adamw", "muon"}


def test_parameter_groups_come_from_the_optimizers_config():
    from pretrain.model import Transformer

    model = Transformer(toy_cfg().model)
    adam = param_groups(model, toy_cfg().train)
    muon = param_groups(model, toy_cfg('train.optimizer="muon"').train)
    assert "muon" not in adam and muon["muon"]
    block_matrices = {n for n, p in model.named_parameters() if p.ndim == 2 and n.startswith("layers.")}
    assert {n for n, _ in muon["muon"]} == block_matrices
    assert {n for n, _ in adam["decay"]} >= block_matrices
    assert all(torch.is_tensor(p) for _, p in muon["no_decay"])


@pytest.mark.slow
def test_pretrain_train_cli_trains_with_an_optimizer_by_import_path_and_resumes_it(tiny_data, tmp_path):
    """`pretrain train ... train.optimizer=optkit:SignMomentum`: the user's class trains from the command
    line, its state goes into the checkpoint, and a longer second run resumes it."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    over = [f'data.tokens="{tiny_data.tokens}"', f'tokenizer.path="{tiny_data.tokenizer}"', "model.dim=32",
            "model.n_layers=2", "model.n_heads=2", "model.n_kv_heads=1", "model.max_seq_len=32", "train.seq_len=32",
            "train.micro_batch=4", "train.warmup_steps=2", "train.log_interval=1", "train.peak_flops=1e11",
            "eval.batch_size=8", "eval.max_docs_per_domain=4", "eval.max_tokens_per_domain=512",
            "train.optimizer=optkit:SignMomentum", "train.optimizer_args={lr = 0.003, momentum = 0.8}"]
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(Path(__file__).parents[1] / "helpers"), os.environ.get("PYTHONPATH", "")]))
    run = tmp_path / "run"
    for steps in (4, 8):
        subprocess.run([sys.executable, "-m", "pretrain.train", "tiny", *over, f"train.max_steps={steps}",
                        "--run-dir", str(run), "--no-progress"], env=env, check=True, timeout=300,
                       stdout=subprocess.DEVNULL)
    losses = _losses(run)
    assert len(losses) == 8 and losses[-1] < losses[0]
    events = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if '"event"' in x]
    assert any(e["event"] == "resume" for e in events)
    bad = subprocess.run([sys.executable, "-m", "pretrain.train", "tiny", *over, "train.optimizer=optkit:Nope",
                          "--run-dir", str(tmp_path / "bad"), "--no-progress"], env=env, capture_output=True,
                         text=True, timeout=300)
    assert bad.returncode == 2 and "train.optimizer" in bad.stderr and "Traceback" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1, bad.stderr
