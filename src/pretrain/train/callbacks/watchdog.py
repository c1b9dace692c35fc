"""The hang watchdog (pretrain.train.watchdog) for the length of the training loop."""

from __future__ import annotations

from pretrain.train.callbacks.base import Callback
from pretrain.train.distributed import restart_attempt
from pretrain.train.watchdog import Watchdog, beat


class HangWatchdog(Callback):
    order = 0

    def __init__(self, timeout_s: float):
        self.timeout_s = timeout_s
        self.dog: Watchdog | None = None

    def on_train_start(self, ctx) -> None:
        beat("data", ctx.state.step)
        self.dog = Watchdog(self.timeout_s, ctx.run_dir.root, ctx.dist.rank, restart_attempt())
        self.dog.start()

    def on_train_end(self, ctx) -> None:
        self.close()

    def close(self) -> None:
        """Stop the thread (also when the loop ended by an exception)."""
        if self.dog is not None:
            self.dog.stop()
            self.dog = None
