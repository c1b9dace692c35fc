"""trackio (Hugging Face's local-first tracker): runs go to its local SQLite store (``TRACKIO_DIR``,
default ``~/.cache/huggingface/trackio``; ``trackio show`` opens the dashboard), or to a Space with
``TRACKIO_SPACE_ID`` and ``HF_TOKEN``. The project is ``train.tracker_project`` (default ``pretrain``);
the trackio run is named after the training run plus a unique suffix, and resumed by that name."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from pretrain.train.callbacks.trackers import Tracker


class TrackioTracker(Tracker):
    name = "trackio"

    def start(self, run_root: Path, name: str, params: dict[str, Any], run_id: str) -> str:
        import trackio

        self._trackio = trackio
        # trackio resumes a run by its name: a fresh run gets a unique one (the run's name + 6 hex digits).
        self._run = trackio.init(project=self.project or "pretrain", name=run_id or f"{name}-{uuid.uuid4().hex[:6]}",
                                 config=params or None, resume="must" if run_id else "never", embed=False,
                                 auto_log_gpu=False, auto_log_cpu=False)
        return self._run.name

    def log(self, step: int, metrics: dict[str, float]) -> None:
        self._run.log(metrics, step=step)

    def upload(self, path: Path, name: str) -> None:
        self._run.log_artifact(str(path), name=name, type="report")

    def finish(self, summary: dict[str, float]) -> None:
        if summary:
            self._run.log(summary)
        self._run.finish()
