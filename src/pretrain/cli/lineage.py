"""CLI commands of data lineage (argument parsing and printing only; the work is in pretrain.lineage)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

trace_app = typer.Typer(help="Which documents a step trained on, and which steps trained on a document.",
                        no_args_is_help=True)


def _where(d: dict) -> str:
    """The raw input of a traced document, with its line or byte offset (a URL as it is)."""
    if "source" not in d:  # --no-origins: what the shard index holds
        return d["record_source"]
    raw = (d.get("origin") or {}).get("raw") or {}
    if raw.get("url"):
        return raw["url"]
    return d["source"] + (f":{raw['line']}" if "line" in raw else f"@{raw['offset']}" if "offset" in raw else "")


def _run(run: Path) -> Path:
    if not run.is_dir():
        raise FileNotFoundError(f"run directory not found: {run}")
    return run


@trace_app.command("step")
def trace_step(
    step: int = typer.Argument(..., help="Optimizer step (1-based, as in metrics.jsonl)."),
    run: Path = typer.Argument(..., help="Run directory."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    origins: bool = typer.Option(True, "--origins/--no-origins", help="Look up each document's curated record "
                                 "and raw input (reads the curated files once); --no-origins: shard index only."),
) -> None:
    """The documents of optimizer step N: id, domain, tokens of it, micro-batch, row and rank, origin."""
    from pretrain.lineage.trace import trace_step as trace

    out = trace(_run(run), step, origins=origins)
    if as_json:
        print(json.dumps(out, indent=1))
        return
    flag = "" if out["trained"] else "  (drawn but not applied: skipped)"
    print(f"step {step}: {len(out['documents'])} document pieces on {out['world_size']} rank(s){flag}")
    for d in out["documents"]:
        where = f"rank {d['rank']} micro-batch {d['micro_batch']} row {d['row']}"
        span = f"tokens {d['first']}..{d['last']}" if d["first"] >= 0 else f"{d['tokens']} tokens"
        print(f"  {d['id']}  {d['domain']:10s} {where:28s} {span:18s} {_where(d)}")


@trace_app.command("doc")
def trace_doc(
    key: str = typer.Argument(..., metavar="ID|URL|PATH", help="Record id, URL, or raw input path (path:line)."),
    run: Path = typer.Argument(..., help="Run directory."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Every step whose batches held tokens of a document, the checkpoints that contain it; or why none."""
    from pretrain.lineage.trace import trace_doc as trace

    out = trace(_run(run), key)
    if as_json:
        print(json.dumps(out, indent=1))
        return
    print(f"document {out['id']}  source {_where(out)}")
    if out.get("never_trained"):
        print(f"  never trained on: {out['never_trained']}")
        return
    for s in out["steps"]:
        mark = "" if s["trained"] else " (skipped)"
        print(f"  step {s['step']:>7d}  epoch {s['epoch']}  {s['tokens']:>6d} tokens in {len(s['rows'])} row(s){mark}")
    if not out["checkpoints"]:
        print(f"  {out['tokens_trained']} tokens trained; no checkpoint holds it yet")
        return
    print(f"  {out['tokens_trained']} tokens trained; in checkpoints: {', '.join(out['checkpoints'])}; "
          f"last checkpoint without it: {out['last_checkpoint_before'] or 'none (it was in the first steps)'}")


def verify(run: Path = typer.Argument(..., help="Run directory.")) -> None:
    """Recompute the run's manifest chain (raw inputs -> curated -> tokens -> checkpoints -> eval);
    one line per broken link, exit 1 if any."""
    from pretrain.lineage.verify import verify as check

    broken, links = check(_run(run))
    for line in broken:
        print(line)
    stages = ", ".join(m.get("stage", "?") for _, m in links)
    if broken:
        print(f"{len(broken)} broken link(s) in the chain ({stages})", file=sys.stderr)
        raise typer.Exit(1)
    print(f"verified: {len(links)} manifests ({stages}), every hash holds")


def diff(run_a: Path = typer.Argument(..., help="Run directory A."),
         run_b: Path = typer.Argument(..., help="Run directory B.")) -> None:
    """The first stage where two runs differ, and what differs (a config key, the seed, the code, an input)."""
    from pretrain.lineage.verify import diff as compare

    out = compare(_run(run_a), _run(run_b))
    if out["stage"] is None:
        print("no difference in any stage's manifest")
        return
    print(f"first difference: stage {out['stage']}")
    for line in out["differences"]:
        print(f"  {line}")


def register(app: typer.Typer) -> None:
    """Add the lineage commands to the main app."""
    app.add_typer(trace_app, name="trace")
    app.command("verify")(verify)
    app.command("diff")(diff)
