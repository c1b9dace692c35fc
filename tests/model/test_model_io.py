"""save_model / load_model round trips, checkpoint resolution, clear errors."""

from __future__ import annotations

import json

import pytest
import torch
from model_helpers import tiny_config

from pretrain.configlib import ConfigError
from pretrain.model import Transformer
from pretrain.model.config import MoEConfig, MTPConfig, RopeScalingConfig
from pretrain.model.io import load_model, resolve_checkpoint, save_model


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"tie_embeddings": False, "qk_norm": True, "rope_scaling": RopeScalingConfig(type="yarn", factor=2.0)},
        {"moe": MoEConfig(n_experts=4, top_k=2, n_shared=1), "mtp": MTPConfig(depth=1)},
    ],
)
def test_save_load_round_trip(tmp_path, overrides):
    model = Transformer(tiny_config(**overrides))
    for moe in model.moe_layers():
        moe.router_bias.uniform_(-1, 1)  # the aux-free bias is state that must survive
    save_model(model, tmp_path / "ckpt")
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["model.safetensors", "model_config.json"]
    loaded = load_model(tmp_path / "ckpt")
    assert loaded.cfg == model.cfg
    for (k, a), (k2, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(a, b), k
    if model.cfg.tie_embeddings:
        assert loaded.lm_head.weight is loaded.tok_emb.weight
    x = torch.randint(0, 96, (1, 8))
    torch.testing.assert_close(loaded(x).logits, model(x).logits)


def test_resolve_checkpoint_from_run_directory(tmp_path):
    model = Transformer(tiny_config())
    run = tmp_path / "run"
    save_model(model, run / "checkpoints" / "step_00000010")
    save_model(model, run / "checkpoints" / "step_00000020")
    assert resolve_checkpoint(run) == run / "checkpoints" / "step_00000020"
    save_model(model, run / "checkpoints" / "final")
    assert resolve_checkpoint(run) == run / "checkpoints" / "final"
    assert resolve_checkpoint(run / "checkpoints" / "step_00000010") == run / "checkpoints" / "step_00000010"
    assert isinstance(load_model(run), Transformer)


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_model(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no model"):
        load_model(tmp_path / "empty")
    save_model(Transformer(tiny_config()), tmp_path / "bad")
    cfg = json.loads((tmp_path / "bad" / "model_config.json").read_text())
    cfg["n_heads"] = 3
    (tmp_path / "bad" / "model_config.json").write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match="model.n_heads"):
        load_model(tmp_path / "bad")
    cfg["n_heads"] = 4
    cfg["dim"] = 64
    (tmp_path / "bad" / "model_config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="model.safetensors"):
        load_model(tmp_path / "bad")
