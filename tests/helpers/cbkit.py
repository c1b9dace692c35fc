"""A user callback as a user would write one, loaded by import path (``cbkit:LossTally``) in tests."""

from __future__ import annotations

from pretrain.train import Callback


class LossTally(Callback):
    """Counts steps and sums the logged losses; puts both into the step's metrics (and so metrics.jsonl)."""

    def __init__(self, prefix: str = "tally", scale: float = 1.0):
        self.prefix, self.scale = prefix, scale
        self.steps = 0
        self.loss_sum = 0.0

    def on_step_end(self, trainer, step, metrics):
        self.steps += 1
        if trainer.is_log_step(step):
            self.loss_sum += float(metrics["loss"]) * self.scale
            metrics[f"{self.prefix}/steps"] = self.steps
            metrics[f"{self.prefix}/loss_sum"] = self.loss_sum

    def state_dict(self):
        return {"steps": self.steps, "loss_sum": self.loss_sum}

    def load_state_dict(self, state):
        self.steps, self.loss_sum = int(state["steps"]), float(state["loss_sum"])


class SlowStart(Callback):
    """Makes the first ``until`` steps ``delay_s`` slower, as a warming machine or a compiling first
    stretch would: the time budget's first plan then expects fewer steps than will fit."""

    def __init__(self, until: int = 12, delay_s: float = 0.06):
        self.until, self.delay_s = until, delay_s

    def on_step_end(self, trainer, step, metrics):
        if step <= self.until:
            import time

            time.sleep(self.delay_s)


class SlowLate(Callback):
    """From ``after`` of the budget's training time on, every step is ``delay_s`` slower (a machine that
    got busier late in a run): a plan made at 60% of the budget would then overrun it."""

    order = 880  # before the time budget (890), so the step it times includes the delay

    def __init__(self, after: float = 2.6, delay_s: float = 0.004):
        self.after, self.delay_s = after, delay_s

    def on_step_end(self, ctx, step, metrics):
        if ctx.state.train_time_s >= self.after:
            import time

            time.sleep(self.delay_s)


class SignalTwice(Callback):
    """Sends this process SIGTERM at the end of step ``step`` and again while that step's checkpoint is
    written (a callback's state is captured inside the save), as a scheduler that insists would."""

    def __init__(self, step: int = 3):
        self.step, self.armed = step, False

    def on_step_end(self, trainer, step, metrics):
        import os
        import signal

        if step == self.step:
            self.armed = True
            os.kill(os.getpid(), signal.SIGTERM)

    def state_dict(self):
        import os
        import signal

        if self.armed:
            self.armed = False
            os.kill(os.getpid(), signal.SIGTERM)
        return {}


class FullDiskOnRank0(Callback):
    """Rank 0's disk is nearly full: its process may write no file over ``limit`` bytes (a real file-size
    limit, RLIMIT_FSIZE, so a write past it fails with EFBIG), and at step ``step`` its state (saved in
    trainer_state.pt, which rank 0 alone writes) is larger than that. The step's checkpoint then fails
    on rank 0 only, after every rank wrote its part of the model and optimizer state."""

    def __init__(self, step: int = 4, limit: int = 2 << 20):
        self.step, self.limit, self.at = step, limit, 0
        self.rank = 0

    def on_train_start(self, trainer):
        import resource
        import signal

        self.rank = trainer.dist.rank
        if self.rank == 0:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (self.limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

    def on_step_end(self, trainer, step, metrics):
        self.at = step

    def state_dict(self):
        if self.rank == 0 and self.at == self.step:
            import torch

            return {"blob": torch.zeros(self.limit // 2)}  # float32: twice the limit
        return {}

    def load_state_dict(self, state):
        pass
