"""Loss-spike and NaN/Inf detection over a rolling window of recent steps.

A step is flagged when its loss or gradient norm is not finite, or (once ``min_history`` steps are in
the window) exceeds the current level by ``sigma`` robust standard deviations of the step-to-step noise.
The level is the median of the last ``min_history`` steps; the noise is 1.4826 x the median absolute
first difference over the window, / sqrt(2) (for independent noise a difference has sqrt(2) x its
spread). Differences ignore the trend: early in training the loss falls fast, and a band from the
window's spread around its median (the previous design) was so wide that a garbage batch at 9.0 against
a level of 3.4 at step 51 went unflagged. Robust statistics are why one spike does not widen the band
for the next, so every finite step can go into the window: a lasting change of level (grad norms often
settle higher, and small batches are noisy) is absorbed within about half a window instead of flagging
every later step. Excluding flagged steps from a mean/std window, the obvious design, deadlocks on
such a drift. The policy (skip the update, rewind to
the last good checkpoint and skip the batches, or only log) is applied by the trainer; OLMo 2 and
PaLM (Chowdhery et al. 2022, "we restarted ... about 100 steps before the spike, and skipped roughly
200-500 data batches") are the precedents.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass


@dataclass
class SpikeVerdict:
    spike: bool
    reason: str = ""


class TrainingDiverged(RuntimeError):
    """The run stopped itself: too many consecutive spikes or rewinds. The CLI prints it as one line."""


class SpikeDetector:
    def __init__(self, window: int = 50, min_history: int = 10, sigma: float = 6.0, grad_norm: bool = True,
                 min_rise: float = 0.0):
        self.window = window
        self.min_rise = min_rise
        self.use_grad = grad_norm
        self.min_history = min_history
        self.sigma = sigma
        self.loss: deque[float] = deque(maxlen=window)
        self.grad: deque[float] = deque(maxlen=window)

    def _band(self, values: deque[float]) -> tuple[float, float]:
        """(level, robust standard deviation of the step-to-step noise) of the window."""
        hist = list(values)
        level = _median(hist[-self.min_history:])
        diffs = [abs(b - a) for a, b in zip(hist, hist[1:], strict=False)]
        return level, (1.4826 * _median(diffs) / math.sqrt(2)) if diffs else 0.0

    def check(self, loss: float, grad_norm: float) -> SpikeVerdict:
        """Judge one step; every finite step joins the window (the statistics are robust to outliers)."""
        if not math.isfinite(loss):
            return SpikeVerdict(True, f"loss is {loss}")
        if not math.isfinite(grad_norm):
            return SpikeVerdict(True, f"grad norm is {grad_norm}")
        verdict = SpikeVerdict(False)
        if len(self.loss) >= self.min_history:
            checks = [("loss", loss, self.loss)] + ([("grad norm", grad_norm, self.grad)] if self.use_grad else [])
            for label, value, hist in checks:
                median, std = self._band(hist)  # (the level plays the median's part)
                # A floor on the scale keeps a perfectly flat window from flagging rounding noise; the
                # relative floor (min_rise) keeps a shift of the data (a harder document, another domain's
                # rows: 10-25% above the level for a few steps) from counting as a spike.
                rise = max(self.sigma * max(std, 1e-3 * abs(median), 1e-8), self.min_rise * abs(median))
                limit = median + rise
                if value > limit:
                    verdict = SpikeVerdict(True, f"{label} {value:.4g} > {limit:.4g} (level {median:.4g} + "
                                                 f"{self.sigma:g} robust sigma)")
                    break
        self.loss.append(loss)
        self.grad.append(grad_norm)
        return verdict

    def state_dict(self) -> dict:
        return {"loss": list(self.loss), "grad": list(self.grad)}

    def load_state_dict(self, state: dict) -> None:
        self.loss = deque((float(v) for v in state.get("loss", [])), maxlen=self.window)
        self.grad = deque((float(v) for v in state.get("grad", [])), maxlen=self.window)


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    return ordered[n // 2] if n % 2 else 0.5 * (ordered[n // 2 - 1] + ordered[n // 2])
