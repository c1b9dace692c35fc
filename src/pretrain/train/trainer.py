"""The training loop. It holds no policy: it runs steps (pretrain.train.step.TrainStep) and dispatches
callback hooks (pretrain.train.callbacks) with the loop context (pretrain.train.context); the parallel
plan (pretrain.train.parallel) owns wrapping, gradient sync and the model/optimizer part of checkpoints;
snapshot.py writes and restores checkpoints. The run's counters live in one TrainState (state.py).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pretrain.rundir import RunDir
from pretrain.train import distributed as distlib
from pretrain.train import snapshot
from pretrain.train.callbacks import Callback, Control, build_callbacks
from pretrain.train.config import TrainConfig
from pretrain.train.context import LoopContext, MetricsSink
from pretrain.train.hardware import peak_flops
from pretrain.train.lock import RunLock
from pretrain.train.metrics import MetricsLogger
from pretrain.train.optim import build_optimizer
from pretrain.train.parallel import make_plan
from pretrain.train.parallelize import apply_transforms, check_fp8, usable_compile_scope
from pretrain.train.precision import (
    apply_precision_map,
    apply_residual_stream,
    find_blocks,
    resolve_device,
    resolve_precision,
    resolve_residual_stream,
)
from pretrain.train.safestate import from_safe
from pretrain.train.schedule import base_global_batch, batch_at, check_batch_split, lr_batch_scale
from pretrain.train.snapshot import CheckpointParts, RunRecord
from pretrain.train.stages import Plan, Stage, apply_stage_context
from pretrain.train.state import TrainResult, TrainState
from pretrain.train.step import StepInputs, StepResult, TrainStep
from pretrain.train.watchdog import beat, process_group_timeout, resolve_slow_timeout, resolve_timeout

# (stage) -> object with next_batch(), state_dict(), load_state_dict() and optionally set_progress().
LoaderFactory = Callable[[Stage], Any]
# (model, seq_len) -> {"val_loss": ..., ...} (an "eval" metrics row).
Evaluator = Callable[[nn.Module, int], dict]
# (model, seq_len) -> needle accuracy in [0, 1], or None when not available.
NeedleCheck = Callable[[nn.Module, int], float | None]


class Trainer:
    """The loop over one TrainConfig. What it needs from other stages comes explicitly from the composition
    root (pretrain.train.api.build_trainer): the evaluation cadence (``eval_interval``) and the evaluator,
    and a RunRecord (the run config as an opaque dict, the mixture, the token directory) for checkpoints."""

    def __init__(self, config: TrainConfig, run_dir: RunDir | Path, model: nn.Module, make_loader: LoaderFactory,
                 evaluator: Evaluator | None = None, needle: NeedleCheck | None = None,
                 tokenizer_path: Path | None = None, fresh: bool = False, progress: bool = True,
                 callbacks: list[Callback] | None = None, eval_interval: int = 0, record: RunRecord | None = None):
        if not isinstance(config, TrainConfig):
            raise TypeError(f"Trainer takes the train config (a TrainConfig), not {type(config).__name__}; "
                            "from a run config, use pretrain.train.api.build_trainer(cfg, ...)")
        self.t, self.record = config, record or RunRecord()
        self.run = run_dir if isinstance(run_dir, RunDir) else RunDir(Path(run_dir))
        self.make_loader, self.evaluator, self.needle = make_loader, evaluator, needle
        self.tokenizer_path, self.fresh = tokenizer_path, fresh

        # ---- devices, processes, precision
        self.device = resolve_device(self.t.device)  # refuses a missing device before any process group
        self.watchdog_s = resolve_timeout(self.t.watchdog_timeout, self.device.type)
        self.watchdog_slow_s = resolve_slow_timeout(self.t.watchdog_slow_timeout, self.watchdog_s, self.device.type)
        self.dist = distlib.init(self.t.distributed, self.device.type, process_group_timeout(self.watchdog_slow_s))
        self.device = resolve_device(self.t.device, self.dist.local_rank)
        self.precision = resolve_precision(self.t.precision, self.device)
        check_fp8(self.t.fp8, self.device)  # before anything is written
        check_batch_split(self.t, self.dist.world)
        self.run.root.mkdir(parents=True, exist_ok=True)
        self.lock = RunLock(self.run.root) if self.dist.is_main else None
        self.progress = progress and self.dist.is_main
        self.state = TrainState(max_steps=self.t.max_steps)
        self.sink = MetricsSink(MetricsLogger(self.run.root, enabled=self.dist.is_main, progress=self.progress),
                                self.state)

        # ---- model, parallel plan, optimizer
        self.raw = model.to(self.device)
        self.base_model_cfg = copy.deepcopy(getattr(model, "cfg", None))
        self.parallel = make_plan(self.dist, self.device, self.precision, self.t.reduce_dtype)
        self.residual_stream = resolve_residual_stream(self.t.residual_stream, self.precision)
        self.fp32_modules = apply_precision_map(self.raw, self.t.fp32_modules, self.precision, self.residual_stream) \
            if self.parallel.precision_map else []
        apply_residual_stream(self.raw, self.residual_stream)
        scope, no_compile = usable_compile_scope(self.t.compile_scope if self.t.compile else "none", self.device)
        self.transforms = apply_transforms(self.raw, self.device, self.t.fp8, self.t.activation_checkpointing, scope)
        if no_compile:
            self.transforms["compile"] = no_compile  # shown in the start event
        self.model = self.parallel.wrap(self.raw, find_blocks(self.raw))
        self.forward_model = torch.compile(self.model) if scope == "model" else self.model
        self.opt = build_optimizer(self.raw, self.t)
        self.scaler = torch.amp.GradScaler(self.device.type) if self.precision == "fp16" else None
        self.control = Control()
        self.ctx = LoopContext(self)
        self.stepper = TrainStep(model=self.raw, wrapped=self.model, forward=self.forward_model,
                                 parallel=self.parallel, optimizer=self.opt, scaler=self.scaler,
                                 precision=self.precision, device=self.device, dist=self.dist,
                                 grad_clip=self.t.grad_clip, lr=self.t.lr, control=self.control, fire=self._fire,
                                 compile_clip=scope != "none")
        self.params = self.stepper.params

        # ---- run state: counters in self.state, the plan derived from it, the rest in the callbacks' state
        self.plan = Plan(self.t)
        self.stage: Stage | None = None
        self.loader = None
        self.per_rank_data = False
        self.last_eval: dict | None = None
        self.last_loss: Any = float("nan")
        self.final_checkpoint: Path | None = None
        self.final_losses: dict = {}
        self.callbacks = build_callbacks(self.t, eval_interval, self.control, callbacks, self.watchdog_s,
                                         self.watchdog_slow_s)
        self.history: list[float] = []  # train loss of every step run (floats, read on logged steps)
        self.unread_losses: list = []  # ... and the device scalars of the steps since the last logged one
        self._clock = (time.perf_counter(), 0.0)
        flops = getattr(self.raw, "flops_per_token", None)
        n_params = sum(p.numel() for p in self.raw.parameters())
        self.flops_per_token = flops if callable(flops) else (lambda T: 6.0 * n_params)
        self.peak, self.peak_source = peak_flops(self.device, self.precision != "fp32", self.t.peak_flops)
        self.ckpt = CheckpointParts(
            config=self.t, record=self.record, run=self.run, state=self.state, model=self.raw,
            base_model_cfg=self.base_model_cfg, optimizers=self.opt.optimizers, parallel=self.parallel, dist=self.dist,
            scaler=self.scaler, callbacks=self.callbacks, ctx=self.ctx, sink=self.sink, loop=self,
            tokenizer_path=tokenizer_path, progress=self.progress, fresh=fresh)

    # ------------------------------------------------------------------ the state, under its old names
    @property
    def step(self) -> int:
        return self.state.step

    @step.setter
    def step(self, value: int) -> None:
        self.state.step = value

    @property
    def tokens(self) -> int:
        return self.state.tokens

    @tokens.setter
    def tokens(self, value: int) -> None:
        self.state.tokens = value

    @property
    def train_time(self) -> float:
        return self.state.train_time_s

    @train_time.setter
    def train_time(self, value: float) -> None:
        self.state.train_time_s = value

    @property
    def plan_total(self) -> int | None:
        return self.state.total_steps

    @property
    def pending_save(self) -> Callable[[], Path] | None:
        """Finishes a background checkpoint (train.async_save), if one is being written."""
        return self.ckpt.pending

    @property
    def batches(self) -> list:
        return self.stepper.batches

    @property
    def log(self) -> MetricsLogger:
        return self.sink.logger

    @log.setter
    def log(self, logger: MetricsLogger) -> None:
        self.sink.logger = logger

    # ------------------------------------------------------------------ services for callbacks
    def _fire(self, hook: str, *args) -> None:
        self.callbacks.fire(hook, self.ctx, *args)

    def event(self, name: str, detail: str = "", step: int | None = None, **extra) -> None:
        self.sink.event(name, detail, step, **extra)

    def is_log_step(self, step: int) -> bool:
        return step % self.t.log_interval == 0 or step >= self.plan.total

    def now(self) -> float:
        """Training wall time, after waiting for the device to finish the work queued so far."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.train_time = self._clock[1] + time.perf_counter() - self._clock[0]
        return self.train_time

    def read_scalars(self, *values) -> list[float]:
        """Device scalars -> floats with one transfer (one host sync)."""
        tensors = [v for v in values if torch.is_tensor(v)]
        if not tensors:
            return [float(v) for v in values]
        it = iter(torch.stack([t.detach().double().reshape(()) for t in tensors]).tolist())
        return [next(it) if torch.is_tensor(v) else float(v) for v in values]

    def set_total_steps(self, total: int) -> None:
        self.state.total_steps = total
        self.plan = Plan(self.t, total, self.state.stage_extensions)

    def extend_stage(self, name: str, steps: int) -> None:
        self.plan = self.plan.extend(name, steps)
        self.state.stage_extensions = dict(self.plan.extensions)
        self.stage = self.plan.stage_at(self.step)

    def broadcast(self, value):
        if not self.dist.enabled:
            return value
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def base_global_batch(self) -> int:
        """Sequences (at train.seq_len) per optimizer step before any ramp (schedule.base_global_batch)."""
        return base_global_batch(self.t, self.dist.world)

    def micro_steps(self, stage: Stage) -> tuple[int, int]:
        """(global micro-batches per step, global batch in sequences at train.seq_len) for the current step."""
        batch = batch_at(self.tokens, self.base_global_batch(), [(p.tokens, p.batch) for p in self.t.batch_ramp])
        per_micro = stage.micro_batch * stage.seq_len * self.dist.world
        n = max(1, round(batch * self.t.seq_len / per_micro))
        return n * self.dist.world, batch

    def evaluate(self, tag: str = "", seq_len: int | None = None) -> dict | None:
        """Held-out evaluation (rank 0, or every rank under FSDP); logs and returns an eval row."""
        if self.evaluator is None:
            return None
        everywhere = self.parallel.collective_forward
        if not (self.dist.is_main or everywhere):
            beat("evaluation")
            self.dist.barrier()
            return None
        beat("evaluation")
        was = self.raw.training
        self.raw.eval()
        try:
            row = self.evaluator(self.raw, seq_len or (self.stage.seq_len if self.stage else self.t.seq_len))
        finally:
            self.raw.train(was)
        row = {"type": "eval", "step": self.step, "tokens": self.tokens, "stage": self.stage.name if self.stage else "",
               **({"model": tag} if tag else {}), **row}
        self.log.log(row)
        self.last_eval = row
        self._fire("on_eval", row)
        if not everywhere:
            self.dist.barrier()
        return row

    # ------------------------------------------------------------------ stages and checkpoints
    def enter_stage(self, stage: Stage, loader_state: dict | None = None) -> None:
        """Apply a stage's model settings (context, RoPE scaling) and build its data stream."""
        self.stage = stage
        if hasattr(self.raw, "set_rope_scaling") and self.base_model_cfg is not None:
            apply_stage_context(self.raw, self.base_model_cfg, stage)
        self.loader = self.make_loader(stage)
        # A loader that can serve one rank's share builds only this rank's micro-batches (step.py).
        self.per_rank_data = self.dist.enabled and hasattr(self.loader, "shard")
        if self.per_rank_data:
            self.loader.shard(self.dist.rank, self.dist.world)
        if loader_state is not None:
            self.loader.load_state_dict(from_safe(loader_state))
            return
        detail = f"{stage.kind} seq_len={stage.seq_len} micro_batch={stage.micro_batch} steps={stage.steps}"
        self.event("stage_start", detail + (f" mixture={stage.cfg.mixture}" if stage.cfg.mixture else ""),
                   stage=stage.name)
        self._fire("on_stage_start", stage)

    def save(self, name: str | None = None, milestone: bool = False, model_state: dict | None = None,
             extra_meta: dict | None = None) -> Path:
        return snapshot.save(self.ckpt, name, milestone, model_state, extra_meta)

    def wait_for_save(self) -> None:
        """Wait for a background checkpoint (train.async_save) and make it valid."""
        snapshot.wait_pending(self.ckpt)

    def load(self, path: Path) -> None:
        snapshot.load(self.ckpt, path)
        self._clock = (time.perf_counter(), self.train_time)

    def rewind_to(self, path: Path) -> None:
        """Reload ``path``; train/eval rows logged after it are dropped (events stay: they are the record)."""
        self.load(path)
        snapshot.truncate_log(self.ckpt, self.step, keep_events=True)
        self.control.rewound = True

    # ------------------------------------------------------------------ the loop
    def begin(self) -> TrainResult | None:
        """Resume (or start fresh) as fit does before its first step; for drivers that call train_step."""
        return snapshot.resume(self.ckpt)

    def step_inputs(self, stage: Stage, step: int) -> StepInputs:
        """The loop's decisions for step number ``step``: its batch size, LR and whether it is logged."""
        n_micro, batch = self.micro_steps(stage)
        progress = (step - 1) / max(1, self.plan.total)
        if hasattr(self.loader, "set_progress"):
            self.loader.set_progress(progress)
        lr_factor = self.plan.lr_factor(step - 1) * lr_batch_scale(batch, self.base_global_batch(),
                                                                   self.t.lr_batch_scaling)
        return StepInputs(step, stage, self.loader, self.per_rank_data, n_micro, batch, lr_factor, progress,
                          self.is_log_step(step))

    def train_step(self, stage: Stage) -> dict:
        """One step without the loop's bookkeeping (benchmarks time steps alone); returns its metrics."""
        self.control.new_step()
        return self.stepper.run(self.step_inputs(stage, self.step + 1)).metrics

    def fit(self) -> TrainResult:
        if self.lock is not None:
            self.lock.acquire()
        try:
            return self._fit()
        finally:
            for cb in self.callbacks:  # threads and signal handlers end with the loop, also on an exception
                getattr(cb, "close", lambda: None)()
            if self.lock is not None:
                self.lock.release()

    def _fit(self) -> TrainResult:
        self.raw.train()
        done = self.begin()
        if done is not None:
            self.log.close()
            return done
        self.event("start", f"world={self.dist.world} mode={self.parallel.name} device={self.device} "
                   f"precision={self.precision} params={sum(p.numel() for p in self.raw.parameters()):,} "
                   f"total_steps={self.plan.total}",
                   peak_flops=self.peak, peak_source=self.peak_source, fp32_modules=len(self.fp32_modules),
                   residual_stream=self.residual_stream, **self.transforms)
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        self._clock = (time.perf_counter(), self.train_time)
        self._fire("on_train_start")
        while self.step < self.plan.total and not self.control.stop:
            stage = self.plan.stage_at(self.step)
            if self.stage is None or stage.name != self.stage.name:
                self.enter_stage(stage)
            self.control.new_step()
            result = self.stepper.run(self.step_inputs(stage, self.step + 1))
            self._account(result)
            self._fire("on_step_end", result.step, result.metrics)
            if not self.control.rewound and self.step == stage.end:
                self._fire("on_stage_end", stage)
            self._serve_requests()
        self.wait_for_save()
        for cb in reversed(self.callbacks.callbacks):  # teardown order: checkpoints first, the final model last
            cb.on_train_end(self.ctx)
        self.log.close()
        self.history += self.read_scalars(*self.unread_losses) if self.unread_losses else []
        self.unread_losses = []
        self.final_losses = {k: (self.read_scalars(v)[0] if torch.is_tensor(v) else v)
                             for k, v in self.final_losses.items()}
        return TrainResult(self.step, self.tokens, self.final_losses,
                           self.final_checkpoint if self.dist.is_main else None, self.control.stop or "done", self.history)

    def _account(self, result: StepResult) -> None:
        """Count a finished step; on logged steps read its device scalars (and the losses since) back at once."""
        self.state.step, self.state.tokens = result.step, self.state.tokens + result.tokens
        metrics = result.metrics
        if not result.skipped:
            self.last_loss = result.loss
        self.unread_losses.append(metrics["loss"])
        if self.is_log_step(result.step):  # the one host sync
            keys = [k for k, v in metrics.items() if torch.is_tensor(v)]
            values = self.read_scalars(*(metrics[k] for k in keys), *self.unread_losses)
            metrics.update(zip(keys, values[:len(keys)], strict=True))
            self.history += values[len(keys):]
            self.unread_losses = []
        self.state.train_time_s = self._clock[1] + time.perf_counter() - self._clock[0]

    def _serve_requests(self) -> None:
        """Evaluations and checkpoints callbacks asked for during the step (none twice at one step)."""
        c = self.control
        eval_wanted, save_wanted, milestone = c.eval_requested, c.save_requested, c.milestone_requested
        c.eval_requested = c.save_requested = c.milestone_requested = False
        if c.rewound:  # the step was undone: what was asked for it is moot
            return
        if eval_wanted and not (self.last_eval and self.last_eval.get("step") == self.step):
            self.evaluate()
        if save_wanted and self.ckpt.last_step != self.step:
            self.save(milestone=milestone)


__all__ = ["Callback", "Trainer", "TrainResult"]
