"""TensorBoard (the default tracker): event files under <run>/tensorboard/, one scalar per numeric field
(``train/loss``, ``eval/val_loss`` ...) and the events as text. A resumed run appends a new event file to
the same directory, which TensorBoard reads as one run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pretrain.train.callbacks.trackers import Tracker


class TensorBoardTracker(Tracker):
    name = "tensorboard"

    def start(self, run_root: Path, name: str, params: dict[str, Any], run_id: str) -> str:
        from torch.utils.tensorboard import SummaryWriter

        self._tb = SummaryWriter(str(run_root / "tensorboard"))
        return run_id or "tensorboard"

    def log(self, step: int, metrics: dict[str, float]) -> None:
        for k, v in metrics.items():
            self._tb.add_scalar(k, v, step)

    def event(self, step: int, name: str, detail: str) -> None:
        self._tb.add_text("events", f"step {step}: {name} {detail}", step)

    def upload(self, path: Path, name: str) -> None:
        pass  # the report lives beside the event files already

    def finish(self, summary: dict[str, float]) -> None:
        if getattr(self, "_tb", None) is not None:
            self._tb.close()
            self._tb = None
