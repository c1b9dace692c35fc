"""`pretrain quickstart`: the whole pipeline once on the built-in corpus."""

from __future__ import annotations

from pathlib import Path

import typer


def quickstart(
    overrides: list[str] = typer.Argument(None, help="Dotted config overrides, e.g. train.max_steps=100."),
    preset: str = typer.Option("quickstart", help="Preset (or config file) to start from."),
    run_dir: Path = typer.Option(None, "--run-dir", help="Run directory (default runs/<name>)."),
    fresh: bool = typer.Option(False, "--fresh", help="Delete the run directory first and redo every step."),
) -> None:
    """Built-in corpus -> curate -> tokenizer -> shards -> train -> evaluate -> report, in one go."""
    from rich.console import Console
    from rich.table import Table

    from pretrain.config import resolve
    from pretrain.quickstart import run_quickstart

    cfg = resolve(preset, overrides or [])
    result = run_quickstart(cfg, run_dir or Path("runs") / cfg.name, fresh=fresh)
    console = Console()
    domains = result.heldout.get("domains", {})
    if domains:
        table = Table(title="held-out bits per byte (lower is better)")
        for col in ("domain", "model", "unigram baseline", "loss/token"):
            table.add_column(col, justify="right" if col != "domain" else "left")
        for d, r in domains.items():
            base = result.heldout.get("unigram", {}).get(d, {}).get("bits_per_byte")
            table.add_row(d, f"{r['bits_per_byte']:.3f}", f"{base:.3f}" if base else "-", f"{r['loss']:.3f}")
        console.print(table)
    total = sum(result.timings.values())
    console.print(f"time: {total:.0f} s ({', '.join(f'{k} {v:.0f}s' for k, v in result.timings.items())})")
    console.print(f"[bold]report:[/bold] {result.report or '(not written)'}")


def register(app: typer.Typer) -> None:
    app.command("quickstart")(quickstart)
