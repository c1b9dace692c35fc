"""Scaling laws and compute planning (see docs/scaling.md).

- :mod:`~pretrain.scaling.laws`: L(N, D) = E + A/N^alpha + B/D^beta, the hoffmann and epoch presets.
- :mod:`~pretrain.scaling.points`: runs as (N, D, C, loss) from CSV.
- :mod:`~pretrain.scaling.fit`: Approach 3 (Huber on log-loss, L-BFGS from Hoffmann's grid, bootstrap).
- :mod:`~pretrain.scaling.isoflop`: Approach 2 (IsoFLOP parabolas, N_opt(C) and D_opt(C) power laws).
- :mod:`~pretrain.scaling.downstream`: Llama 3's compute -> task NLL -> accuracy prediction.
- :mod:`~pretrain.scaling.plan`: compute-optimal, inference-optimal and hardware plans, model shapes.
- :mod:`~pretrain.scaling.compute`: parameters and FLOPs per token of a run config.
- :mod:`~pretrain.scaling.sweep`, :mod:`~pretrain.scaling.ablate`: resumable grids of real training runs.
- :mod:`~pretrain.scaling.analysis`, :mod:`~pretrain.scaling.plots`: the fit report and its figures.

Names are imported lazily (``from pretrain.scaling import fit_approach3``) so that importing the CLI
does not pull in scipy and matplotlib.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ScalingLaw": "laws", "LAWS": "laws", "get_law": "laws",
    "Points": "points", "read_points": "points", "write_points": "points", "from_arrays": "points",
    "fit_approach3": "fit", "Approach3Fit": "fit", "objective_of": "fit",
    "fit_approach2": "isoflop", "Approach2Fit": "isoflop",
    "fit_accuracy_sigmoid": "downstream", "fit_nll_vs_compute": "downstream", "predict_accuracy": "downstream",
    "compute_optimal": "plan", "numeric_optimal": "plan", "inference_optimal": "plan", "make_plan": "plan",
    "suggest_shape": "plan", "compute_from_hardware": "plan", "wall_clock_s": "plan",
    "run_compute": "compute",
    "SweepConfig": "sweep", "plan_sweep": "sweep", "run_sweep": "sweep",
    "AblateConfig": "ablate", "run_ablation": "ablate",
    "analyze": "analysis",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"pretrain.scaling.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'pretrain.scaling' has no attribute {name!r}")
