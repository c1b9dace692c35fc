"""Metrics sinks: metrics.jsonl (the contract other stages read), the live console view, and subscribers
(the trackers in pretrain.train.callbacks.trackers: TensorBoard, W&B, MLflow, trackio).

Rows follow docs/architecture.md: ``{"type": "train", "step", "tokens", "loss", "lr", "grad_norm",
"tokens_per_s", "mfu", ...}``, ``{"type": "eval", ...}`` and ``{"type": "event", "step", "event",
"detail"}``. Only rank 0 writes. On resume the log is cut back to the checkpoint's step, so a run that
was killed and resumed reads exactly like one that never stopped.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pretrain.liveview import LiveProgress

# Rows kept for subscribers that arrive late: the few events logged before training starts.
_EARLY_ROWS = 1000


def _clean(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)  # JSON has no NaN/Inf; keep the fact visible
    return v


RECORD_EVENTS = frozenset({"hang", "restart", "preempted", "save_failed", "start_over", "checkpoint_rejected",
                           "world_size_changed"})
"""Events that record what happened to the run itself (faults, restarts): a resume keeps them although
they were logged after the checkpoint it resumes from."""


def truncate_metrics(path: Path, step: int, keep_events: bool | frozenset[str] = False) -> int:
    """Drop rows logged after ``step`` (and a torn last line); returns how many lines were dropped.
    ``keep_events`` keeps event rows (a rewind keeps the record of the spike that caused it); a set of
    names keeps those events only."""
    if not path.is_file():
        return 0
    kept, dropped = [], 0
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            dropped += 1
            continue
        event = row.get("type") == "event" and (keep_events is True or row.get("event") in (keep_events or ()))
        if int(row.get("step", 0)) > step and not event:
            dropped += 1
            continue
        kept.append(line)
    tmp = path.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
    tmp.replace(path)
    return dropped


class MetricsLogger:
    """Writes rows to metrics.jsonl first (nothing a subscriber does can lose a row), then hands each row
    to the subscribers. Rows logged before the first subscription are kept, so a tracker that subscribes
    when training starts still sees the start and resume events logged before it."""

    def __init__(self, run_root: Path, enabled: bool = True, progress: bool = True):
        self.enabled = enabled
        self.path = run_root / "metrics.jsonl"
        self._fh = None
        self._live = None
        self._subscribers: list[Callable[[dict], None]] = []
        self._early: list[dict] = []
        if not enabled:
            return
        run_root.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open for the run
        if progress:  # the total comes with each train row (total_steps)
            self._live = LiveProgress(0)
            self._live.start()

    def subscribe(self, fn: Callable[[dict], None]) -> None:
        """Call ``fn(row)`` for the rows logged so far before any subscription, then for every new row."""
        for row in self._early:
            fn(row)
        self._subscribers.append(fn)

    def log(self, row: dict) -> None:
        if not self.enabled or self._fh is None:
            return
        row = {k: _clean(v) for k, v in row.items()}
        self._fh.write(json.dumps(row) + "\n")  # type: ignore[union-attr]
        self._fh.flush()  # type: ignore[union-attr]
        if not self._subscribers and len(self._early) < _EARLY_ROWS:
            self._early.append(row)
        for fn in list(self._subscribers):
            fn(row)
        if self._live is not None:
            self._live.update(row)

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
        self._subscribers = []
        if self._fh is not None:
            self._fh.close()
            self._fh = None
