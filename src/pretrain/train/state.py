"""The training loop's state: everything a resumed run needs besides the model, the optimizer and the
callbacks' own states, in one typed object that the checkpoint holds whole.

The stage plan is not stored as such: it is a pure function of the train config, ``total_steps`` and
``stage_extensions`` (pretrain.train.stages.Plan), so those two numbers are the plan's state. The loader
position and the RNG states are captured when a checkpoint is written (``capture``) and handed back to
the loader and the generators on resume.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pretrain.train.safestate import rng_state, to_safe


@dataclass
class TrainState:
    step: int = 0
    """Optimizer steps completed (the next step is ``step + 1``)."""
    tokens: int = 0
    """Input tokens trained on so far, every process's."""
    train_time_s: float = 0.0
    """Training wall time so far (evaluation and checkpoint writing included, start-up excluded)."""
    total_steps: int | None = None
    """The run's length when something other than train.max_steps fixed it (the time budget); None: max_steps."""
    stage_extensions: dict[str, int] = field(default_factory=dict)
    """Hold steps granted per stage name (the long-context gate)."""
    stage: str = ""
    """Name of the stage the step counter is in (the loader position belongs to it)."""
    max_steps: int = 0
    """train.max_steps when the state was captured (a changed cosine schedule is reported on resume)."""
    loader: dict[str, Any] = field(default_factory=dict)
    """The data stream's position, captured at checkpoints."""
    rng: dict[str, Any] = field(default_factory=dict)
    """torch, numpy and Python RNG states, captured at checkpoints."""

    def capture(self, loader: Any, stage: str, max_steps: int) -> dict[str, Any]:
        """The state as checkpoint fields (safe for ``torch.load(weights_only=True)``), loader position and
        RNG read now. The field names are those checkpoints have always used, so older ones still load."""
        self.loader = to_safe(loader.state_dict()) if loader is not None else {}
        self.rng, self.stage, self.max_steps = rng_state(), stage, max_steps
        return {"step": self.step, "tokens": self.tokens, "train_time_s": self.train_time_s,
                "plan_total": self.total_steps, "extensions": dict(self.stage_extensions),
                "max_steps": self.max_steps, "stage": self.stage, "loader": self.loader, "rng": self.rng}

    @classmethod
    def from_checkpoint(cls, fields: dict[str, Any], max_steps: int) -> TrainState:
        """The state saved by ``capture`` (``max_steps``: the config's, for checkpoints that lack it)."""
        total = fields.get("plan_total")
        return cls(step=int(fields["step"]), tokens=int(fields["tokens"]),
                   train_time_s=float(fields["train_time_s"]), total_steps=None if total is None else int(total),
                   stage_extensions={str(k): int(v) for k, v in fields.get("extensions", {}).items()},
                   stage=str(fields.get("stage", "")), max_steps=int(fields.get("max_steps", max_steps)),
                   loader=fields.get("loader") or {}, rng=fields.get("rng") or {})


@dataclass
class TrainResult:
    step: int
    """Optimizer steps completed."""
    tokens: int
    """Tokens trained on (inputs, all processes)."""
    losses: dict[str, float] = field(default_factory=dict)
    """Final numbers: train loss of the last step, val_loss of the final model, ..."""
    final_checkpoint: Path | None = None
    """checkpoints/final/ (None when the run stopped before finishing, e.g. on another rank)."""
    stopped: str = "done"
    """done, time_limit, or preempted (a signal: the checkpoint of ``step`` is written, final/ is not)."""
    history: list[float] = field(default_factory=list)
    """Train loss of every step run in this call (for tests and benchmarks)."""


__all__ = ["TrainResult", "TrainState"]
