"""`pretrain scaling ...` (fit, plan, compute, sweep, downstream) and `pretrain ablate`: argument parsing only.

The work is in :mod:`pretrain.scaling`; see docs/scaling.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

scaling_app = typer.Typer(help="Scaling laws: IsoFLOP sweeps, Chinchilla fits, compute-optimal plans.",
                          no_args_is_help=True)


def _floats(text: str, what: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise typer.BadParameter(f"{what} must be comma-separated numbers (got {text!r})") from None


@scaling_app.command("fit")
def fit(
    points: Path = typer.Argument(..., help="CSV of runs: one row per run with parameters, tokens (or FLOPs), loss."),
    params_column: str = typer.Option("params", help="Column with the parameter count N."),
    tokens_column: str = typer.Option("tokens", help="Column with the training tokens D."),
    flops_column: str = typer.Option("", help="Column with training FLOPs C; tokens are then C / 6N."),
    loss_column: str = typer.Option("loss", help="Column with the final held-out loss."),
    drop_highest: int = typer.Option(0, help="Drop the K highest-loss rows first (Epoch drops 5 Chinchilla outliers)."),
    bootstrap: int = typer.Option(0, help="Bootstrap resamples for confidence intervals (0 = none; 200+ for real CIs)."),
    starts: int = typer.Option(16, help="L-BFGS starts: the best K points of Hoffmann's grid (0 = the whole grid)."),
    group_tol: float = typer.Option(0.1, help="Approach 2: runs whose log10 FLOPs differ by less share a budget."),
    out: Path = typer.Option(None, "--out", "-o", help="Write fit.json and plots (fit, IsoFLOP, extrapolation) here."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (E, A, B, alpha, beta, objective, n_points, ...)."),
) -> None:
    """Fit L(N, D) = E + A/N^alpha + B/D^beta (Approach 3) and IsoFLOP parabolas (Approach 2)."""
    from pretrain.scaling.analysis import analyze
    from pretrain.scaling.points import read_points
    from pretrain.writable import ensure_writable

    if out is not None:
        ensure_writable(out, "--out")

    pts = read_points(points, params_column=params_column, tokens_column=tokens_column, loss_column=loss_column,
                      flops_column=flops_column or None, drop_highest=drop_highest)
    report = analyze(pts, out_dir=out, bootstrap=bootstrap, n_starts=starts, group_tol_dex=group_tol)
    if as_json:
        print(json.dumps(report))
        return
    table = Table(title=f"Approach 3 fit of {len(pts)} runs ({points})")
    for col in ("parameter", "value", "95% CI"):
        table.add_column(col)
    ci = report.get("ci", {})
    for key in ("E", "A", "B", "alpha", "beta"):
        lo_hi = ci.get(key)
        table.add_row(key, f"{report[key]:.5g}", f"[{lo_hi[0]:.4g}, {lo_hi[1]:.4g}]" if lo_hi else "-")
    table.add_row("objective", f"{report['objective']:.7g}", "")
    table.add_row("N_opt ~ C^a", f"a = {report['a_exponent']:.4f}", "")
    a2 = report["approach2"]
    if "error" in a2:
        table.add_row("Approach 2", a2["error"], "")
    else:
        table.add_row("Approach 2: N_opt ~ C^a", f"a = {a2['a']:.4f} over {len(a2['curves'])} budgets", "")
    Console(width=160).print(table)
    for warning in report.get("warnings", []) + a2.get("warnings", []):
        print(f"warning: {warning}")
    if out:
        print(f"wrote {out}/fit.json and plots")


@scaling_app.command("plan")
def plan(
    compute: float = typer.Option(0.0, help="Training compute budget C in FLOPs (or give --gpus, --hours, --mfu)."),
    law: str = typer.Option("epoch", help="Scaling law: hoffmann, epoch, or a fit JSON from `pretrain scaling fit`."),
    gpus: int = typer.Option(0, help="Accelerators (with --hours and --mfu: the budget; with --compute: the time)."),
    hours: float = typer.Option(0.0, help="Wall-clock hours on --gpus accelerators."),
    mfu: float = typer.Option(0.4, help="Model FLOPs utilisation (0.3-0.5 is typical for large dense runs)."),
    gpu: str = typer.Option("H100", help="Accelerator for the bf16 peak FLOP/s (H100, H200, A100, B200, ...)."),
    peak_flops: float = typer.Option(0.0, help="Peak FLOP/s per accelerator (overrides --gpu)."),
    inference_tokens: float = typer.Option(0.0, help="Lifetime inference tokens: also plan the inference-optimal model."),
    vocab_size: int = typer.Option(32000, help="Vocabulary size for the suggested model shape."),
    seq_len: int = typer.Option(2048, help="Context length for the suggested model shape."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (params, tokens, tokens_per_param, compute, ...)."),
) -> None:
    """Compute-optimal model size and tokens for a budget; inference-aware plan; wall-clock time; shape."""
    from pretrain.scaling.plan import make_plan

    result = make_plan(compute=compute, law=law, gpus=gpus, hours=hours, mfu=mfu, gpu=gpu, peak_flops=peak_flops,
                       inference_tokens=inference_tokens, vocab_size=vocab_size, seq_len=seq_len)
    if as_json:
        print(json.dumps(result))
        return
    table = Table(title=f"compute-optimal plan for C = {result['compute']:.3g} FLOPs (law: {result['law']})")
    table.add_column("quantity")
    table.add_column("value")
    table.add_row("parameters N", f"{result['params']:.4g}")
    table.add_row("tokens D", f"{result['tokens']:.4g}")
    table.add_row("tokens per parameter", f"{result['tokens_per_param']:.1f}")
    table.add_row("predicted loss", f"{result['loss']:.4f}")
    s = result["shape"]
    table.add_row("suggested shape", f"dim {s['dim']}, {s['n_layers']} layers, {s['n_heads']} heads "
                  f"({s['n_kv_heads']} KV), {s['params']:.4g} params")
    if result.get("nearest_preset"):
        table.add_row("nearest preset", f"{result['nearest_preset']['name']} ({result['nearest_preset']['params']:.3g})")
    if "wall_clock" in result:
        w = result["wall_clock"]
        table.add_row("wall clock", f"{w['hours']:.1f} h on {w['gpus']} x {w['peak_flops']:.3g} FLOP/s at MFU {w['mfu']}")
    if "inference" in result:
        inf = result["inference"]
        table.add_row("inference-optimal N", f"{inf['params']:.4g} ({inf['tokens_per_param']:.0f} tokens/param)")
        table.add_row("total FLOPs saved", f"{100 * inf['saving']:.1f}% of {inf['compute_optimal_total_flops']:.3g}")
    Console(width=160).print(table)


@scaling_app.command("compute")
def compute_cmd(
    source: str = typer.Argument("tiny", help="A preset name or a TOML/YAML config file."),
    overrides: list[str] = typer.Argument(None, help="Dotted overrides such as model.dim=128."),
    budget: float = typer.Option(0.0, help="A FLOP budget: also print the tokens and steps it buys."),
    vocab_size: int = typer.Option(0, help="Vocabulary size when the config leaves it to the tokenizer."),
) -> None:
    """Compute accounting of a config: parameters, FLOPs per token (6N + attention), tokens per budget."""
    from pretrain.config import resolve
    from pretrain.scaling.compute import run_compute, steps_for_budget, tokens_for_budget, tokens_per_step

    cfg = resolve(source, overrides or [])
    rc = run_compute(cfg, vocab_size or None)
    out = rc.to_dict()
    if budget:
        out["budget"] = budget
        out["tokens"] = tokens_for_budget(rc.flops_per_token, budget)
        out["steps"] = steps_for_budget(cfg, rc.flops_per_token, budget)
        out["tokens_per_step"] = tokens_per_step(cfg)
    print(json.dumps(out))


@scaling_app.command("downstream")
def downstream(
    points: Path = typer.Argument(..., help="CSV with a task NLL column and an accuracy column (one row per model)."),
    nll_column: str = typer.Option("nll", help="Column with the task negative log-likelihood of the correct answers."),
    accuracy_column: str = typer.Option("accuracy", help="Column with the task accuracy in [0, 1]."),
    chance: float = typer.Option(-1.0, help="Fix the lower asymptote at chance accuracy (e.g. 0.25); < 0 = fit it."),
) -> None:
    """Fit Llama 3's second step: accuracy as a sigmoid of task NLL; prints JSON."""
    import csv

    from pretrain.scaling.downstream import fit_accuracy_sigmoid

    if not points.is_file():
        raise FileNotFoundError(f"points file not found: {points}")
    nll, acc = [], []
    with points.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        for col in (nll_column, accuracy_column):
            if col not in (reader.fieldnames or []):
                raise ValueError(f"{points}: no column {col!r}")
        for line, row in enumerate(reader, start=2):
            try:
                nll.append(float(row[nll_column]))
                acc.append(float(row[accuracy_column]))
            except ValueError:
                raise ValueError(f"{points}:{line}: non-numeric {nll_column!r} or {accuracy_column!r}") from None
    sig = fit_accuracy_sigmoid(nll, acc, chance=None if chance < 0 else chance)
    print(json.dumps(sig.to_dict()))


@scaling_app.command("sweep")
def sweep(
    base: str = typer.Argument(..., help="Preset or config file every run starts from (sets data.tokens, tokenizer.path)."),
    overrides: list[str] = typer.Argument(None, help="Dotted overrides applied to every run, e.g. train.lr=3e-3."),
    out: Path = typer.Option(Path("runs/sweep"), "--out", "-o", help="Sweep directory (re-running resumes it)."),
    budgets: str = typer.Option("1e10,3e10", help="Comma-separated compute budgets in FLOPs (one IsoFLOP profile each)."),
    shapes: str = typer.Option("16x1,32x1,48x2,64x2", help="Comma-separated shapes DIMxLAYERS[xHEADS[xKVHEADS]]."),
    head_dim: int = typer.Option(16, help="Head size for shapes without a head count."),
    warmup_fraction: float = typer.Option(0.1, help="Warmup as a fraction of each run."),
    min_steps: int = typer.Option(10, help="Skip cells whose budget buys fewer steps."),
    max_steps: int = typer.Option(0, help="Skip cells needing more steps (0 = no cap)."),
    params_count: str = typer.Option("total", help="N in points.csv: total (Hoffmann) or non_embedding (Kaplan)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the planned grid and exit."),
) -> None:
    """Train a grid of model shapes x compute budgets (cosine length = run length); write points.csv and plots."""
    from pretrain.configlib import from_dict
    from pretrain.scaling.sweep import SweepConfig, plan_sweep, run_sweep

    sc = from_dict(SweepConfig, {
        "base": base, "overrides": list(overrides or []), "budgets": _floats(budgets, "--budgets"),
        "shapes": [s.strip() for s in shapes.split(",") if s.strip()], "head_dim": head_dim,
        "warmup_fraction": warmup_fraction, "min_steps": min_steps, "max_steps": max_steps,
        "params_count": params_count,
    })
    console = Console(width=160)
    if dry_run:
        table = Table(title="planned sweep")
        for col in ("run", "params", "steps", "tokens", "FLOPs", "skipped"):
            table.add_column(col)
        for c in plan_sweep(sc):
            table.add_row(c.name, f"{c.params:,}", str(c.steps), f"{c.tokens:,}", f"{c.flops:.3g}", c.skipped)
        console.print(table)
        return

    def report(cell, status: str) -> None:
        words = {"skip": f"skip ({cell.skipped})", "done": "finished earlier", "run": "training...", "ok": "done"}
        console.print(f"{cell.name}: {words[status]}")

    from pretrain.writable import ensure_writable

    ensure_writable(out, "--out")
    summary = run_sweep(sc, out, on_run=report)
    console.print(f"{summary['runs']} runs -> {summary['points']}; plot {summary['plots']['isoflop']}")
    fit_info = summary.get("fit", {})
    if "error" in fit_info:
        console.print(f"no fit: {fit_info['error']}")
    elif fit_info:
        console.print(f"fit: E={fit_info['E']:.4g} A={fit_info['A']:.4g} B={fit_info['B']:.4g} "
                      f"alpha={fit_info['alpha']:.4f} beta={fit_info['beta']:.4f} (see {out}/fit.json)")


def ablate(
    base: str = typer.Argument(..., help="Preset or config file every variant starts from."),
    overrides: list[str] = typer.Argument(None, help="Dotted overrides applied to every variant."),
    vary: list[str] = typer.Option(..., "--vary", help="key=v1,v2,... (repeatable; every combination runs)."),
    seeds: int = typer.Option(3, help="Seeds per variant (train.seed = --seed + 0..K-1)."),
    seed: int = typer.Option(0, help="First seed."),
    out: Path = typer.Option(Path("runs/ablate"), "--out", "-o", help="Ablation directory (re-running resumes it)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result table as JSON."),
) -> None:
    """Run every --vary combination with K seeds; compare final per-domain losses against seed noise."""
    from pretrain.configlib import from_dict
    from pretrain.scaling.ablate import AblateConfig, run_ablation

    ac = from_dict(AblateConfig, {"base": base, "overrides": list(overrides or []), "vary": list(vary),
                                  "seeds": seeds, "seed": seed})
    from pretrain.writable import ensure_writable

    ensure_writable(out, "--out")
    console = Console(width=160, stderr=as_json)
    result = run_ablation(ac, out, on_run=lambda v, s, st: console.print(
        f"{v} seed {s}: {'finished earlier' if st == 'done' else 'training...'}"))
    if as_json:
        from pretrain.scaling.ablate import json_safe

        print(json.dumps(json_safe(result["table"])))
        return
    table = Table(title=f"ablation ({seeds} seed(s) per variant) -> {out}/ablation.json, {result['plot']}")
    for col in ("variant", "domain", "mean", "std", "n", "delta", "2 x stderr", "p (Welch)", "beyond noise"):
        table.add_column(col)
    for r in result["table"]:
        beyond = {True: "yes", False: "no", None: "-"}[r["exceeds_noise"]]
        table.add_row(r["variant"], r["domain"], f"{r['mean']:.4f}", f"{r['std']:.4f}", str(r["n"]),
                      f"{r['delta']:+.4f}", f"{2 * r['stderr']:.4f}", f"{r['p_value']:.3g}", beyond)
    console.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(scaling_app, name="scaling")
    app.command("ablate")(ablate)
