"""Approach 2 of Hoffmann et al. 2022: IsoFLOP profiles.

Runs at one compute budget C but different sizes N trace a valley in loss; a parabola in log N fitted
to each valley gives the loss-optimal size N_opt(C) at its vertex (Hoffmann et al. Figure 3; Llama 3
section 3.2.1 does the same with its 6e18 - 1e22 FLOP budgets). Power laws N_opt = k_N C^a and
D_opt = k_D C^b, fitted by least squares in log-log space across budgets, are the scaling rule; with
C = 6ND, a + b = 1 exactly when D_opt = C / 6 N_opt.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pretrain.scaling.points import Points


@dataclass
class IsoFLOPCurve:
    """One compute budget's parabola L = p0 (log N)^2 + p1 log N + p2 and its vertex."""

    compute: float
    n_points: int
    coeffs: tuple[float, float, float]
    params_opt: float
    tokens_opt: float
    loss_opt: float
    params_range: tuple[float, float]
    interior: bool
    """True when the vertex lies inside the sampled N range (an extrapolated vertex is less reliable)."""

    def loss_at(self, params):
        x = np.log(np.asarray(params, dtype=float))
        return np.polyval(self.coeffs, x)

    def to_dict(self) -> dict:
        return {
            "compute": self.compute, "n_points": self.n_points, "coeffs": list(self.coeffs),
            "params_opt": self.params_opt, "tokens_opt": self.tokens_opt, "loss_opt": self.loss_opt,
            "params_range": list(self.params_range), "interior": self.interior,
        }


@dataclass
class PowerLaw:
    """y = k x^exponent, fitted as a line in log-log space."""

    k: float
    exponent: float

    def __call__(self, x):
        return self.k * np.asarray(x, dtype=float) ** self.exponent


@dataclass
class Approach2Fit:
    curves: list[IsoFLOPCurve]
    params_law: PowerLaw
    """N_opt(C) = k C^a."""
    tokens_law: PowerLaw
    """D_opt(C) = k C^b."""
    skipped: list[str] = field(default_factory=list)
    """Budgets left out, with the reason."""

    def to_dict(self) -> dict:
        return {
            "a": self.params_law.exponent, "b": self.tokens_law.exponent,
            "params_coefficient": self.params_law.k, "tokens_coefficient": self.tokens_law.k,
            "curves": [c.to_dict() for c in self.curves], "skipped": self.skipped,
            **({"warnings": self.warnings()} if self.warnings() else {}),
        }

    def warnings(self) -> list[str]:
        outside = [c for c in self.curves if not c.interior]
        if not outside:
            return []
        return [f"{len(outside)} of {len(self.curves)} IsoFLOP vertices lie outside their budget's sampled N range "
                "(extrapolated minima; widen the shapes around the optimum)"]


def group_by_compute(points: Points, tol_dex: float = 0.1) -> list[np.ndarray]:
    """Indices of points per compute budget: sorted by C, a group holds the runs within ``tol_dex`` (in
    log10 C) of its smallest budget, so budgets that scatter around a nominal value (read off a figure,
    or rounded to whole steps in a sweep) group together without chaining neighbouring budgets.
    """
    order = np.argsort(points.compute, kind="stable")
    logc = np.log10(points.compute[order])
    groups, start = [], 0
    for i in range(1, len(order) + 1):
        if i == len(order) or logc[i] - logc[start] > tol_dex:
            groups.append(order[start:i])
            start = i
    return groups


def fit_parabola(points: Points, compute: float | None = None) -> IsoFLOPCurve:
    """Fit one IsoFLOP valley; the budget defaults to the geometric mean of the points' compute."""
    x = np.log(points.params)
    if len(np.unique(points.params)) < 3:
        raise ValueError("an IsoFLOP parabola needs at least 3 distinct model sizes")
    coeffs = np.polyfit(x, points.loss, 2)
    if coeffs[0] <= 0:
        raise ValueError("loss is not convex in log N at this budget (no valley)")
    c = float(np.exp(np.mean(np.log(points.compute)))) if compute is None else float(compute)
    x_opt = -coeffs[1] / (2 * coeffs[0])
    n_opt = float(np.exp(x_opt))
    return IsoFLOPCurve(
        compute=c, n_points=len(points), coeffs=tuple(float(v) for v in coeffs),
        params_opt=n_opt, tokens_opt=c / (6.0 * n_opt), loss_opt=float(np.polyval(coeffs, x_opt)),
        params_range=(float(points.params.min()), float(points.params.max())),
        interior=bool(x.min() <= x_opt <= x.max()),
    )


def fit_power_law(x, y) -> PowerLaw:
    slope, intercept = np.polyfit(np.log(np.asarray(x, dtype=float)), np.log(np.asarray(y, dtype=float)), 1)
    return PowerLaw(k=float(np.exp(intercept)), exponent=float(slope))


def fit_approach2(points: Points, tol_dex: float = 0.1, min_points: int = 3) -> Approach2Fit:
    """Parabola per compute budget, then power laws N_opt(C), D_opt(C) over the budgets' vertices."""
    curves, skipped = [], []
    for idx in group_by_compute(points, tol_dex):
        sub = points.subset(idx)
        c = float(np.exp(np.mean(np.log(sub.compute))))
        if len(sub) < min_points:
            skipped.append(f"C={c:.3g}: only {len(sub)} run(s)")
            continue
        try:
            curves.append(fit_parabola(sub, c))
        except ValueError as exc:
            skipped.append(f"C={c:.3g}: {exc}")
    if len(curves) < 2:
        detail = f" (skipped: {'; '.join(skipped)})" if skipped else ""
        raise ValueError(
            f"{points.source or 'points'}: Approach 2 needs IsoFLOP valleys at >= 2 compute budgets, "
            f"found {len(curves)}{detail}"
        )
    cs = [c.compute for c in curves]
    return Approach2Fit(
        curves=curves,
        params_law=fit_power_law(cs, [c.params_opt for c in curves]),
        tokens_law=fit_power_law(cs, [c.tokens_opt for c in curves]),
        skipped=skipped,
    )
