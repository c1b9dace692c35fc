"""What a callback sees of the training loop: :class:`LoopContext`, the first argument of every hook.

It is the loop's documented contract (docs/training.md, "Callbacks"): the run's :class:`TrainState`,
the model, the optimizer, the current stage and the stage plan, the ``control`` flags and requests, a
metrics sink, and the services callbacks use (evaluate, save, rewind, re-plan). The Trainer's own
attributes are not part of it, so they can change without breaking callbacks.

Callbacks written against the Trainer's attributes (``trainer.step``, ``trainer.raw``, ...) keep working:
an attribute the context does not define is looked up on the Trainer, and the first use of each such
name is reported once (a FutureWarning and an ``interface`` event) with the name to use instead.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pretrain.train.callbacks import Control
    from pretrain.train.metrics import MetricsLogger
    from pretrain.train.stages import Plan, Stage
    from pretrain.train.state import TrainState
    from pretrain.train.trainer import Trainer


class MetricsSink:
    """Rows to metrics.jsonl (and TensorBoard, and the live line). ``add`` takes a key on any step: it
    goes into the step's ``train`` row when the step is logged, else into the next logged row (the
    latest value wins), so a callback need not know which steps are logged."""

    def __init__(self, logger: MetricsLogger, state: TrainState):
        self.logger, self._state = logger, state
        self._pending: dict[str, Any] = {}

    def log(self, row: dict) -> None:
        self.logger.log(row)

    def subscribe(self, fn) -> None:
        """``fn(row)`` for every row written from now on (and those written before, replayed): how a
        tracker mirrors metrics.jsonl. A rewind or resume opens a new logger; subscribe again then."""
        self.logger.subscribe(fn)

    def event(self, name: str, detail: str = "", step: int | None = None, **extra) -> None:
        self.logger.log({"type": "event", "step": self._state.step if step is None else step,
                         "tokens": self._state.tokens, "event": name, "detail": detail, **extra})

    def add(self, key: str, value: Any) -> None:
        self._pending[key] = value

    def take_pending(self) -> dict[str, Any]:
        """The keys added since the last logged row (the metrics writer calls this once per row)."""
        pending, self._pending = self._pending, {}
        return pending


class ConfigDict(dict):
    """The run config as a plain dict. Callbacks written when ``run_config`` was the RunConfig object read
    it by attribute (``run_config.model.dim``): that still works, and the first such read in a process is
    reported (a FutureWarning) with the key form to use instead."""

    told = False

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name not in self:
            raise AttributeError(name)
        if not ConfigDict.told:
            ConfigDict.told = True
            warnings.warn(f"run_config is a plain dict: use run_config[{name!r}], not run_config.{name}",
                          FutureWarning, stacklevel=2)
        value = self[name]
        return ConfigDict(value) if isinstance(value, dict) else value


# Trainer attributes that callbacks used before the context existed -> the context's name for them.
RENAMED = {
    "step": "state.step", "tokens": "state.tokens", "train_time": "state.train_time_s",
    "plan_total": "state.total_steps", "plan": "stage_plan", "raw": "model", "opt": "optimizer",
    "t": "config", "cfg": "run_config", "run": "run_dir", "log": "metrics", "peak": "peak_flops",
    "pending_save": "wait_for_save()",
}


class LoopContext:
    """The loop as callbacks see it (one per Trainer; the same object in every hook)."""

    def __init__(self, trainer: Trainer):
        object.__setattr__(self, "_trainer", trainer)
        object.__setattr__(self, "_told", set())  # old names already reported in this run

    # ---------------------------------------------------------------- state and components
    @property
    def state(self) -> TrainState:
        """Step, tokens, training time, the plan's length and extensions (saved whole in checkpoints)."""
        return self._trainer.state

    @property
    def config(self):
        """The train config (pretrain.train.config.TrainConfig)."""
        return self._trainer.t

    @property
    def run_config(self) -> dict:
        """The whole run config as a plain dict (its model, data, train, eval sections), as checkpoints'
        config.toml records it; empty when the Trainer was built without one."""
        return ConfigDict(self._trainer.record.config())

    @property
    def tokens_dir(self) -> Path | None:
        """The token shards the run trains on, when the composition root named them."""
        return self._trainer.record.tokens_dir

    @property
    def model(self):
        """The model itself (not wrapped by DDP/FSDP or torch.compile)."""
        return self._trainer.raw

    @property
    def optimizer(self):
        return self._trainer.opt

    @property
    def params(self) -> list:
        """The parameters the optimizer updates (their .grad holds the step's gradient before the update)."""
        return self._trainer.params

    @property
    def stage(self) -> Stage:
        return self._trainer.stage

    @property
    def stage_plan(self) -> Plan:
        """Stage step ranges and the LR schedule (``total``, ``stages``, ``stage_at``, ``lr_factor``)."""
        return self._trainer.plan

    @property
    def batches(self) -> list:
        """This step's micro-batches (this rank's only when the loader builds per-rank streams)."""
        return self._trainer.stepper.batches

    @property
    def per_rank_data(self) -> bool:
        return self._trainer.per_rank_data

    @property
    def loader(self):
        """The current stage's data loader (a new object at each stage start, resume and rewind); its
        ``state_dict()`` is the position the checkpoint keeps."""
        return self._trainer.loader

    @property
    def tokenizer_path(self) -> Path | None:
        """The tokenizer file the run trains with (copied into checkpoints), when known."""
        return self._trainer.tokenizer_path

    @property
    def control(self) -> Control:
        return self._trainer.control

    @property
    def metrics(self) -> MetricsSink:
        return self._trainer.sink

    @property
    def dist(self):
        """rank, world, local_rank, is_main, enabled, barrier()."""
        return self._trainer.dist

    @property
    def device(self):
        return self._trainer.device

    @property
    def run_dir(self):
        """The run directory (pretrain.rundir.RunDir: root, checkpoints, metrics)."""
        return self._trainer.run

    @property
    def resume_load_s(self) -> float:
        """Seconds this launch spent verifying and loading the checkpoint it resumed from (0 when none)."""
        return self._trainer.ckpt.load_s

    @property
    def last_eval(self) -> dict | None:
        """The latest eval row."""
        return self._trainer.last_eval

    @property
    def last_loss(self):
        """Train loss of the latest step that was applied (a device scalar until read back)."""
        return self._trainer.last_loss

    # ---------------------------------------------------------------- the loop's engine (built-ins use these)
    @property
    def parallel(self):
        """The parallel plan (pretrain.train.parallel): full state dicts, gradient locality, collectives."""
        return self._trainer.parallel

    @property
    def scaler(self):
        """The fp16 loss scaler, or None."""
        return self._trainer.scaler

    @property
    def evaluator(self):
        return self._trainer.evaluator

    @evaluator.setter
    def evaluator(self, fn) -> None:
        """Wrap the held-out evaluator (``fn(model, seq_len) -> row``): e.g. to add task scores to the row."""
        self._trainer.evaluator = fn

    @property
    def final_losses(self) -> dict:
        """The final model's numbers, once the callback that writes checkpoints/final has reported them."""
        return self._trainer.final_losses

    @property
    def needle(self):
        return self._trainer.needle

    @property
    def peak_flops(self) -> float | None:
        return self._trainer.peak

    def flops_per_token(self, seq_len: int) -> float:
        return self._trainer.flops_per_token(seq_len)

    def set_final(self, path: Path, losses: dict) -> None:
        """Report the final model (the callback that writes checkpoints/final calls this)."""
        self._trainer.final_checkpoint, self._trainer.final_losses = path, losses

    # ---------------------------------------------------------------- services
    def event(self, name: str, detail: str = "", step: int | None = None, **extra) -> None:
        self._trainer.sink.event(name, detail, step, **extra)

    def is_log_step(self, step: int) -> bool:
        return self._trainer.is_log_step(step)

    def now(self) -> float:
        """Training wall time after waiting for the device (also stored in state.train_time_s)."""
        return self._trainer.now()

    def read_scalars(self, *values) -> list[float]:
        """Device scalars -> floats in one transfer."""
        return self._trainer.read_scalars(*values)

    def broadcast(self, value):
        """Rank 0's ``value`` on every rank (a collective under torchrun)."""
        return self._trainer.broadcast(value)

    def evaluate(self, tag: str = "", seq_len: int | None = None) -> dict | None:
        return self._trainer.evaluate(tag, seq_len)

    def save(self, name: str | None = None, milestone: bool = False, model_state: dict | None = None,
             extra_meta: dict | None = None) -> Path:
        """Write a checkpoint now (``request_save`` asks for one after the step instead)."""
        return self._trainer.save(name, milestone, model_state, extra_meta)

    def wait_for_save(self) -> None:
        self._trainer.wait_for_save()

    def rewind_to(self, path: Path) -> None:
        self._trainer.rewind_to(path)

    def set_total_steps(self, total: int) -> None:
        self._trainer.set_total_steps(total)

    def extend_stage(self, name: str, steps: int) -> None:
        self._trainer.extend_stage(name, steps)

    def request_save(self, milestone: bool = False) -> None:
        self._trainer.control.request_save(milestone)

    def request_eval(self) -> None:
        self._trainer.control.request_eval()

    # ---------------------------------------------------------------- callbacks written for the Trainer
    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        trainer = object.__getattribute__(self, "_trainer")
        if not hasattr(trainer, name):
            instead = f": use {RENAMED[name]}" if name in RENAMED else ""
            raise AttributeError(f"the loop context has no attribute {name!r}{instead} (see docs/training.md, Callbacks)")
        self._tell(name)
        return getattr(trainer, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if hasattr(type(self), name) or name.startswith("_"):
            object.__setattr__(self, name, value)
            return
        self._tell(name)
        setattr(self._trainer, name, value)

    def _tell(self, name: str) -> None:
        if name in self._told:
            return
        self._told.add(name)
        new = RENAMED.get(name)
        msg = (f"callback used trainer.{name}: use {new} on the loop context instead" if new else
               f"callback used trainer.{name}, which is not part of the loop context (docs/training.md, Callbacks)")
        warnings.warn(msg, FutureWarning, stacklevel=3)
        self._trainer.sink.event("interface", msg)


__all__ = ["ConfigDict", "LoopContext", "MetricsSink", "RENAMED"]
