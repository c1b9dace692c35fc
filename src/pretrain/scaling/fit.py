"""Approach 3 of Hoffmann et al. 2022: fit L(N, D) = E + A/N^alpha + B/D^beta to final losses.

The procedure follows the paper (section 3.3 and appendix D.2) as replicated by Besiroglu et al. 2024:

- parametrise A = e^a, B = e^b, E = e^e, so log L(N, D) = LSE(a - alpha log N, b - beta log D, e)
  (log-sum-exp keeps every term positive and the fit well conditioned);
- minimise the sum over runs of Huber_delta(predicted log L - observed log L) with delta = 1e-3, which
  is robust to the few outlier runs;
- use L-BFGS from a grid of initialisations (alpha, beta in {0, 0.5, ..., 2}, e in {-1, -0.5, ..., 1},
  a, b in {0, 5, ..., 25}) and keep the best local minimum, because the objective is non-convex;
- confidence intervals by bootstrapping the runs (resampling with replacement and refitting).

Ranking all grid points by their starting objective (a vectorised evaluation) and running L-BFGS from
the best ``n_starts`` of them reaches the same minimum as running all of them on these problems, at a
fraction of the cost; ``n_starts=0`` runs every grid point.
"""

from __future__ import annotations

import contextlib
import itertools
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize
from scipy.special import logsumexp

from pretrain.scaling.laws import ScalingLaw
from pretrain.scaling.points import Points

HUBER_DELTA = 1e-3

# Hoffmann et al.'s initialisation grid, in the (a, b, e, alpha, beta) parametrisation.
GRID_ALPHA = (0.0, 0.5, 1.0, 1.5, 2.0)
GRID_BETA = (0.0, 0.5, 1.0, 1.5, 2.0)
GRID_E = (-1.0, -0.5, 0.0, 0.5, 1.0)
GRID_A = (0.0, 5.0, 10.0, 15.0, 20.0, 25.0)
GRID_B = (0.0, 5.0, 10.0, 15.0, 20.0, 25.0)


def huber(r: np.ndarray, delta: float) -> np.ndarray:
    """Huber loss: r^2/2 inside [-delta, delta], linear with slope delta outside (scipy.special.huber)."""
    ar = np.abs(r)
    return np.where(ar <= delta, 0.5 * r * r, delta * (ar - 0.5 * delta))


def _objective(theta: np.ndarray, log_n: np.ndarray, log_d: np.ndarray, log_l: np.ndarray, delta: float):
    """Sum of Huber losses on log-loss residuals, and its gradient in (a, b, e, alpha, beta)."""
    a, b, e, alpha, beta = theta
    t0 = a - alpha * log_n
    t1 = b - beta * log_d
    m = np.maximum(np.maximum(t0, t1), e)  # log-sum-exp, shifted for stability
    x0, x1, x2 = np.exp(t0 - m), np.exp(t1 - m), np.exp(e - m)
    s = x0 + x1 + x2
    r = m + np.log(s) - log_l
    g = np.clip(r, -delta, delta) / s  # d huber / d r, times the softmax denominator
    ar = np.abs(r)
    value = np.where(ar <= delta, 0.5 * r * r, delta * (ar - 0.5 * delta)).sum()
    g0, g1 = g * x0, g * x1
    grad = np.array([g0.sum(), g1.sum(), (g * x2).sum(), -(g0 @ log_n), -(g1 @ log_d)])
    return float(value), grad


def _grid_objectives(grid: np.ndarray, log_n, log_d, log_l, delta: float) -> np.ndarray:
    """Objective at every grid row at once (rows are (a, b, e, alpha, beta))."""
    out = np.empty(len(grid))
    for lo in range(0, len(grid), 512):  # chunks bound the memory to 512 x points
        g = grid[lo : lo + 512, :, None]
        terms = np.stack([g[:, 0] - g[:, 3] * log_n, g[:, 1] - g[:, 4] * log_d, np.broadcast_to(g[:, 2], (len(g), len(log_n)))])
        r = logsumexp(terms, axis=0) - log_l
        out[lo : lo + 512] = huber(r, delta).sum(axis=1)
    return out


def hoffmann_grid() -> np.ndarray:
    """Initialisation grid rows (a, b, e, alpha, beta)."""
    return np.array(list(itertools.product(GRID_A, GRID_B, GRID_E, GRID_ALPHA, GRID_BETA)), dtype=float)


@dataclass
class Approach3Fit:
    """Result of :func:`fit_approach3`."""

    law: ScalingLaw
    objective: float
    n_points: int
    delta: float
    starts: int
    theta: np.ndarray = field(repr=False)
    ci: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Bootstrap percentile intervals per parameter (empty without bootstrap)."""
    bootstrap: np.ndarray | None = field(default=None, repr=False)
    """Bootstrap replicate parameters, rows (E, A, B, alpha, beta)."""

    def to_dict(self) -> dict:
        out = {
            "E": self.law.E, "A": self.law.A, "B": self.law.B, "alpha": self.law.alpha, "beta": self.law.beta,
            "objective": self.objective, "n_points": self.n_points, "huber_delta": self.delta,
            "starts": self.starts,
            "a_exponent": self.law.a, "b_exponent": self.law.b, "G": self.law.G,
        }
        warnings = self.warnings()
        if warnings:
            out["warnings"] = warnings
        if self.ci:
            out["ci"] = {k: list(v) for k, v in self.ci.items()}
            out["bootstrap_samples"] = 0 if self.bootstrap is None else len(self.bootstrap)
        return out


    def warnings(self) -> list[str]:
        """Signs that the runs do not pin the law down (a fit can converge and still be meaningless)."""
        out = []
        if self.law.E < 1e-3:
            out.append(f"E collapsed to {self.law.E:.3g}: the runs do not constrain the irreducible loss "
                       "(losses still fall steeply with D; use larger budgets or more tokens)")
        for key in ("alpha", "beta"):
            if getattr(self.law, key) > 2.0:
                out.append(f"{key} = {getattr(self.law, key):.3g} is implausibly large (published values are 0.2-0.4)")
        return out


def _law_from_theta(theta: np.ndarray, name: str = "fit") -> ScalingLaw:
    a, b, e, alpha, beta = (float(x) for x in theta)
    if alpha <= 0 or beta <= 0:
        raise ValueError(f"fit diverged: exponents must be positive (alpha={alpha:.4g}, beta={beta:.4g})")
    return ScalingLaw(E=float(np.exp(e)), A=float(np.exp(a)), B=float(np.exp(b)), alpha=alpha, beta=beta, name=name)


def _single_thread_blas():
    """Limit BLAS to one thread while fitting.

    L-BFGS-B does tiny BLAS calls per iteration; a multi-threaded OpenBLAS spins its threads up for each
    and, on a busy machine, makes a fit 25x slower (0.1 s -> 2.6 s per start measured on 2 cores).
    Uses threadpoolctl when installed; without it the fit is only slower.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _local_fit(theta0, log_n, log_d, log_l, delta):
    res = minimize(
        _objective, theta0, args=(log_n, log_d, log_l, delta), jac=True, method="L-BFGS-B",
        # The objective is ~1e-3 with gradients far below scipy's default tolerances; tighten them so
        # each start actually converges (the Epoch replication needs the 5th significant digit).
        options={"maxiter": 1000, "ftol": 1e-12, "gtol": 1e-9},
    )
    return res.x, float(res.fun)


def _best_fit(log_n, log_d, log_l, delta, starts: np.ndarray) -> tuple[np.ndarray, float]:
    best_x, best_f = None, np.inf
    for theta0 in starts:
        x, f = _local_fit(theta0, log_n, log_d, log_l, delta)
        # Only positive exponents are a meaningful law (a start can wander to alpha < 0 on tiny data).
        if f < best_f and x[3] > 0 and x[4] > 0 and np.all(np.isfinite(x)):
            best_x, best_f = x, f
    if best_x is None:
        raise ValueError("Approach 3 fit found no solution with positive exponents; need more varied N and D")
    return best_x, best_f


def fit_approach3(
    points: Points,
    delta: float = HUBER_DELTA,
    n_starts: int = 16,
    bootstrap: int = 0,
    ci_level: float = 0.95,
    seed: int = 0,
    extra_starts: list[np.ndarray] | None = None,
) -> Approach3Fit:
    """Fit L(N, D) by Huber regression on log-loss from the Hoffmann grid (best ``n_starts``; 0 = all).

    With ``bootstrap`` > 0, refit that many resamples of the runs and report percentile intervals.
    """
    if len(points) < 5:
        raise ValueError(f"{points.source or 'points'}: Approach 3 needs at least 5 runs (got {len(points)})")
    log_n, log_d, log_l = np.log(points.params), np.log(points.tokens), np.log(points.loss)
    grid = hoffmann_grid()
    if n_starts and n_starts < len(grid):
        order = np.argsort(_grid_objectives(grid, log_n, log_d, log_l, delta), kind="stable")
        starts = grid[order[:n_starts]]
    else:
        starts = grid
    if extra_starts:
        starts = np.vstack([starts, *[np.asarray(s, dtype=float)[None] for s in extra_starts]])
    with _single_thread_blas():
        theta, obj = _best_fit(log_n, log_d, log_l, delta, starts)
        result = Approach3Fit(_law_from_theta(theta), obj, len(points), delta, len(starts), theta)
        if bootstrap:
            result.bootstrap = _bootstrap(points, theta, delta, bootstrap, seed)
    if bootstrap:
        lo, hi = (1 - ci_level) / 2 * 100, (1 + ci_level) / 2 * 100
        names = ("E", "A", "B", "alpha", "beta")
        result.ci = {
            n: (float(np.percentile(result.bootstrap[:, i], lo)), float(np.percentile(result.bootstrap[:, i], hi)))
            for i, n in enumerate(names)
        }
    return result


def _bootstrap(points: Points, theta, delta, n: int, seed: int) -> np.ndarray:
    """Refit ``n`` resamples, each started from the full-data optimum (resamples stay near it)."""
    rng = np.random.default_rng(seed)
    log_n, log_d, log_l = np.log(points.params), np.log(points.tokens), np.log(points.loss)
    out = []
    for _ in range(n):
        idx = rng.integers(0, len(points), len(points))
        try:
            x, _f = _best_fit(log_n[idx], log_d[idx], log_l[idx], delta, theta[None])
        except ValueError:
            continue  # a degenerate resample (e.g. one model size) has no positive-exponent fit
        out.append([np.exp(x[2]), np.exp(x[0]), np.exp(x[1]), x[3], x[4]])
    if not out:
        raise ValueError("bootstrap: no resample could be fitted")
    return np.array(out)


def objective_of(law: ScalingLaw, points: Points, delta: float = HUBER_DELTA) -> float:
    """Huber objective of a given law on ``points`` (to compare published constants with a fit)."""
    theta = np.array([np.log(law.A), np.log(law.B), np.log(law.E), law.alpha, law.beta])
    return _objective(theta, np.log(points.params), np.log(points.tokens), np.log(points.loss), delta)[0]
