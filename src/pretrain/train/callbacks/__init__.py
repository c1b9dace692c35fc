"""Callbacks: everything the training loop does besides computing a step is one of these.

The loop (pretrain.train.trainer) only dispatches hooks, in ``order`` (lower first). Built-in callbacks
(time budget, spike/rewind, gradient-noise scale, averaging and the final model, metrics writing,
evaluation cadence, the long-context gate, checkpointing) and user callbacks named by import path in
``train.callbacks`` share one contract. Each callback's ``state_dict()`` is saved in the checkpoint's
trainer_state.pt under its ``state_key`` (it must hold tensors and plain Python values only) and handed
back to ``load_state_dict`` on resume, so a resumed run continues every callback exactly where it stopped.

Every hook's first argument is the loop context (pretrain.train.context.LoopContext: state, model,
optimizer, stage, control, metrics sink and services); it is called ``trainer`` in the signatures below
because callbacks written before the context existed name it so, and they keep working.
Hooks, in the order they fire for one optimizer step (``step`` is the 1-based number of the step):
  on_step_start(ctx, step, metrics)     before the batches are drawn (may set control.skip_batches)
  on_micro_batch_end(ctx, step, index, count, n_tokens, total_targets)
  on_before_update(ctx, step, metrics)  gradients ready, clipped; may set control.skip_update
  on_step_end(ctx, step, metrics)       metrics: the step's dict; keys added here reach metrics.jsonl
  on_stage_end(ctx, stage)              the step that ended a stage (a gate may extend it)
and around them on_train_start(ctx), on_stage_start(ctx, stage), on_eval(ctx, row), on_save(ctx, path),
on_train_end(ctx).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any


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
    from pretrain.configlib import ConfigError

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


def builtin_callbacks(tcfg, eval_interval: int, watchdog_s: float = 0.0) -> list[Callback]:
    from pretrain.train.callbacks.averaging import FinalModel
    from pretrain.train.callbacks.checkpointing import Checkpointing
    from pretrain.train.callbacks.console import MetricsWriter
    from pretrain.train.callbacks.evaluation import Evaluation
    from pretrain.train.callbacks.gate import LongContextGate
    from pretrain.train.callbacks.gns import NoiseScale
    from pretrain.train.callbacks.goodput import GoodputMeter
    from pretrain.train.callbacks.preemption import Preemption
    from pretrain.train.callbacks.spike import SpikeGuard
    from pretrain.train.callbacks.time_budget import TimeBudget

    out: list[Callback] = [SpikeGuard(tcfg.spike), FinalModel(tcfg.averaging), MetricsWriter(),
                           Evaluation(eval_interval), LongContextGate(), Checkpointing(tcfg), GoodputMeter()]
    if tcfg.preempt_signals:
        out.append(Preemption(list(tcfg.preempt_signals)))
    if watchdog_s > 0:
        from pretrain.train.callbacks.watchdog import HangWatchdog

        out.append(HangWatchdog(watchdog_s))
    if tcfg.time_limit_s > 0:
        out.append(TimeBudget(tcfg.time_limit_s, tcfg.max_steps, tcfg.warmup_steps))
    if tcfg.gns:
        out.append(NoiseScale())
    out += tcfg.optimizer_config().callbacks(tcfg)  # what the optimizer needs (Muon's momentum schedule)
    return out


def build_callbacks(tcfg, eval_interval: int, control: Control, extra: list[Callback] | None = None,
                    watchdog_s: float = 0.0) -> CallbackList:
    """Built-ins, then those named in train.callbacks (with train.callback_args), then ``extra``."""
    user = [load_callback(spec, tcfg.callback_args.get(spec)) for spec in tcfg.callbacks]
    unknown = sorted(set(tcfg.callback_args) - set(tcfg.callbacks))
    if unknown:
        from pretrain.configlib import ConfigError

        raise ConfigError("train.callback_args", f"{unknown[0]!r} is not listed in train.callbacks")
    return CallbackList(builtin_callbacks(tcfg, eval_interval, watchdog_s) + user + list(extra or []), control)


__all__ = ["Callback", "CallbackList", "Control", "build_callbacks", "load_callback"]
