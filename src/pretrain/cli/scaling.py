"""CLI commands of the scaling stage (argument parsing only; the work is in pretrain.scaling)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the main app."""
    return None
