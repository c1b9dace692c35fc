"""Run one training config in its own run directory, resumably, and read back its final held-out loss.

Sweeps and ablations are many small runs under one directory. A run is finished when its
``result.json`` exists (written atomically after training and collection), so re-running a sweep skips
finished runs; an interrupted run resumes from its latest checkpoint (the trainer's ``fresh=False``).
``result.json`` also records the overrides that defined the run: asking a directory to hold a different
run under the same name is an error rather than a silently stale result.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

from pretrain.config import RunConfig

TrainFn = Callable[..., object]
"""``train(cfg, run_dir, fresh=False, progress=False)``: :func:`pretrain.train.train` by default."""


def default_train_fn() -> TrainFn:
    from pretrain.train import train

    return train


def read_final_eval(run_dir: str | Path) -> dict:
    """The final model's eval row of ``metrics.jsonl``: val_loss and val_loss/<domain> (and bpb).

    The trainer tags evaluations of the final-model candidates with ``model`` (final, raw, ema, last_n);
    the candidate it selected is named in ``checkpoints/final/meta.json``. Without tags, the last eval
    row with a val_loss is the final one.
    """
    run_dir = Path(run_dir)
    metrics = run_dir / "metrics.jsonl"
    if not metrics.is_file():
        raise FileNotFoundError(f"no metrics.jsonl in run directory {run_dir}")
    rows = []
    with metrics.open(encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                raise ValueError(f"{metrics}:{line_no}: not valid JSON") from None
            if row.get("type") == "eval" and isinstance(row.get("val_loss"), (int, float)):
                rows.append(row)
    if not rows:
        raise ValueError(f"{metrics}: no eval row with val_loss (does the token directory have a val/ split?)")
    selected = None
    meta = run_dir / "checkpoints" / "final" / "meta.json"
    if meta.is_file():
        selected = json.loads(meta.read_text(encoding="utf-8")).get("selected")
    for tag in (selected, "final"):
        tagged = [r for r in rows if tag and r.get("model") == tag]
        if tagged:
            return _eval_fields(tagged[-1])
    return _eval_fields(rows[-1])


def _eval_fields(row: dict) -> dict:
    keep = {k: v for k, v in row.items() if k.startswith(("val_loss", "val_bpb")) and isinstance(v, (int, float))}
    keep["step"] = row.get("step")
    keep["tokens"] = row.get("tokens")
    return keep


def run_or_load(cfg: RunConfig, run_dir: str | Path, record: dict, train_fn: TrainFn | None = None,
                allow_time_limit: bool = False) -> dict:
    """Train ``cfg`` in ``run_dir`` unless its result.json exists; return the result row.

    ``record`` (with at least ``overrides``) is stored with the final eval fields in result.json. A run
    that stopped on ``train.time_limit_s`` is an error unless ``allow_time_limit`` (an ablation may
    compare variants at equal wall-clock time; an IsoFLOP point must train its whole token budget).
    """
    run_dir = Path(run_dir)
    result_path = run_dir / "result.json"
    if result_path.is_file():
        done = json.loads(result_path.read_text(encoding="utf-8"))
        if done.get("overrides") != record.get("overrides"):
            raise ValueError(f"{result_path}: holds a run with different overrides; remove the directory or "
                             f"use another output directory")
        return done
    fn = train_fn or default_train_fn()
    result = fn(cfg, run_dir, fresh=False, progress=False)
    final = read_final_eval(run_dir)
    stopped = getattr(result, "stopped", "done")
    if stopped != "done" and not (allow_time_limit and stopped == "time_limit"):
        raise RuntimeError(f"run {run_dir} stopped early ({stopped}); its loss is not a final loss")
    if not math.isfinite(final["val_loss"]):
        raise RuntimeError(f"run {run_dir} finished with a non-finite val_loss (diverged?)")
    row = {**record, **final, "stopped": stopped}
    tmp = result_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(row, indent=2) + "\n", encoding="utf-8")
    tmp.replace(result_path)
    return row
