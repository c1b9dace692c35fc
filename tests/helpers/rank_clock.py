"""A user callback for the torchrun time-budget test: rank 1 loses ``seconds`` of wall time right after
the training clock started, so its own clock runs that far ahead of rank 0's for the whole run."""

from __future__ import annotations

import time

from pretrain.train import Callback


class LateRank(Callback):
    def __init__(self, rank: int = 1, seconds: float = 2.0):
        self.rank, self.seconds = rank, seconds

    def on_train_start(self, trainer) -> None:
        if trainer.dist.rank == self.rank:
            time.sleep(self.seconds)
