"""Goodput accounting (pretrain.train.goodput) and the ``restart`` event, as a callback.

On rank 0: at the first step of a launch it opens the run's ledger (counting the time since the previous
launch's last record as lost when that launch did not finish), logs a ``restart`` event when this launch
continues an interrupted one (its torchrun attempt number, the step it resumed from, the steps it will
recompute), then marks every step as productive or recomputed, every evaluation and checkpoint as such,
puts ``goodput`` into each logged train row and ends with a ``goodput`` event holding the parts (and,
after an interrupted run, Young's checkpoint interval at its measured save cost, step time and failure
rate: ``young_interval_steps``).
"""

from __future__ import annotations

import os
import time

from pretrain.train import goodput as gp
from pretrain.train.callbacks.base import Callback
from pretrain.train.distributed import restart_attempt
from pretrain.train.watchdog import beat


class GoodputMeter(Callback):
    order = 1  # first at a step's end: the step's time is marked before evaluations and checkpoints start

    def __init__(self):
        self.started = gp.take_start(time.time())
        self.ledger: gp.Ledger | None = None
        self.clock: gp.Clock | None = None

    def on_train_start(self, ctx) -> None:
        if not ctx.dist.is_main:
            return
        path = ctx.run_dir.root / "goodput.json"
        # Under torchrun the launcher (this process's parent) started first: a new run counts its start-up.
        launcher = gp.process_start_time(os.getppid()) if "TORCHELASTIC_RUN_ID" in os.environ else None
        ledger, lost = gp.open_ledger(path, self.started, launcher)
        previous_max = ledger.max_step
        self.ledger, self.clock = ledger, gp.Clock(ledger, ledger.last_seen)
        load_s = min(ctx.resume_load_s, max(0.0, time.time() - self.started))
        self.clock.mark("startup")
        ledger.parts["startup"] -= load_s
        ledger.parts["checkpoint_load"] += load_s
        attempt = restart_attempt()
        if ledger.launches > 1 and (attempt > 0 or lost > 0):
            step = ctx.state.step
            ctx.event("restart", f"attempt {attempt}: resumed at step {step}, {max(0, previous_max - step)} steps "
                      f"to recompute, {lost:.1f}s lost since the last record", attempt=attempt,
                      resumed_step=step, steps_lost=max(0, previous_max - step), lost_s=round(lost, 2))
        ledger.save(path)

    def on_step_end(self, ctx, step: int, metrics: dict) -> None:
        beat("callbacks", step)
        if self.clock is None or self.ledger is None:
            return
        self.clock.mark("recomputed" if step <= self.ledger.max_step else "productive")
        self.ledger.max_step = max(self.ledger.max_step, step)
        if ctx.is_log_step(step):
            metrics["goodput"] = round(self.ledger.goodput, 4)
        self.ledger.save(ctx.run_dir.root / "goodput.json")

    def on_eval(self, ctx, row: dict) -> None:
        if self.clock is not None:
            self.clock.mark("evaluation")

    def on_save(self, ctx, path) -> None:
        if self.clock is not None:
            self.clock.mark("checkpoint_save")
            self.ledger.saves += 1  # type: ignore[union-attr]
            self.ledger.save(ctx.run_dir.root / "goodput.json")  # type: ignore[union-attr]

    def on_train_end(self, ctx) -> None:
        if self.clock is None or self.ledger is None:
            return
        self.clock.mark("other")
        self.ledger.ended = ctx.control.stop or "done"
        summary = self.ledger.summary()
        young = summary["young_interval_steps"]
        ctx.event("goodput", f"{summary['goodput']:.1%} of {summary['wall_s']:.1f}s over "
                  f"{self.ledger.launches} launch(es) trained the model"
                  + (f"; at this run's failure rate a checkpoint every {young} steps would lose least "
                     f"(train.checkpoint_interval; Young's interval)" if young else ""), **summary)
        self.ledger.save(ctx.run_dir.root / "goodput.json")
