"""The training loop. It holds no policy: it runs steps (pretrain.train.step) and dispatches callback
hooks (pretrain.train.callbacks); the parallel plan (pretrain.train.parallel) owns wrapping, gradient
sync and the model/optimizer part of checkpoints; snapshot.py writes and restores checkpoints.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pretrain.rundir import RunDir
from pretrain.train import distributed as distlib
from pretrain.train import snapshot
from pretrain.train.callbacks import Callback, Control, build_callbacks
from pretrain.train.hardware import peak_flops
from pretrain.train.lock import RunLock
from pretrain.train.metrics import MetricsLogger
from pretrain.train.optim import build_optimizer
from pretrain.train.parallel import make_plan
from pretrain.train.parallelize import apply_transforms, check_fp8, usable_compile_scope
from pretrain.train.precision import (
    apply_precision_map,
    find_blocks,
    resolve_device,
    resolve_precision,
)
from pretrain.train.safestate import from_safe
from pretrain.train.schedule import batch_at, check_batch_split
from pretrain.train.stages import Plan, Stage, apply_stage_context
from pretrain.train.step import run_step


@dataclass
class TrainResult:
    step: int
    """Optimizer steps completed."""
    tokens: int
    """Tokens trained on (inputs, all processes)."""
    losses: dict[str, float] = field(default_factory=dict)
    """Final numbers: train loss of the last step, val_loss of the final model, ..."""
    final_checkpoint: Path | None = None
    """checkpoints/final/ (None when the run stopped before finishing, e.g. on another rank)."""
    stopped: str = "done"
    """done, or time_limit."""
    history: list[float] = field(default_factory=list)
    """Train loss of every step run in this call (for tests and benchmarks)."""


# (stage) -> object with next_batch(), state_dict(), load_state_dict() and optionally set_progress().
LoaderFactory = Callable[[Stage], Any]
# (model, seq_len) -> {"val_loss": ..., ...} (an "eval" metrics row).
Evaluator = Callable[[nn.Module, int], dict]
# (model, seq_len) -> needle accuracy in [0, 1], or None when not available.
NeedleCheck = Callable[[nn.Module, int], float | None]


class Trainer:
    def __init__(self, cfg, run_dir: RunDir | Path, model: nn.Module, make_loader: LoaderFactory,
                 evaluator: Evaluator | None = None, needle: NeedleCheck | None = None,
                 tokenizer_path: Path | None = None, fresh: bool = False, progress: bool = True,
                 callbacks: list[Callback] | None = None):
        self.cfg, self.t = cfg, cfg.train
        self.run = run_dir if isinstance(run_dir, RunDir) else RunDir(Path(run_dir))
        self.make_loader, self.evaluator, self.needle = make_loader, evaluator, needle
        self.tokenizer_path, self.fresh = tokenizer_path, fresh

        # ---- devices, processes, precision
        self.device = resolve_device(self.t.device)  # refuses a missing device before any process group
        self.dist = distlib.init(self.t.distributed, self.device.type)
        self.device = resolve_device(self.t.device, self.dist.local_rank)
        self.precision = resolve_precision(self.t.precision, self.device)
        check_fp8(self.t.fp8, self.device)  # before anything is written
        check_batch_split(self.t, self.dist.world)
        self.run.root.mkdir(parents=True, exist_ok=True)
        self.lock = RunLock(self.run.root) if self.dist.is_main else None
        self._progress = progress and self.dist.is_main
        self.log = MetricsLogger(self.run.root, enabled=self.dist.is_main, progress=self._progress)

        # ---- model, parallel plan, optimizer
        self.raw = model.to(self.device)
        self.base_model_cfg = copy.deepcopy(getattr(model, "cfg", None))
        self.parallel = make_plan(self.dist, self.device, self.precision, self.t.reduce_dtype)
        self.fp32_modules = apply_precision_map(self.raw, self.t.fp32_modules, self.precision) \
            if self.parallel.precision_map else []
        scope, no_compile = usable_compile_scope(self.t.compile_scope if self.t.compile else "none", self.device)
        self.transforms = apply_transforms(self.raw, self.device, self.t.fp8, self.t.activation_checkpointing, scope)
        if no_compile:
            self.transforms["compile"] = no_compile  # shown in the start event
        self.model = self.parallel.wrap(self.raw, find_blocks(self.raw))
        self.forward_model = torch.compile(self.model) if scope == "model" else self.model
        self.opt = build_optimizer(self.raw, self.t)
        self.params = [p for g in self.opt.param_groups for p in g["params"]]
        self.scaler = torch.amp.GradScaler(self.device.type) if self.precision == "fp16" else None

        # ---- run state: counters and the plan here, everything else in the callbacks' state
        self.step, self.tokens, self.train_time = 0, 0, 0.0
        self.plan_total: int | None = None  # set by the time budget, when there is one
        self.plan = Plan(self.t)
        self.stage: Stage | None = None
        self.loader = None
        self.per_rank_data = False
        self.batches: list = []
        self.last_eval: dict | None = None
        self.last_loss: Any = float("nan")
        self.final_checkpoint: Path | None = None
        self.final_losses: dict = {}
        self.control = Control()
        eval_interval = int(getattr(getattr(cfg, "eval", None), "interval", 0) or 0)
        self.callbacks = build_callbacks(self.t, eval_interval, self.control, callbacks)
        self.history: list[float] = []  # train loss of every step run (floats, read on logged steps)
        self._history: list = []  # ... and the device scalars of the steps since the last logged one
        self.pending_save = None
        self._clock = (time.perf_counter(), 0.0)
        flops = getattr(self.raw, "flops_per_token", None)
        n_params = sum(p.numel() for p in self.raw.parameters())
        self.flops_per_token = flops if callable(flops) else (lambda T: 6.0 * n_params)
        self.peak, self.peak_source = peak_flops(self.device, self.precision != "fp32", self.t.peak_flops)

    # ------------------------------------------------------------------ services for callbacks
    def event(self, name: str, detail: str = "", step: int | None = None, **extra) -> None:
        self.log.log({"type": "event", "step": self.step if step is None else step, "tokens": self.tokens,
                      "event": name, "detail": detail, **extra})

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
        self.plan_total = total
        self.plan = Plan(self.t, total, self.plan.extensions)

    def extend_stage(self, name: str, steps: int) -> None:
        self.plan = self.plan.extend(name, steps)
        self.stage = self.plan.stage_at(self.step)

    def broadcast(self, value):
        if not self.dist.enabled:
            return value
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def base_global_batch(self) -> int:
        """Sequences (at train.seq_len) per optimizer step before any ramp."""
        return self.t.global_batch or self.t.micro_batch * self.t.grad_accum * self.dist.world

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
            self.dist.barrier()
            return None
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
        self.callbacks.fire("on_eval", self, row)
        if not everywhere:
            self.dist.barrier()
        return row

    # ------------------------------------------------------------------ stages and checkpoints
    def enter_stage(self, stage: Stage, loader_state: dict | None = None) -> None:
        """Apply a stage's model settings (context, RoPE scaling) and build its data stream."""
        self.stage = stage
        if getattr(self.raw, "cfg", None) is not None and hasattr(self.raw, "rope") and self.base_model_cfg is not None:
            apply_stage_context(self.raw, self.base_model_cfg, stage, self.device)
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
        self.callbacks.fire("on_stage_start", self, stage)

    def save(self, name: str | None = None, milestone: bool = False, model_state: dict | None = None,
             extra_meta: dict | None = None) -> Path:
        return snapshot.save(self, name, milestone, model_state, extra_meta)

    def wait_for_save(self) -> None:
        """Wait for a background checkpoint (train.async_save) and make it valid."""
        snapshot.wait_pending(self)

    def load(self, path: Path) -> None:
        snapshot.load(self, path)
        self._clock = (time.perf_counter(), self.train_time)

    def rewind_to(self, path: Path) -> None:
        """Reload ``path``; train/eval rows logged after it are dropped (events stay: they are the record)."""
        self.load(path)
        snapshot.truncate_log(self, self.step, keep_events=True)
        self.control.rewound = True

    # ------------------------------------------------------------------ the loop
    def begin(self) -> TrainResult | None:
        """Resume (or start fresh) as fit does before its first step; for drivers that call train_step."""
        return snapshot.resume(self)

    def train_step(self, stage: Stage) -> dict:
        """One step without the loop's bookkeeping (benchmarks time steps alone); returns its metrics."""
        self.control.new_step()
        return run_step(self, stage, self.step + 1)

    def fit(self) -> TrainResult:
        if self.lock is not None:
            self.lock.acquire()
        try:
            return self._fit()
        finally:
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
                   **self.transforms)
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        self._clock = (time.perf_counter(), self.train_time)
        self.callbacks.fire("on_train_start", self)
        while self.step < self.plan.total and not self.control.stop:
            stage = self.plan.stage_at(self.step)
            if self.stage is None or stage.name != self.stage.name:
                self.enter_stage(stage)
            self.control.new_step()
            step = self.step + 1
            metrics = run_step(self, stage, step)
            self.step, self.tokens = step, self.tokens + metrics["tokens_in_step"]
            if not metrics.get("skipped"):
                self.last_loss = metrics["loss"]
            self._history.append(metrics["loss"])
            if self.is_log_step(step):  # the one host sync: this step's device scalars and the losses since
                keys = [k for k, v in metrics.items() if torch.is_tensor(v)]
                values = self.read_scalars(*(metrics[k] for k in keys), *self._history)
                metrics.update(zip(keys, values[:len(keys)], strict=True))
                self.history += values[len(keys):]
                self._history = []
            self.train_time = self._clock[1] + time.perf_counter() - self._clock[0]
            self.callbacks.fire("on_step_end", self, step, metrics)
            if not self.control.rewound and self.step == stage.end:
                self.callbacks.fire("on_stage_end", self, stage)
        self.wait_for_save()
        for cb in reversed(self.callbacks.callbacks):  # teardown order: checkpoints first, the final model last
            cb.on_train_end(self)
        self.log.close()
        self.history += self.read_scalars(*self._history) if self._history else []
        self._history = []
        self.final_losses = {k: (self.read_scalars(v)[0] if torch.is_tensor(v) else v)
                             for k, v in self.final_losses.items()}
        return TrainResult(self.step, self.tokens, self.final_losses,
                           self.final_checkpoint if self.dist.is_main else None, self.control.stop or "done", self.history)


__all__ = ["Callback", "Trainer", "TrainResult"]
