"""Writing a trainer checkpoint and resuming from one (the directory format is checkpoint.py's).

A step checkpoint holds: ``dcp/`` (model + optimizer, torch.distributed.checkpoint, written by every
rank: the parallel plan), ``model.safetensors`` + ``model_config.json`` (rank 0, when the plan holds full
weights, and always in ``final/``), ``trainer_state.pt`` (the TrainState: counters, stage plan, loader
position, RNG; the loss scaler and every callback's state; loads with weights_only=True), ``config.toml``, ``tokenizer.json`` and
``meta.json`` (with each file's size and SHA-256). Resume takes the newest checkpoint that passes the
checksums and holds finite weights, and falls back to the one before it otherwise.

The functions here take :class:`CheckpointParts`, what a checkpoint touches, which the Trainer builds
once: the Trainer decides when to save, this module how. The run config reaches a checkpoint only as
the opaque dict of :class:`RunRecord`, which the composition root (pretrain.train.api) builds.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pretrain import configlib
from pretrain.train import checkpoint as ckpt
from pretrain.train.metrics import RECORD_EVENTS, MetricsLogger, truncate_metrics
from pretrain.train.safestate import from_safe, set_rng_state, to_safe
from pretrain.train.schedule import base_global_batch, resume_global_batch
from pretrain.train.stages import Plan, Stage
from pretrain.train.state import TrainResult, TrainState
from pretrain.train.watchdog import beat

if TYPE_CHECKING:
    from torch import nn

    from pretrain.rundir import RunDir
    from pretrain.train.callbacks import CallbackList
    from pretrain.train.config import TrainConfig
    from pretrain.train.context import LoopContext, MetricsSink
    from pretrain.train.distributed import DistInfo
    from pretrain.train.parallel import ParallelPlan


def _no_config() -> dict:
    return {}


@dataclass(frozen=True)
class RunRecord:
    """What a checkpoint records about the run beyond the train config, from the composition root
    (pretrain.train.api.build_trainer); the Trainer passes it on without reading the run config."""

    config: Callable[[], dict] = _no_config
    """The whole run config as a plain dict, written as each checkpoint's ``config.toml`` (resume,
    ``pretrain model export``, the model card and the report read it). Read at each save, as before:
    a stage that stretches the context updates the model section (the model shares that object)."""
    mixture: dict = field(default_factory=dict)
    """``data.mixture`` as a dict: ``mixture`` and ``mixture_version`` in each meta.json."""
    tokens_dir: Path | None = None
    """The token shards trained on (the training manifest names their manifest); None: <run>/tokens."""


class LoopPosition(Protocol):
    """Where the loop is (the Trainer): what a checkpoint records of it and restores into it."""

    stage: Stage | None
    loader: Any
    plan: Plan

    def enter_stage(self, stage: Stage, loader_state: dict | None = None) -> None: ...


@dataclass
class CheckpointParts:
    """Everything writing, loading and resuming a checkpoint reads or restores; built by the Trainer."""

    config: TrainConfig
    record: RunRecord
    run: RunDir
    state: TrainState
    model: nn.Module
    base_model_cfg: Any  # the model config the run started with (None for a model without one)
    optimizers: list
    parallel: ParallelPlan
    dist: DistInfo
    scaler: Any  # torch.amp.GradScaler under fp16, else None
    callbacks: CallbackList
    ctx: LoopContext  # what the on_save hook receives
    sink: MetricsSink
    loop: LoopPosition
    tokenizer_path: Path | None = None
    progress: bool = False
    fresh: bool = False
    # Owned here: a background save's finishing step, the step of the newest checkpoint, the resume's cost.
    pending: Callable[[], Path] | None = None
    last_step: int = -1
    load_s: float = 0.0

    def event(self, name: str, detail: str = "", step: int | None = None, **extra) -> None:
        self.sink.event(name, detail, step, **extra)

    def reopen_log(self) -> None:
        """A new metrics logger (rank 0), after metrics.jsonl was rewritten with the old one closed."""
        self.sink.logger = MetricsLogger(self.run.root, enabled=True, progress=self.progress)


def trainer_state(p: CheckpointParts) -> dict:
    stage = p.loop.stage
    state = p.state.capture(p.loop.loader, stage.name if stage else "", p.config.max_steps)
    state["callbacks"] = to_safe(p.callbacks.state_dict())
    if p.scaler is not None:
        state["scaler"] = p.scaler.state_dict()
    return state


def save(p: CheckpointParts, name: str | None, milestone: bool, model_state: dict | None,
         extra_meta: dict | None) -> Path:
    """``_save``, with a failed write raised as an OSError (``checkpoint.write_error``)."""
    try:
        return _save(p, name, milestone, model_state, extra_meta)
    except BaseException as exc:
        error = ckpt.write_error(exc)
        if error is None:
            raise
        raise error from None


def _save(p: CheckpointParts, name: str | None, milestone: bool, model_state: dict | None,
          extra_meta: dict | None) -> Path:
    """Write checkpoint ``name`` (default: this step's). With ``train.async_save`` a step checkpoint's
    model + optimizer state is written in the background and the directory becomes valid later
    (``wait_pending``); everything else is written now."""
    beat("checkpoint")
    wait_pending(p)
    step, stage = p.state.step, p.loop.stage
    root = p.run.checkpoints
    name = name or ckpt.step_dir(root, step).name
    step_ckpt = name.startswith("step_")
    state = trainer_state(p)
    if step_ckpt:
        p.last_step = step
    tmp = ckpt.begin_checkpoint(root, name, p.dist)
    future = p.parallel.save(p.model, p.optimizers, tmp, background=p.config.async_save) if step_ckpt else None
    try:  # rank 0's own files; every rank learns whether they were written
        ckpt.on_main(lambda: _write_main_files(p, tmp, state, model_state), p.dist)
    except OSError:
        if future is not None:  # a background write still running into the directory the caller removes
            with contextlib.suppress(BaseException):
                future.result()
        raise

    mixture = p.record.mixture
    stage_mix = stage.cfg.mixture if stage else {}
    meta = {
        "step": step, "tokens": p.state.tokens, "stage": stage.name if stage else "", "time": time.time(),
        "train_time_s": p.state.train_time_s, "milestone": milestone, "world_size": p.dist.world,
        "global_batch": base_global_batch(p.config, p.dist.world),
        "distributed": p.parallel.name, "mixture": mixture, "stage_mixture": stage_mix,
        "mixture_version": hashlib.sha256(json.dumps([mixture, stage_mix], sort_keys=True).encode()).hexdigest()[:16],
        **(extra_meta or {}),
    }
    stage_kind = stage.kind if stage is not None else ""

    def finish() -> Path:
        if future is not None:
            future.result()  # this rank's files are written
        path = ckpt.finish_checkpoint(root, name, meta, p.dist)
        if p.dist.is_main and step_ckpt:
            keep = p.config.keep_last
            if stage_kind == "anneal":
                keep = max(keep, p.config.averaging.last_n)
            ckpt.prune(root, keep, wait=False)
        p.event("checkpoint", str(path.name), step=step)
        p.callbacks.fire("on_save", p.ctx, path)
        return path

    if future is not None and p.config.async_save:
        p.pending = finish
        return root / name
    return finish()


def _write_main_files(p: CheckpointParts, tmp: Path, state: dict, model_state: dict | None) -> None:
    """Rank 0's files: the weights (or the model config), the trainer state, the run config, the tokenizer."""
    if model_state is not None or p.parallel.writes_full_weights:
        ckpt.save_model_weights(p.model, tmp, state_dict=model_state)
    elif p.base_model_cfg is not None:
        (tmp / "model_config.json").write_text(json.dumps(configlib.to_dict(p.model.cfg), indent=2))
    ckpt.save_trainer_state(state, tmp / "trainer_state.pt")
    configlib.write_toml(p.record.config(), tmp / "config.toml")  # as pretrain.config.save writes it
    if p.tokenizer_path is not None and Path(p.tokenizer_path).is_file():
        shutil.copyfile(p.tokenizer_path, tmp / "tokenizer.json")


def wait_pending(p: CheckpointParts) -> None:
    """Finish a background save (every rank calls this at the same points: next save, rewind, end)."""
    finish, p.pending = p.pending, None
    if finish is not None:
        finish()
    ckpt.wait_pruned()  # the end of training leaves no old checkpoint half-deleted


def load(p: CheckpointParts, path: Path) -> None:
    """Restore model, optimizer, loader, RNG, counters and callbacks from ``path``; refuses (CheckpointError)
    a checkpoint whose files fail their checksums or whose weights are not finite."""
    beat("checkpoint")  # a rewind loads inside the loop: the watchdog's slow phase
    ckpt.verify(path)
    check_same_model(p, path)
    state = ckpt.load_trainer_state(path / "trainer_state.pt")
    if not (path / "dcp").is_dir():  # the format of the first week, before DCP: no longer read
        raise ckpt.CheckpointError(f"{path}: no dcp/ folder (a checkpoint format older than this version reads)")
    p.parallel.load(p.model, p.optimizers, path)
    if not p.parallel.all_finite(p.model):
        raise ckpt.CheckpointError(f"{path}: model weights hold NaN or Inf; not resuming from it")
    t = p.config
    loaded = TrainState.from_checkpoint(state, t.max_steps)
    p.state.__dict__.update(loaded.__dict__)  # the same object: the sink and the context hold it
    p.loop.plan = Plan(t, loaded.total_steps, loaded.stage_extensions)
    p.callbacks.load_state_dict(from_safe(state["callbacks"]))
    if p.scaler is not None and "scaler" in state:
        p.scaler.load_state_dict(state["scaler"])
    set_rng_state(loaded.rng)
    stage = p.loop.plan.stage_at(p.state.step)
    # A checkpoint taken at a stage's end belongs to that stage; the next stage starts a fresh stream.
    p.loop.enter_stage(stage, loader_state=loaded.loader if loaded.stage == stage.name else None)
    p.last_step = p.state.step
    if loaded.max_steps != t.max_steps and t.schedule != "wsd":
        p.event("schedule_changed", f"max_steps {loaded.max_steps} -> {t.max_steps}: the "
                f"{t.schedule} LR curve differs from the one the earlier steps followed (WSD would not)")


def check_same_model(p: CheckpointParts, path: Path) -> None:
    """Refuse, in one line, to resume a checkpoint of a different model shape."""
    saved_file = path / "model_config.json"
    if p.base_model_cfg is None or not saved_file.is_file():
        return
    saved = json.loads(saved_file.read_text())
    current = configlib.to_dict(p.base_model_cfg)
    for key in sorted(set(saved) | set(current)):
        if key in ("max_seq_len", "rope_scaling"):  # stages change these
            continue
        if saved.get(key) != current.get(key):
            raise ValueError(f"{path}: checkpoint has model.{key}={saved.get(key)!r} but the config says "
                             f"{current.get(key)!r}; use --fresh or another --run-dir")


def truncate_log(p: CheckpointParts, step: int, keep_events: bool | frozenset[str] = RECORD_EVENTS) -> int:
    """Cut metrics.jsonl back to ``step`` (rank 0 reopens its log afterwards); returns rows dropped."""
    dropped = 0
    if p.dist.is_main:
        p.sink.logger.close()  # the file is rewritten: reopen it afterwards, or writes go to the old file
        dropped = truncate_metrics(p.run.metrics, step, keep_events=keep_events)
        p.reopen_log()
    return dropped


def start_over(p: CheckpointParts, unfinished: list[Path]) -> None:
    """A run that trained before but has no valid checkpoint starts at step 0: say why in one line."""
    if not p.dist.is_main:
        return
    rows = truncate_log(p, 0)
    if not (rows or unfinished):
        return  # a new run: nothing to explain
    why = (f"removed {len(unfinished)} unfinished save(s)" if unfinished else "none was ever written") + \
        f"; {rows} metrics rows logged since are dropped"
    msg = f"no valid checkpoint in {p.run.checkpoints} ({why}): starting from step 0"
    print(f"warning: {msg}", file=sys.stderr, flush=True)
    p.event("start_over", msg)


def resume(p: CheckpointParts) -> TrainResult | None:
    """Resume from the newest good checkpoint (or start fresh); returns a TrainResult if already finished."""
    root = p.run.checkpoints
    unfinished = ckpt.clean_temporaries(root) if p.dist.is_main else []
    p.dist.barrier()
    candidates = [] if p.fresh else list(reversed(ckpt.list_checkpoints(root)))
    loaded = None
    started = time.perf_counter()
    for path in candidates:
        try:
            load(p, path)
        except ckpt.CheckpointError as exc:
            p.event("checkpoint_rejected", f"{exc}; falling back to the previous checkpoint")
            continue
        loaded = path
        break
    if loaded is None and candidates:  # never start over silently from a refused checkpoint's weights
        raise ckpt.CheckpointError(f"{root}: no checkpoint passed its checks (see the checkpoint_rejected "
                                   "events in metrics.jsonl); use --fresh to start over")
    p.load_s = time.perf_counter() - started
    world_change = resume_global_batch(p.config, ckpt.read_meta(loaded), p.dist.world) if loaded is not None else ""
    if loaded is None:
        _start_fresh(p, unfinished)
        return None
    p.dist.barrier()
    dropped = truncate_log(p, p.state.step)
    p.event("resume", f"from {loaded.name} (dropped {dropped} metrics rows logged after it)")
    if world_change:
        p.event("world_size_changed", world_change, world_size=p.dist.world,
                global_batch=base_global_batch(p.config, p.dist.world))
    final_dir = root / "final"
    step = p.state.step
    if step >= p.loop.plan.total and ckpt.is_valid(final_dir) and ckpt.read_meta(final_dir)["step"] == step:
        meta = ckpt.read_meta(final_dir)
        return TrainResult(step, p.state.tokens, {"val_loss": meta.get("final_val_loss") or float("nan")},
                           final_dir, "done")
    return None


def _start_fresh(p: CheckpointParts, unfinished: list[Path]) -> None:
    """No checkpoint to resume: explain a start over, or (``fresh``) clear the old run; enter stage one."""
    root = p.run.checkpoints
    if not p.fresh:
        start_over(p, unfinished)
    if p.dist.is_main and p.fresh and root.exists():
        shutil.rmtree(root)
        for leftover in (p.run.metrics, p.run.root / "goodput.json"):
            leftover.unlink(missing_ok=True)
        p.sink.logger.close()
        p.reopen_log()
    p.dist.barrier()
    p.loop.enter_stage(p.loop.plan.stage_at(0))
