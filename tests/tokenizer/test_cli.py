"""The CLI layer: tokenizer train -> tokenize -> tokenizer stats -> mixture show, and one-line errors."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from pretrain.cli import app
from pretrain.data.record import write_jsonl


def test_cli_pipeline(corpus, tmp_path):
    write_jsonl(tmp_path / "in" / "c.jsonl.zst", corpus)
    run = CliRunner().invoke
    r = run(app, ["tokenizer", "train", str(tmp_path / "in"), "--out", str(tmp_path / "tok"), "--vocab-size", "400",
                  "--set", "tokenizer.sample_bytes_per_domain=20000"])
    assert r.exit_code == 0, r.output
    assert "vocab 400" in r.output and "sample code" in r.output
    r = run(app, ["tokenize", str(tmp_path / "in"), "-t", str(tmp_path / "tok"), "-o", str(tmp_path / "tokens"),
                  "--val-fraction", "0.2"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "tokens" / "train" / "math" / "shard_00000.bin").is_file()
    r = run(app, ["tokenizer", "stats", str(tmp_path / "in"), "-t", str(tmp_path / "tok"), "--val-fraction", "0.2"])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "tok" / "stats.json").read_text())["overall"]["bytes_per_token"] > 1.0
    r = run(app, ["mixture", "show", "--tokens", str(tmp_path / "tokens"), "--total-tokens", "1e6",
                  "--set", "data.mixture.weights={math=1.0}"])
    assert r.exit_code == 0, r.output
    assert "epochs" in r.output and "warning: math would repeat" in r.output


def test_cli_errors_are_one_line(tmp_path):
    import subprocess
    import sys

    cmd = [sys.executable, "-c", "from pretrain.cli import main; main()", "tokenize", str(tmp_path / "missing"),
           "-t", str(tmp_path)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "not found" in r.stderr
