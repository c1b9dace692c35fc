"""Time budget: size the schedule to ``train.time_limit_s`` and stop when the budget is spent.

The step time is measured over a few steps after the start, and the number of steps that fit in what is
left fixes the schedule length (so the LR decays within the budget). A few warm-up steps misjudge the
step time by ~15%; a quarter of the budget does not, and later points catch drift, so the plan is redone
at 25%, 60%, 85% and 95% of the budget, each stretching or shrinking what is left of the schedule. Each
re-plan uses the mean step time since the previous plan: the recent steps predict the remaining ones best
(a machine that got busier or quieter, periodic checkpoints inside the segment), and the last points,
with little time left, correct what the earlier ones missed, so the last step ends within about a step
of the budget instead of up to a few percent short of it. The first plans keep a 1-3% margin, the last
0.5%: a schedule cut by the time limit never finishes its decay. When steps get much faster than
planned, the schedule would end before the next point: reaching 90% of its steps before that point
re-plans too.

Under torchrun every rank plans and stops on rank 0's clock: ranks start their clocks at slightly
different moments, and a rank that planned one step fewer than the others would leave them waiting in
the next gradient all-reduce forever. The clock is shared (an 8-byte broadcast) on the measuring steps
and on logged steps, which already sync, and decisions are taken on those steps only, so a run may
overshoot its budget by up to ``log_interval - 1`` steps. One process checks every step, without a sync.
"""

from __future__ import annotations

import torch

from pretrain.train.callbacks.base import Callback

REPLAN_AT = (0.25, 0.6, 0.85, 0.95)  # fractions of the budget at which the schedule is re-planned


def shared_now(ctx) -> float:
    """The training clock, rank 0's on every rank (a collective: every rank must call it)."""
    now = ctx.now()
    if ctx.dist.enabled:
        import torch.distributed as dist

        t = torch.tensor([now], dtype=torch.float64, device=ctx.device)
        dist.broadcast(t, src=0)
        now = ctx.state.train_time_s = float(t.item())
    return now


class TimeBudget(Callback):
    order = 890  # just before the metrics writer: the step's row shows the re-planned total

    def __init__(self, limit_s: float, max_steps: int, warmup_steps: int):
        self.limit = float(limit_s)
        self.max_steps = int(max_steps)
        self.measure_steps = max(3, min(10, warmup_steps // 2 or 3))
        self.measure_from: int | None = None
        self.measure_t0: float | None = None
        self.measuring = True
        self.replan: list[float] | None = None  # [step, train time] of the latest plan
        self.replan_at = list(REPLAN_AT)
        self.last_replan = 0

    def on_train_start(self, ctx) -> None:
        if self.measure_from is None:  # a fresh run (a resumed one restored these)
            self.measure_from = ctx.state.step + 1
            self.measuring = ctx.state.total_steps is None
        if ctx.state.train_time_s >= self.limit:
            self._stop(ctx)

    def _stop(self, ctx) -> None:
        ctx.control.stop = "time_limit"
        ctx.event("time_limit", f"{ctx.state.train_time_s:.1f}s of training wall time spent")

    def on_step_end(self, ctx, step: int, metrics: dict) -> None:
        measure_step = self.measuring and (step == self.measure_from or (
            self.measure_t0 is not None and step == self.measure_from + self.measure_steps))
        if ctx.dist.enabled:
            if not (measure_step or ctx.is_log_step(step)):
                metrics["total_steps"] = ctx.stage_plan.total
                return
            now = shared_now(ctx)
        else:  # now() waits for the device, so a measurement is not ahead of it; elsewhere no sync
            now = ctx.now() if measure_step else ctx.state.train_time_s
        if self.measuring and step == self.measure_from:
            self.measure_t0 = now
        elif self.measuring and self.measure_t0 is not None and step == self.measure_from + self.measure_steps:
            per_step = (now - self.measure_t0) / self.measure_steps
            total = self._fit(ctx, step, now, per_step, 0.97)
            self.measuring = False
            self.replan = [float(self.measure_from), self.measure_t0]
            ctx.event("time_budget", f"{per_step * 1000:.1f} ms/step measured over {self.measure_steps} steps: "
                          f"{total} steps fit in {self.limit:.0f}s", total_steps=total)
        elif self.replan is not None and self.replan_at and (
                now >= self.replan_at[0] * self.limit or self._ending_early(ctx, step, now)):
            while self.replan_at and now >= self.replan_at[0] * self.limit:
                self.replan_at.pop(0)
            self.last_replan = step
            per_step = (now - self.replan[1]) / max(1, step - int(self.replan[0]))
            self.replan = [float(step), now]
            total = self._fit(ctx, step, now, per_step, 0.99 if now < 0.8 * self.limit else 0.995)
            ctx.event("time_budget", f"re-planned: {per_step * 1000:.1f} ms/step over {step} steps: "
                          f"{total} steps fit in {self.limit:.0f}s", total_steps=total)
        metrics["total_steps"] = ctx.stage_plan.total
        if now >= self.limit and step < ctx.stage_plan.total:
            self._stop(ctx)

    def _ending_early(self, ctx, step: int, now: float) -> bool:
        """90% of the planned steps are done and, at the pace since the last plan, the rest would end before
        the next re-plan point's time: steps got faster. (A plan on time reaches 90% of its steps before
        the 95% point too; it is left alone.)"""
        total = ctx.stage_plan.total
        if step < 0.9 * total or step - self.last_replan < self.measure_steps:
            return False
        pace = (now - self.replan[1]) / max(1, step - int(self.replan[0]))
        return now + (total - step) * pace < self.replan_at[0] * self.limit

    def _fit(self, ctx, step: int, now: float, per_step: float, margin: float) -> int:
        left = self.limit - now
        total = max(min(self.max_steps, step + max(1, int(margin * left / per_step))), step + 1)
        ctx.set_total_steps(total)
        return total

    def state_dict(self) -> dict:
        return {"measure_from": self.measure_from, "measure_t0": self.measure_t0, "measuring": self.measuring,
                "replan": self.replan, "replan_at": list(self.replan_at), "last_replan": self.last_replan}

    def load_state_dict(self, state: dict) -> None:
        self.measure_from = state.get("measure_from")
        self.measure_t0 = state.get("measure_t0")
        self.measuring = bool(state.get("measuring", True))
        self.replan = state.get("replan")
        self.replan_at = list(state.get("replan_at", REPLAN_AT))
        self.last_replan = int(state.get("last_replan", 0))
