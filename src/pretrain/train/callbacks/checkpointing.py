"""Checkpoint cadence: every ``train.checkpoint_interval`` steps, at every stage end (a milestone, kept
forever), at the anneal's last-N averaging points, at the end, and when the run stops early (time
limit). How a checkpoint is written is the ctx's ``save`` and the parallel plan's business."""

from __future__ import annotations

import sys

from pretrain.train import checkpoint as ckpt
from pretrain.train.callbacks.base import Callback


class Checkpointing(Callback):
    order = 1000  # last: the checkpoint holds every other callback's state after this step

    def __init__(self, tcfg):
        self.t = tcfg
        self.last_saved = -1

    def _want(self, ctx, step: int) -> bool:
        t, stage = self.t, ctx.stage
        if (t.checkpoint_interval and step % t.checkpoint_interval == 0) or step >= ctx.stage_plan.total:
            return True
        if stage.kind == "anneal" and t.averaging.last_n >= 2:
            interval = t.averaging.interval or max(1, stage.steps // t.averaging.last_n)
            return (step - stage.start) % interval == 0
        return False

    def _milestone(self, step: int) -> bool:
        return bool(self.t.milestone_interval and step % self.t.milestone_interval == 0)

    def on_step_end(self, ctx, step: int, metrics: dict) -> None:
        if step != ctx.stage.end and self._want(ctx, step):  # a stage end is on_stage_end's
            self._save(ctx, step, self._milestone(step))

    def on_stage_end(self, ctx, stage) -> None:
        extended = ctx.stage.end > ctx.state.step  # the gate granted more steps: not the end after all
        if not extended or self._want(ctx, ctx.state.step):
            self._save(ctx, ctx.state.step, not extended or self._milestone(ctx.state.step))

    def on_train_end(self, ctx) -> None:
        if ctx.control.stop and self.last_saved != ctx.state.step:
            self._save(ctx, ctx.state.step, False)

    def _save(self, ctx, step: int, milestone: bool) -> None:
        try:
            ctx.save(milestone=milestone)
        except OSError as exc:  # disk full, quota, file-size limit: the directory was never renamed into place
            self._failed(ctx, step, exc)
            return
        self.last_saved = step

    def _failed(self, ctx, step: int, exc: BaseException) -> None:
        """Say in one line that the previous checkpoint is still the valid one; stop or go on as
        train.on_save_error says."""
        root = ctx.run_dir.checkpoints
        if ctx.dist.is_main:
            ckpt.clean_temporaries(root)  # the half-written .tmp- directory only takes space
        newest = ckpt.latest_checkpoint(root)
        keep = f"{newest.name} is still the newest valid checkpoint" if newest else "there is no valid checkpoint yet"
        msg = f"checkpoint at step {step} could not be written ({getattr(exc, 'strerror', None) or exc}); {keep}"
        ctx.event("save_failed", msg, error=type(exc).__name__)
        if self.t.on_save_error == "stop":
            raise ckpt.CheckpointSaveError(f"{msg} (train.on_save_error=stop)") from None
        if ctx.dist.is_main:
            print(f"warning: {msg}; training goes on (train.on_save_error=continue)", file=sys.stderr, flush=True)

