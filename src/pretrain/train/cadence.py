"""How often to checkpoint: the interval that minimises the time a run expects to lose.

Each checkpoint costs its save time ``C``; each failure costs the work since the last checkpoint (half
an interval on average) plus the restart. Over a mean time between failures ``M``, the lost time per
second is about ``C / tau + tau / (2 M)``, smallest at Young's interval ``tau = sqrt(2 C M)`` (J. W.
Young, "A first order approximation to the optimum checkpoint interval", CACM 1974; Daly 2006 refines
it for ``tau`` near ``M``, which a training run never is). The result is flat near the optimum: half or
twice ``tau`` loses only 25% more than the best.

``train.checkpoint_interval`` counts steps, so the seconds become steps at the measured step time. The
run's ``goodput`` event holds both measurements: the saves' seconds over their count and the productive
seconds over the steps.
"""

from __future__ import annotations

import math


def young_interval_s(save_s: float, mtbf_s: float) -> float:
    """Seconds between checkpoints that minimise the expected lost time: ``sqrt(2 x save_s x mtbf_s)``."""
    if not (save_s > 0 and mtbf_s > 0 and math.isfinite(save_s) and math.isfinite(mtbf_s)):
        raise ValueError(f"a save's seconds and the mean time between failures must be > 0 "
                         f"(got save_s={save_s}, mtbf_s={mtbf_s})")
    return math.sqrt(2.0 * save_s * mtbf_s)


def checkpoint_interval_steps(save_s: float, mtbf_s: float, step_s: float) -> int:
    """Young's interval in steps of ``step_s`` seconds (at least 1): a ``train.checkpoint_interval``."""
    if not (step_s > 0 and math.isfinite(step_s)):
        raise ValueError(f"a step's seconds must be > 0 (got {step_s})")
    return max(1, round(young_interval_s(save_s, mtbf_s) / step_s))


def expected_loss_s(interval_s: float, save_s: float, mtbf_s: float, wall_s: float) -> float:
    """Seconds a run of ``wall_s`` expects to spend on saves and recomputed work at this interval
    (restarts and detection not included: the interval does not change them)."""
    return wall_s * (save_s / interval_s + interval_s / (2.0 * mtbf_s))


__all__ = ["checkpoint_interval_steps", "expected_loss_s", "young_interval_s"]
