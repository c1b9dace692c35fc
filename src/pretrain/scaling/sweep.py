"""IsoFLOP sweeps: train a grid of model shapes x compute budgets and collect final held-out losses.

Each (shape, budget) run trains for D = C / (FLOPs per token) tokens, with a cosine schedule as long
as the run: Hoffmann et al. 2022 (section 3.1, appendix figure A1) showed that a cosine cycle longer
than the run overestimates the loss of intermediate checkpoints, so every point of an IsoFLOP profile
is its own full run, never a checkpoint of a longer one. Warmup is a fixed fraction of each run.

All runs share the base config's tokenizer and token shards (``tokenizer.path`` and ``data.tokens``
must point at them). The sweep directory holds::

    sweep.json        the sweep config and the planned grid (with skipped cells and why)
    runs/<name>/      one run directory per cell (result.json marks it finished)
    points.csv        one row per finished run: params, tokens, flops, loss, per-domain losses
    isoflop.png       loss over N per budget (with Approach 2 parabolas when there are >= 3 sizes)
    fit.json + plots  both Chinchilla fits, when the points support them
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from pretrain.configlib import check, to_dict
from pretrain.scaling.compute import run_compute, tokens_per_step
from pretrain.scaling.runner import TrainFn, run_or_load


@dataclass
class SweepConfig:
    base: str = "tiny"
    """Preset name or config file every run starts from (must set data.tokens and tokenizer.path)."""
    overrides: list[str] = field(default_factory=list)
    """Dotted overrides applied to the base before each run's own (e.g. train.lr=3e-3)."""
    budgets: list[float] = field(default_factory=lambda: [1e10, 3e10])
    """Training compute budgets C in FLOPs (one IsoFLOP profile each)."""
    shapes: list[str] = field(default_factory=lambda: ["16x1", "32x1", "48x2", "64x2"])
    """Model shapes 'DIMxLAYERS', 'DIMxLAYERSxHEADS' or 'DIMxLAYERSxHEADSxKVHEADS'."""
    head_dim: int = 16
    """Head size for shapes that do not give a head count (n_heads = dim / head_dim)."""
    warmup_fraction: float = 0.1
    """Warmup steps as a fraction of each run's steps."""
    min_steps: int = 10
    """Cells whose budget buys fewer optimizer steps are skipped (too short to say anything)."""
    max_steps: int = 0
    """Cells needing more steps are skipped (0 = no cap), to keep CPU sweeps bounded."""
    params_count: Literal["total", "non_embedding"] = "total"
    """Which parameter count is N in points.csv: all (Hoffmann et al.) or non-embedding (Kaplan et al.)."""

    def validate(self) -> None:
        check(bool(self.budgets) and all(b > 0 for b in self.budgets), "budgets", "need at least one budget > 0")
        check(bool(self.shapes), "shapes", "need at least one shape")
        for s in self.shapes:
            parse_shape(s, self.head_dim)
        check(self.head_dim > 0 and self.head_dim % 2 == 0, "head_dim", "must be a positive even number")
        check(0.0 <= self.warmup_fraction < 1.0, "warmup_fraction", "must be in [0, 1)")
        check(self.min_steps >= 1, "min_steps", "must be >= 1")
        check(self.max_steps >= 0, "max_steps", "must be >= 0")


def parse_shape(text: str, head_dim: int = 16) -> tuple[int, int, int, int]:
    """'64x2' -> (dim, n_layers, n_heads, n_kv_heads); KV heads default to the query heads."""
    try:
        parts = [int(p) for p in text.lower().split("x")]
    except ValueError:
        parts = []
    if not 2 <= len(parts) <= 4 or any(p <= 0 for p in parts):
        raise ValueError(f"config field 'shapes': {text!r} is not DIMxLAYERS[xHEADS[xKVHEADS]]")
    dim, layers = parts[0], parts[1]
    heads = parts[2] if len(parts) > 2 else max(1, dim // head_dim)
    kv = parts[3] if len(parts) > 3 else heads
    if dim % heads or (dim // heads) % 2 or heads % kv:
        raise ValueError(f"config field 'shapes': {text!r}: heads must divide dim into even head sizes and "
                         f"KV heads must divide heads")
    return dim, layers, heads, kv


@dataclass
class SweepCell:
    name: str
    budget: float
    shape: str
    overrides: list[str]
    params: int
    non_embedding_params: int
    flops_per_token: float
    steps: int
    tokens: int
    flops: float
    """Actual compute of the run: steps x tokens per step x FLOPs per token (close to the budget)."""
    skipped: str = ""


def _cell_name(budget: float, dim: int, layers: int, heads: int, kv: int) -> str:
    mant, exp = f"{budget:.2e}".split("e")
    mant = mant.rstrip("0").rstrip(".")
    tail = f"-h{heads}" + (f"kv{kv}" if kv != heads else "")
    return f"C{mant}e{int(exp)}-d{dim}-l{layers}{tail}"


def _quote(path: str) -> str:
    return json.dumps(path)  # a TOML basic string is a JSON string


def plan_sweep(sc: SweepConfig, vocab_size: int | None = None) -> list[SweepCell]:
    """The grid: one cell per (budget, shape), sized so its compute matches the budget."""
    from pretrain.config import resolve
    from pretrain.configlib import validate

    validate(sc)
    base = resolve(sc.base, sc.overrides)
    vocab = vocab_size or base.model.vocab_size or _tokenizer_vocab(base)
    cells = []
    for budget in sc.budgets:
        for shape in sc.shapes:
            dim, layers, heads, kv = parse_shape(shape, sc.head_dim)
            name = _cell_name(budget, dim, layers, heads, kv)
            shape_ov = [f"model.dim={dim}", f"model.n_layers={layers}", f"model.n_heads={heads}",
                        f"model.n_kv_heads={kv}"]
            cfg = resolve(sc.base, [*sc.overrides, *shape_ov])
            rc = run_compute(cfg, vocab)
            tps = tokens_per_step(cfg)
            steps = max(1, round(budget / (rc.flops_per_token * tps)))
            skipped = ""
            if steps < sc.min_steps:
                skipped = f"{steps} steps < min_steps={sc.min_steps}"
            elif sc.max_steps and steps > sc.max_steps:
                skipped = f"{steps} steps > max_steps={sc.max_steps}"
            warmup = min(steps - 1, max(1, round(sc.warmup_fraction * steps))) if sc.warmup_fraction else 0
            overrides = [
                *sc.overrides, *shape_ov, f"name={_quote(name)}",
                f"train.max_steps={steps}", f"train.warmup_steps={warmup}", 'train.schedule="cosine"',
                "train.time_limit_s=0", "train.stages=[]",
            ]
            cells.append(SweepCell(
                name=name, budget=budget, shape=shape, overrides=overrides, params=rc.params,
                non_embedding_params=rc.non_embedding_params, flops_per_token=rc.flops_per_token, steps=steps,
                tokens=steps * tps, flops=steps * tps * rc.flops_per_token, skipped=skipped,
            ))
    return cells


def _tokenizer_vocab(cfg) -> int:
    from pretrain.tokenizer import load_tokenizer

    if not cfg.tokenizer.path:
        raise ValueError("config field 'tokenizer.path': a sweep needs the shared tokenizer "
                         "(set tokenizer.path, or model.vocab_size)")
    path = Path(cfg.tokenizer.path)
    return load_tokenizer(path / "tokenizer.json" if path.is_dir() else path).vocab_size


def _check_shared_data(sc: SweepConfig) -> None:
    from pretrain.config import resolve

    cfg = resolve(sc.base, sc.overrides)
    if not cfg.data.tokens or not cfg.tokenizer.path:
        raise ValueError("config field 'data.tokens': a sweep trains every run on the same shards; set data.tokens "
                         "and tokenizer.path in the base config or overrides")


def run_sweep(
    sc: SweepConfig,
    out_dir: str | Path,
    train_fn: TrainFn | None = None,
    on_run: Callable[[SweepCell, str], None] | None = None,
    fit: bool = True,
) -> dict:
    """Run every non-skipped cell (finished ones are read back), then write points.csv, plots and fits.

    ``on_run(cell, status)`` reports progress: status is 'skip', 'done' (already finished), 'run', 'ok'.
    """
    from pretrain.config import resolve
    from pretrain.scaling.points import write_points

    _check_shared_data(sc)
    out = Path(out_dir)
    cells = plan_sweep(sc)
    out.mkdir(parents=True, exist_ok=True)
    (out / "sweep.json").write_text(json.dumps({"config": to_dict(sc), "cells": [asdict(c) for c in cells]},
                                               indent=2) + "\n", encoding="utf-8")
    rows = []
    for cell in cells:
        if cell.skipped:
            if on_run:
                on_run(cell, "skip")
            continue
        run_dir = out / "runs" / cell.name
        finished = (run_dir / "result.json").is_file()
        if on_run:
            on_run(cell, "done" if finished else "run")
        record = {
            "name": cell.name, "overrides": cell.overrides, "budget": cell.budget, "shape": cell.shape,
            "params": cell.params if sc.params_count == "total" else cell.non_embedding_params,
            "total_params": cell.params, "non_embedding_params": cell.non_embedding_params,
            "tokens": cell.tokens, "flops": cell.flops, "flops_per_token": cell.flops_per_token,
            "steps": cell.steps,
        }
        cfg = resolve(sc.base, cell.overrides)
        result = run_or_load(cfg, run_dir, record, train_fn)
        if on_run and not finished:
            on_run(cell, "ok")
        rows.append(result)
    if not rows:
        raise ValueError("sweep: every cell was skipped (see sweep.json); raise the budgets or lower min_steps")
    point_rows = [_point_row(r) for r in rows]
    write_points(out / "points.csv", point_rows)
    summary: dict = {"runs": len(rows), "skipped": [f"{c.name}: {c.skipped}" for c in cells if c.skipped],
                     "points": str(out / "points.csv")}
    summary["plots"] = {"isoflop": str(plot_sweep(point_rows, out / "isoflop.png"))}
    if fit:
        summary["fit"] = _try_fit(out)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def _point_row(r: dict) -> dict:
    row = {k: r[k] for k in ("name", "budget", "shape", "params", "total_params", "non_embedding_params", "tokens",
                             "flops", "steps")}
    row["loss"] = r["val_loss"]
    row.update({k: v for k, v in r.items() if k.startswith("val_loss/")})
    return row


def _try_fit(out: Path) -> dict:
    """Both fits on the sweep's points when they support them; the reason otherwise (never fatal)."""
    from pretrain.scaling.analysis import analyze
    from pretrain.scaling.points import read_points

    pts = read_points(out / "points.csv")  # N and D from their columns
    # C from the flops column (6ND leaves out attention and the LM head): it groups the budgets.
    pts.compute = read_points(out / "points.csv", flops_column="flops").compute
    if len(pts) < 5:
        return {"error": f"{len(pts)} runs: Approach 3 needs at least 5"}
    try:
        report = analyze(pts, out_dir=out, n_starts=8)
    except ValueError as exc:
        return {"error": str(exc)}
    return {k: report[k] for k in ("E", "A", "B", "alpha", "beta", "objective", "n_points")}


def plot_sweep(rows: list[dict], path: Path) -> Path:
    """Final loss over N per budget; Approach 2 parabolas where a budget has >= 3 sizes."""
    import numpy as np

    from pretrain.scaling.isoflop import fit_parabola
    from pretrain.scaling.plots import pyplot, save_figure
    from pretrain.scaling.points import from_arrays

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    budgets = sorted({r["budget"] for r in rows})
    colors = plt.cm.plasma(np.linspace(0.05, 0.85, max(1, len(budgets))))
    for color, b in zip(colors, budgets, strict=True):
        sub = sorted((r for r in rows if r["budget"] == b), key=lambda r: r["params"])
        n = np.array([r["params"] for r in sub], dtype=float)
        loss = np.array([r["loss"] for r in sub], dtype=float)
        ax.plot(n, loss, "o--" if len(sub) < 3 else "o", color=color, lw=0.8, label=f"C = {b:.2g}")
        if len(set(n)) >= 3:
            try:
                curve = fit_parabola(from_arrays(n, [r["tokens"] for r in sub], loss), compute=b)
                grid = np.logspace(math.log10(n.min()), math.log10(n.max()), 60)
                ax.plot(grid, curve.loss_at(grid), "-", color=color, lw=1)
                if curve.interior:  # an extrapolated vertex would stretch the axes to nowhere
                    ax.plot([curve.params_opt], [curve.loss_opt], "x", color=color, ms=8)
            except ValueError:
                pass  # no valley at this budget: the points alone are shown
    ax.set_xscale("log")
    ax.set_xlabel("parameters N")
    ax.set_ylabel("final held-out loss")
    ax.set_title("IsoFLOP sweep")
    ax.legend(fontsize=8)
    return save_figure(fig, path, left=0.13)
