"""The hang watchdog (pretrain.train.watchdog) for the length of the training loop."""

from __future__ import annotations

from pretrain.train.callbacks.base import Callback
from pretrain.train.distributed import restart_attempt
from pretrain.train.watchdog import Watchdog, beat, slow_step


class HangWatchdog(Callback):
    order = 0

    def __init__(self, timeout_s: float, slow_timeout_s: float = 0.0):
        self.timeout_s, self.slow_timeout_s = timeout_s, slow_timeout_s
        self.dog: Watchdog | None = None

    def on_train_start(self, ctx) -> None:
        beat("data", ctx.state.step)
        # A launch's first step compiles (torch.compile), builds DDP's buckets and fills the loader.
        slow_step(ctx.state.step + 1)
        self.dog = Watchdog(self.timeout_s, ctx.run_dir.root, ctx.dist.rank, restart_attempt(), self.slow_timeout_s)
        self.dog.start()

    def on_stage_start(self, ctx, stage) -> None:
        slow_step(ctx.state.step + 1)  # a new stage's shapes compile again and its loader starts

    def on_train_end(self, ctx) -> None:
        self.close()

    def close(self) -> None:
        """Stop the thread (also when the loop ended by an exception)."""
        if self.dog is not None:
            self.dog.stop()
            self.dog = None
