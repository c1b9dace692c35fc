"""The trainer: ``train(cfg, run_dir, fresh=False, progress=True) -> TrainResult``. See docs/training.md.

Imports are lazy: ``pretrain.config`` imports ``pretrain.train.config`` while this package's API
imports ``pretrain.config``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pretrain.train.api import train
    from pretrain.train.trainer import Trainer, TrainResult

__all__ = ["TrainResult", "Trainer", "train"]


def __getattr__(name: str) -> Any:
    if name == "train":
        from pretrain.train.api import train

        return train
    if name in ("Trainer", "TrainResult"):
        from pretrain.train import trainer

        return getattr(trainer, name)
    raise AttributeError(f"module 'pretrain.train' has no attribute {name!r}")
