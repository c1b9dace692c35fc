"""The live console view during training: a progress bar with step, loss, lr, tokens/s, MFU and ETA.

The one implementation: the trainer's metrics logger (pretrain.train.metrics) shows it, and
pretrain.report.live re-exports it; it sits below both, so the trainer does not import the report.
Feed it the same rows that go to metrics.jsonl. On a terminal it redraws one bar in place and prints
evals and events above it; when output is a file or a pipe (CI logs, nohup) it prints one plain line
per train row instead, since a redrawn bar would be noise there.

A row's ``total_steps`` (the trainer's plan, which a stage extension can grow) replaces the total given
at construction. ETA comes from the measured step rate since the first row (robust to a slow first step only after a
few rows), capped by the run's time limit when one is set, since the trainer stops at whichever comes
first.
"""

from __future__ import annotations

import math
import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _f(row: dict, key: str) -> float | None:
    v = row.get(key)
    return float(v) if _is_number(v) and math.isfinite(v) else None


def format_eta(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "--:--"
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class LiveProgress:
    """Console progress for a training run. Use as a context manager; call ``update(row)`` per logged row."""

    def __init__(self, total_steps: int, console: Console | None = None, time_limit_s: float = 0.0,
                 clock=time.monotonic):
        self.total = max(int(total_steps), 1)
        self.console = console or Console(stderr=True)
        self.time_limit_s = time_limit_s
        self.clock = clock
        self._first: tuple[float, float] | None = None  # (clock, step) at the first train row
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> LiveProgress:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def start(self) -> None:
        if self.console.is_terminal and self._progress is None:
            self._progress = Progress(
                TextColumn("[bold cyan]{task.fields[stage]}"), BarColumn(bar_width=28),
                TextColumn("step {task.completed:.0f}/{task.total:.0f}"), TextColumn("{task.fields[metrics]}"),
                TextColumn("ETA {task.fields[eta]}"), console=self.console, refresh_per_second=4, transient=False)
            self._task = self._progress.add_task("train", total=self.total, stage="", metrics="", eta="--:--")
            self._progress.start()

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    # ------------------------------------------------------------------ rows
    def eta_s(self, row: dict) -> float | None:
        """Seconds left: measured step rate times steps left, capped by the time limit."""
        step = _f(row, "step")
        if step is None:
            return None
        now = self.clock()
        if self._first is None:
            self._first = (now, step)
        t0, s0 = self._first
        eta = None
        if step > s0 and now > t0:
            eta = (self.total - step) * (now - t0) / (step - s0)
        elapsed = _f(row, "time_s")
        if self.time_limit_s and elapsed is not None:
            left = max(self.time_limit_s - elapsed, 0.0)
            eta = left if eta is None else min(eta, left)
        return eta

    @staticmethod
    def metrics_text(row: dict) -> str:
        parts = []
        for key, label, fmt in (("loss", "loss", "{:.4f}"), ("lr", "lr", "{:.2e}"), ("grad_norm", "gnorm", "{:.2f}"),
                                ("tokens_per_s", "tok/s", "{:,.0f}")):
            v = _f(row, key)
            if v is not None:
                parts.append(f"{label} {fmt.format(v)}")
        mfu = _f(row, "mfu")
        if mfu is not None:
            parts.append(f"mfu {mfu:.1%}" if mfu <= 1 else f"mfu {mfu:.3g}")
        return "  ".join(parts)

    def status_line(self, row: dict) -> str:
        """The plain one-line form (used when the console is not a terminal)."""
        stage = f"[{row['stage']}] " if row.get("stage") else ""
        step = int(row.get("step", 0))
        return f"{stage}step {step}/{self.total}  {self.metrics_text(row)}  ETA {format_eta(self.eta_s(row))}"

    def update(self, row: dict) -> None:
        kind = row.get("type", "train")
        if kind == "train":
            total = _f(row, "total_steps")
            if total:
                self.total = max(int(total), 1)
            if self._progress is None:
                self.console.print(self.status_line(row), highlight=False, markup=False)
                return
            self._progress.update(self._task, total=self.total, completed=min(float(row.get("step", 0)), self.total),
                                  stage=str(row.get("stage", "")), metrics=self.metrics_text(row),
                                  eta=format_eta(self.eta_s(row)))
        elif kind == "eval":
            vals = "  ".join(f"{k} {v:.4f}" for k, v in row.items()
                             if k in ("val_loss", "val_bpb") and _is_number(v))
            model = f" [{row['model']}]" if row.get("model") else ""
            self.console.print(f"eval step {row.get('step')}{model}: {vals}", highlight=False, markup=False)
        elif kind == "event" and row.get("event") != "checkpoint":
            self.console.print(f"event step {row.get('step')}: {row.get('event')} {row.get('detail', '')}",
                               highlight=False, markup=False)
