"""Gradient noise scale, the critical batch size estimate of McCandlish et al. 2018 ("An Empirical Model
of Large-Batch Training", Appendix A).

With gradient norms measured at two batch sizes, B_small (one micro-batch) and B_big (the whole step),

    |G|^2 ~ (B_big |G_big|^2 - B_small |G_small|^2) / (B_big - B_small)
    S     ~ (|G_small|^2 - |G_big|^2) / (1 / B_small - 1 / B_big)

are unbiased estimates of the true gradient's squared norm and of the trace of the per-example
covariance; B_simple = S / |G|^2. Both are noisy, so each is smoothed with an EMA before the ratio (as
the paper recommends). Batch sizes are counted in tokens.
"""

from __future__ import annotations


class GradientNoiseScale:
    def __init__(self, ema: float = 0.95):
        self.ema = ema
        self.g2: float | None = None
        self.s: float | None = None

    def update(self, small_sq: float, b_small: int, big_sq: float, b_big: int) -> float | None:
        """Feed one step's squared norms; returns the current B_simple estimate (tokens), or None."""
        if b_big <= b_small or b_small <= 0:
            return None
        g2 = (b_big * big_sq - b_small * small_sq) / (b_big - b_small)
        s = (small_sq - big_sq) / (1.0 / b_small - 1.0 / b_big)
        self.g2 = g2 if self.g2 is None else self.ema * self.g2 + (1 - self.ema) * g2
        self.s = s if self.s is None else self.ema * self.s + (1 - self.ema) * s
        return self.value

    @property
    def value(self) -> float | None:
        if self.g2 is None or self.s is None or self.g2 <= 0:
            return None
        return self.s / self.g2

    def state_dict(self) -> dict:
        return {"g2": self.g2, "s": self.s}

    def load_state_dict(self, state: dict) -> None:
        self.g2, self.s = state.get("g2"), state.get("s")
