"""The parametric loss law L(N, D) = E + A / N^alpha + B / D^beta and its published constants.

N is the parameter count, D the training tokens, E the irreducible loss of the data; the two power-law
terms are the excess loss of a finite model and of finite data (Hoffmann et al. 2022, eq. 2). The laws
ship as named presets:

- ``hoffmann``: the constants printed in Hoffmann et al. 2022 (Approach 3): E = 1.69, A = 406.4,
  B = 410.7, alpha = 0.34, beta = 0.28.
- ``epoch``: Besiroglu et al. 2024 ("Chinchilla Scaling: A replication attempt", Epoch AI) refit the
  same functional form to points extracted from Hoffmann's Figure 4 and found the published constants
  inconsistent with the paper's own data; their estimate is E = 1.8169, A = 482.01, B = 2085.43,
  alpha = 0.3478, beta = 0.3658, which restores ~20 tokens per parameter at the optimum.

Any fitted law (the JSON written by ``pretrain scaling fit``) loads with :func:`get_law`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class ScalingLaw:
    """L(N, D) = E + A / N^alpha + B / D^beta (N parameters, D training tokens, L in nats per token)."""

    E: float
    A: float
    B: float
    alpha: float
    beta: float
    name: str = ""

    def __post_init__(self) -> None:
        for key in ("A", "B", "alpha", "beta"):
            if not getattr(self, key) > 0:
                raise ValueError(f"scaling law {self.name or '(unnamed)'}: {key} must be > 0 (got {getattr(self, key)})")

    def loss(self, params, tokens):
        """Predicted loss; accepts scalars or numpy arrays."""
        n = np.asarray(params, dtype=float)
        d = np.asarray(tokens, dtype=float)
        out = self.E + self.A / n**self.alpha + self.B / d**self.beta
        return float(out) if out.ndim == 0 else out

    @property
    def a(self) -> float:
        """Exponent of N_opt(C): N_opt grows as C^a with a = beta / (alpha + beta)."""
        return self.beta / (self.alpha + self.beta)

    @property
    def b(self) -> float:
        """Exponent of D_opt(C): D_opt grows as C^b with b = alpha / (alpha + beta)."""
        return self.alpha / (self.alpha + self.beta)

    @property
    def G(self) -> float:
        """G = (alpha A / (beta B))^(1 / (alpha + beta)) of Hoffmann et al. eq. 4."""
        return (self.alpha * self.A / (self.beta * self.B)) ** (1.0 / (self.alpha + self.beta))

    def optimal(self, compute):
        """Compute-optimal (N, D) under C = 6 N D, in closed form (Hoffmann et al. 2022, eq. 4).

        Minimising L(N, C / 6N) over N gives N_opt = G (C/6)^a and D_opt = G^-1 (C/6)^b.
        """
        c6 = np.asarray(compute, dtype=float) / 6.0
        n = self.G * c6**self.a
        d = c6**self.b / self.G
        if n.ndim == 0:
            return float(n), float(d)
        return n, d

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict, where: str = "scaling law") -> ScalingLaw:
        missing = [k for k in ("E", "A", "B", "alpha", "beta") if k not in data]
        if missing:
            raise ValueError(f"{where}: missing key(s) {', '.join(missing)}")
        try:
            return cls(
                E=float(data["E"]), A=float(data["A"]), B=float(data["B"]),
                alpha=float(data["alpha"]), beta=float(data["beta"]), name=str(data.get("name", "")),
            )
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where}: {exc}") from None


LAWS: dict[str, ScalingLaw] = {
    # Hoffmann et al. 2022, section 3.3 (Approach 3).
    "hoffmann": ScalingLaw(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28, name="hoffmann"),
    # Besiroglu et al. 2024 (Epoch AI), Table 1 / headline estimate.
    "epoch": ScalingLaw(E=1.8169, A=482.01, B=2085.43, alpha=0.3478, beta=0.3658, name="epoch"),
}


def get_law(spec: str | Path | ScalingLaw) -> ScalingLaw:
    """A law by preset name (hoffmann, epoch) or from a fit JSON file written by ``pretrain scaling fit``."""
    if isinstance(spec, ScalingLaw):
        return spec
    text = str(spec)
    if text in LAWS:
        return LAWS[text]
    path = Path(text)
    if not path.is_file():
        raise FileNotFoundError(f"scaling law {text!r} is neither a preset ({', '.join(LAWS)}) nor a fit JSON file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if isinstance(data, dict) and "approach3" in data and isinstance(data["approach3"], dict):
        data = data["approach3"]  # the full report of `pretrain scaling fit` nests the law
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object with E, A, B, alpha, beta")
    law = ScalingLaw.from_dict(data, where=str(path))
    return law if law.name else ScalingLaw(**{**law.to_dict(), "name": path.stem})
