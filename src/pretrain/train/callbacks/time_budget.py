"""Time budget: size the schedule to ``train.time_limit_s`` and stop when the budget is spent.

The step time is measured over a few steps after the start, and the number of steps that fit in what is
left fixes the schedule length (so the LR decays within the budget). A few warm-up steps misjudge the
step time by ~15%; a quarter of the budget does not, and 60% catches later drift, so the plan is redone
at those points, each stretching or shrinking what is left of the schedule.
"""

from __future__ import annotations

from pretrain.train.callbacks import Callback


class TimeBudget(Callback):
    order = 890  # just before the metrics writer: the step's row shows the re-planned total

    def __init__(self, limit_s: float, max_steps: int, warmup_steps: int):
        self.limit = float(limit_s)
        self.max_steps = int(max_steps)
        self.measure_steps = max(3, min(10, warmup_steps // 2 or 3))
        self.measure_from: int | None = None
        self.measure_t0: float | None = None
        self.measuring = True
        self.replan: list[float] | None = None  # [step, train time] the first estimate was made at
        self.replan_at = [0.25, 0.6]

    def on_train_start(self, trainer) -> None:
        if self.measure_from is None:  # a fresh run (a resumed one restored these)
            self.measure_from = trainer.step + 1
            self.measuring = trainer.plan_total is None
        if trainer.train_time >= self.limit:
            self._stop(trainer)

    def _stop(self, trainer) -> None:
        trainer.control.stop = "time_limit"
        trainer.event("time_limit", f"{trainer.train_time:.1f}s of training wall time spent")

    def on_step_end(self, trainer, step: int, metrics: dict) -> None:
        if self.measuring and step == self.measure_from:
            self.measure_t0 = trainer.now()  # waits for the device: the clock must not run ahead of it
        elif self.measuring and self.measure_t0 is not None and step == self.measure_from + self.measure_steps:
            now = trainer.now()
            per_step = (now - self.measure_t0) / self.measure_steps
            total = self._fit(trainer, step, now, per_step, 0.97)
            self.measuring = False
            self.replan = [float(self.measure_from), self.measure_t0]
            trainer.event("time_budget", f"{per_step * 1000:.1f} ms/step measured over {self.measure_steps} steps: "
                          f"{total} steps fit in {self.limit:.0f}s", total_steps=total)
        elif self.replan is not None and self.replan_at and trainer.train_time >= self.replan_at[0] * self.limit:
            self.replan_at.pop(0)
            now = trainer.now()
            per_step = (now - self.replan[1]) / max(1, step - int(self.replan[0]))
            total = self._fit(trainer, step, now, per_step, 0.99)
            trainer.event("time_budget", f"re-planned: {per_step * 1000:.1f} ms/step over {step} steps: "
                          f"{total} steps fit in {self.limit:.0f}s", total_steps=total)
        metrics["total_steps"] = trainer.plan.total
        if trainer.train_time >= self.limit and step < trainer.plan.total:
            self._stop(trainer)

    def _fit(self, trainer, step: int, now: float, per_step: float, margin: float) -> int:
        left = self.limit - now
        total = max(min(self.max_steps, step + max(1, int(margin * left / per_step))), step + 1)
        trainer.set_total_steps(total)
        return total

    def state_dict(self) -> dict:
        return {"measure_from": self.measure_from, "measure_t0": self.measure_t0, "measuring": self.measuring,
                "replan": self.replan, "replan_at": list(self.replan_at)}

    def load_state_dict(self, state: dict) -> None:
        self.measure_from = state.get("measure_from")
        self.measure_t0 = state.get("measure_t0")
        self.measuring = bool(state.get("measuring", True))
        self.replan = state.get("replan")
        self.replan_at = list(state.get("replan_at", [0.25, 0.6]))
