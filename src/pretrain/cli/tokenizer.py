"""CLI commands of the tokenizer stage (argument parsing only; the work is in pretrain.tokenizer)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the main app."""
    return None
