"""`pretrain generate`, `pretrain export hf`, `pretrain import hf` on a tiny checkpoint."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from model_helpers import tiny_config
from typer.testing import CliRunner

from pretrain.cli import app
from pretrain.model import Transformer
from pretrain.model.config import MTPConfig
from pretrain.model.io import load_model, save_model


@pytest.fixture
def run_dir(tmp_path, tokenizer_file):
    model = Transformer(tiny_config(vocab_size=300, init_std=0.3, mtp=MTPConfig(depth=1)))
    ckpt = tmp_path / "run" / "checkpoints" / "step_00000005"
    save_model(model, ckpt)
    (ckpt / "tokenizer.json").write_bytes(tokenizer_file.read_bytes())
    return tmp_path / "run"


def test_generate_greedy_is_deterministic(run_dir):
    runner = CliRunner()
    args = ["generate", str(run_dir), "--prompt", "to be", "--greedy", "-n", "8"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert first.output.startswith("to be")
    assert runner.invoke(app, args).output == first.output
    spec = runner.invoke(app, [*args, "--speculative"])
    assert spec.exit_code == 0, spec.output
    assert spec.output.splitlines()[0] == first.output.splitlines()[0]  # same text as plain greedy
    assert "draft acceptance" in spec.output
    sampled = runner.invoke(app, ["generate", str(run_dir), "-p", "def", "-p", "to", "--temperature", "0.9",
                                  "--top-k", "5", "--top-p", "0.9", "-n", "5", "--seed", "1"])
    assert sampled.exit_code == 0 and len(sampled.output.strip().splitlines()) >= 2


def test_export_then_import_via_cli(run_dir, tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["export", "hf", str(run_dir), "--out", str(tmp_path / "hf")])
    assert result.exit_code == 0, result.output
    assert "LlamaForCausalLM" in result.output
    assert json.loads((tmp_path / "hf" / "config.json").read_text())["model_type"] == "llama"
    result = runner.invoke(app, ["import", "hf", str(tmp_path / "hf"), "--out", str(tmp_path / "back")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "back" / "tokenizer.json").is_file()
    original = load_model(run_dir)
    back = load_model(tmp_path / "back")
    for key, tensor in back.state_dict().items():
        assert (tensor == original.state_dict()[key]).all(), key


@pytest.mark.slow  # a fresh interpreter importing the whole CLI
def test_missing_checkpoint_is_a_one_line_error(tmp_path):
    cmd = [sys.executable, "-c", "import sys; from pretrain.cli import main; sys.argv[0] = 'pretrain'; main()"]
    proc = subprocess.run([*cmd, "export", "hf", str(tmp_path / "nope"), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "not found" in proc.stderr


def test_generate_falls_back_to_the_run_tokenizer(tmp_path, tokenizer_file):
    run = tmp_path / "run"
    save_model(Transformer(tiny_config(vocab_size=300)), run / "checkpoints" / "final")
    runner = CliRunner()
    missing = runner.invoke(app, ["generate", str(run), "--greedy", "-n", "2"])
    assert missing.exit_code != 0 and "tokenizer" in str(missing.exception)
    (run / "tokenizer").mkdir()
    (run / "tokenizer" / "tokenizer.json").write_bytes(tokenizer_file.read_bytes())
    result = runner.invoke(app, ["generate", str(run), "--greedy", "-n", "2", "-p", "to"])
    assert result.exit_code == 0, result.output
