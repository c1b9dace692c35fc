"""`pretrain corpus ...`: build the built-in corpus."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

corpus_app = typer.Typer(help="Built-in corpora that need no network.", no_args_is_help=True)


@corpus_app.command("builtin")
def builtin(
    out: Path = typer.Option(Path("corpus"), "--out", "-o", help="Output directory for <domain>.jsonl.zst files."),
    val_fraction: float = typer.Option(0.05, help="Fraction of documents per domain held out (by id hash)."),
    domain: list[str] = typer.Option(None, "--domain", help="Only these domains (code, docs, literature)."),
) -> None:
    """Write the built-in corpus: Python stdlib code, stdlib docstrings, Shakespeare."""
    from pretrain.cli.guards import in_range
    from pretrain.data.builtin import DOMAINS, build_builtin_corpus
    from pretrain.writable import ensure_writable

    in_range("--val-fraction", val_fraction, 0, 1, high_open=True)
    ensure_writable(out, "--out")

    stats = build_builtin_corpus(out, val_fraction=val_fraction, domains=tuple(domain or DOMAINS))
    table = Table(title=f"built-in corpus -> {out}")
    for col in ("domain", "documents", "MB", "held out"):
        table.add_column(col, justify="right" if col != "domain" else "left")
    for d, s in stats.items():
        table.add_row(d, str(s["documents"]), f"{s['bytes'] / 1e6:.2f}", str(s["val_documents"]))
    Console().print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(corpus_app, name="corpus")
