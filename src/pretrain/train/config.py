"""Trainer configuration: optimisation, schedule, batch, precision, stages, stability and checkpoints.

A run is a table of stages (``[[train.stages]]``): bulk pre-training at short context, long-context
extension steps, and a final anneal. With no stages the whole run is one bulk stage.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from pretrain.configlib import check
from pretrain.train.optim import AdamWConfig, MuonConfig, OptimizerConfig, optimizer_config


@dataclass
class GateConfig:
    """Advance gate of a long-context stage: keep training the stage until the model has adapted."""

    enabled: bool = True
    """Check the gate at the end of a long_context stage (False = always advance)."""
    short_loss_tolerance: float = 0.05
    """Short-context validation loss must be within this fraction of its value before the stage."""
    needle: bool = True
    """Also require needle-in-a-haystack retrieval to pass at the stage's context length."""
    needle_min_accuracy: float = 0.5
    """Needle accuracy required at the stage's length."""
    extra_steps: int = 0
    """Steps added each time the gate fails (0 = a quarter of the stage's steps)."""
    max_extensions: int = 2
    """Give up (advance anyway, with an event logged) after this many failed checks."""

    def validate(self) -> None:
        check(self.short_loss_tolerance >= 0, "short_loss_tolerance", "must be >= 0")
        check(0.0 <= self.needle_min_accuracy <= 1.0, "needle_min_accuracy", "must be in [0, 1]")
        check(self.extra_steps >= 0, "extra_steps", "must be >= 0")
        check(self.max_extensions >= 0, "max_extensions", "must be >= 0")


@dataclass
class StageConfig:
    """One row of the stage table."""

    name: str = "bulk"
    """Stage name (shown in metrics rows and events)."""
    kind: Literal["bulk", "long_context", "anneal"] = "bulk"
    """bulk = main pre-training; long_context = context extension step; anneal = LR to zero + averaging."""
    steps: int = 0
    """Optimizer steps of this stage (0 = use `fraction`)."""
    fraction: float = 0.0
    """Fraction of train.max_steps (used when steps = 0; both 0 = the remainder, one stage at most)."""
    seq_len: int = 0
    """Sequence length in this stage (0 = the previous stage's; the first stage: train.seq_len)."""
    micro_batch: int = 0
    """Micro-batch in this stage (0 = train.micro_batch scaled to keep tokens per micro-batch constant)."""
    rope_scaling: str = ""
    """RoPE scaling from this stage on ('' = as the previous stage; none, linear, dynamic, yarn, llama3)."""
    rope_factor: float = 0.0
    """RoPE scaling factor (0 = seq_len / the bulk sequence length)."""
    doc_mask: bool = True
    """Attention never crosses document boundaries (Llama 3 long-context practice)."""
    mixture: dict[str, float] = field(default_factory=dict)
    """Domain weights for this stage ({} = the run's mixture); the anneal's high-quality mix goes here."""
    gate: GateConfig = field(default_factory=GateConfig)
    """Advance gate (long_context stages)."""

    def validate(self) -> None:
        check(self.steps >= 0, "steps", "must be >= 0")
        check(0.0 <= self.fraction <= 1.0, "fraction", f"must be in [0, 1] (got {self.fraction})")
        check(self.seq_len >= 0, "seq_len", "must be >= 0")
        check(self.micro_batch >= 0, "micro_batch", "must be >= 0")
        check(
            self.rope_scaling in ("", "none", "linear", "dynamic", "yarn", "llama3"),
            "rope_scaling",
            f"must be one of '', none, linear, dynamic, yarn, llama3 (got {self.rope_scaling!r})",
        )
        check(self.rope_factor == 0 or self.rope_factor >= 1.0, "rope_factor", "must be 0 (auto) or >= 1")
        check(all(w >= 0 for w in self.mixture.values()), "mixture", "weights must be >= 0")


@dataclass
class SpikeConfig:
    """Loss-spike and NaN/Inf handling."""

    policy: Literal["skip", "rewind", "log", "off"] = "skip"
    """skip = drop the step's update; rewind = reload the last good checkpoint and skip the batches; log = only report."""
    window: int = 50
    """Rolling window of recent steps the statistics are taken over."""
    min_history: int = 10
    """Steps of history needed before spikes (not NaN/Inf) are flagged."""
    sigma: float = 6.0
    """A step is a spike when loss or grad norm exceeds the window median by this many robust standard deviations."""
    min_rise: float = 0.3
    """A spike must also exceed the level by this fraction of it (0 = off). Measured on the quickstart
    recipe: shifts of the data (a harder play, another domain's rows) lift the loss 10-25% for a few
    steps, which 6 robust sigma of step-to-step noise flags; a garbage batch or a real spike is far more."""
    grad_norm: bool = False
    """Also flag grad-norm outliers. Off by default: clipping already bounds their update, and with
    one domain per row grad norms jump whenever the domain mix of a batch changes."""
    max_rewinds: int = 5
    """Stop with an error after this many rewinds (the run is diverging)."""
    max_consecutive_skips: int = 20
    """Stop with an error after this many consecutive skipped steps."""

    def validate(self) -> None:
        check(self.window >= 2, "window", "must be >= 2")
        check(1 <= self.min_history <= self.window, "min_history", "must be in 1..window")
        check(self.sigma > 0, "sigma", "must be > 0")
        check(math.isfinite(self.min_rise) and self.min_rise >= 0, "min_rise", f"must be >= 0 (got {self.min_rise})")


@dataclass
class BatchRampPoint:
    tokens: int = 0
    """From this many tokens seen on ..."""
    batch: int = 0
    """... the global batch is this many sequences (a multiple of micro_batch x processes)."""


@dataclass
class AveragingConfig:
    """Weight averaging at the end of training (annealing)."""

    ema_decay: float = 0.0
    """Polyak/EMA decay of the weights during anneal stages (0 = off; e.g. 0.99)."""
    last_n: int = 0
    """Average the last N checkpoints of the anneal (0 = off)."""
    interval: int = 0
    """Checkpoint interval inside the anneal for last_n averaging (0 = anneal steps / last_n)."""
    select: Literal["best", "ema", "last_n", "raw"] = "best"
    """Which model becomes checkpoints/final: the lowest validation loss, or a fixed choice."""

    def validate(self) -> None:
        check(0.0 <= self.ema_decay < 1.0, "ema_decay", "must be in [0, 1)")
        check(self.last_n >= 0 and self.last_n != 1, "last_n", "must be 0 or >= 2")
        check(self.interval >= 0, "interval", "must be >= 0")


@dataclass
class TrainConfig:
    seq_len: int = 256
    """Tokens per training sequence."""
    micro_batch: int = 8
    """Sequences per forward/backward pass on one process."""
    grad_accum: int = 1
    """Micro-batches accumulated per optimizer step (ignored when global_batch is set)."""
    global_batch: int = 0
    """Sequences per optimizer step over all processes (0 = micro_batch x grad_accum x processes)."""
    max_steps: int = 1000
    """Optimizer steps of the whole run (all stages together unless stages set their own)."""
    time_limit_s: float = 0.0
    """Stop after this many seconds of training wall time (0 = no limit); the schedule is sized to it."""
    lr: float = 1e-3
    """Peak learning rate (at the base global batch)."""
    min_lr_ratio: float = 0.1
    """Final learning rate as a fraction of the peak: the cosine floor, or where WSD's warm-down ends
    (nanochat's final_lr_frac, 0.05 after a 65% warm-down: schedule = "wsd", decay_fraction = 0.65)."""
    warmup_steps: int = 100
    """Linear warmup steps."""
    schedule: Literal["cosine", "wsd", "linear", "constant"] = "cosine"
    """Learning-rate shape after warmup: cosine to the floor, WSD, linear to zero, constant."""
    decay_fraction: float = 0.2
    """WSD: fraction of the run spent in the final decay (an anneal stage replaces it)."""
    optimizer: str = "adamw"
    """A registered optimizer (pretrain.train.optim.OptimizerConfig.registry): adamw everywhere, or muon
    for the 2-D weight matrices of the blocks and AdamW for the rest; or "package.module:Class", a
    torch.optim.Optimizer subclass, built with optimizer_args on the AdamW parameter groups."""
    optimizer_args: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of an optimizer named by import path, or the fields of a registered optimizer
    that has no section here; adamw and muon take theirs from [train.adamw] / [train.muon]."""
    adamw: AdamWConfig = field(default_factory=AdamWConfig)
    """AdamW's settings (also used by muon for the parameters that are not block matrices)."""
    muon: MuonConfig = field(default_factory=MuonConfig)
    """Muon's settings (train.optimizer = "muon")."""
    weight_decay: float = 0.1
    """Decoupled weight decay (not applied to norms, biases, embeddings)."""
    decay_embeddings: bool = False
    """Apply weight decay to embeddings too."""
    embed_lr: float = 0.0
    """Peak AdamW learning rate of the embedding tables, token and value embeddings (0 = train.lr);
    nanochat runs its embeddings at many times the rate of the rest."""
    head_lr: float = 0.0
    """Peak AdamW learning rate of an untied output head (0 = train.lr; a tied head is the embedding
    and takes embed_lr)."""
    grad_clip: float = 1.0
    """Clip the global gradient norm to this (0 = off)."""
    batch_ramp: list[BatchRampPoint] = field(default_factory=list)
    """Global batch ramp by tokens seen (Llama 3: 4M -> 8M -> 16M tokens); [] = fixed batch."""
    lr_batch_scaling: Literal["sqrt", "linear", "none"] = "sqrt"
    """LR rule when the ramp changes the batch B: lr x (B / B_base)^(1/2), ^1, or unchanged."""
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    """auto = bf16 autocast with fp32 master weights on GPU and on CPUs with native bf16 (AVX512-BF16, AMX),
    fp32 on other CPUs."""
    reduce_dtype: Literal["fp32", "bf16"] = "fp32"
    """Gradient reduction dtype under FSDP (master weights and optimizer state stay fp32)."""
    fp32_modules: list[str] = field(default_factory=lambda: ["norm", "router"])
    """Precision map: modules whose name contains one of these run outside autocast, in fp32."""
    residual_stream: Literal["auto", "compute", "fp32"] = "auto"
    """dtype of the activations between the matmuls under autocast: compute = the autocast dtype (the
    embeddings' output is cast once; the fp32-mapped norms compute in fp32 and return it), fp32 = fp32
    embeddings and norm outputs, so the stream and its elementwise work stay fp32; auto = compute under
    bf16, fp32 otherwise. Without autocast (precision fp32) the stream is fp32 either way."""
    activation_checkpointing: bool = False
    """Recompute each transformer block in the backward pass (less memory, ~30% more compute)."""
    compile: bool = False
    """Compile the model with torch.compile (see compile_scope)."""
    compile_scope: Literal["model", "blocks"] = "model"
    """With compile: the whole model in one graph, or each transformer block on its own (torchtitan's
    way: compiles once for all blocks of a shape, keeps parameter names; applied before DDP/FSDP)."""
    fp8: bool = False
    """FP8 matmuls for the blocks' linear layers (torchao float8 training); needs compute capability
    >= 8.9 (Ada, Hopper or newer) and torchao (pip install 'pretrain[gpu]'); refused elsewhere."""
    distributed: Literal["auto", "ddp", "fsdp"] = "auto"
    """Under torchrun: ddp (replicated) or fsdp (FSDP2 fully_shard); auto = ddp."""
    device: str = "auto"
    """auto, cpu, cuda, cuda:N."""
    stages: list[StageConfig] = field(default_factory=list)
    """The stage table; [] = one bulk stage of max_steps."""
    spike: SpikeConfig = field(default_factory=SpikeConfig)
    """Loss-spike detection and policy."""
    averaging: AveragingConfig = field(default_factory=AveragingConfig)
    """EMA and last-N checkpoint averaging for the final model."""
    log_interval: int = 10
    """Log a metrics row every this many steps."""
    checkpoint_interval: int = 0
    """Save a checkpoint every this many steps (0 = only at stage ends and the end)."""
    async_save: bool = False
    """Write step checkpoints' model + optimizer state in the background (torch.distributed.checkpoint
    async_save): the state is copied to host memory, training goes on, and the checkpoint is renamed
    into place (valid) once written; the next save or the end of the run waits for it."""
    keep_last: int = 2
    """Checkpoints to keep besides milestones."""
    milestone_interval: int = 0
    """Keep every checkpoint whose step is a multiple of this forever (0 = none besides stage ends)."""
    gns: bool = True
    """Estimate the gradient noise scale (critical batch, McCandlish et al. 2018) when accumulating."""
    peak_flops: float = 0.0
    """Peak FLOP/s per process for MFU (0 = GPU table or a measured CPU matmul benchmark)."""
    seed: int = 0
    """Seed for initialisation and data order."""
    callbacks: list[str] = field(default_factory=list)
    """User callbacks by import path, "package.module:ClassName" (subclasses of pretrain.train.Callback)."""
    callback_args: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Keyword arguments per callback, keyed by the same string: [train.callback_args."pkg.mod:Cls"]."""
    trackers: list[str] = field(default_factory=lambda: ["tensorboard"])
    """Experiment trackers that mirror metrics.jsonl: any of tensorboard, wandb, mlflow, trackio (each but
    tensorboard is an extra of the same name). Credentials come from their own environment or login files."""
    tracker_project: str = ""
    """Project (W&B, trackio) or experiment (MLflow) name; empty = WANDB_PROJECT or "pretrain"."""
    init_from: str = ""
    """Start from these weights (a checkpoint or run directory, e.g. one written by `pretrain import hf`)
    instead of a random initialisation; the model shape must match. Ignored when the run resumes."""
    watchdog_timeout: float = -1.0
    """Seconds without progress after which a rank dumps its stacks to RUN/watchdog/, logs a `hang` event and
    exits (status 76) so torchrun restarts the job; 0 = off, -1 = auto (600 on GPU, 1800 on CPU). It times
    the ordinary steps (what a hang costs); the long phases get watchdog_slow_timeout."""
    watchdog_slow_timeout: float = -1.0
    """The watchdog's seconds for the phases that are legitimately long: a checkpoint save or load, an
    evaluation, and the first step of a launch or a stage (torch.compile's compilation, DDP's buckets).
    -1 = auto (600 on GPU, 1800 on CPU), 0 = watchdog_timeout; never below watchdog_timeout. The process
    group's collective timeout is set a minute longer than the longer of the two."""
    preempt_signals: list[str] = field(default_factory=lambda: ["SIGTERM", "SIGUSR1"])
    """Signals that mean "save and stop": every rank finishes the step in flight, a checkpoint of it is
    written, a `preempted` event is logged and the process exits with status 75. [] = default handling."""
    on_save_error: Literal["stop", "continue"] = "stop"
    """A step checkpoint that cannot be written (disk full): stop with one line, or log a `save_failed`
    event and train on (the previous checkpoint stays valid either way)."""

    renamed_fields: ClassVar[dict[str, str]] = {
        "beta1": "adamw.beta1", "beta2": "adamw.beta2", "eps": "adamw.eps", "muon_lr": "muon.lr",
        "muon_momentum": "muon.momentum", "muon_momentum_warmup": "muon.momentum_warmup",
        "muon_momentum_start": "muon.momentum_start", "muon_momentum_final": "muon.momentum_final",
        "muon_ns": "muon.ns", "muon_beta2": "muon.beta2", "muon_cautious_wd": "muon.cautious_wd",
    }
    """Keys that moved into an optimizer's section: still read (configlib.from_dict), with one line."""

    def optimizer_config(self) -> OptimizerConfig:
        return optimizer_config(self)

    def validate(self) -> None:
        check(self.seq_len > 0, "seq_len", "must be > 0")
        check(self.micro_batch > 0, "micro_batch", "must be > 0")
        check(self.grad_accum > 0, "grad_accum", "must be > 0")
        check(self.global_batch >= 0, "global_batch", "must be >= 0")
        check(
            self.global_batch == 0 or self.global_batch % self.micro_batch == 0,
            "global_batch",
            f"must be a multiple of micro_batch={self.micro_batch} (got {self.global_batch})",
        )
        for name in ("lr", "weight_decay", "grad_clip"):
            check(math.isfinite(getattr(self, name)), name, f"must be finite (got {getattr(self, name)})")
        check(self.lr > 0, "lr", f"must be > 0 (got {self.lr})")
        check(self.weight_decay >= 0, "weight_decay", f"must be >= 0 (got {self.weight_decay})")
        for name in ("embed_lr", "head_lr"):
            check(math.isfinite(getattr(self, name)) and getattr(self, name) >= 0, name,
                  f"must be >= 0 (0 = train.lr; got {getattr(self, name)})")
        check(re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", self.device) is not None, "device",
              f"must be auto, cpu, mps, cuda or cuda:N (got {self.device!r})")
        spec = self.optimizer
        check(spec in OptimizerConfig.registry or (spec.count(":") == 1 and all(spec.split(":"))), "optimizer",
              f"must be one of {', '.join(sorted(OptimizerConfig.registry))} or 'package.module:Class' (got {spec!r})")
        sectioned = isinstance(getattr(self, spec, None), OptimizerConfig)
        check(not (sectioned and self.optimizer_args), "optimizer_args",
              f"{spec} takes its settings from [train.{spec}], not optimizer_args")
        check(0.0 <= self.min_lr_ratio <= 1.0, "min_lr_ratio", f"must be in [0, 1] (got {self.min_lr_ratio})")
        check(self.warmup_steps >= 0, "warmup_steps", "must be >= 0")
        check(self.max_steps > 0, "max_steps", "must be > 0")
        check(self.time_limit_s >= 0, "time_limit_s", "must be >= 0")
        check(0.0 < self.decay_fraction <= 1.0, "decay_fraction", "must be in (0, 1]")
        check(self.grad_clip >= 0, "grad_clip", "must be >= 0")
        check(self.log_interval > 0, "log_interval", "must be > 0")
        check(self.checkpoint_interval >= 0, "checkpoint_interval", "must be >= 0")
        check(self.keep_last >= 1, "keep_last", "must be >= 1")
        check(self.peak_flops >= 0, "peak_flops", "must be >= 0")
        from pretrain.train.callbacks.trackers import TRACKERS

        for i, name in enumerate(self.trackers):
            check(name in TRACKERS, f"trackers[{i}]", f"unknown tracker {name!r} (known: {', '.join(TRACKERS)})")
        check(len(set(self.trackers)) == len(self.trackers), "trackers", "lists a tracker twice")
        check(math.isfinite(self.watchdog_timeout) and (self.watchdog_timeout >= 0 or self.watchdog_timeout == -1),
              "watchdog_timeout", f"must be >= 0 seconds (0 = off) or -1 (auto) (got {self.watchdog_timeout})")
        check(math.isfinite(self.watchdog_slow_timeout)
              and (self.watchdog_slow_timeout >= 0 or self.watchdog_slow_timeout == -1), "watchdog_slow_timeout",
              f"must be >= 0 seconds or -1 (auto) (got {self.watchdog_slow_timeout})")
        import signal

        for name in self.preempt_signals:
            check(isinstance(getattr(signal, str(name), None), signal.Signals) and str(name).startswith("SIG")
                  and name not in ("SIGKILL", "SIGSTOP"), "preempt_signals",
                  f"{name!r} is not a signal a process can catch (e.g. SIGTERM, SIGUSR1)")
        prev = -1
        for i, p in enumerate(self.batch_ramp):
            check(p.tokens > prev, f"batch_ramp[{i}].tokens", "must increase along the ramp")
            check(
                p.batch > 0 and p.batch % self.micro_batch == 0,
                f"batch_ramp[{i}].batch",
                f"must be a positive multiple of micro_batch={self.micro_batch} (got {p.batch})",
            )
            prev = p.tokens
        remainder = [i for i, s in enumerate(self.stages) if s.steps == 0 and s.fraction == 0]
        check(len(remainder) <= 1, "stages", "at most one stage may leave both steps and fraction at 0")
        names = [s.name for s in self.stages]
        check(len(set(names)) == len(names), "stages", f"stage names must be unique (got {names})")
        kinds = [s.kind for s in self.stages]
        if "anneal" in kinds:
            check(kinds[-1] == "anneal" and kinds.count("anneal") == 1, "stages", "the anneal must be the one last stage")
        fixed = sum(s.steps for s in self.stages) + sum(s.fraction for s in self.stages) * self.max_steps
        check(fixed <= self.max_steps + 1e-6, "stages", f"stage steps add up to {fixed:.0f} > max_steps={self.max_steps}")
