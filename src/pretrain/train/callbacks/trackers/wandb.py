"""Weights & Biases: one W&B run per training run (``WANDB_PROJECT`` / ``train.tracker_project``,
``WANDB_ENTITY``, ``WANDB_MODE=offline`` all work as W&B documents them). Metrics are plotted against
``trainer/step`` (the optimizer step), so a rewind or resume that logs a step again is kept rather than
dropped by W&B's own monotonic step counter. The run id is resumed with ``resume="allow"``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pretrain.train.callbacks.trackers import Tracker

STEP_KEY = "trainer/step"
_OPEN: dict[str, Any] = {}  # run id -> W&B run of this process not yet finished (a crashed fit)


class WandbTracker(Tracker):
    name = "wandb"

    def start(self, run_root: Path, name: str, params: dict[str, Any], run_id: str) -> str:
        import wandb

        self._wandb = wandb
        run_root.mkdir(parents=True, exist_ok=True)
        if run_id in _OPEN:  # a fit in this process crashed with the run open: W&B refuses its id until finished
            _OPEN.pop(run_id).finish(exit_code=1)
        self._run = wandb.init(project=self.project or os.environ.get("WANDB_PROJECT") or "pretrain",
                               name=name, id=run_id or None, resume="allow", config=params or None,
                               dir=str(run_root), reinit="create_new",
                               settings=wandb.Settings(console="off", x_disable_stats=True))
        _OPEN[self._run.id] = self._run
        self._run.define_metric(STEP_KEY)
        self._run.define_metric("*", step_metric=STEP_KEY)
        return self._run.id

    def log(self, step: int, metrics: dict[str, float]) -> None:
        self._run.log({STEP_KEY: step, **metrics})

    def event(self, step: int, name: str, detail: str) -> None:
        self._run.log({STEP_KEY: step, f"event/{name}": 1.0})
        self._run.summary["last_event"] = f"step {step}: {name} {detail}"

    def upload(self, path: Path, name: str) -> None:
        art = self._wandb.Artifact(name, type="report")
        art.add_dir(str(path)) if path.is_dir() else art.add_file(str(path))
        self._run.log_artifact(art)

    def finish(self, summary: dict[str, float]) -> None:
        for k, v in summary.items():
            self._run.summary[k] = v
        _OPEN.pop(self._run.id, None)
        self._run.finish()
