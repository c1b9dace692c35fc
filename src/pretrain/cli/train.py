"""CLI commands of the train stage (argument parsing only; the work is in pretrain.train)."""

from __future__ import annotations

import os
from pathlib import Path

import typer


def train_command(
    config: str = typer.Argument(..., help="A preset name (tiny, quickstart, ...) or a TOML/YAML config file."),
    overrides: list[str] = typer.Argument(None, help="Dotted overrides such as train.lr=3e-4 train.max_steps=100."),
    run_dir: Path = typer.Option(None, "--run-dir", help="Run directory (default: runs/<name>)."),
    fresh: bool = typer.Option(False, "--fresh", help="Ignore (and delete) existing checkpoints; start from step 0."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show the live console line."),
) -> None:
    """Train a model; resumes from the latest valid checkpoint in the run directory unless --fresh.

    Under torchrun (`torchrun --nproc_per_node 8 -m pretrain.train CONFIG ...`) it trains with DDP or FSDP2
    (train.distributed) on the same global batch.
    """
    from rich.console import Console

    from pretrain.config import resolve
    from pretrain.rundir import RunDir
    from pretrain.train import train
    from pretrain.train.callbacks.preemption import PREEMPTED_EXIT
    from pretrain.train.goodput import process_start_time

    cfg = resolve(config, overrides or [])
    run = RunDir(run_dir) if run_dir else RunDir.for_name(cfg.name)
    run.make()  # a run directory that cannot be written stops here, in one line
    if int(os.environ.get("RANK", "0")) == 0:  # once per run, not once per torchrun rank
        _note_short_val(Path(cfg.data.tokens) if cfg.data.tokens else run.tokens, cfg.eval.seq_len or cfg.train.seq_len)
    result = train(cfg, run, fresh=fresh, progress=progress, started_at=process_start_time())
    if result.stopped == "preempted":
        if int(os.environ.get("RANK", "0")) == 0:
            Console(stderr=True).print(f"preempted: checkpoint of step {result.step} written in {run.checkpoints}; "
                                       f"run the same command again to continue (exit status {PREEMPTED_EXIT})")
        raise typer.Exit(PREEMPTED_EXIT)
    if result.final_checkpoint is not None:
        losses = " ".join(f"{k}={v:.4f}" for k, v in result.losses.items() if isinstance(v, float))
        Console(stderr=True).print(f"trained {result.step} steps, {result.tokens:,} tokens ({result.stopped}); "
                                   f"{losses}; final model: {result.final_checkpoint}")


def _note_short_val(tokens: Path, seq_len: int) -> None:
    """Warn once when a domain's validation split holds fewer tokens than one sequence: its val loss is
    then measured on a partial window, not comparable with a full one."""
    from pretrain.cli.guards import warn
    from pretrain.data.shards import load_split

    try:
        split = load_split(tokens, "val")
    except (FileNotFoundError, ValueError):  # no val split, or an unreadable one: train() says so itself
        return
    short = [f"{d} ({s.num_tokens} tokens)" for d, s in split.items() if s.num_tokens < seq_len + 1]
    if short:
        warn(f"validation split {tokens / 'val'} is shorter than one sequence ({seq_len + 1} tokens) in "
             f"{', '.join(short)}: its val loss covers a partial window")


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the main app."""
    app.command("train")(train_command)
