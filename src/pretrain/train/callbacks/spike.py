"""Loss spikes and NaN/Inf: flag the step (pretrain.train.stability), then skip its update, or rewind to
the last good checkpoint and skip the offending batches, or only log it (``train.spike.policy``).

The verdict must be known before the update is applied, so policies skip and rewind read the step's loss
and gradient norm back from the device once per step. ``policy = "log"`` only reports, so it judges the
steps in bulk on logged steps and at checkpoints (same verdicts, no per-step sync; its spike rows carry
no lineage, the batches are gone by then); ``"off"`` judges nothing.
"""

from __future__ import annotations

import math

from pretrain.train import checkpoint as ckpt
from pretrain.train.callbacks.base import Callback
from pretrain.train.lineage import lineage_summary, step_batches
from pretrain.train.stability import SpikeDetector, TrainingDiverged


class SpikeGuard(Callback):
    order = 20

    def __init__(self, scfg):
        self.cfg = scfg
        self.detector = SpikeDetector(scfg.window, scfg.min_history, scfg.sigma, grad_norm=scfg.grad_norm,
                                      min_rise=scfg.min_rise)
        self.skip_steps: set[int] = set()
        """1-based steps whose batches are drawn but not trained on (the spikes a rewind went back over)."""
        self.rewinds = 0
        self.consecutive_skips = 0
        self._pending: list[tuple[int, object, object]] = []  # policy log: (step, loss, grad norm) to judge
        self._trainer = None

    def on_train_start(self, ctx) -> None:
        self._trainer = ctx

    def on_step_start(self, ctx, step: int, metrics: dict) -> None:
        if step in self.skip_steps:
            ctx.control.skip_batches = True

    def on_before_update(self, ctx, step: int, metrics: dict) -> None:
        if self.cfg.policy == "off":
            return
        if self.cfg.policy == "log":
            self._pending.append((step, metrics["loss"], metrics["grad_norm"]))
            return
        loss, grad_norm = (float(v) for v in ctx.read_scalars(metrics["loss"], metrics["grad_norm"]))
        if ctx.scaler is not None and not math.isfinite(grad_norm):
            return  # fp16: the loss scaler skips non-finite steps itself and lowers its scale
        verdict = self.detector.check(loss, grad_norm)
        if not verdict.spike:
            return
        lineage, n_docs = lineage_summary(step_batches(ctx))
        # Logged under the step's own number, like the skip row that follows it.
        ctx.event("spike", f"step {step}: {verdict.reason}; {n_docs} documents in the step", step=step,
                      lineage=lineage, loss=loss, grad_norm=grad_norm)
        metrics["spike"] = verdict.reason
        if self.cfg.policy in ("skip", "rewind"):
            ctx.control.skip_update = True
            metrics["lineage"] = lineage

    def _judge_pending(self, ctx) -> None:
        pending, self._pending = self._pending, []
        if not pending:
            return
        values = ctx.read_scalars(*(v for _, loss, gn in pending for v in (loss, gn)))
        for i, (step, _, _) in enumerate(pending):
            loss, grad_norm = values[2 * i], values[2 * i + 1]
            verdict = self.detector.check(loss, grad_norm)
            if verdict.spike:
                ctx.event("spike", f"step {step}: {verdict.reason}", step=step, loss=loss, grad_norm=grad_norm)

    def on_step_end(self, ctx, step: int, metrics: dict) -> None:
        if self._pending and ctx.is_log_step(step):
            self._judge_pending(ctx)
        if ctx.control.skip_batches:
            lineage, n_docs = lineage_summary(step_batches(ctx))
            ctx.event("skip", f"batches of step {step} skipped after a rewind ({n_docs} documents)",
                          lineage=lineage)
            return
        if not (metrics.get("skipped") and "spike" in metrics):
            self.consecutive_skips = 0
            return
        self.consecutive_skips += 1
        if self.consecutive_skips > self.cfg.max_consecutive_skips:
            raise TrainingDiverged(f"{self.consecutive_skips} consecutive steps flagged as spikes "
                               f"(train.spike.max_consecutive_skips={self.cfg.max_consecutive_skips})")
        lineage = metrics.pop("lineage", [])
        if self.cfg.policy == "rewind":
            if self._rewind(ctx, step):
                return
            ctx.event("skip", f"no checkpoint at or before step {step} to rewind to; update skipped",
                          lineage=lineage)
        else:
            ctx.event("skip", f"update of step {step} skipped", lineage=lineage)

    def _rewind(self, ctx, step: int) -> bool:
        """Reload the last checkpoint before the spike and mark the spike's batches to be skipped."""
        ctx.wait_for_save()
        target = ckpt.latest_checkpoint(ctx.run_dir.checkpoints)
        if target is None or ckpt.read_meta(target)["step"] >= step:
            return False
        self.rewinds += 1
        if self.rewinds > self.cfg.max_rewinds:
            raise TrainingDiverged(f"loss spikes: {self.rewinds} rewinds exceed train.spike.max_rewinds="
                               f"{self.cfg.max_rewinds}; the run is diverging (lower train.lr?)")
        keep = (self.skip_steps | {step}, self.rewinds, self.consecutive_skips)
        ctx.rewind_to(target)  # restores every callback's state, this one's included ...
        self.skip_steps, self.rewinds, self.consecutive_skips = keep  # ... except what the rewind learnt
        ctx.event("rewind", f"to {target.name} after a spike at step {step}; its batches will be skipped")
        return True

    def state_dict(self) -> dict:
        if self._pending and self._trainer is not None:
            self._judge_pending(self._trainer)  # a checkpoint holds a window with every step judged
        return {"detector": self.detector.state_dict(), "skip_steps": sorted(self.skip_steps),
                "rewinds": self.rewinds, "consecutive_skips": self.consecutive_skips}

    def load_state_dict(self, state: dict) -> None:
        self.detector.load_state_dict(state.get("detector", {}))
        self.skip_steps = {int(s) for s in state.get("skip_steps", [])}
        self.rewinds = int(state.get("rewinds", 0))
        self.consecutive_skips = int(state.get("consecutive_skips", 0))
