"""Checkpoint cadence: every ``train.checkpoint_interval`` steps, at every stage end (a milestone, kept
forever), at the anneal's last-N averaging points, at the end, and when the run stops early (time
limit). How a checkpoint is written is the trainer's ``save`` and the parallel plan's business."""

from __future__ import annotations

from pretrain.train.callbacks import Callback


class Checkpointing(Callback):
    order = 1000  # last: the checkpoint holds every other callback's state after this step

    def __init__(self, tcfg):
        self.t = tcfg
        self.last_saved = -1

    def _want(self, trainer, step: int) -> bool:
        t, stage = self.t, trainer.stage
        if (t.checkpoint_interval and step % t.checkpoint_interval == 0) or step >= trainer.plan.total:
            return True
        if stage.kind == "anneal" and t.averaging.last_n >= 2:
            interval = t.averaging.interval or max(1, stage.steps // t.averaging.last_n)
            return (step - stage.start) % interval == 0
        return False

    def _milestone(self, step: int) -> bool:
        return bool(self.t.milestone_interval and step % self.t.milestone_interval == 0)

    def on_step_end(self, trainer, step: int, metrics: dict) -> None:
        if step != trainer.stage.end and self._want(trainer, step):  # a stage end is on_stage_end's
            self._save(trainer, step, self._milestone(step))

    def on_stage_end(self, trainer, stage) -> None:
        extended = trainer.stage.end > trainer.step  # the gate granted more steps: not the end after all
        if not extended or self._want(trainer, trainer.step):
            self._save(trainer, trainer.step, not extended or self._milestone(trainer.step))

    def on_train_end(self, trainer) -> None:
        if trainer.control.stop and self.last_saved != trainer.step:
            self._save(trainer, trainer.step, False)

    def _save(self, trainer, step: int, milestone: bool) -> None:
        trainer.save(milestone=milestone)
        self.last_saved = step
