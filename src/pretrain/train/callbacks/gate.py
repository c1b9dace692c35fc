"""The long-context gate: at the end of a long_context stage, keep training it (hold steps, the LR frozen)
until short-context loss is back within tolerance of its value before the stage and needle-in-a-haystack
retrieval passes at the stage's length; give up after ``gate.max_extensions`` checks."""

from __future__ import annotations

from pretrain.train.callbacks.base import Callback


class LongContextGate(Callback):
    order = 960  # after the stage-end evaluation (its val loss is the bulk reference)

    def __init__(self):
        self.checks: dict[str, int] = {}
        self.short_val_ref: float | None = None

    def on_stage_end(self, ctx, stage) -> None:
        if stage.kind == "bulk":
            row = ctx.last_eval if ctx.last_eval and ctx.last_eval.get("step") == ctx.state.step else None
            self.short_val_ref = ctx.broadcast(row.get("val_loss") if row else None)
        if stage.kind != "long_context" or not stage.cfg.gate.enabled:
            return
        gate = stage.cfg.gate
        reasons = []
        if self.short_val_ref is not None and ctx.evaluator is not None:
            short_row = ctx.evaluate(tag="short_context", seq_len=ctx.config.seq_len)
            short = ctx.broadcast(short_row.get("val_loss") if short_row else None)
            if short is not None and short > self.short_val_ref * (1.0 + gate.short_loss_tolerance):
                reasons.append(f"short-context val loss {short:.4f} > {self.short_val_ref:.4f} x "
                               f"(1 + {gate.short_loss_tolerance:g})")
        if gate.needle:
            acc, why = needle_accuracy(ctx, stage.seq_len)
            if acc is None:
                ctx.event("gate", f"needle-in-a-haystack unavailable ({why}); {stage.name} gated on "
                              "short-context loss only")
            else:
                ctx.metrics.log({"type": "eval", "step": ctx.state.step, "tokens": ctx.state.tokens, "stage": stage.name,
                                 "needle_accuracy": acc, "needle_seq_len": stage.seq_len})
                if acc < gate.needle_min_accuracy:
                    reasons.append(f"needle accuracy {acc:.2f} < {gate.needle_min_accuracy:.2f} at {stage.seq_len}")
        if not reasons:
            ctx.event("gate_pass", f"{stage.name}: advance")
            return
        checks = self.checks.get(stage.name, 0)
        if checks >= gate.max_extensions:
            ctx.event("gate_giveup", f"{stage.name}: {'; '.join(reasons)}; advancing after {checks} extensions")
            return
        extra = gate.extra_steps or max(1, stage.planned // 4)
        self.checks[stage.name] = checks + 1
        ctx.extend_stage(stage.name, extra)
        ctx.event("gate_extend", f"{stage.name}: {'; '.join(reasons)}; +{extra} steps")

    def state_dict(self) -> dict:
        return {"checks": dict(self.checks), "short_val_ref": self.short_val_ref}

    def load_state_dict(self, state: dict) -> None:
        self.checks = {str(k): int(v) for k, v in state.get("checks", {}).items()}
        self.short_val_ref = state.get("short_val_ref")


def needle_accuracy(ctx, seq_len: int) -> tuple[float | None, str]:
    """The ctx's needle check at ``seq_len`` (same answer on every rank), or None and why not."""
    acc, why = None, "no needle check configured"
    if ctx.needle is not None and (ctx.dist.is_main or ctx.parallel.collective_forward):
        was = ctx.model.training
        ctx.model.eval()
        try:
            acc = ctx.needle(ctx.model, seq_len)
        except ValueError as exc:  # e.g. a context too short to hold needle and question
            why = str(exc)
        finally:
            ctx.model.train(was)
    return ctx.broadcast(acc), why
