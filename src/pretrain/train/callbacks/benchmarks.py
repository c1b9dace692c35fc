"""Benchmarks during training (``eval.tasks``): lm-eval multiple-choice scores in the eval rows.

At the evaluation cadence (every ``eval.interval`` steps and at each stage end) every process scores its
share of the documents and the shares are gathered (pretrain.eval.intrain.TaskScorer); under FSDP,
where a forward pass is collective, the shares are padded to the same length so every process runs the
same batches. The loop's evaluator is wrapped so the eval row it logs carries the scores
(``task/<name>/acc`` ...). Other evaluations (the final model's candidates, the long-context gate) score
the model they are given in full, on the process that evaluates (on every process in step under FSDP).
"""

from __future__ import annotations

from pretrain.train.callbacks.base import Callback


class Benchmarks(Callback):
    order = 945  # before the evaluation callback (950): the scores are ready when its row is built

    def __init__(self, scorer, interval: int):
        self.scorer, self.interval = scorer, interval
        self.pending: tuple | None = None  # ((step, id(model)), scores) from the shared scoring

    def on_train_start(self, ctx) -> None:
        inner = ctx.evaluator

        def evaluate(model, seq_len: int) -> dict:
            row = inner(model, seq_len) if inner is not None else {}
            key = (ctx.state.step, id(model))
            if self.pending is not None and self.pending[0] == key:
                scores = self.pending[1]
            else:
                scores = self._score(ctx, model, share=False)
            self.pending = None
            return {**row, **scores}

        ctx.evaluator = evaluate

    def on_step_end(self, ctx, step: int, metrics: dict) -> None:
        if self.interval and step % self.interval == 0 and step != ctx.stage.end:
            self._prepare(ctx)

    def on_stage_end(self, ctx, stage) -> None:
        self._prepare(ctx)

    def _prepare(self, ctx) -> None:
        self.pending = ((ctx.state.step, id(ctx.model)), self._score(ctx, ctx.model, share=True))

    def _score(self, ctx, model, share: bool) -> dict:
        was = model.training
        try:
            if share and ctx.dist.enabled:
                return self.scorer.score(model, ctx.dist.rank, ctx.dist.world,
                                         collective=ctx.parallel.collective_forward)
            return self.scorer.score(model)
        finally:
            model.train(was)
