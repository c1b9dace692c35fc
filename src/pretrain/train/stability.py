"""Loss-spike and NaN/Inf detection over a rolling window of recent steps.

A step is flagged when its loss or gradient norm is not finite, or (once ``min_history`` steps are in
the window) exceeds the window's mean by ``sigma`` standard deviations. Flagged steps are not added to
the window, so one spike does not widen the band for the next. The policy (skip the update, rewind to
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


class SpikeDetector:
    def __init__(self, window: int = 50, min_history: int = 10, sigma: float = 6.0):
        self.window = window
        self.min_history = min_history
        self.sigma = sigma
        self.loss: deque[float] = deque(maxlen=window)
        self.grad: deque[float] = deque(maxlen=window)

    @staticmethod
    def _band(values: deque[float]) -> tuple[float, float]:
        n = len(values)
        mean = sum(values) / n
        var = sum((v - mean) ** 2 for v in values) / max(1, n - 1)
        return mean, math.sqrt(var)

    def check(self, loss: float, grad_norm: float) -> SpikeVerdict:
        """Judge one step; a normal step is added to the window, a flagged one is not."""
        if not math.isfinite(loss):
            return SpikeVerdict(True, f"loss is {loss}")
        if not math.isfinite(grad_norm):
            return SpikeVerdict(True, f"grad norm is {grad_norm}")
        if len(self.loss) >= self.min_history:
            for label, value, hist in (("loss", loss, self.loss), ("grad norm", grad_norm, self.grad)):
                mean, std = self._band(hist)
                # A floor on std keeps a perfectly flat window from flagging rounding noise.
                limit = mean + self.sigma * max(std, 1e-3 * abs(mean), 1e-8)
                if value > limit:
                    return SpikeVerdict(True, f"{label} {value:.4g} > {limit:.4g} (mean {mean:.4g} + {self.sigma:g} sigma)")
        self.loss.append(loss)
        self.grad.append(grad_norm)
        return SpikeVerdict(False)

    def state_dict(self) -> dict:
        return {"loss": list(self.loss), "grad": list(self.grad)}

    def load_state_dict(self, state: dict) -> None:
        self.loss = deque((float(v) for v in state.get("loss", [])), maxlen=self.window)
        self.grad = deque((float(v) for v in state.get("grad", [])), maxlen=self.window)
