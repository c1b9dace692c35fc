"""Preemption: on one of ``train.preempt_signals`` (SIGTERM and SIGUSR1 by default: what Slurm, Kubernetes
and torchrun send before they kill a job) the loop finishes the step in flight, the ranks agree on the
step to stop at, a checkpoint of that step is written, a ``preempted`` event is logged and the run
returns ``stopped="preempted"`` (the CLI exits with ``PREEMPTED_EXIT``). A second signal during the
save is recorded and otherwise ignored: the save goes on (and if the process is killed anyway, the
checkpoint directory is still written atomically: the previous one stays the newest valid).

The agreement is one small all-reduce (max) per step under torchrun: ranks receive a forwarded signal
at slightly different times, and all must stop after the same step or the next collective hangs.
"""

from __future__ import annotations

import signal
import threading
import time

import torch

from pretrain.train.callbacks.base import Callback

PREEMPTED_EXIT = 75
"""Exit status after a preemption checkpoint (EX_TEMPFAIL: try again; docs/training.md)."""


class Preemption(Callback):
    order = 950  # after the metrics writer (the step is logged), before the checkpoint callback (1000)

    def __init__(self, signals: list[str]):
        self.signals = [signal.Signals[s] for s in signals]
        self.received: list[tuple[int, float]] = []  # (signal number, time) in arrival order
        self._previous: dict[signal.Signals, object] = {}
        self.stop_step = 0
        self.signum = 0  # the signal the ranks agreed on (the largest number any rank received first)

    def _handler(self, signum, frame) -> None:
        self.received.append((signum, time.time()))  # only a flag: the loop acts at the step's end

    def on_train_start(self, ctx) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # Python delivers signals to the main thread only
        for sig in self.signals:
            self._previous[sig] = signal.signal(sig, self._handler)

    def on_step_end(self, ctx, step: int, metrics: dict) -> None:
        mine = self.received[0][0] if self.received else 0
        agreed = mine
        if ctx.dist.enabled:
            import torch.distributed as dist

            flag = torch.tensor([mine], dtype=torch.int64, device=ctx.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            agreed = int(flag.item())
        if agreed and not ctx.control.stop:
            ctx.control.stop = "preempted"
            self.stop_step = step
            self.signum = agreed

    def on_train_end(self, ctx) -> None:
        if ctx.control.stop == "preempted":
            name = signal.Signals(self.signum).name
            first = self.received[0][1] if self.received else time.time()
            ctx.event("preempted", f"{name}: stopped after step {self.stop_step}, checkpoint written "
                      f"{time.time() - first:.2f}s after the signal; exit status {PREEMPTED_EXIT}",
                      signal=name, signals_received=len(self.received), stop_step=self.stop_step)
        self.close()

    def close(self) -> None:
        """Give the signals back to their previous handlers."""
        for sig, old in self._previous.items():
            signal.signal(sig, old)  # type: ignore[arg-type]
        self._previous = {}
