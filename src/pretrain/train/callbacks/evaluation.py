"""Evaluation cadence: held-out evaluation every ``eval.interval`` steps and at the end of every stage
(at the stage's context length). The evaluator itself is the ctx's (``Trainer.evaluate``)."""

from __future__ import annotations

from pretrain.train.callbacks.base import Callback


class Evaluation(Callback):
    order = 950  # after the metrics writer: the step's train row comes before its eval row

    def __init__(self, interval: int):
        self.interval = interval

    def on_step_end(self, ctx, step: int, metrics: dict) -> None:
        if self.interval and step % self.interval == 0 and step != ctx.stage.end:
            ctx.evaluate()  # (a stage's last step is evaluated by on_stage_end)

    def on_stage_end(self, ctx, stage) -> None:
        ctx.evaluate(seq_len=stage.seq_len)
