"""CLI commands of the report stage (argument parsing only; the work is in pretrain.report)."""

from __future__ import annotations

from pathlib import Path

import typer


def report(
    run_dirs: list[Path] = typer.Argument(..., metavar="RUN_DIR...", help="Run directory (several with --compare).",
                                  show_default=False),
    compare: bool = typer.Option(False, "--compare", help="Overlay the given runs on one page "
                                 "(pretrain report --compare RUN_A RUN_B ...)."),
    out: Path | None = typer.Option(None, "--out", help="Output directory (default: RUN_DIR/report, or "
                                    "<parent of the first run>/compare for --compare)."),
    tensorboard: bool = typer.Option(False, "--tensorboard", help="Also rebuild RUN_DIR/tensorboard "
                                     "from metrics.jsonl (replaces the event files there)."),
    tensorboard_only: bool = typer.Option(False, "--tensorboard-only", help="Only rebuild the TensorBoard "
                                          "scalars; no HTML."),
    images_beside: bool = typer.Option(False, "--images-beside", help="Write PNGs next to index.html "
                                       "instead of embedding them in the page."),
    upload: bool = typer.Option(True, "--upload/--no-upload", help="Attach the report to the run's tracker "
                                "runs (W&B, MLflow, trackio; recorded in RUN_DIR/trackers.json) as an artifact."),
) -> None:
    """Build the self-contained HTML report of a run (or compare runs); optionally TensorBoard scalars."""
    from pretrain.report import build_report, compare_runs

    embed = not images_beside
    if out is not None:
        from pretrain.writable import ensure_writable

        ensure_writable(out, "--out")
    if compare:
        if len(run_dirs) < 2:
            raise typer.BadParameter("--compare needs at least two run directories", param_hint="RUN_DIRS")
        target = out or run_dirs[0].resolve().parent / "compare"
        path = compare_runs(run_dirs, target, embed_images=embed)
        typer.echo(f"comparison of {len(run_dirs)} runs: {path}")
        return
    for run_dir in run_dirs:
        if tensorboard or tensorboard_only:
            from pretrain.report.tensorboard import write_scalars

            typer.echo(f"tensorboard scalars: {write_scalars(run_dir)}  (tensorboard --logdir {run_dir})")
        if not tensorboard_only:
            target = out / run_dir.name if out is not None and len(run_dirs) > 1 else out
            path = build_report(run_dir, target, embed_images=embed)
            typer.echo(f"report: {path}")
            if upload and (run_dir / "trackers.json").is_file():
                from pretrain.train.callbacks.trackers import attach_report

                reached = attach_report(run_dir, Path(path).parent)  # a failure warns in its own line
                if reached:
                    typer.echo(f"report attached to: {', '.join(reached)}")


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the main app."""
    app.command("report", help="Build the HTML report of a run directory, compare runs (--compare), or "
                "rebuild TensorBoard scalars from metrics.jsonl (--tensorboard).")(report)
