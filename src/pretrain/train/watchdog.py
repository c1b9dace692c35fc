"""The hang watchdog: a thread in each rank that ends the process when the loop makes no progress.

The loop reports progress with ``beat(phase, step)`` when it enters a phase (data, forward/backward,
collective, optimizer, callbacks, checkpoint, evaluation). If ``train.watchdog_timeout`` seconds pass
without a beat, the thread writes every thread's stack (faulthandler) to
``RUN/watchdog/rank<R>-attempt<A>.txt``, appends a ``hang`` event naming the rank, the phase and the
step to metrics.jsonl, prints one line and ends the process with ``HANG_EXIT``, so torchrun
(``--max-restarts``) restarts the group from the newest checkpoint instead of every rank waiting in
the next collective. The process group's timeout follows the watchdog's (``process_group_timeout``):
a rank blocked in a collective behind a hung peer reaches its own watchdog first, never the 30-minute
gloo default.

The timeout depends on the phase. Ordinary steps (data, forward/backward, collective, optimizer,
callbacks) get ``train.watchdog_timeout``; the phases that are legitimately long get
``train.watchdog_slow_timeout``: a checkpoint (save or load), an evaluation, and the first step of a
launch or of a stage (torch.compile compiles there, DDP builds its buckets, a new stage's loader fills).
So a step timeout can sit a little above the slowest ordinary step, which is what a hang costs, without
ending a run during its first compile or a long save.

Beats are module state (one loop per process) so the step code reports a phase without holding the
watchdog: a beat is two assignments and a clock read.
"""

from __future__ import annotations

import faulthandler
import json
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

HANG_EXIT = 76
"""Exit status of a process the watchdog ended (documented in docs/training.md, "Running unattended")."""

DEFAULT_TIMEOUT_S = {"cuda": 600.0, "cpu": 1800.0}
"""``train.watchdog_timeout = -1`` (auto): GPU steps take seconds, a first step with torch.compile a few
minutes; CPU steps, evaluations and checkpoints of larger models can take many minutes. Also the floor
of ``train.watchdog_slow_timeout = -1``."""

SLOW_PHASES = frozenset({"startup", "checkpoint", "evaluation"})
"""Phases timed by the slow timeout (besides a launch's or stage's first step)."""


@dataclass
class _Heart:
    phase: str = "startup"
    step: int = 0
    at: float = field(default_factory=time.monotonic)
    slow_until: int = 0
    """Steps up to this one are a launch's or a stage's first: timed by the slow timeout."""


_HEART = _Heart()


def beat(phase: str, step: int | None = None) -> None:
    """The loop entered ``phase`` (at ``step``): progress, so the watchdog's clock starts again."""
    _HEART.phase, _HEART.at = phase, time.monotonic()
    if step is not None:
        _HEART.step = step


def slow_step(step: int) -> None:
    """Steps up to ``step`` are a first step (of a launch or a stage): the slow timeout times them."""
    _HEART.slow_until = step


def resolve_timeout(setting: float, device_type: str) -> float:
    """Seconds for ``train.watchdog_timeout`` (-1 = the device's default, 0 = off)."""
    if setting < 0:
        return DEFAULT_TIMEOUT_S.get(device_type, DEFAULT_TIMEOUT_S["cuda"])
    return float(setting)


def resolve_slow_timeout(setting: float, step_s: float, device_type: str) -> float:
    """Seconds for ``train.watchdog_slow_timeout``: -1 = the device's default, never below the step
    timeout (a slow phase is never timed shorter than a step); 0 = the step timeout."""
    if step_s <= 0:
        return 0.0
    if setting < 0:
        return max(step_s, DEFAULT_TIMEOUT_S.get(device_type, DEFAULT_TIMEOUT_S["cuda"]))
    return max(step_s, float(setting))


def process_group_timeout(watchdog_s: float) -> float:
    """A collective's timeout under a watchdog (its longest, the slow timeout): a minute longer, so the
    watchdog (which writes the stack dump) fires first on every rank; 0 (the backend's default) without one."""
    return watchdog_s + 60.0 if watchdog_s > 0 else 0.0


class Watchdog:
    """``start()`` / ``stop()``; fires at most once. ``slow_timeout_s`` (default: ``timeout_s``) times the
    slow phases and first steps."""

    def __init__(self, timeout_s: float, run_root: Path, rank: int = 0, attempt: int = 0,
                 slow_timeout_s: float = 0.0):
        self.timeout_s, self.run_root, self.rank, self.attempt = timeout_s, Path(run_root), rank, attempt
        self.slow_timeout_s = max(timeout_s, slow_timeout_s)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def dump_path(self) -> Path:
        return self.run_root / "watchdog" / f"rank{self.rank}-attempt{self.attempt}.txt"

    def start(self) -> None:
        if self.timeout_s <= 0 or self._thread is not None:
            return
        beat(_HEART.phase)
        self._thread = threading.Thread(target=self._run, name="pretrain-watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def limit(self) -> float:
        """The timeout of the phase the loop is in now."""
        slow = _HEART.phase in SLOW_PHASES or _HEART.step <= _HEART.slow_until
        return self.slow_timeout_s if slow else self.timeout_s

    def _run(self) -> None:
        # A hang is noticed at most a twentieth of the step timeout late (a wake-up costs nothing measurable).
        poll = min(1.0, self.timeout_s / 20)
        while not self._stop.wait(poll):
            idle, limit = time.monotonic() - _HEART.at, self.limit()
            if idle > limit:
                self.fire(idle, limit)

    def fire(self, idle: float, limit: float | None = None) -> None:
        """Dump the stacks, record the hang and end the process (never returns)."""
        limit = self.timeout_s if limit is None else limit
        phase, step = _HEART.phase, _HEART.step
        path = self.dump_path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "w") as fh:
                fh.write(f"rank {self.rank}, attempt {self.attempt}: no progress for {idle:.1f}s "
                         f"(timeout {limit:g}s: train.watchdog_timeout={self.timeout_s:g}, "
                         f"slow phases {self.slow_timeout_s:g}) in phase {phase!r} at step {step}\n\n")
                fh.flush()
                faulthandler.dump_traceback(fh, all_threads=True)
            self._record(phase, step, idle, path)
        finally:
            print(f"error: rank {self.rank} made no progress for {idle:.0f}s in phase {phase} at step {step}; "
                  f"stacks in {path}", file=sys.stderr, flush=True)
            os._exit(HANG_EXIT)

    def _record(self, phase: str, step: int, idle: float, path: Path) -> None:
        # Any rank may hang, and only rank 0 holds the metrics logger: append the row directly. One
        # write() of one line to an O_APPEND file does not interleave with rank 0's rows.
        row = {"type": "event", "step": step, "event": "hang", "rank": self.rank, "attempt": self.attempt,
               "phase": phase, "idle_s": round(idle, 1), "dump": str(path.relative_to(self.run_root)),
               "detail": f"rank {self.rank} made no progress for {idle:.0f}s in phase {phase} (attempt {self.attempt})"}
        fd = os.open(self.run_root / "metrics.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (json.dumps(row) + "\n").encode())
        finally:
            os.close(fd)


__all__ = ["DEFAULT_TIMEOUT_S", "HANG_EXIT", "SLOW_PHASES", "Watchdog", "beat", "process_group_timeout",
           "resolve_slow_timeout", "resolve_timeout", "slow_step"]
