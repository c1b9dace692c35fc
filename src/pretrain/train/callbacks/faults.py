"""Fault injection for tests and ``benchmarks/faults.py``: a callback that, at one step of one attempt,
kills its own rank (SIGKILL, as a lost machine would), hangs it (sleeps in a phase, as a stuck collective
or a dead mount would) or raises. Use it by import path:

    train.callbacks=["pretrain.train.callbacks.faults:InjectFault"]
    train.callback_args."pretrain.train.callbacks.faults:InjectFault"={kind="kill", step=5, rank=1}

A hang sleeps at the start of step ``step`` (the loop's phase is then "data"); the others act at the
end of step ``step``. It acts only in the torchrun attempt it names (``TORCHELASTIC_RESTART_COUNT``, default 0), so the
restarted job trains through the same step. With ``trigger="PATH"`` it acts instead whenever the file
``PATH.rank<R>`` appears (and removes it), at any step: benchmarks/faults.py injects hangs so.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from pretrain.train.callbacks.base import Callback
from pretrain.train.distributed import restart_attempt

KINDS = ("kill", "hang", "raise", "term")


class InjectFault(Callback):
    order = 5  # before the other callbacks: the fault hits before the step's checkpoint

    def __init__(self, kind: str = "kill", step: int = 1, rank: int = 0, attempt: int = 0, seconds: float = 3600.0,
                 trigger: str = ""):
        if kind not in KINDS:
            from pretrain.configlib import ConfigError

            raise ConfigError("train.callback_args", f"InjectFault kind must be one of {', '.join(KINDS)} (got {kind!r})")
        self.kind, self.step, self.rank, self.attempt, self.seconds = kind, int(step), int(rank), int(attempt), seconds
        self.trigger = trigger

    def _mine(self, ctx, step: int) -> bool:
        if self.trigger:  # on demand: the file <trigger>.rank<R> names the rank; it is used up
            flag = Path(f"{self.trigger}.rank{ctx.dist.rank}")
            if flag.exists():
                flag.unlink(missing_ok=True)
                return True
            return False
        return step == self.step and ctx.dist.rank == self.rank and restart_attempt() == self.attempt

    def on_step_start(self, ctx, step: int, metrics: dict) -> None:
        if self.kind == "hang" and self._mine(ctx, step):
            time.sleep(self.seconds)  # before the step's batches: a stuck data worker or a dead mount

    def on_step_end(self, ctx, step: int, metrics: dict) -> None:
        if self.kind == "hang" or not self._mine(ctx, step):
            return
        if self.kind == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        elif self.kind == "term":
            os.kill(os.getpid(), signal.SIGTERM)
        else:
            raise RuntimeError(f"injected fault at step {step} on rank {self.rank}")
