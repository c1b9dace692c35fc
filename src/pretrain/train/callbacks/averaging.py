"""Weight averaging and the choice of the final model.

During anneal stages an EMA of the weights is kept (``train.averaging.ema_decay``); at the end, the
candidates (the raw last iterate, the EMA, the mean of the anneal's last N checkpoints) are evaluated and
``train.averaging.select`` (``best`` = lowest validation loss) becomes ``checkpoints/final``.
"""

from __future__ import annotations

from pretrain.train import checkpoint as ckpt
from pretrain.train.averaging import EMA
from pretrain.train.callbacks import Callback


class FinalModel(Callback):
    order = 40  # the EMA is updated before the checkpointing callback saves it

    def __init__(self, acfg):
        self.cfg = acfg
        self.ema: EMA | None = None

    def on_step_start(self, trainer, step: int, metrics: dict) -> None:
        if trainer.stage.kind == "anneal" and self.cfg.ema_decay > 0 and self.ema is None:
            self.ema = EMA(trainer.raw, self.cfg.ema_decay)

    def on_step_end(self, trainer, step: int, metrics: dict) -> None:
        if self.ema is not None and not metrics.get("skipped"):
            self.ema.update(trainer.raw)

    def on_train_end(self, trainer) -> None:
        path, losses = self.finalize(trainer)
        trainer.final_checkpoint, trainer.final_losses = path, losses
        trainer.event("done", f"{trainer.step} steps, {trainer.tokens:,} tokens, {trainer.train_time:.1f}s; "
                      f"final model: {path.name}")

    def finalize(self, tr):
        """Evaluate the candidates, save the chosen one as checkpoints/final; returns (path, losses)."""
        raw_sd = {k: v.clone() for k, v in tr.parallel.full_state_dict(tr.raw).items()}
        candidates: dict[str, dict] = {"raw": raw_sd}
        if self.ema is not None and self.ema.updates > 0:
            candidates["ema"] = self.ema.averaged_state(tr.raw)
        anneal = [s for s in tr.plan.stages if s.kind == "anneal"]
        if self.cfg.last_n >= 2 and anneal:
            cps = [p for p in ckpt.list_checkpoints(tr.run.checkpoints) if ckpt.read_meta(p)["step"] > anneal[0].start]
            cps = cps[-self.cfg.last_n:]
            if len(cps) >= 2:
                avg = ckpt.average_state_dicts(cps)
                candidates["last_n"] = {k: avg.get(k, v) for k, v in raw_sd.items()}
                tr.event("average", f"mean of {len(cps)} checkpoints: {', '.join(p.name for p in cps)}")
        scores: dict[str, float] = {}
        if len(candidates) > 1 and tr.evaluator is not None:
            for name, sd in candidates.items():
                tr.parallel.load_full_state_dict(tr.raw, sd)
                row = tr.evaluate(tag=name)
                val = tr.broadcast(row.get("val_loss") if row else None)
                if val is not None:
                    scores[name] = val
        choice = self.cfg.select
        if choice == "best":
            choice = min(scores, key=scores.get) if scores else (
                "last_n" if "last_n" in candidates else "ema" if "ema" in candidates else "raw")
        if choice not in candidates:
            tr.event("average", f"averaging.select={choice!r} unavailable (no such candidate); using raw")
            choice = "raw"
        tr.parallel.load_full_state_dict(tr.raw, candidates[choice])
        row = tr.evaluate(tag="final") if len(candidates) == 1 else None
        final_val = scores.get(choice, tr.broadcast(row.get("val_loss") if row else None))
        path = tr.save("final", model_state=candidates[choice],
                       extra_meta={"selected": choice, "candidates": scores, "final_val_loss": final_val})
        tr.parallel.load_full_state_dict(tr.raw, raw_sd)  # training state stays the raw iterate
        losses = {"train_loss": tr.last_loss}
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
