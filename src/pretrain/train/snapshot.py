"""Writing a trainer checkpoint and resuming from one (the directory format is checkpoint.py's).

A step checkpoint holds: ``dcp/`` (model + optimizer, torch.distributed.checkpoint, written by every
rank: the parallel plan), ``model.safetensors`` + ``model_config.json`` (rank 0, when the plan holds full
weights, and always in ``final/``), ``trainer_state.pt`` (the TrainState: counters, stage plan, loader
position, RNG; the loss scaler and every callback's state; loads with weights_only=True), ``config.toml``, ``tokenizer.json`` and
``meta.json`` (with each file's size and SHA-256). Resume takes the newest checkpoint that passes the
checksums and holds finite weights, and falls back to the one before it otherwise.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import sys
import time
from pathlib import Path

from pretrain import configlib
from pretrain.train import checkpoint as ckpt
from pretrain.train.metrics import RECORD_EVENTS, MetricsLogger, truncate_metrics
from pretrain.train.safestate import from_safe, set_rng_state, to_safe
from pretrain.train.schedule import resume_global_batch
from pretrain.train.stages import Plan
from pretrain.train.state import TrainResult, TrainState
from pretrain.train.watchdog import beat


def trainer_state(tr) -> dict:
    state = tr.state.capture(tr.loader, tr.stage.name if tr.stage else "", tr.t.max_steps)
    state["callbacks"] = to_safe(tr.callbacks.state_dict())
    if tr.scaler is not None:
        state["scaler"] = tr.scaler.state_dict()
    return state


def save(tr, name: str | None, milestone: bool, model_state: dict | None, extra_meta: dict | None) -> Path:
    """``_save``, with a failed write raised as an OSError (``checkpoint.write_error``)."""
    try:
        return _save(tr, name, milestone, model_state, extra_meta)
    except BaseException as exc:
        error = ckpt.write_error(exc)
        if error is None:
            raise
        raise error from None


def _save(tr, name: str | None, milestone: bool, model_state: dict | None, extra_meta: dict | None) -> Path:
    """Write checkpoint ``name`` (default: this step's). With ``train.async_save`` a step checkpoint's
    model + optimizer state is written in the background and the directory becomes valid later
    (``wait_pending``); everything else is written now."""
    beat("checkpoint")
    wait_pending(tr)
    name = name or ckpt.step_dir(tr.run.checkpoints, tr.step).name
    step_ckpt = name.startswith("step_")
    root, step = tr.run.checkpoints, tr.step
    state = trainer_state(tr)
    if step_ckpt:
        tr.last_checkpoint_step = step
    tmp = ckpt.begin_checkpoint(root, name, tr.dist)
    future = tr.parallel.save(tr.raw, tr.opt.optimizers, tmp, background=tr.t.async_save) if step_ckpt else None

    def write_main() -> None:  # rank 0's own files; every rank learns whether they were written
        if model_state is not None or tr.parallel.writes_full_weights:
            ckpt.save_model_weights(tr.raw, tmp, state_dict=model_state)
        elif tr.base_model_cfg is not None:
            (tmp / "model_config.json").write_text(json.dumps(configlib.to_dict(tr.raw.cfg), indent=2))
        ckpt.save_trainer_state(state, tmp / "trainer_state.pt")
        configlib.write_toml(configlib.to_dict(tr.cfg), tmp / "config.toml")  # as pretrain.config.save writes it
        if tr.tokenizer_path is not None and Path(tr.tokenizer_path).is_file():
            shutil.copyfile(tr.tokenizer_path, tmp / "tokenizer.json")

    try:
        ckpt.on_main(write_main, tr.dist)
    except OSError:
        if future is not None:  # a background write still running into the directory the caller removes
            with contextlib.suppress(BaseException):
                future.result()
        raise

    mixture = configlib.to_dict(tr.cfg.data.mixture) if hasattr(tr.cfg, "data") else {}
    stage_mix = tr.stage.cfg.mixture if tr.stage else {}
    meta = {
        "step": tr.step, "tokens": tr.tokens, "stage": tr.stage.name if tr.stage else "", "time": time.time(),
        "train_time_s": tr.train_time, "milestone": milestone, "world_size": tr.dist.world,
        "global_batch": tr.base_global_batch(),
        "distributed": tr.parallel.name, "mixture": mixture, "stage_mixture": stage_mix,
        "mixture_version": hashlib.sha256(json.dumps([mixture, stage_mix], sort_keys=True).encode()).hexdigest()[:16],
        **(extra_meta or {}),
    }
    stage_kind = tr.stage.kind if tr.stage is not None else ""

    def finish() -> Path:
        if future is not None:
            future.result()  # this rank's files are written
        path = ckpt.finish_checkpoint(root, name, meta, tr.dist)
        if tr.dist.is_main and step_ckpt:
            keep = tr.t.keep_last
            if stage_kind == "anneal":
                keep = max(keep, tr.t.averaging.last_n)
            ckpt.prune(root, keep, wait=False)
        tr.event("checkpoint", str(path.name), step=step)
        tr.callbacks.fire("on_save", tr.ctx, path)
        return path

    if future is not None and tr.t.async_save:
        tr.pending_save = finish
        return root / name
    return finish()


def wait_pending(tr) -> None:
    """Finish a background save (every rank calls this at the same points: next save, rewind, end)."""
    finish, tr.pending_save = tr.pending_save, None
    if finish is not None:
        finish()
    ckpt.wait_pruned()  # the end of training leaves no old checkpoint half-deleted


def load(tr, path: Path) -> None:
    """Restore model, optimizer, loader, RNG, counters and callbacks from ``path``; refuses (CheckpointError)
    a checkpoint whose files fail their checksums or whose weights are not finite."""
    ckpt.verify(path)
    check_same_model(tr, path)
    state = ckpt.load_trainer_state(path / "trainer_state.pt")
    if not (path / "dcp").is_dir():  # the format of the first week, before DCP: no longer read
        raise ckpt.CheckpointError(f"{path}: no dcp/ folder (a checkpoint format older than this version reads)")
    tr.parallel.load(tr.raw, tr.opt.optimizers, path)
    if not tr.parallel.all_finite(tr.raw):
        raise ckpt.CheckpointError(f"{path}: model weights hold NaN or Inf; not resuming from it")
    loaded = TrainState.from_checkpoint(state, tr.t.max_steps)
    tr.state.__dict__.update(loaded.__dict__)  # the same object: the sink and the context hold it
    tr.plan = Plan(tr.t, loaded.total_steps, loaded.stage_extensions)
    tr.callbacks.load_state_dict(from_safe(state["callbacks"]))
    if tr.scaler is not None and "scaler" in state:
        tr.scaler.load_state_dict(state["scaler"])
    set_rng_state(loaded.rng)
    stage = tr.plan.stage_at(tr.step)
    # A checkpoint taken at a stage's end belongs to that stage; the next stage starts a fresh stream.
    tr.enter_stage(stage, loader_state=loaded.loader if loaded.stage == stage.name else None)
    tr.last_checkpoint_step = tr.step
    if loaded.max_steps != tr.t.max_steps and tr.t.schedule != "wsd":
        tr.event("schedule_changed", f"max_steps {loaded.max_steps} -> {tr.t.max_steps}: the "
                 f"{tr.t.schedule} LR curve differs from the one the earlier steps followed (WSD would not)")


def check_same_model(tr, path: Path) -> None:
    """Refuse, in one line, to resume a checkpoint of a different model shape."""
    saved_file = path / "model_config.json"
    if tr.base_model_cfg is None or not saved_file.is_file():
        return
    saved = json.loads(saved_file.read_text())
    current = configlib.to_dict(tr.base_model_cfg)
    for key in sorted(set(saved) | set(current)):
        if key in ("max_seq_len", "rope_scaling"):  # stages change these
            continue
        if saved.get(key) != current.get(key):
            raise ValueError(f"{path}: checkpoint has model.{key}={saved.get(key)!r} but the config says "
                             f"{current.get(key)!r}; use --fresh or another --run-dir")


def truncate_log(tr, step: int, keep_events: bool | frozenset[str] = RECORD_EVENTS) -> int:
    """Cut metrics.jsonl back to ``step`` (rank 0 reopens its log afterwards); returns rows dropped."""
    dropped = 0
    if tr.dist.is_main:
        tr.log.close()  # the file is rewritten: reopen it afterwards, or writes go to the old file
        dropped = truncate_metrics(tr.run.metrics, step, keep_events=keep_events)
        tr.log = MetricsLogger(tr.run.root, enabled=True, progress=tr.progress)
    return dropped


def start_over(tr, unfinished: list[Path]) -> None:
    """A run that trained before but has no valid checkpoint starts at step 0: say why in one line."""
    if not tr.dist.is_main:
        return
    rows = truncate_log(tr, 0)
    if not (rows or unfinished):
        return  # a new run: nothing to explain
    why = (f"removed {len(unfinished)} unfinished save(s)" if unfinished else "none was ever written") + \
        f"; {rows} metrics rows logged since are dropped"
    msg = f"no valid checkpoint in {tr.run.checkpoints} ({why}): starting from step 0"
    print(f"warning: {msg}", file=sys.stderr, flush=True)
    tr.event("start_over", msg)


def resume(tr):
    """Resume from the newest good checkpoint (or start fresh); returns a TrainResult if already finished."""
    root = tr.run.checkpoints
    unfinished = ckpt.clean_temporaries(root) if tr.dist.is_main else []
    tr.dist.barrier()
    candidates = [] if tr.fresh else list(reversed(ckpt.list_checkpoints(root)))
    loaded = None
    started = time.perf_counter()
    for path in candidates:
        try:
            load(tr, path)
        except ckpt.CheckpointError as exc:
            tr.event("checkpoint_rejected", f"{exc}; falling back to the previous checkpoint")
            continue
        loaded = path
        break
    if loaded is None and candidates:  # never start over silently from a refused checkpoint's weights
        raise ckpt.CheckpointError(f"{root}: no checkpoint passed its checks (see the checkpoint_rejected "
                                   "events in metrics.jsonl); use --fresh to start over")
    tr.resume_load_s = time.perf_counter() - started
    world_change = resume_global_batch(tr.t, ckpt.read_meta(loaded), tr.dist.world) if loaded is not None else ""
    if loaded is None:
        if not tr.fresh:
            start_over(tr, unfinished)
        if tr.dist.is_main and tr.fresh and root.exists():
            shutil.rmtree(root)
            for leftover in (tr.run.metrics, tr.run.root / "goodput.json"):
                leftover.unlink(missing_ok=True)
            tr.log.close()
            tr.log = MetricsLogger(tr.run.root, enabled=True, progress=tr.progress)
        tr.dist.barrier()
        tr.enter_stage(tr.plan.stage_at(0))
        return None
    tr.dist.barrier()
    dropped = truncate_log(tr, tr.step)
    tr.event("resume", f"from {loaded.name} (dropped {dropped} metrics rows logged after it)")
    if world_change:
        tr.event("world_size_changed", world_change, world_size=tr.dist.world, global_batch=tr.base_global_batch())
    final_dir = root / "final"
    if tr.step >= tr.plan.total and ckpt.is_valid(final_dir) and ckpt.read_meta(final_dir)["step"] == tr.step:
        meta = ckpt.read_meta(final_dir)
        return TrainResult(tr.step, tr.tokens, {"val_loss": meta.get("final_val_loss") or float("nan")},
                           final_dir, "done")
    return None
