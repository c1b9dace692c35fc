"""Step lineage: writes ``<run>/lineage/steps.jsonl``, from which ``pretrain trace`` recomputes the
documents (and which of their tokens) of any step with the deterministic loader, instead of logging
every batch (the format is in pretrain.lineage.steplog; nothing in it grows with the tokens).

Only a :class:`~pretrain.data.loader.PackedLoader` can be described; other loaders (in-memory test
streams) leave no log. The main process writes; the loader's state is the global position, the same
on every rank.
"""

from __future__ import annotations

import json

from pretrain.train.callbacks.base import Callback


class StepLineage(Callback):
    order = 30  # after the spike guard (20), which may skip the step's batches

    def __init__(self) -> None:
        self.writer = None
        self._loader = None
        self._segment = ""
        self._plan: tuple | None = None
        self._total = 0
        self._last: dict | None = None

    def on_train_start(self, ctx) -> None:
        from pretrain.lineage.steplog import StepLogWriter

        self._loader, self._plan = None, None
        if ctx.dist.is_main:  # a run from step 0 starts a new log; a resumed one appends to it
            self.writer = StepLogWriter(ctx.run_dir.root, fresh=ctx.state.step == 0)

    def on_step_start(self, ctx, step: int, metrics: dict) -> None:
        from pretrain.lineage.replay import describe, position

        if self.writer is None:
            return
        if ctx.loader is not self._loader:  # a new stage, a resume or a rewind: a new loader
            self._loader, self._plan = ctx.loader, None
            header = describe(ctx.loader)
            self._segment = self.writer.segment(header) if header is not None else ""
            if self._segment:
                self.writer.write({"from": step, "segment": self._segment, "start": position(ctx.loader)})
        if not self._segment:
            return
        self._total = ctx.stage_plan.total
        progress = ctx.loader.progress
        if progress != (step - 1) / max(1, self._total):  # the loop set it some other way: keep it
            self.writer.write({"progress": step, "value": progress})

    def on_step_end(self, ctx, step: int, metrics: dict) -> None:
        if self.writer is None or not self._segment or ctx.loader is not self._loader:
            return
        world = ctx.dist.world
        plan = (len(ctx.batches) * (world if ctx.per_rank_data else 1), world, self._total)
        if plan != self._plan:
            self.writer.write({"plan": step, "micro": plan[0], "world": plan[1], "total": plan[2]})
            self._plan = plan
        if metrics.get("skipped") or ctx.control.skip_batches or ctx.control.skip_update:
            self.writer.write({"skip": step})

    def on_save(self, ctx, path) -> None:
        if self.writer is None or not self._segment:
            return
        meta = path / "meta.json"
        step = json.loads(meta.read_text())["step"] if meta.is_file() else ctx.state.step
        self._reached(ctx, int(step))

    def on_train_end(self, ctx) -> None:
        if self.writer is not None:
            if self._segment:
                self._reached(ctx, ctx.state.step)
            self.writer.close()
            self.writer = None

    def _reached(self, ctx, step: int) -> None:
        from pretrain.lineage.replay import position

        # The loader's position is that of the step only when the save is not a late (async) one.
        here = position(ctx.loader) if step == ctx.state.step and ctx.loader is self._loader else None
        line = {"reached": step, "position": here}
        if line != self._last:  # the final model's save and the end of the run name the same step
            self.writer.write(line)
            self._last = line
