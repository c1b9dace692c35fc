"""Compute accounting and IsoFLOP sweeps (grid sizing, resumability, collection, a real 2 x 2 sweep)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scaling_helpers import tiny_overrides

from pretrain.config import resolve
from pretrain.scaling.compute import run_compute, steps_for_budget, tokens_per_step
from pretrain.scaling.runner import read_final_eval, run_or_load
from pretrain.scaling.sweep import SweepConfig, parse_shape, plan_sweep, run_sweep


def test_run_compute_matches_built_model_and_formula():
    from pretrain.model import Transformer

    cfg = resolve("tiny", ["model.vocab_size=320", "model.n_kv_heads=1"])
    rc = run_compute(cfg)
    model = Transformer(cfg.model)
    assert rc.params == sum(p.numel() for p in model.parameters())
    m, t = cfg.model, cfg.train.seq_len
    # 6 x (non-embedding parameters + LM head) + 12 L H d_head T (pretrain.model.size's convention).
    n_matmul = rc.non_embedding_params + m.vocab_size * m.dim
    assert rc.flops_per_token == pytest.approx(6 * n_matmul + 12 * m.n_layers * m.n_heads * m.head_dim * t)
    assert 0 < rc.attention_fraction < 1
    steps = steps_for_budget(cfg, rc.flops_per_token, 1e12)
    assert steps == round(1e12 / (rc.flops_per_token * tokens_per_step(cfg)))


def test_vocab_comes_from_tokenizer_config_when_model_leaves_it():
    cfg = resolve("tiny", [])
    assert cfg.model.vocab_size == 0
    assert run_compute(cfg).params == run_compute(cfg, vocab_size=cfg.tokenizer.vocab_size).params


def test_parse_shape():
    assert parse_shape("64x2", head_dim=16) == (64, 2, 4, 4)
    assert parse_shape("64x2x8x2") == (64, 2, 8, 2)
    for bad in ("64", "64x0", "64x2x5", "axb", "64x2x8x3"):
        with pytest.raises(ValueError, match="shapes"):
            parse_shape(bad)


def test_plan_sweep_sizes_each_run_to_its_budget():
    sc = SweepConfig(base="tiny", overrides=["model.vocab_size=320"], budgets=[1e10, 4e10], shapes=["16x1", "32x2"],
                     head_dim=8, min_steps=5)
    cells = plan_sweep(sc)
    assert len(cells) == 4
    for c in cells:
        assert c.flops == pytest.approx(c.budget, rel=0.05)  # whole steps: within rounding
        assert f"train.max_steps={c.steps}" in c.overrides  # cosine length = run length
        assert 'train.schedule="cosine"' in c.overrides
        cfg = resolve("tiny", c.overrides)
        assert cfg.train.max_steps == c.steps and cfg.model.dim == int(c.shape.split("x")[0])
        assert 1 <= cfg.train.warmup_steps < c.steps
    # A 4x bigger budget buys 4x the steps of the same shape.
    small = {c.shape: c.steps for c in cells if c.budget == 1e10}
    big = {c.shape: c.steps for c in cells if c.budget == 4e10}
    assert big["16x1"] == pytest.approx(4 * small["16x1"], abs=2)
    skipped = plan_sweep(SweepConfig(base="tiny", overrides=["model.vocab_size=320"], budgets=[1e8],
                                     shapes=["64x2"], min_steps=10))
    assert "min_steps" in skipped[0].skipped


def test_sweep_requires_shared_data(tmp_path):
    with pytest.raises(ValueError, match="data.tokens"):
        run_sweep(SweepConfig(base="tiny"), tmp_path)


def _write_metrics(run_dir, rows):
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_read_final_eval_prefers_the_selected_final_model(tmp_path):
    rows = [
        {"type": "train", "step": 5, "loss": 4.0},
        {"type": "eval", "step": 5, "val_loss": 3.9, "val_loss/code": 3.0},
        {"type": "eval", "step": 10, "model": "raw", "val_loss": 3.5, "val_loss/code": 2.5},
        {"type": "eval", "step": 10, "model": "ema", "val_loss": 3.4, "val_loss/code": 2.4},
    ]
    _write_metrics(tmp_path / "a", rows)
    (tmp_path / "a" / "checkpoints" / "final").mkdir(parents=True)
    (tmp_path / "a" / "checkpoints" / "final" / "meta.json").write_text(json.dumps({"selected": "ema"}))
    assert read_final_eval(tmp_path / "a")["val_loss"] == 3.4
    _write_metrics(tmp_path / "b", rows[:2])
    final = read_final_eval(tmp_path / "b")
    assert final["val_loss"] == 3.9 and final["val_loss/code"] == 3.0
    _write_metrics(tmp_path / "c", rows[:1])
    with pytest.raises(ValueError, match="no eval row"):
        read_final_eval(tmp_path / "c")


def test_run_or_load_skips_finished_and_rejects_a_different_run(tmp_path):
    calls = []

    def recorded_train(cfg, run_dir, fresh=False, progress=False):
        # Replays recorded metrics, standing in for training to exercise resumability alone.
        calls.append(run_dir)
        _write_metrics(run_dir, [{"type": "eval", "step": 3, "val_loss": 2.5}])

    cfg = resolve("tiny", [])
    first = run_or_load(cfg, tmp_path / "r", {"overrides": ["a=1"]}, recorded_train)
    again = run_or_load(cfg, tmp_path / "r", {"overrides": ["a=1"]}, recorded_train)
    assert first == again and first["val_loss"] == 2.5 and len(calls) == 1
    with pytest.raises(ValueError, match="different overrides"):
        run_or_load(cfg, tmp_path / "r", {"overrides": ["a=2"]}, recorded_train)


@pytest.mark.slow
def test_sweep_2x2_end_to_end_and_resume(tiny_data, tmp_path):
    from pretrain.train import train

    sc = SweepConfig(base="tiny", overrides=tiny_overrides(tiny_data), budgets=[3e8, 6e8], shapes=["16x1", "32x2"],
                     head_dim=8, min_steps=4)
    trained = []

    def counting_train(cfg, run_dir, fresh=False, progress=False):
        trained.append(cfg.name)
        return train(cfg, run_dir, fresh=fresh, progress=progress)

    summary = run_sweep(sc, tmp_path / "sweep", train_fn=counting_train)
    assert summary["runs"] == 4 and len(trained) == 4
    out = tmp_path / "sweep"
    lines = (out / "points.csv").read_text().splitlines()
    header = lines[0].split(",")
    assert {"params", "tokens", "flops", "loss", "budget"} <= set(header) and len(lines) == 5
    assert any(h.startswith("val_loss/") for h in header)  # per-domain final losses
    assert (out / "isoflop.png").stat().st_size > 1000
    from pretrain.scaling.points import read_points

    pts = read_points(out / "points.csv")
    assert np.all(np.isfinite(pts.loss)) and np.all(pts.loss > 0)
    # Each run trained exactly its planned steps with a cosine schedule as long as the run.
    for name in trained:
        cfg_text = (out / "runs" / name / "config.toml").read_text()
        res = json.loads((out / "runs" / name / "result.json").read_text())
        assert f"max_steps = {res['steps']}" in cfg_text and res["step"] == res["steps"]
    # Re-running resumes: nothing is trained again and the points are identical.
    run_sweep(sc, out, train_fn=counting_train)
    assert len(trained) == 4
    assert (out / "points.csv").read_text().splitlines() == lines
