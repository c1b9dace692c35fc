"""Figures of the scaling stage (matplotlib, Agg backend, PNG files).

- :func:`plot_fit`: observed vs predicted loss, and loss over compute with the law's optimal frontier.
- :func:`plot_isoflop`: Approach 2's IsoFLOP valleys with their parabolas, and N_opt(C).
- :func:`plot_extrapolation`: N_opt(C) and the optimal loss beyond the data, with bootstrap bands.
- :func:`plot_ablation`: per-domain loss of each variant, mean and seed standard deviation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pretrain.scaling.isoflop import Approach2Fit
from pretrain.scaling.laws import ScalingLaw
from pretrain.scaling.points import Points


def pyplot():
    """matplotlib.pyplot on the Agg backend (files only, no display), imported on first use."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path, left: float = 0.09) -> Path:
    """Write ``fig`` to ``path`` (folders created) with the scaling plots' fixed margins, and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Fixed margins instead of tight_layout, which measures every tick label and costs seconds per figure.
    fig.subplots_adjust(left=left, right=0.97, bottom=0.12, top=0.9, wspace=0.32)
    fig.savefig(path, dpi=100)
    pyplot().close(fig)
    return path


def plot_fit(points: Points, law: ScalingLaw, path: str | Path) -> Path:
    plt = pyplot()
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4.5))
    pred = law.loss(points.params, points.tokens)
    sc = ax0.scatter(pred, points.loss, c=np.log10(points.params), s=14, cmap="viridis")
    lo, hi = min(pred.min(), points.loss.min()), max(pred.max(), points.loss.max())
    ax0.plot([lo, hi], [lo, hi], "k--", lw=1, label="y = x")
    ax0.set_xlabel("predicted loss")
    ax0.set_ylabel("observed loss")
    ax0.set_title(f"L = {law.E:.3g} + {law.A:.4g}/N^{law.alpha:.3f} + {law.B:.4g}/D^{law.beta:.3f}", fontsize=9)
    ax0.legend()
    fig.colorbar(sc, ax=ax0, label="log10 N")
    ax1.scatter(points.compute, points.loss, c=np.log10(points.params), s=14, cmap="viridis")
    cs = np.logspace(np.log10(points.compute.min()), np.log10(points.compute.max()), 100)
    n_opt, d_opt = law.optimal(cs)
    ax1.plot(cs, law.loss(n_opt, d_opt), "r-", label="compute-optimal frontier")
    ax1.set_xscale("log")
    ax1.set_xlabel("training FLOPs C")
    ax1.set_ylabel("loss")
    ax1.legend()
    return save_figure(fig, path)


def plot_isoflop(fit: Approach2Fit, points: Points, path: str | Path, law: ScalingLaw | None = None) -> Path:
    from pretrain.scaling.isoflop import group_by_compute

    plt = pyplot()
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4.5))
    colors = plt.cm.plasma(np.linspace(0.05, 0.85, max(1, len(fit.curves))))
    groups = group_by_compute(points)
    for color, curve in zip(colors, fit.curves, strict=False):
        # The points of this curve are the group whose mean compute it carries.
        for idx in groups:
            sub = points.subset(idx)
            if abs(np.log(np.exp(np.mean(np.log(sub.compute))) / curve.compute)) < 1e-9:
                ax0.scatter(sub.params, sub.loss, color=color, s=14)
        ns = np.logspace(np.log10(curve.params_range[0]) - 0.1, np.log10(curve.params_range[1]) + 0.1, 80)
        ax0.plot(ns, curve.loss_at(ns), color=color, lw=1, label=f"{curve.compute:.2g} FLOPs")
        if curve.interior:  # an extrapolated vertex would stretch the axes to nowhere
            ax0.plot([curve.params_opt], [curve.loss_opt], "x", color=color, ms=8)
    ax0.set_xscale("log")
    ax0.set_xlabel("parameters N")
    ax0.set_ylabel("final loss")
    ax0.set_title("IsoFLOP profiles (Approach 2)")
    ax0.legend(fontsize=7)
    cs = np.array([c.compute for c in fit.curves])
    ax1.scatter(cs, [c.params_opt for c in fit.curves], color="C0", label="N_opt per budget")
    grid = np.logspace(np.log10(cs.min()) - 0.5, np.log10(cs.max()) + 0.5, 50)
    ax1.plot(grid, fit.params_law(grid), "C0-", label=f"N_opt ~ C^{fit.params_law.exponent:.3f}")
    ax1.scatter(cs, [c.tokens_opt for c in fit.curves], color="C1", label="D_opt per budget")
    ax1.plot(grid, fit.tokens_law(grid), "C1-", label=f"D_opt ~ C^{fit.tokens_law.exponent:.3f}")
    if law is not None:
        n_l, d_l = law.optimal(grid)
        ax1.plot(grid, n_l, "C0:", label=f"Approach 3 ({law.name})")
        ax1.plot(grid, d_l, "C1:")
    ax1.set_xscale("log")
    ax1.set_yscale("log")
    ax1.set_xlabel("training FLOPs C")
    ax1.legend(fontsize=7)
    return save_figure(fig, path)


def plot_extrapolation(law: ScalingLaw, path: str | Path, c_min: float, c_max: float,
                       bootstrap: np.ndarray | None = None, points: Points | None = None) -> Path:
    """N_opt(C) and L_opt(C) from c_min to c_max; bands are the 5-95% range of bootstrap replicates."""
    plt = pyplot()
    cs = np.logspace(np.log10(c_min), np.log10(c_max), 120)
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4.5))
    n, d = law.optimal(cs)
    ax0.plot(cs, n, "C0-", label="N_opt")
    ax0.plot(cs, d, "C1-", label="D_opt")
    ax1.plot(cs, law.loss(n, d), "C3-", label="L at the optimum")
    if bootstrap is not None and len(bootstrap) > 1:
        ns, ds, ls = [], [], []
        for e, a, b, al, be in bootstrap:
            rep = ScalingLaw(E=e, A=a, B=b, alpha=al, beta=be)
            rn, rd = rep.optimal(cs)
            ns.append(rn)
            ds.append(rd)
            ls.append(rep.loss(rn, rd))
        for arr, color, ax in ((ns, "C0", ax0), (ds, "C1", ax0), (ls, "C3", ax1)):
            lo, hi = np.percentile(np.array(arr), [5, 95], axis=0)
            ax.fill_between(cs, lo, hi, color=color, alpha=0.2)
    if points is not None:
        ax1.scatter(points.compute, points.loss, s=8, color="gray", label="runs")
    for ax in (ax0, ax1):
        ax.set_xscale("log")
        ax.set_xlabel("training FLOPs C")
        ax.legend(fontsize=8)
    ax0.set_yscale("log")
    ax0.set_title("compute-optimal allocation (5-95% bootstrap band)")
    ax1.set_title("predicted loss of the compute-optimal model")
    return save_figure(fig, path)


def plot_ablation(table: list[dict], path: str | Path) -> Path:
    """One column per domain, one marker per variant (mean over seeds), error bars = seed std.

    Markers rather than bars: loss differences are small next to the loss itself, and bars on a cut axis
    exaggerate them.
    """
    plt = pyplot()
    variants = list(dict.fromkeys(r["variant"] for r in table))
    domains = list(dict.fromkeys(r["domain"] for r in table))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(domains) + 2), 4.5))
    width = 0.7 / max(1, len(variants))
    for i, v in enumerate(variants):
        rows = {r["domain"]: r for r in table if r["variant"] == v}
        xs = np.arange(len(domains)) + (i - (len(variants) - 1) / 2) * width
        means = [rows[d]["mean"] if d in rows else np.nan for d in domains]
        stds = [rows[d]["std"] if d in rows and np.isfinite(rows[d]["std"]) else 0.0 for d in domains]
        ax.errorbar(xs, means, yerr=stds, fmt="o", capsize=4, label=v)
    ax.set_xticks(np.arange(len(domains)))
    ax.set_xticklabels(domains)
    ax.set_ylabel("final held-out loss")
    ax.legend(fontsize=7)
    ax.set_title("ablation: mean over seeds, error bar = seed std")
    return save_figure(fig, path, left=0.13)
