"""Plans: closed form vs numeric minimisation, inference-aware plans, hardware budgets, suggested shapes."""

from __future__ import annotations

import json

import pytest
from scaling_helpers import TRUE_LAW

from pretrain.scaling.laws import LAWS, ScalingLaw, get_law
from pretrain.scaling.plan import (
    compute_from_hardware,
    compute_optimal,
    inference_optimal,
    make_plan,
    numeric_optimal,
    suggest_shape,
    tokens_for_loss,
    wall_clock_s,
)


@pytest.mark.parametrize("law", [LAWS["hoffmann"], LAWS["epoch"], TRUE_LAW])
@pytest.mark.parametrize("compute", [1e15, 5.76e23, 3.8e25])
def test_closed_form_agrees_with_numeric_minimisation(law, compute):
    closed = compute_optimal(law, compute)
    numeric = numeric_optimal(law, compute)
    assert closed.params == pytest.approx(numeric.params, rel=1e-5)
    assert closed.tokens == pytest.approx(numeric.tokens, rel=1e-5)
    assert 6 * closed.params * closed.tokens == pytest.approx(compute, rel=1e-12)
    # The closed form is Hoffmann's eq. 4 written out.
    g = (law.alpha * law.A / (law.beta * law.B)) ** (1 / (law.alpha + law.beta))
    assert closed.params == pytest.approx(g * (compute / 6) ** (law.beta / (law.alpha + law.beta)), rel=1e-12)
    assert closed.tokens == pytest.approx((compute / 6) ** (law.alpha / (law.alpha + law.beta)) / g, rel=1e-12)


def test_epoch_law_gives_chinchilla_like_allocation():
    # Chinchilla: 70B parameters on 1.4T tokens for ~5.76e23 FLOPs, about 20 tokens per parameter.
    plan = compute_optimal(LAWS["epoch"], 5.76e23)
    assert 60e9 < plan.params < 85e9
    assert 15 < plan.tokens_per_param < 25


def test_inference_optimal_is_smaller_and_cheaper_overall():
    law = LAWS["epoch"]
    plan = inference_optimal(law, 1e22, inference_tokens=1e13)
    ref = compute_optimal(law, 1e22)
    assert plan.params < ref.params
    assert plan.tokens > ref.tokens
    assert law.loss(plan.params, plan.tokens) == pytest.approx(ref.loss, rel=1e-9)  # same quality
    assert plan.total_flops < plan.reference_total_flops
    # No inference demand: the compute-optimal model is the answer.
    zero = inference_optimal(law, 1e22, inference_tokens=0.0)
    assert zero.params == pytest.approx(ref.params, rel=1e-3)


def test_inference_optimal_beats_a_grid_search():
    law, loss_ref = LAWS["hoffmann"], compute_optimal(LAWS["hoffmann"], 1e21).loss
    plan = inference_optimal(law, 1e21, inference_tokens=5e11)
    best = plan.total_flops
    for k in range(1, 200):
        n = plan.reference.params * k / 200
        d = tokens_for_loss(law, n, loss_ref)
        if d != float("inf"):
            assert 6 * n * d + 2 * n * 5e11 >= best * (1 - 1e-6)


def test_hardware_budget_and_wall_clock_are_inverse():
    c = compute_from_hardware(gpus=8, hours=24, mfu=0.4, peak_flops=989e12)
    assert c == pytest.approx(8 * 24 * 3600 * 989e12 * 0.4)
    assert wall_clock_s(c, 8, 0.4, 989e12) == pytest.approx(24 * 3600)
    with pytest.raises(ValueError, match="mfu"):
        compute_from_hardware(8, 1, 1.5, 1e12)


def test_suggest_shape_finds_gpt2_small():
    shape = suggest_shape(124e6, vocab_size=50304, seq_len=1024)
    assert (shape.dim, shape.n_layers, shape.n_heads) == (768, 12, 12)
    big = suggest_shape(7e9)
    assert abs(big.params / 7e9 - 1) < 0.1
    assert big.n_heads % big.n_kv_heads == 0 and big.dim % big.n_heads == 0


def test_make_plan_from_gpus_and_a_fit_file(tmp_path):
    path = tmp_path / "fit.json"
    path.write_text(json.dumps({**TRUE_LAW.to_dict(), "objective": 0.0, "n_points": 45}))
    out = make_plan(law=str(path), gpus=64, hours=100, mfu=0.5, gpu="H100", inference_tokens=1e12, vocab_size=32000)
    assert out["compute"] == pytest.approx(64 * 100 * 3600 * 989.4e12 * 0.5)
    assert out["wall_clock"]["hours"] == pytest.approx(100)
    assert out["tokens_per_param"] == pytest.approx(out["tokens"] / out["params"])
    assert out["inference"]["params"] < out["params"]
    assert out["law"] == "true"


def test_law_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither a preset"):
        get_law("nosuchlaw")
    bad = tmp_path / "bad.json"
    bad.write_text('{"E": 1.0}')
    with pytest.raises(ValueError, match="missing key"):
        get_law(bad)
    with pytest.raises(ValueError, match="alpha must be > 0"):
        ScalingLaw(E=1, A=1, B=1, alpha=0, beta=1)
    with pytest.raises(ValueError, match="--compute"):
        make_plan()
