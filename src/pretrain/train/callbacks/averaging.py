"""Weight averaging and the choice of the final model.

During anneal stages an EMA of the weights is kept (``train.averaging.ema_decay``); at the end, the
candidates (the raw last iterate, the EMA, the mean of the anneal's last N checkpoints) are evaluated and
``train.averaging.select`` (``best`` = lowest validation loss) becomes ``checkpoints/final``.
"""

from __future__ import annotations

from pretrain.train import checkpoint as ckpt
from pretrain.train.averaging import EMA
from pretrain.train.callbacks.base import Callback


class FinalModel(Callback):
    order = 40  # the EMA is updated before the checkpointing callback saves it

    def __init__(self, acfg):
        self.cfg = acfg
        self.ema: EMA | None = None

    def on_step_start(self, ctx, step: int, metrics: dict) -> None:
        if ctx.stage.kind == "anneal" and self.cfg.ema_decay > 0 and self.ema is None:
            self.ema = EMA(ctx.model, self.cfg.ema_decay)

    def on_step_end(self, ctx, step: int, metrics: dict) -> None:
        if self.ema is not None and not metrics.get("skipped"):
            self.ema.update(ctx.model)

    def on_train_end(self, ctx) -> None:
        if ctx.control.stop == "preempted":  # the run goes on later: the launch that finishes writes final/
            return
        path, losses = self.finalize(ctx)
        ctx.set_final(path, losses)
        ctx.event("done", f"{ctx.state.step} steps, {ctx.state.tokens:,} tokens, {ctx.state.train_time_s:.1f}s; "
                      f"final model: {path.name}")

    def finalize(self, ctx):
        """Evaluate the candidates, save the chosen one as checkpoints/final; returns (path, losses)."""
        raw_sd = {k: v.clone() for k, v in ctx.parallel.full_state_dict(ctx.model).items()}
        candidates: dict[str, dict] = {"raw": raw_sd}
        if self.ema is not None and self.ema.updates > 0:
            candidates["ema"] = self.ema.averaged_state(ctx.model)
        anneal = [s for s in ctx.stage_plan.stages if s.kind == "anneal"]
        if self.cfg.last_n >= 2 and anneal:
            cps = [p for p in ckpt.list_checkpoints(ctx.run_dir.checkpoints) if ckpt.read_meta(p)["step"] > anneal[0].start]
            cps = cps[-self.cfg.last_n:]
            if len(cps) >= 2:
                avg = ckpt.average_state_dicts(cps)
                candidates["last_n"] = {k: avg.get(k, v) for k, v in raw_sd.items()}
                ctx.event("average", f"mean of {len(cps)} checkpoints: {', '.join(p.name for p in cps)}")
        scores: dict[str, float] = {}
        if len(candidates) > 1 and ctx.evaluator is not None:
            for name, sd in candidates.items():
                ctx.parallel.load_full_state_dict(ctx.model, sd)
                row = ctx.evaluate(tag=name)
                val = ctx.broadcast(row.get("val_loss") if row else None)
                if val is not None:
                    scores[name] = val
        choice = self.cfg.select
        if choice == "best":
            choice = min(scores, key=scores.get) if scores else (
                "last_n" if "last_n" in candidates else "ema" if "ema" in candidates else "raw")
        if choice not in candidates:
            ctx.event("average", f"averaging.select={choice!r} unavailable (no such candidate); using raw")
            choice = "raw"
        ctx.parallel.load_full_state_dict(ctx.model, candidates[choice])
        row = ctx.evaluate(tag="final") if len(candidates) == 1 else None
        final_val = scores.get(choice, ctx.broadcast(row.get("val_loss") if row else None))
        path = ctx.save("final", model_state=candidates[choice],
                       extra_meta={"selected": choice, "candidates": scores, "final_val_loss": final_val})
        ctx.parallel.load_full_state_dict(ctx.model, raw_sd)  # training state stays the raw iterate
        losses = {"train_loss": ctx.last_loss}
        if final_val is not None:
            losses["val_loss"] = float(final_val)
        return path, losses

    def state_dict(self) -> dict:
        return {"ema": self.ema.state_dict()} if self.ema is not None else {}

    def load_state_dict(self, state: dict) -> None:
        self.ema = None
        if state.get("ema") is not None:
            self.ema = EMA.__new__(EMA)
            self.ema.load_state_dict(state["ema"])
