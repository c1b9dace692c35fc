"""trackio (Hugging Face's local-first tracker): runs go to its local SQLite store (``TRACKIO_DIR``,
default ``~/.cache/huggingface/trackio``; ``trackio show`` opens the dashboard), or to a Space with
``TRACKIO_SPACE_ID`` and ``HF_TOKEN``. The project is ``train.tracker_project`` (default ``pretrain``);
the trackio run is named after the training run plus a unique suffix, and resumed by that name."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from pretrain.train.callbacks.trackers import Tracker

_OPEN: dict[str, Any] = {}  # run name -> trackio run of this process not yet finished (a crashed fit)


class TrackioTracker(Tracker):
    name = "trackio"

    def start(self, run_root: Path, name: str, params: dict[str, Any], run_id: str) -> str:
        import trackio

        self._trackio = trackio
        if run_id in _OPEN:  # finish it first: that writes what it still holds, so the resume finds it
            _OPEN.pop(run_id).finish()
        # trackio resumes a run by its name: a fresh run gets a unique one (the run's name + 6 hex digits).
        # "allow", not "must": trackio writes in the background, so a run that crashed early may not be
        # in its store yet; the unique name makes "allow" safe.
        run_name = run_id or f"{name}-{uuid.uuid4().hex[:6]}"
        for attempt in range(3):
            try:
                self._run = trackio.init(project=self.project or "pretrain", name=run_name, config=params or None,
                                         resume="allow" if run_id else "never", embed=False,
                                         auto_log_gpu=False, auto_log_cpu=False)
                break
            except ValueError:  # a JSON file of its store read half-written (seen in CI): read it again
                if attempt == 2:
                    raise
                time.sleep(0.5)
        _OPEN[self._run.name] = self._run
        return self._run.name

    def log(self, step: int, metrics: dict[str, float]) -> None:
        self._run.log(metrics, step=step)

    def upload(self, path: Path, name: str) -> None:
        self._run.log_artifact(str(path), name=name, type="report")

    def finish(self, summary: dict[str, float]) -> None:
        if summary:
            self._run.log(summary)
        _OPEN.pop(self._run.name, None)
        self._run.finish()
