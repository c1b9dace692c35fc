"""The callback contract: the ``Callback`` base class, the ``Control`` flags and requests, the
``CallbackList`` that dispatches hooks and keys callback states, and ``load_callback`` for callbacks named
by import path. The package (``pretrain.train.callbacks``) re-exports all of it; see its docstring for
the hooks."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from pretrain.configlib import ConfigError


class Callback:
    """Base class: override the hooks you need. ``order`` places the callback among the others
    (built-ins use 10-60 before user callbacks and 900+ after; user callbacks default to 500, so what
    they put into ``metrics`` in on_step_end is in the row the metrics writer logs)."""

    order: int = 500
    state_key: str = ""
    """Name of this callback's state in checkpoints; empty: the class name. Set it to a fixed string
    when two callbacks share a class name; it does not change when the class moves to another module."""

    def checkpoint_key(self) -> str:
        return self.state_key or type(self).__name__

    def legacy_key(self) -> str:
        """The key checkpoints written before state_key existed used (module:Class); read on resume."""
        return f"{type(self).__module__}:{type(self).__qualname__}"

    def on_train_start(self, trainer) -> None: ...
    def on_stage_start(self, trainer, stage) -> None: ...
    def on_step_start(self, trainer, step: int, metrics: dict) -> None: ...
    def on_micro_batch_end(self, trainer, step: int, index: int, count: int, n_tokens, total_targets: int) -> None: ...
    def on_before_update(self, trainer, step: int, metrics: dict) -> None: ...
    def on_step_end(self, trainer, step: int, metrics: dict) -> None: ...
    def on_stage_end(self, trainer, stage) -> None: ...
    def on_eval(self, trainer, row: dict) -> None: ...
    def on_save(self, trainer, path) -> None: ...
    def on_train_end(self, trainer) -> None: ...

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


@dataclass
class Control:
    """What callbacks ask of the loop. Per-step flags are reset before every step."""

    skip_batches: bool = False
    """Draw this step's batches but do not train on them (e.g. after a rewind)."""
    skip_update: bool = False
    """Gradients were computed but must not be applied (e.g. a loss spike)."""
    rewound: bool = False
    """The trainer state was reloaded from a checkpoint: the step did not happen."""
    stop: str = ""
    """Non-empty: finish the run after this step, with this reason (e.g. time_limit)."""
    save_requested: bool = False
    """A checkpoint is wanted after this step's callbacks (unless one was written at this step)."""
    milestone_requested: bool = False
    """... and it is kept forever."""
    eval_requested: bool = False
    """A held-out evaluation is wanted after this step's callbacks (unless one ran at this step)."""

    def new_step(self) -> None:
        self.skip_batches = self.skip_update = self.rewound = False

    def request_save(self, milestone: bool = False) -> None:
        self.save_requested = True
        self.milestone_requested = self.milestone_requested or milestone

    def request_eval(self) -> None:
        self.eval_requested = True


class CallbackList:
    """Dispatches each hook to the callbacks in order; a rewind ends a step's dispatch early."""

    def __init__(self, callbacks: list[Callback], control: Control):
        self.callbacks = sorted(callbacks, key=lambda c: c.order)  # stable: equal orders keep list order
        self.control = control
        self.keys = _numbered([cb.checkpoint_key() for cb in self.callbacks])
        self.legacy_keys = _numbered([cb.legacy_key() for cb in self.callbacks])

    def __iter__(self):
        return iter(self.callbacks)

    def find(self, cls: type) -> Any:
        return next((c for c in self.callbacks if isinstance(c, cls)), None)

    def fire(self, hook: str, *args) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(*args)
            if self.control.rewound and hook in ("on_step_end", "on_stage_end"):
                return  # the step was undone: later callbacks must not act on it

    def state_dict(self) -> dict:
        return {k: cb.state_dict() for k, cb in zip(self.keys, self.callbacks, strict=True)}

    def load_state_dict(self, state: dict) -> None:
        for k, old, cb in zip(self.keys, self.legacy_keys, self.callbacks, strict=True):
            if k in state:
                cb.load_state_dict(state[k])
            elif old in state:  # a checkpoint written when keys were module:Class
                cb.load_state_dict(state[old])


def _numbered(keys: list[str]) -> list[str]:
    """Keys made unique in list order: the second callback with key k is k#2, and so on."""
    seen: dict[str, int] = {}
    out = []
    for k in keys:
        seen[k] = seen.get(k, 0) + 1
        out.append(k if seen[k] == 1 else f"{k}#{seen[k]}")
    return out


def load_callback(spec: str, kwargs: dict | None = None) -> Callback:
    """``"package.module:ClassName"`` (+ keyword arguments) -> an instance; errors name train.callbacks."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError("train.callbacks", f"{spec!r} must look like 'package.module:ClassName'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError("train.callbacks", f"cannot import {module_name!r} for {spec!r}: {exc}") from None
    cls = getattr(module, attr, None)
    if not (isinstance(cls, type) and issubclass(cls, Callback)):
        raise ConfigError("train.callbacks", f"{spec!r} is not a pretrain.train.Callback subclass")
    try:
        return cls(**(kwargs or {}))
    except TypeError as exc:
        raise ConfigError(f"train.callback_args.{spec}", str(exc)) from None


__all__ = ["Callback", "CallbackList", "Control", "load_callback"]
