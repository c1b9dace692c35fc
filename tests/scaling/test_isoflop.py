"""Approach 2: IsoFLOP parabolas and the power laws N_opt(C), D_opt(C)."""

from __future__ import annotations

import numpy as np
import pytest
from scaling_helpers import CHINCHILLA_CSV, TRUE_LAW, synthetic_points

from pretrain.scaling.isoflop import fit_approach2, fit_parabola, group_by_compute
from pretrain.scaling.points import from_arrays, read_points


def test_recovers_generating_exponents():
    fit = fit_approach2(synthetic_points(noise=0.0))
    assert len(fit.curves) == 5
    # N_opt ~ C^(beta / (alpha + beta)), D_opt ~ C^(alpha / (alpha + beta)) for the generating law.
    assert fit.params_law.exponent == pytest.approx(TRUE_LAW.a, abs=0.01)
    assert fit.tokens_law.exponent == pytest.approx(TRUE_LAW.b, abs=0.01)
    assert fit.params_law.exponent + fit.tokens_law.exponent == pytest.approx(1.0, abs=1e-9)
    for curve in fit.curves:
        n_true, _ = TRUE_LAW.optimal(curve.compute)
        assert curve.params_opt == pytest.approx(n_true, rel=0.1)
        assert curve.interior


def test_noisy_curves_still_close():
    fit = fit_approach2(synthetic_points(noise=0.003, seed=5))
    assert fit.params_law.exponent == pytest.approx(TRUE_LAW.a, abs=0.05)


def test_parabola_vertex_exact_for_a_parabola():
    n = np.logspace(6, 8, 7)
    loss = 0.3 * (np.log(n) - np.log(3e7)) ** 2 + 2.5
    curve = fit_parabola(from_arrays(n, 1e18 / (6 * n), loss))
    assert curve.params_opt == pytest.approx(3e7, rel=1e-6)
    assert curve.loss_opt == pytest.approx(2.5, abs=1e-9)


def test_concave_budget_is_skipped_with_reason():
    pts = synthetic_points()
    n = np.logspace(6, 8, 5)
    bad = from_arrays(n, 1e25 / (6 * n), 3.0 - 0.1 * (np.log(n) - 16) ** 2, compute=np.full(5, 1e25))
    merged = from_arrays(np.r_[pts.params, bad.params], np.r_[pts.tokens, bad.tokens], np.r_[pts.loss, bad.loss],
                         compute=np.r_[pts.compute, bad.compute])
    fit = fit_approach2(merged)
    assert len(fit.curves) == 5
    assert any("not convex" in s for s in fit.skipped)


def test_single_budget_is_an_error():
    pts = synthetic_points()
    one = pts.subset(np.where(pts.compute == pts.compute[0])[0])
    with pytest.raises(ValueError, match=">= 2 compute budgets"):
        fit_approach2(one)


def test_jittered_budgets_group_without_chaining():
    pts = synthetic_points(noise=0.0)
    rng = np.random.default_rng(0)
    jittered = from_arrays(pts.params, pts.tokens, pts.loss, compute=pts.compute * np.exp(0.05 * rng.standard_normal(len(pts))))
    groups = group_by_compute(jittered, 0.1)
    assert sorted(len(g) for g in groups) == [9] * 5
    # A chain of budgets 0.06 dex apart is split every 0.1 dex, not merged into one group.
    n = np.full(10, 1e8)
    chain = from_arrays(n, np.logspace(9, 9.54, 10), np.full(10, 3.0), compute=6e8 * np.logspace(9, 9.54, 10))
    assert len(group_by_compute(chain, 0.1)) > 3


def test_epoch_points_all_grouped():
    pts = read_points(CHINCHILLA_CSV, params_column="Model Size", flops_column="Training FLOP", drop_highest=5)
    groups = group_by_compute(pts, 0.1)
    assert sum(len(g) for g in groups) == 240
    assert all(np.ptp(np.log10(pts.compute[g])) <= 0.1 for g in groups)


def test_extrapolated_vertices_are_flagged():
    pts = synthetic_points(noise=0.0)
    # Keep only the sizes above each budget's optimum: every vertex lies below the sampled range.
    keep = np.where(pts.params > TRUE_LAW.optimal(pts.compute)[0] * 1.5)[0]
    fit = fit_approach2(pts.subset(keep))
    assert fit.warnings() and "outside" in fit.to_dict()["warnings"][0]
    assert not fit_approach2(pts).warnings()
