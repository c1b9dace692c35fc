"""``pretrain scaling fit``: both Chinchilla approaches on one points file, as one JSON report + plots."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pretrain.scaling.fit import HUBER_DELTA, fit_approach3
from pretrain.scaling.isoflop import fit_approach2
from pretrain.scaling.points import Points


def analyze(
    points: Points,
    out_dir: str | Path | None = None,
    bootstrap: int = 0,
    n_starts: int = 16,
    delta: float = HUBER_DELTA,
    group_tol_dex: float = 0.1,
    seed: int = 0,
    extrapolate_to: float = 0.0,
) -> dict:
    """Fit Approach 3 (always) and Approach 2 (when the points hold >= 2 IsoFLOP valleys).

    The report's top level is the Approach 3 law (E, A, B, alpha, beta, objective, n_points) so it loads
    directly as a law (``--law FIT.json``); ``approach2`` holds the IsoFLOP fit or the reason it failed.
    With ``out_dir``, writes fit.json, fit.png, isoflop.png (when Approach 2 ran) and extrapolation.png.
    """
    a3 = fit_approach3(points, delta=delta, n_starts=n_starts, bootstrap=bootstrap, seed=seed)
    report: dict = {"name": "fit", **a3.to_dict(), "source": points.source}
    try:
        a2 = fit_approach2(points, tol_dex=group_tol_dex)
        report["approach2"] = a2.to_dict()
    except ValueError as exc:
        a2 = None
        report["approach2"] = {"error": str(exc)}
    if out_dir is not None:
        from pretrain.scaling.plots import plot_extrapolation, plot_fit, plot_isoflop

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        plots = {"fit": str(plot_fit(points, a3.law, out / "fit.png"))}
        if a2 is not None:
            plots["isoflop"] = str(plot_isoflop(a2, points, out / "isoflop.png", law=a3.law))
        c_max = extrapolate_to or float(points.compute.max()) * 1e4
        plots["extrapolation"] = str(plot_extrapolation(a3.law, out / "extrapolation.png", float(points.compute.min()),
                                                        c_max, a3.bootstrap, points))
        report["plots"] = plots
        (out / "fit.json").write_text(json.dumps(_jsonable(report), indent=2) + "\n", encoding="utf-8")
    return _jsonable(report)


def _jsonable(obj):
    """numpy scalars to Python, NaN/inf to null (strict JSON)."""
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer)):
        return _jsonable(obj.item())
    return obj
