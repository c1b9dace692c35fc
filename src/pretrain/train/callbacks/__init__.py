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

from pretrain.configlib import ConfigError
from pretrain.train.callbacks.averaging import FinalModel
from pretrain.train.callbacks.base import Callback, CallbackList, Control, load_callback
from pretrain.train.callbacks.checkpointing import Checkpointing
from pretrain.train.callbacks.console import MetricsWriter
from pretrain.train.callbacks.evaluation import Evaluation
from pretrain.train.callbacks.gate import LongContextGate
from pretrain.train.callbacks.gns import NoiseScale
from pretrain.train.callbacks.goodput import GoodputMeter
from pretrain.train.callbacks.lineage import StepLineage
from pretrain.train.callbacks.manifest import TrainManifest
from pretrain.train.callbacks.preemption import Preemption
from pretrain.train.callbacks.spike import SpikeGuard
from pretrain.train.callbacks.time_budget import TimeBudget
from pretrain.train.callbacks.trackers import build_trackers
from pretrain.train.callbacks.watchdog import HangWatchdog


def builtin_callbacks(tcfg, eval_interval: int, watchdog_s: float = 0.0,
                      watchdog_slow_s: float = 0.0) -> list[Callback]:
    out: list[Callback] = [SpikeGuard(tcfg.spike), FinalModel(tcfg.averaging), MetricsWriter(),
                           Evaluation(eval_interval), LongContextGate(), Checkpointing(tcfg), GoodputMeter()]
    if tcfg.preempt_signals:
        out.append(Preemption(list(tcfg.preempt_signals)))
    if watchdog_s > 0:
        out.append(HangWatchdog(watchdog_s, watchdog_slow_s))
    out += [StepLineage(), TrainManifest()]  # the step log (pretrain trace), the manifest (pretrain verify)
    if tcfg.time_limit_s > 0:
        out.append(TimeBudget(tcfg.time_limit_s, tcfg.max_steps, tcfg.warmup_steps))
    if tcfg.gns:
        out.append(NoiseScale())
    out += build_trackers(tcfg)
    out += tcfg.optimizer_config().callbacks(tcfg)  # what the optimizer needs (Muon's momentum schedule)
    return out


def build_callbacks(tcfg, eval_interval: int, control: Control, extra: list[Callback] | None = None,
                    watchdog_s: float = 0.0, watchdog_slow_s: float = 0.0) -> CallbackList:
    """Built-ins, then those named in train.callbacks (with train.callback_args), then ``extra``."""
    user = [load_callback(spec, tcfg.callback_args.get(spec)) for spec in tcfg.callbacks]
    unknown = sorted(set(tcfg.callback_args) - set(tcfg.callbacks))
    if unknown:
        raise ConfigError("train.callback_args", f"{unknown[0]!r} is not listed in train.callbacks")
    builtin = builtin_callbacks(tcfg, eval_interval, watchdog_s, watchdog_slow_s)
    return CallbackList(builtin + user + list(extra or []), control)


__all__ = ["Callback", "CallbackList", "Control", "build_callbacks", "load_callback"]
