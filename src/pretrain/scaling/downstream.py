"""Predicting benchmark accuracy from compute in two steps (Llama 3, Dubey et al. 2024, section 3.2.1).

Step 1 relates training compute to the model's negative log-likelihood of the correct answers of a
task (a power law over compute-optimal models). Step 2 maps that NLL to accuracy with a sigmoid: near
chance while the model cannot tell answers apart, rising steeply, then saturating below 100%. Step 2 can
use any models (older, over-trained ones too), because accuracy depends on compute only through NLL.

    acc(nll) = floor + (ceiling - floor) / (1 + exp(slope * (nll - midpoint)))
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

from pretrain.scaling.isoflop import PowerLaw, fit_power_law


@dataclass
class AccuracySigmoid:
    floor: float
    """Accuracy as NLL grows large (chance level for multiple choice)."""
    ceiling: float
    """Accuracy as NLL goes to zero."""
    slope: float
    """Steepness (> 0: accuracy falls as NLL rises)."""
    midpoint: float
    """NLL at which accuracy is halfway between floor and ceiling."""
    rmse: float = 0.0
    """Root-mean-square error of the fit on its points."""

    def __call__(self, nll):
        z = self.slope * (np.asarray(nll, dtype=float) - self.midpoint)
        out = self.floor + (self.ceiling - self.floor) / (1.0 + np.exp(np.clip(z, -60, 60)))
        return float(out) if np.ndim(out) == 0 else out

    def to_dict(self) -> dict:
        return {"floor": self.floor, "ceiling": self.ceiling, "slope": self.slope, "midpoint": self.midpoint,
                "rmse": self.rmse}


def fit_accuracy_sigmoid(nll, accuracy, chance: float | None = None) -> AccuracySigmoid:
    """Fit step 2; with ``chance`` the floor is fixed there (e.g. 0.25 for 4-way multiple choice)."""
    x = np.asarray(nll, dtype=float)
    y = np.asarray(accuracy, dtype=float)
    if x.shape != y.shape or x.ndim != 1 or len(x) < (3 if chance is not None else 4):
        raise ValueError("accuracy sigmoid: need matching 1-D nll and accuracy arrays with >= 4 points (3 with chance)")
    if np.any((y < 0) | (y > 1)):
        raise ValueError("accuracy sigmoid: accuracies must lie in [0, 1]")
    spread = max(float(np.ptp(x)), 1e-6)

    def unpack(p):
        if chance is None:
            return p[0], p[1], p[2], p[3]
        return chance, p[0], p[1], p[2]

    def resid(p):
        fl, ce, k, m = unpack(p)
        return AccuracySigmoid(fl, ce, k, m)(x) - y

    # Start from a midpoint at the median NLL and a slope spanning the data range.
    p_ceiling, p_slope, p_mid = min(1.0, y.max() + 0.05), 4.0 / spread, float(np.median(x))
    if chance is None:
        p0 = [max(0.0, y.min() - 0.02), p_ceiling, p_slope, p_mid]
        lb, ub = [0.0, 0.0, 1e-6, -np.inf], [1.0, 1.0, np.inf, np.inf]
    else:
        p0 = [max(p_ceiling, chance + 1e-3), p_slope, p_mid]
        lb, ub = [chance, 1e-6, -np.inf], [1.0, np.inf, np.inf]
    res = least_squares(resid, p0, bounds=(lb, ub))
    fl, ce, k, m = unpack(res.x)
    return AccuracySigmoid(float(fl), float(ce), float(k), float(m), float(np.sqrt(np.mean(res.fun**2))))


def fit_nll_vs_compute(compute, nll) -> PowerLaw:
    """Step 1: task NLL of compute-optimal models as a power law of training compute."""
    return fit_power_law(compute, nll)


def predict_accuracy(compute, nll_law: PowerLaw, sigmoid: AccuracySigmoid):
    """Chain the two steps: compute -> task NLL -> accuracy."""
    return sigmoid(nll_law(compute))
