"""DoReMi: the exponentiated-gradient update, and a tiny end-to-end run writing weights and a plot."""

from __future__ import annotations

import json

import pytest
import torch

from pretrain.config import resolve
from pretrain.data.doremi import DoReMiConfig, run_doremi, update_weights


def test_update_moves_weight_to_the_domain_with_excess_loss():
    alpha = torch.full((3,), 1 / 3)
    new = update_weights(alpha, torch.tensor([0.0, 1.0, 0.0]), eta=1.0, smoothing=1e-3)
    assert float(new.sum()) == pytest.approx(1.0)
    assert new[1] > alpha[1] and new[0] < alpha[0] and new[0] == pytest.approx(new[2])
    # smoothing keeps every domain at least c/k even under a huge excess elsewhere
    extreme = update_weights(alpha, torch.tensor([0.0, 100.0, 0.0]), eta=1.0, smoothing=0.03)
    assert float(extreme.min()) >= 0.01 - 1e-9


@pytest.mark.slow
def test_doremi_end_to_end_tiny(shards, tokenizer, tmp_path):
    tokens_dir = next(iter(shards.values())).dir.parent.parent
    cfg = resolve("tiny", ["model.dim=32", "model.n_layers=1", "model.n_heads=2", "model.n_kv_heads=1",
                           "train.seq_len=32", "train.micro_batch=8"])
    dcfg = DoReMiConfig(steps=6, lr=3e-3, seq_len=cfg.train.seq_len, micro_batch=cfg.train.micro_batch)
    result = run_doremi(cfg.model, tokens_dir, tmp_path / "doremi", dcfg, tokenizer=tokenizer, mixture=cfg.data.mixture)
    w = result["weights"]
    assert set(w) == set(shards) and sum(w.values()) == pytest.approx(1.0)
    assert len(result["trajectory"]) == 6 and all(len(a) == len(shards) for a in result["trajectory"])
    assert result["trajectory"][0] != [0.25] * 4  # the weights moved
    saved = json.loads((tmp_path / "doremi" / "weights.json").read_text())
    assert saved["weights"] == w
    assert (tmp_path / "doremi" / "weights.png").stat().st_size > 1000


def test_doremi_takes_the_train_fields_it_borrows_explicitly(tmp_path):
    """DoReMi gets the model section and explicit numbers, never the run config: a 0 left in lr, seq_len or
    micro_batch is a one-line error naming the field, before anything is read or written."""
    from pretrain.configlib import ConfigError
    from pretrain.model import ModelConfig

    with pytest.raises(ConfigError, match=r"doremi\.lr.*train\.lr") as exc:
        run_doremi(ModelConfig(), tmp_path / "tokens", tmp_path / "out", DoReMiConfig(seq_len=32, micro_batch=2))
    assert "\n" not in str(exc.value) and not (tmp_path / "out").exists()
