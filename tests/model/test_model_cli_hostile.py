"""Hostile values and outputs for `pretrain generate`, `export hf` and `import hf` (issue 32): sampling
flags out of range are one line naming the flag, a run without checkpoints/final says which step
checkpoint stands in, and an output on a read-only file system is one line before any work."""

from __future__ import annotations

import pytest
import torch
from model_helpers import tiny_config

from pretrain.eval.generation import generate_ids
from pretrain.model import Transformer
from pretrain.model.generate import generate
from pretrain.model.io import save_model


def _run(root, tokenizer_file, final: bool):
    model = Transformer(tiny_config(vocab_size=300))
    ckpt = root / "checkpoints" / ("final" if final else "step_00000005")
    save_model(model, ckpt)
    (ckpt / "tokenizer.json").write_bytes(tokenizer_file.read_bytes())
    return root


@pytest.fixture
def step_run(tmp_path, tokenizer_file):
    return _run(tmp_path / "run", tokenizer_file, final=False)


@pytest.mark.parametrize(("flag", "value", "message"), [
    ("--temperature", "-1", "--temperature must be >= 0 (got -1)"),
    ("--top-p", "2", "--top-p must be in (0, 1] (got 2)"),
    ("--top-p", "0", "--top-p must be in (0, 1] (got 0)"),
    ("--top-k", "-5", "--top-k must be >= 0 (got -5)"),
    ("--max-new-tokens", "-1", "--max-new-tokens must be >= 0 (got -1)"),
])
def test_sampling_flags_out_of_range_are_one_line(step_run, cli, flag, value, message):
    rc, out, err = cli("generate", step_run, "-p", "to be", flag, value)
    assert rc == 2 and out == "" and err == f"error: {message}\n"


def test_sampling_apis_refuse_out_of_range_values():
    model = Transformer(tiny_config(vocab_size=300)).eval()
    with pytest.raises(ValueError, match="temperature must be >= 0"):
        generate_ids(model, [1, 2], 3, temperature=-1.0)
    with pytest.raises(ValueError, match="top_k must be >= 0"):
        generate_ids(model, [1, 2], 3, temperature=0.5, top_k=-1)
    with pytest.raises(ValueError, match="0 < top_p <= 1"):
        generate(model, torch.tensor([[1, 2]]), 3, temperature=0.8, top_p=2.0)
    assert len(generate(model, torch.tensor([[1, 2]]), 3, temperature=0.8, top_p=1.0)[0]) == 5


def test_generate_names_the_step_checkpoint_it_falls_back_to(step_run, cli, tmp_path, tokenizer_file):
    rc, out, err = cli("generate", step_run, "-p", "to be", "--greedy", "-n", "3")
    assert rc == 0 and out.startswith("to be")
    assert err == (f"warning: {step_run} has no checkpoints/final; using the latest step checkpoint "
                   f"{step_run / 'checkpoints' / 'step_00000005'}\n")
    final = _run(tmp_path / "done", tokenizer_file, final=True)
    rc, _, err = cli("generate", final, "-p", "to be", "--greedy", "-n", "3")
    assert rc == 0 and err == ""  # the final model: nothing to say
    rc, _, err = cli("generate", step_run / "checkpoints" / "step_00000005", "-p", "x", "--greedy", "-n", "1")
    assert rc == 0 and err == ""  # a checkpoint named directly is what the user asked for


def test_export_and_import_to_a_readonly_directory_are_one_line(step_run, cli, readonly_dir):
    rc, _, err = cli("export", "hf", step_run, "--out", readonly_dir / "hf")
    assert rc == 2 and err.splitlines() == [
        f"warning: {step_run} has no checkpoints/final; using the latest step checkpoint "
        f"{step_run / 'checkpoints' / 'step_00000005'}",
        f"error: --out {readonly_dir / 'hf'} is not writable: read-only file system"]
    rc, _, err = cli("import", "hf", step_run, "--out", readonly_dir / "back")
    assert rc == 2 and err == f"error: --out {readonly_dir / 'back'} is not writable: read-only file system\n"
