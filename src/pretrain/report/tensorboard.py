"""Mirror metrics.jsonl into TensorBoard event files.

metrics.jsonl is the record of a run (the trainer cuts it back on resume, so it never holds steps that
were rolled back); TensorBoard files written live can. Rebuilding from metrics.jsonl gives TensorBoard
exactly the record: every numeric field of every train and eval row becomes a scalar
(``train/<field>``, ``eval/<field>``, ``eval/<model>/<field>`` for eval rows naming a model), and every
event becomes a text entry under ``events``. Tags match what the trainer writes live.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

from pretrain.report.metrics import Metrics, is_number, read_metrics
from pretrain.rundir import RunDir


def scalar_rows(m: Metrics) -> Iterator[tuple[str, float, int, float | None]]:
    """(tag, value, step, seconds since start or None) for every finite numeric field of train/eval rows."""
    for kind, rows in (("train", m.train), ("eval", m.eval)):
        for row in rows:
            step = int(row["step"])
            t = float(row["time_s"]) if is_number(row.get("time_s")) else None
            prefix = f"{kind}/{row['model']}/" if kind == "eval" and row.get("model") else f"{kind}/"
            for k, v in row.items():
                if k in ("type", "step") or not is_number(v) or not math.isfinite(v):
                    continue
                # tokens and time are axes in the report, but plotted against step they show throughput
                # stalls and restarts, so they are mirrored too.
                yield prefix + k, float(v), step, t


def _event_text(ev: dict) -> str:
    detail = ev.get("detail", "")
    if isinstance(detail, dict):
        detail = ", ".join(f"{k}={v}" for k, v in detail.items())
    return f"step {ev.get('step', '?')}: **{ev.get('event', '?')}** {detail}".strip()


def write_scalars(run_dir: str | Path, out_dir: str | Path | None = None, replace: bool = True) -> Path:
    """Write TensorBoard event files mirroring ``<run_dir>/metrics.jsonl``; returns the log directory.

    ``out_dir`` defaults to ``<run_dir>/tensorboard``. With ``replace`` (the default) existing event files
    there are removed first, so the directory holds one consistent copy of the record (no duplicated
    steps from a live writer or an earlier rebuild).
    """
    rd = RunDir(Path(run_dir))
    if not rd.metrics.is_file():
        raise FileNotFoundError(f"{rd.metrics} not found: nothing to mirror into TensorBoard")
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:  # tensorboard is a declared dependency; say what to install if it is gone
        raise ImportError("TensorBoard output needs the 'tensorboard' package: pip install 'tensorboard>=2.15'") \
            from exc
    m = read_metrics(rd.metrics)
    out = Path(out_dir) if out_dir is not None else rd.tensorboard
    out.mkdir(parents=True, exist_ok=True)
    if replace:
        for old in out.glob("events.out.tfevents.*"):
            old.unlink()
    # Wall times: anchor the run's time_s at the metrics file's last write, so TensorBoard's "relative"
    # and "wall" axes show the real run rather than the moment of the rebuild.
    last_t = max((float(r["time_s"]) for r in m.train if is_number(r.get("time_s"))), default=0.0)
    base = rd.metrics.stat().st_mtime - last_t
    writer = SummaryWriter(str(out))
    try:
        prev_t = None
        for tag, value, step, t in scalar_rows(m):
            prev_t = t if t is not None else prev_t
            writer.add_scalar(tag, value, step, walltime=base + prev_t if prev_t is not None else None)
        for ev in m.events:
            step = int(ev["step"]) if is_number(ev.get("step")) else 0
            writer.add_text("events", _event_text(ev), step)
        for step, name in m.stages():  # stage names are strings: one text entry where each stage begins
            writer.add_text("stages", f"stage **{name}** starts at step {int(step)}", int(step))
    finally:
        writer.close()
    return out


__all__ = ["scalar_rows", "write_scalars"]
