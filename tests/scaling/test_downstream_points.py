"""Loss -> accuracy sigmoid (Llama 3 step 2), compute -> NLL power law (step 1), and points CSV parsing."""

from __future__ import annotations

import numpy as np
import pytest

from pretrain.scaling.downstream import (
    AccuracySigmoid,
    fit_accuracy_sigmoid,
    fit_nll_vs_compute,
    predict_accuracy,
)
from pretrain.scaling.points import read_points, write_points


def test_sigmoid_recovers_parameters():
    true = AccuracySigmoid(floor=0.25, ceiling=0.9, slope=6.0, midpoint=1.2)
    nll = np.linspace(0.5, 2.2, 25)
    acc = true(nll) + np.random.default_rng(0).normal(0, 0.005, len(nll))
    fit = fit_accuracy_sigmoid(nll, acc)
    assert fit.ceiling == pytest.approx(0.9, abs=0.03)
    assert fit.midpoint == pytest.approx(1.2, abs=0.05)
    assert fit.slope == pytest.approx(6.0, rel=0.2)
    fixed = fit_accuracy_sigmoid(nll, acc, chance=0.25)
    assert fixed.floor == 0.25
    assert fixed.rmse < 0.01


def test_two_step_prediction():
    compute = np.logspace(19, 23, 6)
    nll = 3.0 * (compute / 1e19) ** -0.1
    step1 = fit_nll_vs_compute(compute, nll)
    assert step1.exponent == pytest.approx(-0.1, abs=1e-9)
    sig = AccuracySigmoid(0.25, 0.95, 5.0, 2.0)
    assert predict_accuracy(1e21, step1, sig) == pytest.approx(sig(3.0 * 100**-0.1))


def test_sigmoid_rejects_bad_input():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fit_accuracy_sigmoid([1, 2, 3, 4], [0.1, 0.2, 1.5, 0.3])


def test_points_roundtrip_and_errors(tmp_path):
    path = tmp_path / "points.csv"
    write_points(path, [{"name": "a", "params": 1e6, "tokens": 2e7, "loss": 3.5},
                        {"name": "b", "params": 2e6, "tokens": 1e7, "loss": 3.4}])
    pts = read_points(path)
    np.testing.assert_allclose(pts.compute, 6 * pts.params * pts.tokens)
    assert len(read_points(path, drop_highest=1)) == 1
    with pytest.raises(ValueError, match="no column 'flops'"):
        read_points(path, flops_column="flops")
    path.write_text("params,tokens,loss\n1e6,2e7,3.5\n1e6,oops,3.0\n")
    with pytest.raises(ValueError, match=r"points.csv:3: column 'tokens' is not a number"):
        read_points(path)
    with pytest.raises(FileNotFoundError):
        read_points(tmp_path / "missing.csv")
