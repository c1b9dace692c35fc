"""The recipe's optimisation levers: Muon's orthogonalised update, AdamW groups for embeddings and the
output head at their own learning rates, and WSD's warm-down to a final LR fraction."""

from __future__ import annotations

import json

import pytest
import torch
from trainkit import make_trainer, toy_cfg

from pretrain.configlib import ConfigError
from pretrain.train.optim import Muon, build_optimizer, param_groups
from pretrain.train.schedule import LRSchedule


def test_muon_update_is_orthogonalised():
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.zeros(16, 32))
    w.grad = torch.randn(16, 32) @ torch.diag(torch.logspace(0, 3, 32))  # badly conditioned gradient
    opt = Muon([w], lr=1.0, momentum=0.0)
    opt.step()
    s = torch.linalg.svdvals(-w.detach())  # the step itself (lr 1, from zero)
    assert float(s.max() / s.min()) < 3.0  # near-equal singular values, the gradient's span 1e3
    assert 0.5 < float(s.mean()) < 1.3


def _lrs(cfg) -> dict[str, float]:
    from pretrain.model import Transformer

    return {g["name"]: g["lr"] for g in build_optimizer(Transformer(cfg.model), cfg.train).param_groups}


def test_embeddings_and_head_get_their_own_adamw_learning_rates():
    cfg = toy_cfg('train.optimizer="muon"', "model.tie_embeddings=false", 'model.value_embeddings="-V"',
                  "train.embed_lr=0.3", "train.head_lr=0.004", "train.muon.lr=0.02", "train.lr=0.01")
    from pretrain.model import Transformer

    groups = {k: {n for n, _ in v} for k, v in param_groups(Transformer(cfg.model), cfg.train).items()}
    assert groups["embed"] == {"tok_emb.weight", "layers.1.attn.value_embed.weight"}
    assert groups["head"] == {"lm_head.weight"}
    assert "layers.0.attn.wq.weight" in groups["muon"] and not groups["muon"] & (groups["embed"] | groups["head"])
    assert _lrs(cfg) == {"no_decay": 0.01, "embed": 0.3, "head": 0.004, "muon": 0.02}
    # Unset, the groups are as before: embeddings with the other undecayed weights at train.lr.
    assert set(_lrs(toy_cfg())) == {"decay", "no_decay"}
    # A tied head is the embedding: it takes embed_lr.
    tied = toy_cfg("train.embed_lr=0.2", "train.head_lr=0.5")
    assert _lrs(tied)["embed"] == 0.2 and "head" not in _lrs(tied)
    with pytest.raises(ConfigError, match="train.embed_lr"):
        toy_cfg("train.embed_lr=-1")


def test_wsd_warms_down_to_the_final_lr_fraction():
    s = LRSchedule(total=200, warmup=10, shape="wsd", min_ratio=0.05, decay_fraction=0.65)
    c = [s(i) for i in range(200)]
    start = 200 - round(0.65 * 190)
    assert all(v == 1.0 for v in c[10:start]) and c[start] < 1.0
    assert c[-1] == pytest.approx(0.05)  # the last update runs at the final fraction
    diffs = [a - b for a, b in zip(c[start:], c[start + 1:], strict=False)]
    assert max(diffs) - min(diffs) < 1e-12  # a straight line down


def test_a_trained_run_ends_at_the_final_lr_fraction(tmp_path):
    cfg = toy_cfg('train.schedule="wsd"', "train.min_lr_ratio=0.05", "train.decay_fraction=0.65", "train.lr=0.01")
    make_trainer(cfg, tmp_path).fit()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    lrs = [r["lr"] for r in rows if r.get("type") == "train"]
    assert lrs[-1] == pytest.approx(0.01 * 0.05) and max(lrs) == pytest.approx(0.01)


def test_compile_without_a_cpp_compiler_runs_eager_and_says_so(tmp_path):
    from torch._inductor import config as inductor_config

    from pretrain.train.parallelize import usable_compile_scope

    cpu = torch.device("cpu")
    # torch's own patch(), not monkeypatch: monkeypatch's undo leaves the option hidden from later readers
    with inductor_config.patch({"cpp.cxx": ("sh",)}):  # any program on PATH stands in for g++
        assert usable_compile_scope("model", cpu) == ("model", "")
    with inductor_config.patch({"cpp.cxx": ("no-such-cxx-compiler",)}):
        scope, why = usable_compile_scope("model", cpu)
        assert scope == "none" and "no-such-cxx-compiler" in why and "train.compile" in why
        assert usable_compile_scope("none", cpu) == ("none", "")
        make_trainer(toy_cfg("train.compile=true", "train.max_steps=2"), tmp_path).fit()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    start = next(r for r in rows if r.get("event") == "start")
    assert "no C++ compiler" in start["compile"]
