"""Experiment trackers: each is a callback that mirrors metrics.jsonl to one service.

``train.trackers`` names them (default ``["tensorboard"]``); ``TRACKERS`` maps a name to the module that
holds its class, so adding a tracker is one file and one line here. Every tracker gets the resolved config
as flat ``section.field`` params, every row the trainer logs (train and eval rows as metrics keyed
``train/...`` and ``eval/...``, events as ``event/<name>`` markers), the final numbers as a summary and,
through ``attach_report``, the HTML report. The run id is in the callback's ``state_dict`` and so in the
checkpoint: a resumed run continues the same tracker run. Only rank 0 logs.

A tracker never stops training: metrics.jsonl is written before any tracker sees a row, and the first
error (network down, bad credentials, a missing package) prints one warning line, logs a
``tracker_failed`` event and turns that tracker off. Credentials come from each service's own environment
variables or login files (``WANDB_API_KEY``, ``MLFLOW_TRACKING_TOKEN``, ``HF_TOKEN`` ...); no config
field holds one, so none reaches config.toml, metrics.jsonl, a checkpoint or the report.
"""

from __future__ import annotations

import importlib
import json
import queue
import re
import sys
import threading
import traceback
from pathlib import Path
from typing import Any

from pretrain.train.callbacks.base import Callback

TRACKERS: dict[str, str] = {
    "tensorboard": "pretrain.train.callbacks.trackers.tensorboard:TensorBoardTracker",
    "wandb": "pretrain.train.callbacks.trackers.wandb:WandbTracker",
    "mlflow": "pretrain.train.callbacks.trackers.mlflow:MlflowTracker",
    "trackio": "pretrain.train.callbacks.trackers.trackio:TrackioTracker",
}

# Keys that every service accepts in a param name; a dict with other keys ("*.py") stays one JSON value.
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")

IDS_FILE = "trackers.json"
"""<run>/trackers.json: {tracker name: run id}, for ``attach_report`` after training."""


def flat_params(obj: Any, prefix: str = "") -> dict[str, Any]:
    """A (nested) config -> {"train.lr": 0.001, ...}; lists and dicts of leaves become JSON strings."""
    from pretrain.configlib import to_dict

    data = to_dict(obj) if not isinstance(obj, dict) else obj
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value and all(_PLAIN_KEY.fullmatch(str(k)) for k in value):
            out.update(flat_params(value, name + "."))
        elif isinstance(value, (list, tuple, dict)):
            out[name] = json.dumps(value, default=str)
        else:
            out[name] = value
    return out


def row_metrics(row: dict) -> dict[str, float]:
    """A metrics.jsonl row -> the numbers a tracker plots at the row's step."""
    kind = row.get("type")
    if kind == "event":
        return {f"event/{row.get('event', 'event')}": 1.0}
    prefix = "train/" if kind == "train" else f"eval/{row['model']}/" if row.get("model") else "eval/"
    return {prefix + k: float(v) for k, v in row.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "step"}


def describe(exc: BaseException) -> str:
    """One line: the exception, and where in the service's code it was raised (to report upstream)."""
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" at {Path(tb[-1].filename).parent.name}/{Path(tb[-1].filename).name}:{tb[-1].lineno}" if tb else ""
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}{where}"[:300]


class _Worker:
    """Runs a tracker's calls in order on one background thread, so a slow service (a remote MLflow
    server, a sqlite store being created, W&B's service starting) never stalls a training step. The
    first exception stops the calls; ``error`` says what it was."""

    def __init__(self, name: str):
        self.queue: queue.Queue = queue.Queue()
        self.error = ""
        self.thread = threading.Thread(target=self._run, name=f"tracker-{name}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (fn := self.queue.get()) is not None:
            if isinstance(fn, threading.Event):  # a drain mark: everything before it has run
                fn.set()
            elif not self.error:
                try:
                    fn()
                except Exception as exc:  # any failure of the service: reported by the main thread
                    self.error = describe(exc)

    def submit(self, fn) -> None:
        self.queue.put(fn)

    def drain(self, timeout: float) -> None:
        """Wait until every call submitted so far has run (or ``timeout`` passes)."""
        done = threading.Event()
        self.queue.put(done)
        done.wait(timeout)

    def close(self, timeout: float) -> None:
        self.queue.put(None)
        self.thread.join(timeout)


class Tracker(Callback):
    """The shared part: start or resume on rank 0, forward rows, survive failures, finish.
    Subclasses implement ``start(run_root, name, params, run_id) -> run id``, ``log(step, metrics)``,
    ``event(step, name, detail)``, ``finish(summary)`` and ``upload(path, name)``; the base calls them
    in order on a background thread (see _Worker)."""

    name = ""
    order = 3  # lowest: subscribes before other callbacks log at start; finishes last (after the final eval)
    close_timeout_s = 300.0  # how long the end of training waits for the service to take the last rows
    start_timeout_s = 120.0  # how long a checkpoint waits for the run id of a tracker still starting

    def __init__(self, project: str = ""):
        self.project = project
        self.run_id = ""
        self.last_step = 0
        self.active = False
        self._ctx = None
        self._log = None
        self._worker: _Worker | None = None
        self._started = threading.Event()

    # ---- what each service implements
    def start(self, run_root: Path, name: str, params: dict[str, Any], run_id: str) -> str:
        raise NotImplementedError

    def log(self, step: int, metrics: dict[str, float]) -> None:
        raise NotImplementedError

    def event(self, step: int, name: str, detail: str) -> None:
        self.log(step, {f"event/{name}": 1.0})

    def finish(self, summary: dict[str, float]) -> None: ...

    def upload(self, path: Path, name: str) -> None: ...

    # ---- the callback
    def on_train_start(self, ctx) -> None:
        if not ctx.dist.is_main:
            return
        self._ctx = ctx
        root = ctx.run_dir.root
        name = str(ctx.run_config.get("name") or root.name)
        params = flat_params(ctx.run_config)
        self._worker, self.active = _Worker(self.name), True
        self._worker.submit(lambda: self._open(root, name, params))
        self._attach()

    def _open(self, run_root: Path, name: str, params: dict) -> None:
        try:
            self.run_id = str(self.start(run_root, name, params, self.run_id))
            record_run_id(run_root, self.name, self.run_id, self.project)
        finally:
            self._started.set()

    def _attach(self) -> None:
        """(Re)subscribe: a rewind or resume replaces the run's metrics logger."""
        ctx = self._ctx
        self._check()
        if self.active and ctx is not None and ctx.metrics.logger is not self._log:
            self._log = ctx.metrics.logger
            ctx.metrics.subscribe(self._row)

    def _row(self, row: dict) -> None:
        self._check()
        if not self.active or self._worker is None:
            return
        step = self.last_step = int(row.get("step", 0))
        if row.get("type") == "event":
            name, detail = str(row.get("event")), str(row.get("detail", ""))
            self._worker.submit(lambda: self.event(step, name, detail))
        else:
            metrics = row_metrics(row)
            self._worker.submit(lambda: self.log(step, metrics))

    def _check(self) -> None:
        """On the main thread: report (once) a failure the worker met."""
        if self.active and self._worker is not None and self._worker.error:
            self._fail(self._worker.error)

    def _fail(self, detail: str) -> None:
        print(f"warning: tracker {self.name!r} failed ({detail}); training goes on, "
              "metrics.jsonl keeps every row", file=sys.stderr)
        self.active = False
        if self._ctx is not None:
            self._ctx.event("tracker_failed", f"{self.name}: {detail}")

    def _guard(self, fn) -> bool:
        """Run ``fn`` here and now (attach_report); a failure warns in one line."""
        try:
            fn()
            return True
        except Exception as exc:  # any failure of the service: warn once, go on
            self._fail(describe(exc))
            return False

    def on_step_start(self, ctx, step: int, metrics: dict) -> None:
        self._attach()

    def on_stage_start(self, ctx, stage) -> None:
        self._attach()

    def on_eval(self, ctx, row: dict) -> None:
        self._attach()

    def on_train_end(self, ctx) -> None:
        self._attach()
        if self._worker is None:
            return
        if self.active:
            summary = {f"final/{k}": float(v) for k, v in ctx.final_losses.items()  # (device scalars too)
                       if (isinstance(v, (int, float)) and not isinstance(v, bool))
                       or (hasattr(v, "numel") and v.numel() == 1)}
            self._worker.submit(lambda: self.finish(summary))
        self._worker.close(self.close_timeout_s)
        self._check()
        if self.active and self._worker.thread.is_alive():
            self._fail(f"still sending after {self.close_timeout_s:.0f} s; the rest is only in metrics.jsonl")
        self.active, self._worker = False, None

    def state_dict(self) -> dict:
        if self._worker is not None:  # a checkpoint needs the run id: wait for a tracker still starting
            self._started.wait(self.start_timeout_s)
            # ... and the service must hold every row up to the checkpoint: a resume from it logs only
            # the rows after it, so a row still queued at a crash would otherwise be a gap in the run.
            self._worker.drain(self.close_timeout_s)
        return {"run_id": self.run_id}

    def load_state_dict(self, state: dict) -> None:
        self.run_id = str(state.get("run_id", ""))


def record_run_id(run_root: Path, name: str, run_id: str, project: str) -> None:
    path = run_root / IDS_FILE
    ids = json.loads(path.read_text()) if path.is_file() else {}
    ids[name] = {"run_id": run_id, "project": project}
    path.write_text(json.dumps(ids, indent=1) + "\n")


def load_tracker_class(name: str) -> type[Tracker]:
    module, _, attr = TRACKERS[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def build_trackers(tcfg) -> list[Tracker]:
    """``train.trackers`` -> tracker callbacks (names were checked by TrainConfig.validate)."""
    return [load_tracker_class(n)(tcfg.tracker_project) for n in tcfg.trackers]


def attach_report(run_root: Path, report_dir: Path, skip: tuple[str, ...] = ("tensorboard",)) -> list[str]:
    """Upload ``report_dir`` to each tracker run recorded in <run>/trackers.json; returns the names it
    reached (a failure warns in one line, like during training)."""
    path = Path(run_root) / IDS_FILE
    if not path.is_file():
        return []
    done = []
    for name, rec in json.loads(path.read_text()).items():
        run_id = rec.get("run_id", "") if isinstance(rec, dict) else ""
        if name not in TRACKERS or not run_id or name in skip:
            continue
        tracker = load_tracker_class(name)(rec.get("project", ""))

        def send(t=tracker, r=run_id) -> None:  # reopen the training's run, attach, close it again
            t.start(Path(run_root), Path(run_root).name, {}, r)
            t.upload(Path(report_dir), "report")
            t.finish({})

        if tracker._guard(send):
            done.append(name)
    return done


__all__ = ["TRACKERS", "Tracker", "attach_report", "build_trackers", "flat_params", "row_metrics"]
