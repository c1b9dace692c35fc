"""`pretrain config ...`: show a resolved config, explain the fields."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

config_app = typer.Typer(help="Inspect configurations and presets.", no_args_is_help=True)


@config_app.command("show")
def show(
    source: str = typer.Argument("quickstart", help="A preset name or a TOML/YAML config file."),
    overrides: list[str] = typer.Argument(None, help="Dotted overrides such as train.lr=3e-4."),
) -> None:
    """Print the fully resolved config as TOML (defaults <- preset <- file <- overrides)."""
    import tomli_w

    from pretrain.config import resolve, to_dict

    print(tomli_w.dumps(to_dict(resolve(source, overrides or []))), end="")


@config_app.command("explain")
def explain(prefix: str = typer.Argument("", help="Only fields whose dotted name starts with this.")) -> None:
    """List every config field with its type, default and documentation."""
    from pretrain.config import RunConfig
    from pretrain.configlib import describe

    table = Table(show_lines=False)
    for col in ("field", "type", "default", "meaning"):
        table.add_column(col, overflow="fold")
    for name, tp, default, doc in describe(RunConfig):
        if name.startswith(prefix):
            table.add_row(name, tp, repr(default), doc)
    Console(width=200).print(table)


@config_app.command("presets")
def presets() -> None:
    """List the named presets."""
    from pretrain.presets import PRESETS

    for name, p in PRESETS.items():
        m = p.get("model", {})
        print(f"{name:12s} dim={m.get('dim', '-')} layers={m.get('n_layers', '-')} heads={m.get('n_heads', '-')}")


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")
