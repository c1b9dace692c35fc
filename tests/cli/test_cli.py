"""Every CLI command answers --help; user errors print one line and exit 2."""

from __future__ import annotations

import subprocess
import sys

import typer.main

from pretrain.cli import app


def _all_commands(cmd, path: tuple[str, ...] = ()):
    yield path
    if getattr(cmd, "commands", None):
        for name, sub in cmd.commands.items():
            yield from _all_commands(sub, (*path, name))


def test_every_command_has_help():
    from typer.testing import CliRunner

    root = typer.main.get_command(app)
    paths = list(_all_commands(root))
    assert len(paths) > 5
    runner = CliRunner()
    for path in paths:
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage" in result.output


def test_bad_config_value_is_one_line_error():
    proc = subprocess.run(
        [sys.executable, "-c", "from pretrain.cli import main; main()", "config", "show", "tiny", "train.lr=-1"],
        capture_output=True, text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: config field 'train.lr': must be > 0 (got -1.0)"
