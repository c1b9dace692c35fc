"""Callbacks: everything the training loop does besides computing a step is one of these.

The loop (pretrain.train.trainer) only dispatches hooks, in ``order`` (lower first). Built-in callbacks
(time budget, spike/rewind, gradient-noise scale, averaging and the final model, metrics writing,
evaluation cadence, the long-context gate, checkpointing) and user callbacks named by import path in
``train.callbacks`` share one contract. Each callback's ``state_dict()`` is saved in the checkpoint's
trainer_state.pt (it must hold tensors and plain Python values only) and handed back to
``load_state_dict`` on resume, so a resumed run continues every callback exactly where it stopped.

Hooks, in the order they fire for one optimizer step (``step`` is the 1-based number of the step):
  on_step_start(trainer, step, metrics)     before the batches are drawn (may set control.skip_batches)
  on_micro_batch_end(trainer, step, index, count, n_tokens, total_targets)
  on_before_update(trainer, step, metrics)  gradients ready, clipped; may set control.skip_update
  on_step_end(trainer, step, metrics)       metrics: the step's dict; keys added here reach metrics.jsonl
  on_stage_end(trainer, stage)              the step that ended a stage (a gate may extend it)
and around them on_train_start(trainer), on_stage_start(trainer, stage), on_eval(trainer, row),
on_save(trainer, path), on_train_end(trainer).
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

    @property
    def state_key(self) -> str:
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

    def new_step(self) -> None:
        self.skip_batches = self.skip_update = self.rewound = False


HOOKS = ("on_train_start", "on_stage_start", "on_step_start", "on_micro_batch_end", "on_before_update",
         "on_step_end", "on_stage_end", "on_eval", "on_save", "on_train_end")


class CallbackList:
    """Dispatches each hook to the callbacks in order; a rewind ends a step's dispatch early."""

    def __init__(self, callbacks: list[Callback], control: Control):
        self.callbacks = sorted(callbacks, key=lambda c: c.order)  # stable: equal orders keep list order
        self.control = control
        keys: dict[str, int] = {}
        self.keys = []
        for cb in self.callbacks:
            k = cb.state_key
            keys[k] = keys.get(k, 0) + 1
            self.keys.append(k if keys[k] == 1 else f"{k}#{keys[k]}")

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
        for k, cb in zip(self.keys, self.callbacks, strict=True):
            if k in state:
                cb.load_state_dict(state[k])


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


def builtin_callbacks(tcfg, eval_interval: int) -> list[Callback]:
    from pretrain.train.callbacks.averaging import FinalModel
    from pretrain.train.callbacks.checkpointing import Checkpointing
    from pretrain.train.callbacks.console import MetricsWriter
    from pretrain.train.callbacks.evaluation import Evaluation
    from pretrain.train.callbacks.gate import LongContextGate
    from pretrain.train.callbacks.gns import NoiseScale
    from pretrain.train.callbacks.spike import SpikeGuard
    from pretrain.train.callbacks.time_budget import TimeBudget
    from pretrain.train.callbacks.trackers import build_trackers

    out: list[Callback] = [SpikeGuard(tcfg.spike), FinalModel(tcfg.averaging), MetricsWriter(tcfg.log_interval),
                           Evaluation(eval_interval), LongContextGate(), Checkpointing(tcfg)]
    if tcfg.time_limit_s > 0:
        out.append(TimeBudget(tcfg.time_limit_s, tcfg.max_steps, tcfg.warmup_steps))
    if tcfg.gns:
        out.append(NoiseScale())
    out += build_trackers(tcfg)
    if tcfg.optimizer == "muon" and (tcfg.muon_momentum_warmup > 0 or tcfg.muon_momentum_final > 0):
        from pretrain.train.callbacks.muon_momentum import MuonMomentum

        out.append(MuonMomentum(tcfg.muon_momentum, tcfg.muon_momentum_start, tcfg.muon_momentum_warmup,
                                tcfg.muon_momentum_final))
    return out


def build_callbacks(tcfg, eval_interval: int, control: Control, extra: list[Callback] | None = None) -> CallbackList:
    """Built-ins, then those named in train.callbacks (with train.callback_args), then ``extra``."""
    user = [load_callback(spec, tcfg.callback_args.get(spec)) for spec in tcfg.callbacks]
    unknown = sorted(set(tcfg.callback_args) - set(tcfg.callbacks))
    if unknown:
        from pretrain.configlib import ConfigError

        raise ConfigError("train.callback_args", f"{unknown[0]!r} is not listed in train.callbacks")
    return CallbackList(builtin_callbacks(tcfg, eval_interval) + user + list(extra or []), control)


__all__ = ["Callback", "CallbackList", "Control", "build_callbacks", "load_callback"]
