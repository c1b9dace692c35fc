"""The trainer: ``train(cfg, run_dir, fresh=False, progress=True) -> TrainResult``; ``Callback`` is the base
class of the loop's extensions (pretrain.train.callbacks). See docs/training.md.

Imports are lazy: ``pretrain.config`` imports ``pretrain.train.config`` while this package's API
imports ``pretrain.config``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pretrain.train.api import build_trainer, train
    from pretrain.train.callbacks import Callback
    from pretrain.train.trainer import Trainer, TrainResult

__all__ = ["Callback", "TrainResult", "Trainer", "build_trainer", "train"]


def __getattr__(name: str) -> Any:
    if name in ("train", "build_trainer"):
        from pretrain.train import api

        return getattr(api, name)
    if name == "Callback":
        from pretrain.train.callbacks import Callback

        return Callback
    if name in ("Trainer", "TrainResult"):
        from pretrain.train import trainer

        return getattr(trainer, name)
    raise AttributeError(f"module 'pretrain.train' has no attribute {name!r}")
